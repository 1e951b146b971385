"""The execution event log's entries: one payload class per event kind. Writers build events
with `new_event(payload, ...)`; readers get the payload back with `payload_of(event)`.
Storage keeps each payload as the JSON document `to_doc()` gives, so this module is the
one place that knows the documents' keys."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Self

from baton_server.domain.executions import ITERATION_KEY, Event, EventType, Failure


@dataclass(frozen=True, slots=True)
class Payload:
    """What an event of one kind carries."""

    kind: ClassVar[EventType]

    def to_doc(self) -> dict[str, Any]:
        """The JSON document storage keeps."""
        names, values = _fields(type(self))
        return dict(zip(names, values(self), strict=True))

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Self:
        """Reverses `to_doc`; keys this version does not know are ignored."""
        known = _fields(cls)[0]
        return cls(**{k: v for k, v in doc.items() if k in known})


_Fields = tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]
_FIELDS: dict[type[Payload], _Fields] = {}


def _fields(cls: type[Payload]) -> _Fields:
    """A payload class's field names, in order, and a function that reads their values as a
    tuple (made once per class: a document is made for every event written)."""
    found = _FIELDS.get(cls)
    if found is None:
        names = tuple(f.name for f in fields(cls))
        getter = operator.attrgetter(*names) if names else (lambda _: ())
        values = getter if len(names) != 1 else (lambda payload: (getter(payload),))
        found = _FIELDS[cls] = (names, values)
    return found


def _failure_doc(failure: Failure | None) -> dict[str, Any] | None:
    return failure.to_doc() if failure is not None else None


@dataclass(frozen=True, slots=True)
class _CarriesFailure(Payload):
    """A payload whose `error` is a Failure (stored as its document)."""

    error: Failure | None = None

    def to_doc(self) -> dict[str, Any]:
        doc = Payload.to_doc(self)  # (zero-argument super() fails in slotted dataclasses)
        doc["error"] = _failure_doc(self.error)
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Self:
        known = _fields(cls)[0]
        values = {k: v for k, v in doc.items() if k in known}
        values["error"] = Failure.from_doc(doc.get("error"))
        return cls(**values)


@dataclass(frozen=True, slots=True)
class ExecutionQueued(Payload):
    kind = EventType.EXECUTION_QUEUED
    workflow_revision: int = 0
    priority: int = 0


@dataclass(frozen=True, slots=True)
class ExecutionStarted(Payload):
    kind = EventType.EXECUTION_STARTED


@dataclass(frozen=True, slots=True)
class ExecutionSucceeded(Payload):
    kind = EventType.EXECUTION_SUCCEEDED
    output: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ExecutionFailed(_CarriesFailure):
    kind = EventType.EXECUTION_FAILED


@dataclass(frozen=True, slots=True)
class ExecutionCancelled(Payload):
    kind = EventType.EXECUTION_CANCELLED
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ExecutionTimedOut(Payload):
    kind = EventType.EXECUTION_TIMED_OUT
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class StepScheduled(Payload):
    kind = EventType.STEP_SCHEDULED
    agent: str = ""


@dataclass(frozen=True, slots=True)
class StepStarted(Payload):
    kind = EventType.STEP_STARTED
    agent: str = ""
    idempotency_key: str = ""
    input: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class StepSucceeded(Payload):
    kind = EventType.STEP_SUCCEEDED
    output: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class StepFailed(_CarriesFailure):
    kind = EventType.STEP_FAILED


@dataclass(frozen=True, slots=True)
class StepRetrying(_CarriesFailure):
    kind = EventType.STEP_RETRYING
    delay: float = 0.0
    next_attempt: int = 0


@dataclass(frozen=True, slots=True)
class StepSkipped(Payload):
    kind = EventType.STEP_SKIPPED
    reason: str = ""


@dataclass(frozen=True, slots=True)
class StepTimedOut(Payload):
    kind = EventType.STEP_TIMED_OUT
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class FallbackActivated(_CarriesFailure):
    kind = EventType.FALLBACK_ACTIVATED
    from_agent: str = ""
    to_agent: str = ""


@dataclass(frozen=True, slots=True)
class HandoffRecord(Payload):
    """A handoff: the event's payload, and the record a step run keeps of it."""

    kind = EventType.HANDOFF
    handoff: str = ""
    source_agent: str = ""
    target_agent: str = ""
    type: str = ""
    requested_by_agent: bool = False
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class OutputDelta(Payload):
    kind = EventType.STEP_OUTPUT_DELTA
    text: str = ""
    data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Log(Payload):
    kind = EventType.LOG
    severity: str = "INFO"
    message: str = ""
    fields: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class StepInterrupted(Payload):
    kind = EventType.STEP_INTERRUPTED
    agent: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SignalReceived(Payload):
    kind = EventType.SIGNAL_RECEIVED
    signal: str = ""
    payload: dict[str, Any] | None = None
    taken_by: str = ""
    """The waiting step that took it ('' while it waits for one)."""


@dataclass(frozen=True, slots=True)
class ExecutionPaused(Payload):
    kind = EventType.EXECUTION_PAUSED
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ExecutionResumed(Payload):
    kind = EventType.EXECUTION_RESUMED


@dataclass(frozen=True, slots=True)
class ExecutionRetried(Payload):
    kind = EventType.EXECUTION_RETRIED
    reset_steps: list[str] | None = None
    run: int = 0


@dataclass(frozen=True, slots=True)
class ApprovalDecided(Payload):
    kind = EventType.APPROVAL_DECIDED
    approved: bool = False
    decided_by: str = ""
    role: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LoopIterationStarted(Payload):
    kind = EventType.LOOP_ITERATION_STARTED
    iteration: int = 0
    reset_steps: list[str] | None = None


@dataclass(frozen=True, slots=True)
class AgentTurn(Payload):
    """One model call of an LLM agent: the assistant message as the model gave it (its
    text and tool calls, each {"id", "name", "arguments"}), with its token usage. It is
    the checkpoint an attempt goes on from after a restart."""

    kind = EventType.AGENT_TURN
    turn: int = 0
    content: str = ""
    tool_calls: list[dict[str, str]] | None = None
    usage: dict[str, int] | None = None
    finish_reason: str = ""
    item: int = -1
    rejected: str = ""
    """Why the reply was not taken as the output (it does not match the step's
    output_schema); the model was asked again."""
    agent: str = ""
    """The agent whose model answered (its id)."""


@dataclass(frozen=True, slots=True)
class ToolCallStarted(Payload):
    kind = EventType.TOOL_CALL_STARTED
    call_id: str = ""
    tool: str = ""
    arguments: dict[str, Any] | None = None
    try_number: int = 0
    turn: int = 0
    item: int = -1


@dataclass(frozen=True, slots=True)
class ToolCallSucceeded(Payload):
    """A tool call's result: the checkpoint that keeps it from running again."""

    kind = EventType.TOOL_CALL_SUCCEEDED
    call_id: str = ""
    tool: str = ""
    result: dict[str, Any] | None = None
    try_number: int = 0
    turn: int = 0
    item: int = -1


@dataclass(frozen=True, slots=True)
class ToolCallFailed(_CarriesFailure):
    """A tool call's failure; when it will not be tried again, the checkpoint of the
    error the model is told."""

    kind = EventType.TOOL_CALL_FAILED
    call_id: str = ""
    tool: str = ""
    try_number: int = 0
    will_retry: bool = False
    turn: int = 0
    item: int = -1


AGENT_LOOP_KINDS = (EventType.AGENT_TURN, EventType.TOOL_CALL_SUCCEEDED, EventType.TOOL_CALL_FAILED)
"""The events an LLM agent's attempt goes on from after a restart."""

_BY_KIND: dict[EventType, type[Payload]] = {
    cls.kind: cls
    for cls in (
        ExecutionQueued,
        ExecutionStarted,
        ExecutionSucceeded,
        ExecutionFailed,
        ExecutionCancelled,
        ExecutionTimedOut,
        StepScheduled,
        StepStarted,
        StepSucceeded,
        StepFailed,
        StepRetrying,
        StepSkipped,
        StepTimedOut,
        FallbackActivated,
        HandoffRecord,
        OutputDelta,
        Log,
        StepInterrupted,
        SignalReceived,
        ExecutionPaused,
        ExecutionResumed,
        ExecutionRetried,
        ApprovalDecided,
        LoopIterationStarted,
        AgentTurn,
        ToolCallStarted,
        ToolCallSucceeded,
        ToolCallFailed,
    )
}


def new_event(
    payload: Payload, step_id: str = "", attempt: int = 0, time: float = 0.0, iteration: int = 0
) -> Event:
    """An event of `payload`'s kind (its sequence is set when it is written), of loop
    `iteration` when its step is in one."""
    doc = payload.to_doc()
    if iteration:
        doc[ITERATION_KEY] = iteration
    return Event(payload.kind, step_id, attempt, payload=doc, time=time)


def payload_of(event: Event) -> Payload:
    """The typed payload of a stored or new event."""
    return _BY_KIND[event.type].from_doc(event.payload)
