"""What one agent attempt gives back, whichever runtime ran it: a result, or a failure to
record (with an optional `retry_after`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from baton import AgentError
from baton_server.engine.agent_policy import PolicyViolationError
from baton_server.engine.execution_model import Failure


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


def failure_of(exc: BaseException) -> AttemptFailedError:
    """The AttemptFailedError for whatever an agent raised."""
    if isinstance(exc, AttemptFailedError):
        return exc
    if isinstance(exc, PolicyViolationError):
        return AttemptFailedError(Failure(exc.failure_type, exc.message, non_retryable=True))
    if isinstance(exc, AgentError):
        return AttemptFailedError(
            Failure(exc.type, exc.message, non_retryable=exc.non_retryable, details=exc.details),
            exc.retry_after,
        )
    return AttemptFailedError(Failure(type(exc).__name__, str(exc) or type(exc).__name__))
