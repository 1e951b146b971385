"""Domain objects for executions: the execution, its step runs and attempts, failures, and
the events of its log. Free of gRPC and SQL; `to_doc`/`from_doc` give storage documents."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, TypeVar

_T = TypeVar("_T")


class ExecutionState(enum.StrEnum):
    """The lifecycle of an execution."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"
    PAUSED = "PAUSED"

    @property
    def terminal(self) -> bool:
        """True once the execution has ended."""
        return self not in _UNENDED_EXECUTION


class StepState(enum.StrEnum):
    """The lifecycle of a step within an execution."""

    PENDING = "PENDING"
    SCHEDULED = "SCHEDULED"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"
    WAITING = "WAITING"
    SLEEPING = "SLEEPING"

    @property
    def terminal(self) -> bool:
        """True once the step will not run (again)."""
        return self in _TERMINAL_STEP


_UNENDED_EXECUTION = frozenset(
    {ExecutionState.QUEUED, ExecutionState.RUNNING, ExecutionState.PAUSED}
)

_TERMINAL_STEP = frozenset(
    {
        StepState.SUCCEEDED,
        StepState.FAILED,
        StepState.SKIPPED,
        StepState.CANCELLED,
        StepState.TIMED_OUT,
    }
)


class EventType(enum.StrEnum):
    """The kinds of entries in an execution's event log."""

    EXECUTION_QUEUED = "EXECUTION_QUEUED"
    EXECUTION_STARTED = "EXECUTION_STARTED"
    EXECUTION_SUCCEEDED = "EXECUTION_SUCCEEDED"
    EXECUTION_FAILED = "EXECUTION_FAILED"
    EXECUTION_CANCELLED = "EXECUTION_CANCELLED"
    EXECUTION_TIMED_OUT = "EXECUTION_TIMED_OUT"
    STEP_SCHEDULED = "STEP_SCHEDULED"
    STEP_STARTED = "STEP_STARTED"
    STEP_SUCCEEDED = "STEP_SUCCEEDED"
    STEP_FAILED = "STEP_FAILED"
    STEP_RETRYING = "STEP_RETRYING"
    STEP_SKIPPED = "STEP_SKIPPED"
    STEP_TIMED_OUT = "STEP_TIMED_OUT"
    FALLBACK_ACTIVATED = "FALLBACK_ACTIVATED"
    HANDOFF = "HANDOFF"
    STEP_OUTPUT_DELTA = "STEP_OUTPUT_DELTA"
    LOG = "LOG"
    LOOP_ITERATION_STARTED = "LOOP_ITERATION_STARTED"
    STEP_INTERRUPTED = "STEP_INTERRUPTED"
    SIGNAL_RECEIVED = "SIGNAL_RECEIVED"
    EXECUTION_PAUSED = "EXECUTION_PAUSED"
    EXECUTION_RESUMED = "EXECUTION_RESUMED"
    EXECUTION_RETRIED = "EXECUTION_RETRIED"
    APPROVAL_DECIDED = "APPROVAL_DECIDED"
    AGENT_TURN = "AGENT_TURN"
    TOOL_CALL_STARTED = "TOOL_CALL_STARTED"
    TOOL_CALL_SUCCEEDED = "TOOL_CALL_SUCCEEDED"
    TOOL_CALL_FAILED = "TOOL_CALL_FAILED"

    @property
    def terminal(self) -> bool:
        """True for the event that ends an execution's log."""
        return self in _TERMINAL_EVENTS


_TERMINAL_EVENTS = frozenset(
    {
        EventType.EXECUTION_SUCCEEDED,
        EventType.EXECUTION_FAILED,
        EventType.EXECUTION_CANCELLED,
        EventType.EXECUTION_TIMED_OUT,
    }
)


@dataclass
class Failure:
    """Why something failed."""

    type: str
    message: str
    step_id: str = ""
    non_retryable: bool = False
    details: dict[str, Any] | None = None
    cause: Failure | None = None

    def to_doc(self) -> dict[str, Any]:
        """The JSON document storage keeps."""
        return {
            "type": self.type,
            "message": self.message,
            "step_id": self.step_id,
            "non_retryable": self.non_retryable,
            "details": self.details,
            "cause": self.cause.to_doc() if self.cause else None,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None) -> Failure | None:
        """Reverses `to_doc` (None stays None)."""
        if doc is None:
            return None
        return cls(**{**doc, "cause": cls.from_doc(doc.get("cause"))})

    def evolve(self, **changes: Any) -> Failure:
        """A copy with `changes` (fields by name)."""
        return _evolved(self, changes)


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens an LLM counted."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
        )

    def __bool__(self) -> bool:
        return bool(self.prompt_tokens or self.completion_tokens or self.total_tokens)

    def to_doc(self) -> dict[str, int]:
        """The JSON document storage keeps."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None) -> Usage:
        """Reverses `to_doc` (None is no usage); numbers that are not counts count 0."""
        if not doc:
            return cls()
        return cls(*(_count(doc.get(key)) for key in _USAGE_KEYS))


_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass
class StepAttempt:
    """One try of a step by one agent."""

    attempt: int
    agent: str
    fallback: bool = False
    start_time: float = 0.0
    end_time: float = 0.0
    error: Failure | None = None
    usage: dict[str, int] | None = None
    """The tokens its LLM calls counted (a Usage document; None for none)."""

    def evolve(self, **changes: Any) -> StepAttempt:
        """A copy with `changes` (fields by name)."""
        return _evolved(self, changes)


@dataclass
class StepRun:
    """The record of one step within an execution.

    `agent_index` is 0 for the step's own agent and k for its k-th fallback; `tries` counts
    the attempts made by that agent (against the retry policy); `retry_at` is when a
    RETRYING step tries again; `handoff_input` is what a handoff gave its target (kept so
    that a restarted server hands the target the same input).
    """

    step_id: str
    position: int
    state: StepState = StepState.PENDING
    attempt: int = 0
    agent: str = ""
    agent_index: int = 0
    tries: int = 0
    retry_at: float = 0.0
    schedule_time: float = 0.0
    start_time: float = 0.0
    end_time: float = 0.0
    output: dict[str, Any] | None = None
    error: Failure | None = None
    attempts: list[StepAttempt] = field(default_factory=list)
    handoffs: list[dict[str, Any]] = field(default_factory=list)
    handoff_input: dict[str, Any] | None = None
    wake_time: float = 0.0
    """When a SLEEPING step wakes."""
    iteration: int = 0
    """The loop iteration the step is in (0 outside loops)."""
    past_outputs: list[Any] = field(default_factory=list)
    """Its outputs in the loop's earlier iterations (None where it was skipped)."""
    child: str = ""
    """The child execution a `workflow` step's current (or last) attempt started."""
    items_total: int = 0
    """With `for_each`: the number of items."""
    next_item: int = 0
    """With `for_each`: the first item not started yet (those before it ran or run)."""
    items_running: dict[str, dict[str, Any]] = field(default_factory=dict)
    """With `for_each`: the items running or waiting to retry, by index (as a string):
    {"attempt": n, "tries": n, "retry_at": t} (retry_at 0 while running)."""
    items_succeeded: int = 0
    items_failed: int = 0
    items_usage: dict[str, int] | None = None
    """With `for_each`: the tokens its items' attempts counted (a Usage document)."""

    @property
    def usage(self) -> Usage:
        """The tokens its attempts' (and items' attempts') LLM calls counted."""
        total = Usage.from_doc(self.items_usage)
        for attempt in self.attempts:
            if attempt.usage:
                total += Usage.from_doc(attempt.usage)
        return total

    def to_doc(self) -> dict[str, Any]:
        """The JSON document storage keeps (state, position and attempt are columns too).
        Written out by hand: this runs on every step transition, and asdict is slow."""
        doc: dict[str, Any] = {
            "step_id": self.step_id,
            "position": self.position,
            "state": self.state.value,
            "attempt": self.attempt,
            "agent": self.agent,
            "agent_index": self.agent_index,
            "tries": self.tries,
            "retry_at": self.retry_at,
            "schedule_time": self.schedule_time,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "output": self.output,
            "error": self.error.to_doc() if self.error else None,
            "attempts": [
                {
                    "attempt": a.attempt,
                    "agent": a.agent,
                    "fallback": a.fallback,
                    "start_time": a.start_time,
                    "end_time": a.end_time,
                    "error": a.error.to_doc() if a.error else None,
                    **({"usage": a.usage} if a.usage else {}),
                }
                for a in self.attempts
            ],
            "handoffs": self.handoffs,
            "handoff_input": self.handoff_input,
        }
        # What only some kinds of step have is written only when set (most steps have
        # none of it, and this document is written on every transition).
        if self.wake_time:
            doc["wake_time"] = self.wake_time
        if self.iteration or self.past_outputs:
            doc["iteration"] = self.iteration
            doc["past_outputs"] = self.past_outputs
        if self.child:
            doc["child"] = self.child
        if self.items_usage:
            doc["items_usage"] = self.items_usage
        if self.items_total:
            doc.update(
                items_total=self.items_total,
                next_item=self.next_item,
                items_running=self.items_running,
                items_succeeded=self.items_succeeded,
                items_failed=self.items_failed,
            )
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> StepRun:
        """Reverses `to_doc`."""
        return cls(
            **{
                **doc,
                "state": StepState(doc["state"]),
                "error": Failure.from_doc(doc.get("error")),
                "attempts": [
                    StepAttempt(**{**a, "error": Failure.from_doc(a.get("error"))})
                    for a in doc.get("attempts", [])
                ],
            }
        )

    def evolve(self, **changes: Any) -> StepRun:
        """A copy with `changes` (fields by name)."""
        return _evolved(self, changes)


@dataclass
class Execution:
    """One run of one workflow revision."""

    id: str
    workflow_id: str
    workflow_revision: int
    input: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] | None = None
    state: ExecutionState = ExecutionState.QUEUED
    error: Failure | None = None
    priority: int = 0
    timeout: float | None = None
    trace: bool = False
    traceparent: str = ""
    """The W3C trace context it was started in ('' when not traced): its spans join it."""
    run: int = 0
    """How many times RetryExecution ran it again."""
    signals: list[dict[str, Any]] = field(default_factory=list)
    """Signals delivered that no step has taken yet, in the order they came
    ({"signal": name, "payload": {...}})."""
    signal_requests: list[str] = field(default_factory=list)
    """The request ids of the signals delivered (the latest MAX_SIGNAL_REQUESTS), so that a
    repeated request delivers nothing more."""
    labels: dict[str, str] = field(default_factory=dict)
    parent: str = ""
    """The execution whose step started this one ('' for none)."""
    depth: int = 0
    """How deep among children it is: 0 for an execution with no parent."""
    steps: list[StepRun] = field(default_factory=list)
    create_time: float = 0.0
    start_time: float = 0.0
    end_time: float = 0.0
    last_sequence: int = 0
    seq: int = 0
    owner: str = ""
    """The replica that runs it, as last read or claimed ('' when none claimed it yet)."""
    fence: int = 0
    """The fencing token of this process's claim on the execution (0: not claimed): its
    state changes are written only while the claim is the current one."""
    _positions: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def mutable_doc(self) -> dict[str, Any]:
        """The fields kept in the execution row's document (everything not a column)."""
        return {
            "output": self.output,
            "error": self.error.to_doc() if self.error else None,
            "timeout": self.timeout,
            "trace": self.trace,
            "traceparent": self.traceparent,
            "run": self.run,
            "signals": self.signals,
            "signal_requests": self.signal_requests,
            "labels": self.labels,
            "parent": self.parent,
            "depth": self.depth,
        }

    def step(self, step_id: str) -> StepRun:
        """The run of the step with this id."""
        if len(self._positions) != len(self.steps):
            self._positions = {run.step_id: i for i, run in enumerate(self.steps)}
        return self.steps[self._positions[step_id]]


@dataclass(frozen=True, slots=True)
class ItemResult:
    """How one item of a `for_each` step ended (kept apart from the step run)."""

    step_id: str
    position: int
    index: int
    state: StepState
    attempt: int
    output: Any = None
    error: Failure | None = None


@dataclass
class Event:
    """One entry of an execution's log; `sequence` and `time` are set when it is written."""

    type: EventType
    step_id: str = ""
    attempt: int = 0
    payload: dict[str, Any] = field(default_factory=dict)
    sequence: int = 0
    time: float = 0.0
    execution_id: str = ""

    @property
    def iteration(self) -> int:
        """The loop iteration of the step the event belongs to (0 outside loops)."""
        return int(self.payload.get(ITERATION_KEY, 0))


PARENT_LABEL = "baton.parent"
"""The label a child execution carries: its parent's id (ListExecutions filters by it)."""

ITERATION_KEY = "iteration_"
"""Where a step event's loop iteration is kept in its stored document (beside the payload's
own fields; payloads ignore keys they do not know)."""


def _evolved(value: _T, changes: dict[str, Any]) -> _T:
    """A copy of a plain dataclass instance with `changes`: what dataclasses.replace does,
    without its per-call field inspection (this runs on every step transition)."""
    copied = object.__new__(type(value))
    copied.__dict__.update(value.__dict__)
    copied.__dict__.update(changes)
    return copied
