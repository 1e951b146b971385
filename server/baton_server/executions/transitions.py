"""Where every decision about a running execution is made.

`decide(state, input, now, directory)` takes an execution's state and one input (the run
begins or resumes after a restart, an attempt succeeded or failed, an agent slot was granted,
a timer fired, a cancel was requested) and returns a `Decision`: the execution's changed
fields and step runs, the events to append, and the commands for the driver (run an attempt,
wait for an agent slot, arm a timer, stop an attempt). It is pure: no I/O, no clock (time is
`now`), no asyncio. Agents and handoffs come from a read-only `Directory`; retry jitter comes
from a source seeded by the execution, step and attempt.

The rules, in the order a step meets them: DAG readiness, then `when` (a false condition or a
dependency that did not succeed skips the step, and the skip propagates); the input mapping;
the agent (its own, one with the capability, a fallback or a handoff target) and its slot;
attempts with a step timeout; after a failure, retries (backoff, cap, jitter, non-retryable
types, `retry_after`), then the fallback agents, then an ON_FAILURE handoff; after a success,
a requested or SEQUENTIAL handoff (within the depth bound), else the output mapping and the
output caps. One failed step fails the execution (the others are cancelled); when every step
has ended, the workflow's output ends it.
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from baton_server.domain import failures
from baton_server.domain.definitions import Agent, AgentState, Handoff, HandoffType, Step
from baton_server.domain.events import (
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionTimedOut,
    FallbackActivated,
    HandoffRecord,
    Payload,
    StepFailed,
    StepRetrying,
    StepScheduled,
    StepSkipped,
    StepStarted,
    StepSucceeded,
    StepTimedOut,
    new_event,
)
from baton_server.domain.executions import (
    Event,
    Execution,
    ExecutionState,
    Failure,
    StepAttempt,
    StepRun,
    StepState,
)
from baton_server.language.conditions import compile_condition
from baton_server.language.expressions import parse_path
from baton_server.language.mapping import MappingError, lookup, render
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


@dataclass(frozen=True, slots=True)
class AttemptFailed:
    """An attempt failed; the agent may have said when to try again."""

    step_id: str
    attempt: int
    failure: Failure
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class SlotGranted:
    """The driver holds a slot of the agent a SCHEDULED step waits for."""

    step_id: str


class TimerKind(enum.StrEnum):
    """What a timer is for."""

    EXECUTION_TIMEOUT = "EXECUTION_TIMEOUT"
    STEP_TIMEOUT = "STEP_TIMEOUT"
    RETRY = "RETRY"


@dataclass(frozen=True, slots=True)
class Timer:
    """A timer's identity: arming one with the same identity replaces it."""

    kind: TimerKind
    step_id: str = ""
    attempt: int = 0


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
    """The step's running attempt no longer counts (it timed out): tell the agent to stop."""

    step_id: str


Command = RunAttempt | AwaitSlot | ArmTimer | StopAttempt

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

    def then(self, later: Decision) -> Decision:
        """This decision followed by `later` (decided on the state this one left)."""
        return Decision(
            {**self.fields, **later.fields},
            {**self.steps, **later.steps},
            self.events + later.events,
            self.commands + later.commands,
        )

    @property
    def empty(self) -> bool:
        """True when nothing changes and nothing is to be done."""
        return not (self.fields or self.steps or self.events or self.commands)


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

    def step(self, step_id: str) -> StepRun:
        """The step's run as decided so far."""
        run = self.execution.step(step_id)
        if self.pending is not None:
            return self.pending.steps.get(run.position, run)
        return run

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
        return RunState(self.execution, self.plan, self.limits, self.draining, pending, self.sizes)


def idempotency_key(execution_id: str, step_id: str, attempt: int) -> str:
    """The key an agent may deduplicate side effects by: one per attempt number, the same
    when a restart delivers an attempt again."""
    return f"{execution_id}/{step_id}/{attempt}"


def decide(state: RunState, event: Input, now: float, directory: Directory) -> Decision:
    """What `event` changes in the execution `state` holds, at time `now`."""
    if state.status.terminal:
        return Decision()
    decider = _Decider(state, now, directory)
    match event:
        case Begin():
            decider.begin()
        case AttemptSucceeded():
            decider.attempt_succeeded(event)
        case AttemptFailed():
            decider.attempt_failed(event)
        case SlotGranted():
            decider.slot_granted(event.step_id)
        case TimerFired():
            decider.timer_fired(event.timer)
        case CancelRequested():
            reason = event.reason or "cancelled on request"
            decider.end(
                ExecutionState.CANCELLED,
                Failure(failures.CANCELLED, reason),
                ExecutionCancelled(event.reason),
            )
        case EngineFailed():
            error = Failure(failures.INTERNAL_ERROR, f"the engine failed: {event.message}")
            decider.end(ExecutionState.FAILED, error, ExecutionFailed(error))
    return decider.settle()


class _PrepareError(Exception):
    """A step could not be prepared (its condition or input mapping); fails the step."""

    def __init__(self, failure_type: str, message: str) -> None:
        super().__init__(message)
        self.failure = Failure(failure_type, message, non_retryable=True)


class _Decider:
    """Builds one Decision; reads the state through its own changes."""

    def __init__(self, state: RunState, now: float, directory: Directory) -> None:
        self.state = state
        self.plan = state.plan
        self.execution = state.execution
        self.now = now
        self.directory = directory
        self.decision = Decision()
        self.failed: StepRun | None = None
        self.ready: list[int] = []  # positions of steps whose dependencies may be done

    # Reading and writing ------------------------------------------------------------------

    def run(self, step_id: str) -> StepRun:
        run = self.state.step(step_id)
        return self.decision.steps.get(run.position, run)

    def put(self, run: StepRun) -> None:
        self.decision.steps[run.position] = run
        if run.state.terminal:
            if run.state in (StepState.FAILED, StepState.TIMED_OUT) and self.failed is None:
                self.failed = run
            for dependent in self.plan.dependents[run.step_id]:
                heapq.heappush(self.ready, self.plan.positions[dependent])

    def emit(self, payload: Payload, step_id: str = "", attempt: int = 0) -> None:
        self.decision.events.append(new_event(payload, step_id, attempt))

    def command(self, command: Command) -> None:
        self.decision.commands.append(command)

    # Inputs -----------------------------------------------------------------------------

    def begin(self) -> None:
        started = self.state.field("start_time") or self.now
        if self.state.status is ExecutionState.QUEUED:
            self.decision.fields.update(state=ExecutionState.RUNNING, start_time=self.now)
            self.emit(ExecutionStarted())
            started = self.now
        timeout = self.execution.timeout
        if timeout:
            self.command(ArmTimer(Timer(TimerKind.EXECUTION_TIMEOUT), started + timeout))
        for step in self.plan.workflow.steps:
            run = self.run(step.id)
            if run.state is StepState.PENDING:
                heapq.heappush(self.ready, self.plan.positions[step.id])
            elif run.state is StepState.RETRYING:
                self.command(ArmTimer(Timer(TimerKind.RETRY, step.id, run.attempt), run.retry_at))
            elif run.state is StepState.RUNNING:
                self.restart(step, self.redelivered(run))
            elif run.state is StepState.SCHEDULED:
                self.restart(step, run)

    def redelivered(self, run: StepRun) -> StepRun:
        """A step that was running when the server stopped, ready to start again. An attempt
        the stop cut short (it never reported an end) keeps its number, hence its
        idempotency key, and does not count against the retry policy; its first delivery
        stays on record, closed as INTERRUPTED."""
        if not run.attempts:
            return dataclasses.replace(run, state=StepState.SCHEDULED)
        last = run.attempts[-1]
        cut_short = not last.end_time and last.attempt == run.attempt
        closed = dataclasses.replace(
            last,
            end_time=last.end_time or self.now,
            error=last.error
            or Failure(
                failures.INTERRUPTED,
                "the server stopped during this attempt; it was delivered again",
            ),
        )
        return dataclasses.replace(
            run,
            state=StepState.SCHEDULED,
            attempts=[*run.attempts[:-1], closed],
            tries=max(run.tries - 1, 0),
            attempt=run.attempt - 1 if cut_short else run.attempt,
        )

    def attempt_succeeded(self, event: AttemptSucceeded) -> None:
        run = self.run(event.step_id)
        if run.state is not StepState.RUNNING or run.attempt != event.attempt:
            return  # an attempt that no longer counts (it timed out, or the step ended)
        step = self.plan.steps[run.step_id]
        try:
            if event.size > self.state.limits.max_output_bytes:
                raise _AttemptError(
                    Failure(
                        failures.OUTPUT_TOO_LARGE,
                        f"the agent's output is {event.size} bytes; at most "
                        f"{self.state.limits.max_output_bytes} are kept "
                        "(BATON_MAX_OUTPUT_BYTES)",
                        non_retryable=True,
                    )
                )
            handoff = self.chosen_handoff(run, event)
            if handoff is not None:
                target_input = self.handoff_input(handoff, event.output)
                run = self.close_attempt(run, None)
                self.hand_off(step, run, handoff, target_input, requested=bool(event.handoff_to))
                return
            output = self.step_output(step, event.output, event.size)
        except _AttemptError as error:
            self.after_attempt_failure(step, run, error.failure, None)
            return
        self.put(self.ended(run, StepState.SUCCEEDED, output=output))
        self.emit(StepSucceeded(output), run.step_id, run.attempt)

    def attempt_failed(self, event: AttemptFailed) -> None:
        run = self.run(event.step_id)
        if run.state is not StepState.RUNNING or run.attempt != event.attempt:
            return
        step = self.plan.steps[run.step_id]
        self.after_attempt_failure(step, run, event.failure, event.retry_after)

    def slot_granted(self, step_id: str) -> None:
        run = self.run(step_id)
        if run.state is not StepState.SCHEDULED or self.state.draining:
            return  # the driver gives the slot back
        step = self.plan.steps[step_id]
        agent = self.agent_at(step, run.agent_index, run)
        if isinstance(agent, Failure):
            self.after_failure(step, run, agent, None)
            return
        try:
            agent_input = self.attempt_input(step, run)
        except _PrepareError as error:
            self.fail_step(run, error.failure)
            return
        self.start_attempt(step, run, agent, agent_input)

    def timer_fired(self, timer: Timer) -> None:
        if timer.kind is TimerKind.EXECUTION_TIMEOUT:
            timeout = self.execution.timeout
            self.end(
                ExecutionState.TIMED_OUT,
                Failure(
                    failures.EXECUTION_TIMED_OUT,
                    f"the execution timeout of {timeout or 0:g}s passed",
                ),
                ExecutionTimedOut(timeout),
            )
            return
        run = self.run(timer.step_id)
        if run.attempt != timer.attempt:
            return  # a timer of an attempt that is over
        step = self.plan.steps[run.step_id]
        if timer.kind is TimerKind.STEP_TIMEOUT and run.state is StepState.RUNNING:
            self.command(StopAttempt(step.id))
            failure = Failure(
                failures.STEP_TIMEOUT,
                f"attempt {run.attempt} exceeded the step timeout of {step.timeout or 0:g}s",
            )
            self.after_attempt_failure(step, run, failure, None)
        elif timer.kind is TimerKind.RETRY and run.state is StepState.RETRYING:
            self.restart(step, dataclasses.replace(run, retry_at=0.0))

    def end(self, state: ExecutionState, error: Failure, payload: Payload) -> None:
        """Ends the execution in `state`; steps that had not ended are cancelled."""
        self.cancel_unfinished()
        self.decision.fields.update(state=state, error=error, end_time=self.now)
        self.emit(payload)

    # Settling ---------------------------------------------------------------------------

    def settle(self) -> Decision:
        """Takes the steps that became ready, then ends the execution if it is done."""
        if self.decision.fields.get("state", self.state.status).terminal:
            return self.decision
        if self.failed is None and not self.state.draining:
            self.schedule_ready()
        if self.failed is not None:
            self.fail_execution(self.failed)
        elif all(self.run(s.id).state.terminal for s in self.plan.workflow.steps):
            self.finish()
        return self.decision

    def schedule_ready(self) -> None:
        """Decides every PENDING step whose dependencies have ended: skip, or schedule."""
        while self.ready and self.failed is None:
            position = heapq.heappop(self.ready)
            step = self.plan.workflow.steps[position]
            run = self.run(step.id)
            if run.state is not StepState.PENDING:
                continue
            deps = [self.run(d) for d in step.depends_on]
            if not all(d.state.terminal for d in deps):
                continue
            not_done = next((d for d in deps if d.state is not StepState.SUCCEEDED), None)
            if not_done is not None:
                self.skip(
                    run, f"dependency {not_done.step_id!r} was {not_done.state.value.lower()}"
                )
                continue
            try:
                if step.when and not self.condition(step):
                    self.skip(run, "condition is false")
                    continue
                agent_input = self.mapped_input(step)
            except _PrepareError as error:
                self.fail_step(run, error.failure)
                return
            self.schedule(step, run, agent_input)

    def skip(self, run: StepRun, reason: str) -> None:
        self.put(dataclasses.replace(run, state=StepState.SKIPPED, end_time=self.now))
        self.emit(StepSkipped(reason), run.step_id)

    def schedule(self, step: Step, run: StepRun, agent_input: dict[str, Any]) -> None:
        """A ready step is scheduled, and its first attempt starts when it can."""
        agent = self.agent_at(step, 0, run)
        scheduled = dataclasses.replace(
            run,
            state=StepState.SCHEDULED,
            schedule_time=self.now,
            agent=agent.id if isinstance(agent, Agent) else run.agent,
        )
        self.emit(StepScheduled(scheduled.agent), step.id)
        if isinstance(agent, Failure):
            self.after_failure(step, scheduled, agent, None)
        else:
            self.try_start(step, scheduled, agent, agent_input)

    def fail_execution(self, failed: StepRun) -> None:
        assert failed.error is not None
        error = Failure(
            failed.error.type,
            f"step {failed.step_id!r} failed: {failed.error.message}",
            step_id=failed.step_id,
            cause=failed.error,
        )
        self.end(ExecutionState.FAILED, error, ExecutionFailed(error))

    def finish(self) -> None:
        """Every step has ended: the execution succeeds with the workflow's output."""
        mapping = self.plan.workflow.output_mapping
        error: Failure | None = None
        output: dict[str, Any] = {}
        if mapping is None:
            for sink in self.plan.sinks:
                run = self.run(sink)
                if run.state is StepState.SUCCEEDED:
                    output[sink] = run.output
        else:
            try:
                output = render(mapping, self.scope())
            except MappingError as exc:
                error = Failure(failures.OUTPUT_MAPPING_ERROR, str(exc))
        if error is None:
            error = self.too_large(output, None)
        if error is None:
            self.decision.fields.update(
                state=ExecutionState.SUCCEEDED, output=output, end_time=self.now
            )
            self.emit(ExecutionSucceeded(output))
        else:
            self.decision.fields.update(state=ExecutionState.FAILED, error=error, end_time=self.now)
            self.emit(ExecutionFailed(error))

    def cancel_unfinished(self) -> None:
        for step in self.plan.workflow.steps:
            run = self.run(step.id)
            if not run.state.terminal:
                self.decision.steps[run.position] = dataclasses.replace(
                    run, state=StepState.CANCELLED, end_time=self.now
                )

    # Attempts ---------------------------------------------------------------------------

    def restart(self, step: Step, run: StepRun) -> None:
        """A SCHEDULED (or retrying) step starts its next attempt with the agent it is at."""
        agent = self.agent_at(step, run.agent_index, run)
        if isinstance(agent, Failure):
            self.after_failure(step, run, agent, None)
            return
        try:
            agent_input = self.attempt_input(step, run)
        except _PrepareError as error:
            self.fail_step(run, error.failure)
            return
        self.try_start(step, run, agent, agent_input)

    def try_start(
        self, step: Step, run: StepRun, agent: Agent, agent_input: dict[str, Any]
    ) -> None:
        """Starts an attempt now, or waits for a slot of an agent with max_concurrency."""
        run = dataclasses.replace(run, state=StepState.SCHEDULED, retry_at=0.0)
        if self.state.draining:
            self.put(run)
        elif agent.max_concurrency:
            self.put(run)
            self.command(AwaitSlot(step.id, agent))
        else:
            self.start_attempt(step, run, agent, agent_input)

    def start_attempt(
        self, step: Step, run: StepRun, agent: Agent, agent_input: dict[str, Any]
    ) -> None:
        number = run.attempt + 1
        started = dataclasses.replace(
            run,
            state=StepState.RUNNING,
            attempt=number,
            tries=run.tries + 1,
            agent=agent.id,
            retry_at=0.0,
            start_time=run.start_time or self.now,
            attempts=[
                *run.attempts,
                StepAttempt(number, agent.id, fallback=run.agent_index != 0, start_time=self.now),
            ],
        )
        self.put(started)
        key = idempotency_key(self.execution.id, step.id, number)
        traced = agent_input if self.execution.trace else None  # inputs only when traced
        self.emit(StepStarted(agent.id, key, traced), step.id, number)
        deadline = self.now + step.timeout if step.timeout else None
        self.command(RunAttempt(step.id, number, agent, agent_input, key, deadline))
        if deadline is not None:
            self.command(ArmTimer(Timer(TimerKind.STEP_TIMEOUT, step.id, number), deadline))

    def after_attempt_failure(
        self, step: Step, run: StepRun, failure: Failure, retry_after: float | None
    ) -> None:
        """An attempt failed: close it, then retry, fall back, hand off or fail the step."""
        failure = dataclasses.replace(failure, step_id=step.id)
        run = self.close_attempt(run, failure)
        if failure.type == failures.STEP_TIMEOUT:
            self.emit(StepTimedOut(step.timeout), step.id, run.attempt)
        self.after_failure(step, run, failure, retry_after)

    def after_failure(
        self, step: Step, run: StepRun, failure: Failure, retry_after: float | None
    ) -> None:
        """The step's current agent failed (an attempt, or it could not be used)."""
        failure = dataclasses.replace(failure, step_id=step.id)
        backoff = self.plan.backoffs[step.id]
        if run.tries and backoff.should_retry(failure, run.tries):
            rng = (
                _jitter_source(self.execution.id, step.id, run.attempt) if backoff.jitter else None
            )
            delay = backoff.delay(run.tries, retry_after, rng)
            retry_at = self.now + delay
            self.put(
                dataclasses.replace(run, state=StepState.RETRYING, retry_at=retry_at, error=failure)
            )
            self.emit(StepRetrying(failure, delay, run.attempt + 1), step.id, run.attempt)
            self.command(ArmTimer(Timer(TimerKind.RETRY, step.id, run.attempt), retry_at))
            return
        if 0 <= run.agent_index < len(step.fallback_agents):
            index = run.agent_index + 1
            target = step.fallback_agents[index - 1]
            self.emit(FallbackActivated(failure, run.agent, target), step.id, run.attempt)
            run = dataclasses.replace(
                run,
                state=StepState.SCHEDULED,
                agent_index=index,
                tries=0,
                agent=target,
                error=failure,
                retry_at=0.0,
            )
            self.restart(step, run)
            return
        rescue = self.failure_handoff(step, run)
        if rescue is not None:
            try:
                agent_input = self.attempt_input(step, run)
            except _PrepareError as error:
                self.fail_step(run, error.failure)
                return
            run = dataclasses.replace(run, error=failure)
            self.hand_off(step, run, rescue, agent_input, requested=False)
            return
        state = StepState.TIMED_OUT if failure.type == failures.STEP_TIMEOUT else StepState.FAILED
        ended = self.ended(run, state, failure)
        self.put(ended)
        self.emit(StepFailed(failure), run.step_id, run.attempt)

    def fail_step(self, run: StepRun, failure: Failure) -> None:
        """The step fails without a retry (it could not be prepared)."""
        failure = dataclasses.replace(failure, step_id=run.step_id)
        ended = self.ended(run, StepState.FAILED, failure)
        self.put(ended)
        self.emit(StepFailed(failure), run.step_id, run.attempt)

    def close_attempt(self, run: StepRun, failure: Failure | None) -> StepRun:
        if not run.attempts or run.attempts[-1].end_time:
            return run
        last = dataclasses.replace(run.attempts[-1], end_time=self.now, error=failure)
        return dataclasses.replace(run, attempts=[*run.attempts[:-1], last])

    def ended(
        self,
        run: StepRun,
        state: StepState,
        error: Failure | None = None,
        output: dict[str, Any] | None = None,
    ) -> StepRun:
        run = self.close_attempt(run, error)
        return dataclasses.replace(
            run, state=state, end_time=self.now, error=error, output=output, retry_at=0.0
        )

    def agent_at(self, step: Step, index: int, run: StepRun) -> Agent | Failure:
        """The agent at position `index` of the step's chain (0: its own agent or one with
        its capability; k: its k-th fallback; -1: the handoff target in `run.agent`), or the
        failure that makes it unusable."""
        if index == 0 and step.capability and not run.agent:
            found = self.directory.capable(step.capability)
            if found is None:
                return Failure(
                    failures.NO_AGENT_FOR_CAPABILITY,
                    f"no active agent has capability {step.capability!r}",
                    non_retryable=True,
                )
            return found
        if index < 0:
            agent_id = run.agent
        elif index == 0:
            agent_id = run.agent or step.agent
        else:
            agent_id = step.fallback_agents[index - 1]
        agent = self.directory.agent(agent_id)
        if agent is None:
            return Failure(
                failures.AGENT_NOT_FOUND, f"agents/{agent_id} does not exist", non_retryable=True
            )
        if agent.state is not AgentState.ACTIVE:
            return Failure(
                failures.AGENT_DISABLED, f"agents/{agent.id} is disabled", non_retryable=True
            )
        return agent

    # Handoffs ---------------------------------------------------------------------------

    def chosen_handoff(self, run: StepRun, event: AttemptSucceeded) -> Handoff | None:
        """After a success: the handoff the agent asked for (which must be declared), or the
        first SEQUENTIAL handoff from it, by priority, whose conditions all hold."""
        declared = self.directory.handoffs_from(run.agent)
        chosen: Handoff | None = None
        if event.handoff_to:
            chosen = next((h for h in declared if h.target_agent == event.handoff_to), None)
            if chosen is None:
                raise _AttemptError(
                    Failure(
                        failures.HANDOFF_NOT_ALLOWED,
                        f"agents/{run.agent} asked to hand off to agents/{event.handoff_to}, "
                        "but no Handoff from it to that agent exists",
                        non_retryable=True,
                    )
                )
        else:
            chosen = next(
                (
                    h
                    for h in declared
                    if h.type is HandoffType.SEQUENTIAL and self.triggered(h, event.output)
                ),
                None,
            )
        if chosen is not None and len(run.handoffs) >= self.state.limits.max_handoff_depth:
            raise _AttemptError(
                Failure(
                    failures.HANDOFF_DEPTH_EXCEEDED,
                    f"the step was handed off {len(run.handoffs)} times, the most allowed",
                    non_retryable=True,
                )
            )
        return chosen

    def failure_handoff(self, step: Step, run: StepRun) -> Handoff | None:
        """After the step's agent (and its fallbacks) failed: an ON_FAILURE handoff from it
        whose conditions hold, if the chain is not too long and it was not used yet."""
        source = run.attempts[0].agent if run.attempts else step.agent
        if not source or len(run.handoffs) >= self.state.limits.max_handoff_depth:
            return None
        used = {record.get("handoff") for record in run.handoffs}
        for handoff in self.directory.handoffs_from(source):
            if (
                handoff.type is HandoffType.ON_FAILURE
                and f"handoffs/{handoff.id}" not in used
                and self.triggered(handoff, {})
            ):
                return handoff
        return None

    def triggered(self, handoff: Handoff, source_output: dict[str, Any]) -> bool:
        scope = {"source_output": source_output, "input": self.execution.input}
        for condition in handoff.trigger_conditions:
            if condition.strip() == "completion":
                continue
            try:
                if compile_condition(condition).execute(scope) is not True:
                    return False
            except Exception:  # a condition that cannot be evaluated does not hold
                return False
        return True

    def handoff_input(self, handoff: Handoff, output: dict[str, Any]) -> dict[str, Any]:
        if not handoff.data_mapping:
            return dict(output)
        mapped: dict[str, Any] = {}
        for source_path, target_field in handoff.data_mapping.items():
            try:
                mapped[target_field] = lookup(
                    output, parse_path(f"output.{source_path}")[1:], f"output.{source_path}"
                )
            except MappingError as exc:
                raise _AttemptError(
                    Failure(
                        failures.MAPPING_ERROR,
                        f"handoffs/{handoff.id} data_mapping: {exc}",
                        non_retryable=True,
                    )
                ) from None
        return mapped

    def hand_off(
        self,
        step: Step,
        run: StepRun,
        handoff: Handoff,
        target_input: dict[str, Any],
        *,
        requested: bool,
    ) -> None:
        """The step passes to the handoff's target with its input (kept with the step, so a
        restarted server hands the target the same input), which starts when it can."""
        record = HandoffRecord(
            handoff=f"handoffs/{handoff.id}",
            source_agent=handoff.source_agent,
            target_agent=handoff.target_agent,
            type=handoff.type.value if handoff.type else "",
            requested_by_agent=requested,
            time=self.now,
        )
        self.emit(record, run.step_id, run.attempt)
        run = dataclasses.replace(
            run,
            state=StepState.SCHEDULED,
            agent=handoff.target_agent,
            agent_index=-1,
            tries=0,
            retry_at=0.0,
            handoffs=[*run.handoffs, record.to_doc()],
            handoff_input=target_input,
        )
        self.restart(step, run)

    # Data -------------------------------------------------------------------------------

    def scope(self) -> dict[str, Any]:
        """What expressions see: the input, the outputs of the steps that succeeded, and
        facts of the execution."""
        steps = {}
        for step in self.plan.workflow.steps:
            run = self.run(step.id)
            if run.state is StepState.SUCCEEDED:
                steps[step.id] = {"output": run.output or {}}
        execution = self.execution
        return {
            "input": execution.input,
            "steps": steps,
            "execution": {
                "id": execution.id,
                "workflow": f"workflows/{execution.workflow_id}",
                "workflow_revision": execution.workflow_revision,
                "priority": execution.priority,
                "labels": execution.labels,
            },
        }

    def condition(self, step: Step) -> bool:
        try:
            result = self.plan.conditions[step.id].execute(self.scope())
        except Exception as exc:  # CEL reports missing keys and type errors by raising
            raise _PrepareError(
                failures.CONDITION_ERROR, f"condition {step.when!r} could not be evaluated: {exc}"
            ) from None
        if not isinstance(result, bool):
            raise _PrepareError(
                failures.CONDITION_ERROR, f"condition {step.when!r} gave {result!r}, not a boolean"
            )
        return result

    def mapped_input(self, step: Step) -> dict[str, Any]:
        """The step's input: the execution's input through the step's input_mapping."""
        if step.input_mapping is None:
            return dict(self.execution.input)
        try:
            rendered: dict[str, Any] = render(step.input_mapping, self.scope())
        except MappingError as exc:
            raise _PrepareError(failures.MAPPING_ERROR, str(exc)) from None
        size = len(orjson.dumps(rendered))
        limit = self.state.limits.max_output_bytes
        if size > limit:
            raise _PrepareError(
                failures.INPUT_TOO_LARGE,
                f"the step's mapped input is {size} bytes; at most {limit} "
                "(BATON_MAX_OUTPUT_BYTES)",
            )
        return rendered

    def attempt_input(self, step: Step, run: StepRun) -> dict[str, Any]:
        """What the step's current agent gets: a handoff's input, else the mapped input."""
        if run.handoff_input is not None:
            return run.handoff_input
        return self.mapped_input(step)

    def step_output(self, step: Step, output: dict[str, Any], size: int) -> dict[str, Any]:
        """The step's output: the agent's output through `output_mapping`, within what the
        execution may hold in all."""
        mapped = output
        if step.output_mapping is not None:
            size = -1
            try:
                mapped = render(step.output_mapping, {**self.scope(), "output": output})
            except MappingError as exc:
                raise _AttemptError(
                    Failure(failures.OUTPUT_MAPPING_ERROR, str(exc), non_retryable=True)
                ) from None
        problem = self.too_large(mapped, step.id, size)
        if problem is not None:
            raise _AttemptError(problem)
        return mapped

    def too_large(
        self, output: dict[str, Any], step_id: str | None, size: int = -1
    ) -> Failure | None:
        """A failure if storing `output` (`size` bytes as JSON, when measured) would make the
        execution exceed its size bound (with its input and the other steps' outputs)."""
        if size < 0:
            size = len(orjson.dumps(output))
        total = size + self.stored_bytes(step_id)
        limit = self.state.limits.max_execution_bytes
        if total <= limit:
            return None
        return Failure(
            failures.OUTPUT_TOO_LARGE,
            f"with this output the execution would hold {total} bytes of input and outputs; "
            f"at most {limit} (three quarters of BATON_MAX_MESSAGE_BYTES), so that it can "
            "always be read back",
            non_retryable=True,
        )

    def stored_bytes(self, except_step: str | None) -> int:
        sizes = self.state.sizes
        total = sizes.get(("", 0), -1)
        if total < 0:
            total = sizes[("", 0)] = len(orjson.dumps(self.execution.input))
        for step in self.plan.workflow.steps:
            run = self.run(step.id)
            if step.id == except_step or run.state is not StepState.SUCCEEDED:
                continue
            key = (step.id, run.attempt)
            size = sizes.get(key)
            if size is None:
                size = sizes[key] = len(orjson.dumps(run.output or {}))
            total += size
        return total


class _AttemptError(Exception):
    """An attempt that returned still failed: its output or handoff was refused."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def _jitter_source(execution_id: str, step_id: str, attempt: int) -> random.Random:
    """The same jitter for the same retry, whenever and wherever it is decided."""
    return random.Random(f"{execution_id}/{step_id}/{attempt}")
