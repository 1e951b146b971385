"""One agent attempt as every runtime sees it: what it is given (`AttemptInfo`) and what it
gives back (a result, or a failure to record with an optional `retry_after`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from baton_server.domain.executions import Failure


@dataclass(frozen=True)
class AgentResult:
    """What a successful attempt gives: the agent's output, and the agent it asked to hand
    the step to ('' for none)."""

    output: dict[str, Any]
    handoff_to: str = ""
    size: int = -1
    """The output's size as JSON, once the engine has measured it."""


class AttemptFailedError(Exception):
    """An attempt failed; carries the failure to record and an optional `retry_after`."""

    def __init__(self, failure: Failure, retry_after: float | None = None) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    """What a runtime needs to run one attempt: who it is for, the agent's config, when it
    must end, the flag set when it should stop, and where its log lines and partial output
    go (both safe to call from any thread)."""

    execution: str
    step_id: str
    attempt: int
    idempotency_key: str
    agent: str
    config: dict[str, Any]
    deadline: float | None
    cancelled: threading.Event
    log: Callable[[str, str, dict[str, Any]], None]
    deltas: Callable[[str, dict[str, Any] | None], None]
    http: Any = None
    traceparent: str = ""
    """The W3C trace context of the attempt's span ('' when not traced)."""
