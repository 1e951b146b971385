"""The vocabulary of the engine's decisions: the inputs the transition function takes, the
commands it gives the driver, the Decision that carries them with the changes and events,
and the state it reads (an execution, what was decided since it was written, and a
directory of agents and handoffs). Plain data: no I/O, no asyncio."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from baton_server.domain.definitions import Agent, Handoff
from baton_server.domain.executions import (
    Event,
    Execution,
    ExecutionState,
    Failure,
    ItemResult,
    StepRun,
    Usage,
)
from baton_server.language.plan import Plan

# Inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Begin:
    """The run begins: a new execution starts, or one that was running resumes after a
    restart (an attempt the restart cut short is delivered again with the same number)."""


@dataclass(frozen=True, slots=True)
class AttemptSucceeded:
    """An attempt returned `output` (`size` bytes as JSON), maybe asking for a handoff."""

    step_id: str
    attempt: int
    output: dict[str, Any]
    size: int
    handoff_to: str = ""
    item: int = -1
    """With `for_each`: the item's index."""
    usage: Usage | None = None
    """The tokens the attempt's LLM calls counted."""


@dataclass(frozen=True, slots=True)
class AttemptFailed:
    """An attempt failed; the agent may have said when to try again."""

    step_id: str
    attempt: int
    failure: Failure
    retry_after: float | None = None
    item: int = -1
    """With `for_each`: the item's index."""
    usage: Usage | None = None
    """The tokens the attempt's LLM calls counted."""


@dataclass(frozen=True, slots=True)
class SlotGranted:
    """The driver holds a slot of the agent a SCHEDULED step waits for."""

    step_id: str


@dataclass(frozen=True, slots=True)
class RetryRequested:
    """Someone asked to run the ended execution again from these steps (none: the ones
    that did not finish)."""

    from_steps: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PauseRequested:
    """Someone paused the execution."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class ResumeRequested:
    """Someone resumed the paused execution."""


@dataclass(frozen=True, slots=True)
class SignalDelivered:
    """SignalExecution delivered a signal (`request_id` '' when the caller gave none)."""

    signal: str
    payload: dict[str, Any]
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class StepDecided:
    """A person approved (or rejected) an approval step: who, in which role, and why."""

    step_id: str
    approved: bool
    decided_by: str
    role: str
    reason: str = ""


MAX_SIGNAL_REQUESTS = 1000
"""How many signal request ids an execution remembers (for repeated requests)."""


class TimerKind(enum.StrEnum):
    """What a timer is for."""

    EXECUTION_TIMEOUT = "EXECUTION_TIMEOUT"
    STEP_TIMEOUT = "STEP_TIMEOUT"
    RETRY = "RETRY"
    WAKE = "WAKE"
    """A sleeping step's wake time came."""
    WAIT_TIMEOUT = "WAIT_TIMEOUT"
    """A waiting step (a signal or an approval) waited too long."""


@dataclass(frozen=True, slots=True)
class Timer:
    """A timer's identity: arming one with the same identity replaces it."""

    kind: TimerKind
    step_id: str = ""
    attempt: int = 0
    item: int = -1


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer came due."""

    timer: Timer


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """Someone cancelled the execution."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class EngineFailed:
    """The engine around the execution failed (a bug): end it rather than leave it hanging."""

    message: str


Input = (
    Begin
    | AttemptSucceeded
    | AttemptFailed
    | SlotGranted
    | SignalDelivered
    | StepDecided
    | PauseRequested
    | ResumeRequested
    | RetryRequested
    | TimerFired
    | CancelRequested
    | EngineFailed
)

# Commands --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunAttempt:
    """Run attempt `attempt` of the step with `agent` on `input`; report how it ended."""

    step_id: str
    attempt: int
    agent: Agent
    input: dict[str, Any]
    idempotency_key: str
    deadline: float | None
    item: int = -1
    """With `for_each`: the item's index."""


@dataclass(frozen=True, slots=True)
class AwaitSlot:
    """The step waits for a free slot of `agent` (its max_concurrency); report SlotGranted."""

    step_id: str
    agent: Agent


@dataclass(frozen=True, slots=True)
class ArmTimer:
    """Report TimerFired(timer) at `at` (at once if that has passed)."""

    timer: Timer
    at: float


@dataclass(frozen=True, slots=True)
class StopAttempt:
    """The step's running attempt (or, with `item`, that item's; -1: all of the step's)
    no longer counts: tell the agent to stop."""

    step_id: str
    item: int = -1


@dataclass(frozen=True, slots=True)
class RunChild:
    """Run attempt `attempt` of a `workflow` step: start the child execution `child_id`
    (once: a repeat finds it) of `workflow_id` on `input`, and report how it ended."""

    step_id: str
    attempt: int
    workflow_id: str
    input: dict[str, Any]
    child_id: str
    deadline: float | None


Command = RunAttempt | RunChild | AwaitSlot | ArmTimer | StopAttempt

# State -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    """The server's bounds on what an execution holds."""

    max_output_bytes: int = 1024 * 1024
    max_execution_bytes: int = 3 * 1024 * 1024
    """Most bytes (as JSON) of the input, step outputs and output together, so that
    GetExecution can always send the execution."""
    max_handoff_depth: int = 8


@dataclass(slots=True)
class Decision:
    """What one or more inputs decided: the execution's new field values, its changed step
    runs (by position), the events to append, and the commands to carry out once written."""

    fields: dict[str, Any] = field(default_factory=dict)
    steps: dict[int, StepRun] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    items: list[ItemResult] = field(default_factory=list)
    """Items of `for_each` steps that ended (stored apart from the step runs)."""
    cleared: list[int] = field(default_factory=list)
    """Positions of `for_each` steps whose stored items are dropped (they run again)."""

    def then(self, later: Decision) -> Decision:
        """This decision followed by `later` (decided on the state this one left)."""
        return Decision(
            {**self.fields, **later.fields},
            {**self.steps, **later.steps},
            self.events + later.events,
            self.commands + later.commands,
            self.items + later.items,
            self.cleared + later.cleared,
        )

    @property
    def empty(self) -> bool:
        """True when nothing changes and nothing is to be done."""
        return not (
            self.fields or self.steps or self.events or self.commands or self.items or self.cleared
        )


class RefusedError(Exception):
    """An attempt's result was refused (its output, or the handoff it led to): the attempt
    fails with `failure`."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class NotLoaded(Exception):  # noqa: N818 (a signal to the caller, not an error)
    """The directory does not hold `kind` `key` yet: load it, then decide again."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} is not loaded")
        self.kind = kind
        self.key = key


class Directory(Protocol):
    """Read-only lookups of agents and handoffs. A lookup not at hand raises NotLoaded."""

    def agent(self, agent_id: str) -> Agent | None:
        """The agent, or None when there is no such agent."""

    def capable(self, capability: str) -> Agent | None:
        """The first active agent with the capability, or None."""

    def handoffs_from(self, agent_id: str) -> Sequence[Handoff]:
        """The handoffs whose source is the agent, highest priority first."""


@dataclass(slots=True)
class RunState:
    """An execution as last written, plus what was decided since and is not written yet.
    `draining`: the server is stopping, so nothing new starts."""

    execution: Execution
    plan: Plan
    limits: Limits = field(default_factory=Limits)
    draining: bool = False
    pending: Decision | None = None
    sizes: dict[tuple[str, int], int] = field(default_factory=dict)
    """A memo of step outputs' sizes as JSON, by (step, attempt)."""
    values: dict[tuple[str, int, int], list[Any]] = field(default_factory=dict)
    """A memo of the lists `for_each` steps run over, by (step, iteration, run)."""
    items: dict[str, dict[int, ItemResult]] = field(default_factory=dict)
    """The ended items of `for_each` steps as written, by step and index: the driver loads
    a step's when a decision asks for them (NotLoaded "items")."""

    def ended_items(self, step_id: str) -> dict[int, ItemResult]:
        """The ended items of a `for_each` step, as decided so far."""
        stored = self.items.get(step_id)
        if stored is None:
            raise NotLoaded("items", step_id)
        pending = self.pending
        if pending is None or not (pending.items or pending.cleared):
            return stored
        position = self.plan.positions[step_id]
        merged = {} if position in pending.cleared else dict(stored)
        merged.update({r.index: r for r in pending.items if r.step_id == step_id})
        return merged

    def step(self, step_id: str) -> StepRun:
        """The step's run as decided so far."""
        return self.at(self.plan.positions[step_id])

    def at(self, position: int) -> StepRun:
        """The run of the step at `position` as decided so far."""
        if self.pending is not None:
            run = self.pending.steps.get(position)
            if run is not None:
                return run
        return self.execution.steps[position]

    @property
    def status(self) -> ExecutionState:
        """The execution's state as decided so far."""
        if self.pending is not None and "state" in self.pending.fields:
            state: ExecutionState = self.pending.fields["state"]
            return state
        return self.execution.state

    def field(self, name: str) -> Any:
        """An execution field as decided so far."""
        if self.pending is not None and name in self.pending.fields:
            return self.pending.fields[name]
        return getattr(self.execution, name)

    def after(self, decision: Decision) -> RunState:
        """The state once `decision` is taken too."""
        pending = decision if self.pending is None else self.pending.then(decision)
        return RunState(
            self.execution,
            self.plan,
            self.limits,
            self.draining,
            pending,
            self.sizes,
            self.values,
            self.items,
        )


def child_id(execution_id: str, step_id: str, attempt: int) -> str:
    """The id of the child execution an attempt of a `workflow` step starts: the same when a
    restart delivers the attempt again, so that it finds its child instead of starting
    another."""
    return child_id_for(idempotency_key(execution_id, step_id, attempt))


def child_id_for(key: str) -> str:
    """The id of the child execution started under an idempotency key (of a `workflow` step's
    attempt, or of a `workflow` tool's call)."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"child-{digest[:24]}"


def idempotency_key(execution_id: str, step_id: str, attempt: int) -> str:
    """The key an agent may deduplicate side effects by: one per attempt number, the same
    when a restart delivers an attempt again."""
    return f"{execution_id}/{step_id}/{attempt}"
