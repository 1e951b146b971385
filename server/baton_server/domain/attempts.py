"""One agent attempt as every runtime sees it: what it is given (`AttemptInfo`) and what it
gives back (a result, or a failure to record with an optional `retry_after`)."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from baton_server.domain.executions import Failure, Usage

if TYPE_CHECKING:
    from baton_server.domain.definitions import Agent, Handoff
    from baton_server.domain.events import Payload
    from baton_server.domain.tools import Tool


@dataclass(frozen=True)
class AgentResult:
    """What a successful attempt gives: the agent's output, and the agent it asked to hand
    the step to ('' for none)."""

    output: dict[str, Any]
    handoff_to: str = ""
    size: int = -1
    """The output's size as JSON, once the engine has measured it."""
    usage: Usage | None = None
    """The tokens the attempt's LLM calls counted."""


class AttemptFailedError(Exception):
    """An attempt failed; carries the failure to record and an optional `retry_after`."""

    def __init__(
        self, failure: Failure, retry_after: float | None = None, usage: Usage | None = None
    ) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.retry_after = retry_after
        self.usage = usage


class Cancellation(threading.Event):
    """An attempt's `cancelled` flag: a threading.Event whose condition (a lock and a
    deque, about 1 KB) is made only when a thread waits on it. Most attempts never do, and
    one is made per attempt, so thousands of waiting executions would carry thousands."""

    _making = threading.Lock()  # guards the making of any instance's condition

    def __init__(self) -> None:  # (no super().__init__: the condition comes on demand)
        self._flag = False
        self._cond: threading.Condition | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        with Cancellation._making:
            if self._cond is None:  # no thread waits: nobody to wake
                self._flag = True
                return
        super().set()

    def clear(self) -> None:
        with Cancellation._making:
            if self._cond is None:
                self._flag = False
                return
        super().clear()

    def wait(self, timeout: float | None = None) -> bool:
        with Cancellation._making:
            if self._cond is None:
                if self._flag:
                    return True
                self._cond = threading.Condition(threading.Lock())
        return super().wait(timeout)

    def _at_fork_reinit(self) -> None:
        if self._cond is not None:
            super()._at_fork_reinit()  # type: ignore[misc]


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
    item: int = -1
    """With `for_each`: the item's index."""
    tools: Sequence[Tool] = ()
    """The agent's tools (an LLM agent calls them)."""
    tool_agents: Mapping[str, Agent] = field(default_factory=dict)
    """The agents of the agent's `agent` tools, by id."""
    handoffs: Sequence[Handoff] = ()
    """The handoffs declared from the agent (an LLM agent gets a `transfer_to_` tool for
    each SEQUENTIAL one)."""
    output_schema: dict[str, Any] | None = None
    """The step's output JSON Schema, if it has one."""
    check_output: Callable[[dict[str, Any]], list[str]] | None = None
    """Where an output does not match `output_schema` (blocking: run it in a thread)."""
    checkpoints: Callable[[], Awaitable[Sequence[Payload]]] | None = None
    """Reads what the attempt recorded before a restart cut it short (AGENT_TURN and
    TOOL_CALL_* payloads, in order)."""
    record: Callable[[Sequence[Payload]], Awaitable[None]] | None = None
    """Writes events of the attempt durably (it returns once they are committed)."""
    run_workflow: Callable[[str, dict[str, Any], str], Awaitable[AgentResult]] | None = None
    """Runs a workflow (by id) on an input as a child execution of the attempt's, keyed by
    an idempotency key (the same key finds the same child after a restart); returns its
    output or raises AttemptFailedError."""
