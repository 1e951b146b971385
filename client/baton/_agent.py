"""What an agent function sees: its step context, and the error it raises to steer retries.

An agent of runtime `python` is a function `fn(input: dict, ctx: StepContext) -> dict`
(sync or async). Raise `AgentError` to give the failure a type, mark it non-retryable, or
ask for a delay before the next attempt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class AgentError(Exception):
    """A failure reported by an agent.

    Args:
        message: What went wrong.
        type: The failure type that retry policies match (`non_retryable_error_types`).
        non_retryable: Skip the remaining attempts (fallbacks still apply).
        retry_after: Seconds to wait at least before the next attempt.
        details: Structured details kept with the failure.
    """

    def __init__(
        self,
        message: str,
        *,
        type: str = "AgentError",
        non_retryable: bool = False,
        retry_after: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = type
        self.non_retryable = non_retryable
        self.retry_after = retry_after
        self.details = details


@dataclass
class HandoffRequest:
    """Return this from an agent to hand the step to another agent (allowed only when a
    Handoff from this agent to `target` exists): `target` continues with `output` as its
    input (shaped by the handoff's data_mapping)."""

    target: str
    output: dict[str, Any] = field(default_factory=dict)


LogSink = Callable[[str, str, dict[str, Any]], None]
DeltaSink = Callable[[str, "dict[str, Any] | None"], None]


class StepLogger:
    """Log lines written here become LOG events of the execution (safe from any thread)."""

    def __init__(self, sink: LogSink) -> None:
        self._sink = sink

    def write(self, severity: str, message: str, fields: dict[str, Any]) -> None:
        """Writes a line at `severity` (DEBUG, INFO, WARNING or ERROR) with `fields`."""
        self._sink(severity, message, fields)

    def debug(self, message: str, **fields: Any) -> None:
        """Writes a DEBUG line."""
        self._sink("DEBUG", message, fields)

    def info(self, message: str, **fields: Any) -> None:
        """Writes an INFO line."""
        self._sink("INFO", message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        """Writes a WARNING line."""
        self._sink("WARNING", message, fields)

    def error(self, message: str, **fields: Any) -> None:
        """Writes an ERROR line."""
        self._sink("ERROR", message, fields)


@dataclass
class StepInfo:
    """The plain facts of a step attempt (what CPU-bound agents in a process pool get).

    Attributes:
        execution: The execution's name, `executions/{id}`.
        step_id: The step being run.
        attempt: The attempt number, from 1.
        idempotency_key: `{execution id}/{step id}/{attempt}`, stable across redeliveries of
            the same attempt: use it to make side effects happen once.
        agent: The agent's name, `agents/{id}`.
        config: The agent's `config`.
        deadline: When the attempt must finish (epoch seconds), if the step has a timeout.
    """

    execution: str
    step_id: str
    attempt: int
    idempotency_key: str
    agent: str
    config: dict[str, Any] = field(default_factory=dict)
    deadline: float | None = None


@dataclass
class StepContext(StepInfo):
    """StepInfo plus the live parts: cancellation, logging and the shared HTTP client.

    Attributes:
        cancelled: Set when the execution is cancelled or the attempt timed out; long-running
            agents should check it and stop.
        log: Lines written here become LOG events.
        http: The server's shared `httpx.AsyncClient` (for async agents).
    """

    cancelled: threading.Event = field(default_factory=threading.Event)
    log: StepLogger = field(default_factory=lambda: StepLogger(lambda *_: None))
    http: Any = None
    deltas: DeltaSink = field(default=lambda text, data: None, repr=False)

    def emit(self, text: str = "", data: dict[str, Any] | None = None) -> None:
        """Sends partial output (e.g. LLM tokens) as a STEP_OUTPUT_DELTA event; safe from
        any thread. The step's output is still what the function returns."""
        self.deltas(text, data)

    def info(self) -> StepInfo:
        """The picklable StepInfo part of this context."""
        return StepInfo(
            self.execution,
            self.step_id,
            self.attempt,
            self.idempotency_key,
            self.agent,
            self.config,
            self.deadline,
        )
