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
has ended, the workflow's output ends it. Steps without an agent wait (WAITING): a
`wait_for` step for a matching signal, an approval step for a person's decision, each with
its timeout; a `sleep` step sleeps (SLEEPING) on a timer kept across restarts. A `workflow`
step runs a child execution per attempt. A `for_each` step runs its agent per item, at
most max_parallel at once, each item with its own attempts and retries. A loop runs its
body again until its condition holds. A paused execution starts nothing and ends only
after its resume.
"""

from __future__ import annotations

import heapq
import math
import random
from datetime import UTC, datetime
from typing import Any

import orjson

from baton_server.domain import failures
from baton_server.domain.definitions import Agent, AgentState, Handoff, Step
from baton_server.domain.events import (
    ApprovalDecided,
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionPaused,
    ExecutionResumed,
    ExecutionRetried,
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionTimedOut,
    FallbackActivated,
    LoopIterationStarted,
    Payload,
    SignalReceived,
    StepFailed,
    StepInterrupted,
    StepRetrying,
    StepScheduled,
    StepSkipped,
    StepStarted,
    StepSucceeded,
    StepTimedOut,
    new_event,
)
from baton_server.domain.executions import (
    ExecutionState,
    Failure,
    ItemResult,
    StepAttempt,
    StepRun,
    StepState,
    Usage,
)
from baton_server.executions import handoffs
from baton_server.executions.decisions import (
    MAX_SIGNAL_REQUESTS,
    ArmTimer,
    AttemptFailed,
    AttemptSucceeded,
    AwaitSlot,
    Begin,
    CancelRequested,
    Command,
    Decision,
    Directory,
    EngineFailed,
    Input,
    PauseRequested,
    RefusedError,
    ResumeRequested,
    RetryRequested,
    RunAttempt,
    RunChild,
    RunState,
    SignalDelivered,
    SlotGranted,
    StepDecided,
    StopAttempt,
    Timer,
    TimerFired,
    TimerKind,
    child_id,
    idempotency_key,
)
from baton_server.language.mapping import MappingError, render

DEFAULT_MAX_PARALLEL = 10
MAX_MAP_ITEMS = 100_000
MAX_CHILD_DEPTH = 8
"""How deep child executions may nest (a workflow may start itself as a child)."""

RETRYABLE_STATES = frozenset(
    {ExecutionState.FAILED, ExecutionState.CANCELLED, ExecutionState.TIMED_OUT}
)
"""The ends RetryExecution can run an execution again from."""


def decide(state: RunState, event: Input, now: float, directory: Directory) -> Decision:
    """What `event` changes in the execution `state` holds, at time `now`."""
    if isinstance(event, RetryRequested):
        if state.status not in RETRYABLE_STATES:
            return Decision()
        decider = _Decider(state, now, directory)
        decider.retry(event.from_steps)
        return decider.settle()
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
        case SignalDelivered():
            decider.signal_delivered(event)
        case StepDecided():
            decider.step_decided(event)
        case PauseRequested():
            decider.pause(event.reason)
        case ResumeRequested():
            decider.resume()
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
        return self.at(self.plan.positions[step_id])

    def at(self, position: int) -> StepRun:
        """The run of the step at `position`, as this decision leaves it."""
        run = self.decision.steps.get(position)
        return run if run is not None else self.state.at(position)

    def put(self, run: StepRun) -> None:
        self.decision.steps[run.position] = run
        if run.state.terminal:
            if run.state in (StepState.FAILED, StepState.TIMED_OUT) and self.failed is None:
                self.failed = run
            for dependent in self.plan.dependents[run.step_id]:
                heapq.heappush(self.ready, self.plan.positions[dependent])

    def emit(self, payload: Payload, step_id: str = "", attempt: int = 0) -> None:
        iteration = self.run(step_id).iteration if step_id in self.plan.loop_of else 0
        self.decision.events.append(new_event(payload, step_id, attempt, iteration=iteration))

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
            elif run.state is StepState.RUNNING and step.maps:
                self.resume_map(step, run, restarted=True)
            elif run.state is StepState.RUNNING:
                self.restart(step, self.redelivered(run))
            elif run.state is StepState.SCHEDULED:
                self.restart(step, run)
            elif run.state is StepState.WAITING:
                self.keep_waiting(step, run)
            elif run.state is StepState.SLEEPING:
                self.command(ArmTimer(Timer(TimerKind.WAKE, step.id), run.wake_time))

    def redelivered(self, run: StepRun) -> StepRun:
        """A step that was running when the server stopped, ready to start again. An attempt
        the stop cut short (it never reported an end) keeps its number, hence its
        idempotency key, and does not count against the retry policy; its first delivery
        stays on record, closed as INTERRUPTED."""
        if not run.attempts:
            return run.evolve(state=StepState.SCHEDULED)
        last = run.attempts[-1]
        cut_short = not last.end_time and last.attempt == run.attempt
        if cut_short:
            reason = "the server stopped during this attempt; it is delivered again"
            self.emit(StepInterrupted(last.agent, reason), run.step_id, last.attempt)
        closed = last.evolve(
            end_time=last.end_time or self.now,
            error=last.error
            or Failure(
                failures.INTERRUPTED,
                "the server stopped during this attempt; it was delivered again",
            ),
        )
        return run.evolve(
            state=StepState.SCHEDULED,
            attempts=[*run.attempts[:-1], closed],
            tries=max(run.tries - 1, 0),
            attempt=run.attempt - 1 if cut_short else run.attempt,
        )

    def attempt_succeeded(self, event: AttemptSucceeded) -> None:
        if event.item >= 0:
            self.item_succeeded(event)
            return
        run = self.run(event.step_id)
        if run.state is not StepState.RUNNING or run.attempt != event.attempt:
            return  # an attempt that no longer counts (it timed out, or the step ended)
        run = counted(run, event.usage)
        step = self.plan.steps[run.step_id]
        try:
            if event.size > self.state.limits.max_output_bytes:
                raise RefusedError(
                    Failure(
                        failures.OUTPUT_TOO_LARGE,
                        f"the agent's output is {event.size} bytes; at most "
                        f"{self.state.limits.max_output_bytes} are kept "
                        "(BATON_MAX_OUTPUT_BYTES)",
                        non_retryable=True,
                    )
                )
            handoff = handoffs.after_success(
                self.directory.handoffs_from(run.agent) if run.agent else (),
                run,
                event.output,
                event.handoff_to,
                self.execution.input,
                self.state.limits.max_handoff_depth,
            )
            if handoff is not None:
                target_input = handoffs.target_input(handoff, event.output)
                run = self.close_attempt(run, None)
                self.hand_off(step, run, handoff, target_input, requested=bool(event.handoff_to))
                return
            output = self.step_output(step, event.output, event.size)
        except RefusedError as error:
            self.after_attempt_failure(step, run, error.failure, None)
            return
        self.succeed(step, run, output)

    def attempt_failed(self, event: AttemptFailed) -> None:
        if event.item >= 0:
            self.item_failed(
                self.plan.steps[event.step_id],
                event.item,
                event.attempt,
                event.failure,
                event.retry_after,
                event.usage,
            )
            return
        run = self.run(event.step_id)
        if run.state is not StepState.RUNNING or run.attempt != event.attempt:
            return
        run = counted(run, event.usage)
        step = self.plan.steps[run.step_id]
        self.after_attempt_failure(step, run, event.failure, event.retry_after)

    def slot_granted(self, step_id: str) -> None:
        run = self.run(step_id)
        if run.state is not StepState.SCHEDULED or self.holding():
            return  # the driver gives the slot back
        self.restart(self.plan.steps[step_id], run, slot_held=True)

    def retry(self, from_steps: tuple[str, ...]) -> None:
        """The ended execution runs again: the named steps (default: those that did not
        finish), every step downstream of them, and the steps cancelled start over; the
        others keep their outputs. Attempt numbers go on counting, so a re-run attempt has
        a new idempotency key."""
        unfinished = (StepState.FAILED, StepState.TIMED_OUT, StepState.CANCELLED)
        starts = list(from_steps) or [
            s.id for s in self.plan.workflow.steps if self.run(s.id).state in unfinished
        ]
        reset: set[str] = set()
        stack = list(starts)
        while stack:
            step_id = stack.pop()
            if step_id not in reset:
                reset.add(step_id)
                stack.extend(self.plan.dependents[step_id])
        reset |= {s.id for s in self.plan.workflow.steps if self.run(s.id).state in unfinished}
        ordered = [s.id for s in self.plan.workflow.steps if s.id in reset]
        for step_id in ordered:
            self.reset(self.run(step_id))
        number = self.execution.run + 1
        self.decision.fields.update(
            state=ExecutionState.RUNNING,
            error=None,
            output=None,
            start_time=self.now,
            end_time=0.0,
            run=number,
        )
        self.emit(ExecutionRetried(ordered, number))
        timeout = self.execution.timeout
        if timeout:
            self.command(ArmTimer(Timer(TimerKind.EXECUTION_TIMEOUT), self.now + timeout))

    def reset(self, run: StepRun, **changes: Any) -> None:
        """The step goes back to PENDING to run again (its attempt numbers keep counting)."""
        self.decision.steps[run.position] = run.evolve(
            state=StepState.PENDING,
            agent="",
            agent_index=0,
            tries=0,
            retry_at=0.0,
            schedule_time=0.0,
            start_time=0.0,
            end_time=0.0,
            output=None,
            error=None,
            handoffs=[],
            handoff_input=None,
            wake_time=0.0,
            items_total=0,
            next_item=0,
            items_running={},
            items_succeeded=0,
            items_failed=0,
            **changes,
        )
        if self.plan.steps[run.step_id].maps:
            self.decision.cleared.append(run.position)
        heapq.heappush(self.ready, run.position)

    def pause(self, reason: str) -> None:
        if self.state.status is ExecutionState.RUNNING:
            self.decision.fields["state"] = ExecutionState.PAUSED
            self.emit(ExecutionPaused(reason))

    def resume(self) -> None:
        """The paused execution goes on: what waited for the resume starts now."""
        if self.state.status is not ExecutionState.PAUSED:
            return
        self.decision.fields["state"] = ExecutionState.RUNNING
        self.emit(ExecutionResumed())
        for step in self.plan.workflow.steps:
            run = self.run(step.id)
            if run.state in (StepState.FAILED, StepState.TIMED_OUT) and self.failed is None:
                self.failed = run  # it failed while paused: the execution fails now
            elif run.state is StepState.PENDING:
                heapq.heappush(self.ready, self.plan.positions[step.id])
            elif run.state is StepState.SCHEDULED:
                self.restart(step, run)
            elif run.state is StepState.RUNNING and step.maps:
                self.resume_map(step, run, restarted=False)
            elif run.state is StepState.SLEEPING:
                if run.wake_time <= self.now:
                    self.wake(run)
                else:
                    self.command(ArmTimer(Timer(TimerKind.WAKE, step.id), run.wake_time))
            elif run.state is StepState.RETRYING:
                if run.retry_at <= self.now:
                    self.restart(step, run.evolve(retry_at=0.0))
                else:
                    retry = Timer(TimerKind.RETRY, step.id, run.attempt)
                    self.command(ArmTimer(retry, run.retry_at))

    def holding(self) -> bool:
        """True while nothing may start: the server is draining, or the execution is
        paused."""
        status = self.decision.fields.get("state", self.state.status)
        return self.state.draining or status is ExecutionState.PAUSED

    def signal_delivered(self, event: SignalDelivered) -> None:
        seen = self.state.field("signal_requests")
        if event.request_id:
            if event.request_id in seen:
                return  # delivered before: nothing more
            self.decision.fields["signal_requests"] = [*seen, event.request_id][
                -MAX_SIGNAL_REQUESTS:
            ]
        signal = {"signal": event.signal, "payload": event.payload}
        for step in self.plan.workflow.steps:
            run = self.run(step.id)
            if run.state is StepState.WAITING and self.matches(step, signal):
                self.emit(SignalReceived(event.signal, event.payload, step.id))
                self.take(step, run, event.payload)
                return
        self.emit(SignalReceived(event.signal, event.payload))
        self.decision.fields["signals"] = [*self.buffered(), signal]

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
        if timer.item >= 0:
            self.item_timer(timer)
            return
        run = self.run(timer.step_id)
        if run.attempt != timer.attempt:
            return  # a timer of an attempt that is over
        step = self.plan.steps[run.step_id]
        if timer.kind is TimerKind.WAKE:
            if run.state is StepState.SLEEPING and not self.holding():
                self.wake(run)  # (a paused execution wakes it at the resume)
            return
        if timer.kind is TimerKind.WAIT_TIMEOUT:
            if run.state is StepState.WAITING and step.wait_for is not None:
                waited = step.wait_for.timeout or 0
                self.fail_step(
                    run,
                    Failure(
                        failures.SIGNAL_TIMEOUT,
                        f"no signal {step.wait_for.signal!r} came within {waited:g}s",
                        non_retryable=True,
                    ),
                )
            elif run.state is StepState.WAITING and step.approval is not None:
                waited = step.approval.timeout or 0
                self.fail_step(
                    run,
                    Failure(
                        failures.APPROVAL_TIMEOUT,
                        f"nobody decided within {waited:g}s",
                        non_retryable=True,
                    ),
                )
            return
        if timer.kind is TimerKind.STEP_TIMEOUT and run.state is StepState.RUNNING:
            self.command(StopAttempt(step.id))
            failure = Failure(
                failures.STEP_TIMEOUT,
                f"attempt {run.attempt} exceeded the step timeout of {step.timeout or 0:g}s",
            )
            self.after_attempt_failure(step, run, failure, None)
        elif timer.kind is TimerKind.RETRY and run.state is StepState.RETRYING:
            self.restart(step, run.evolve(retry_at=0.0))

    def end(self, state: ExecutionState, error: Failure, payload: Payload) -> None:
        """Ends the execution in `state`; steps that had not ended are cancelled."""
        self.cancel_unfinished()
        self.decision.fields.update(state=state, error=error, end_time=self.now)
        self.emit(payload)

    # Settling ---------------------------------------------------------------------------

    def settle(self) -> Decision:
        """Takes the steps that became ready, then ends the execution if it is done."""
        status = self.decision.fields.get("state", self.state.status)
        if status.terminal or status is ExecutionState.PAUSED:
            return self.decision  # a paused execution ends only after its resume
        if self.failed is None and not self.holding():
            self.schedule_ready()
        if self.failed is not None:
            self.fail_execution(self.failed)
        elif self.all_ended():
            self.finish()
        return self.decision

    def all_ended(self) -> bool:
        """True when every step has ended (looked at from the last: in a chain, the step
        that has not ended yet is found at once)."""
        for position in range(len(self.plan.workflow.steps) - 1, -1, -1):
            if not self.at(position).state.terminal:
                return False
        return True

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
                agent_input = {} if step.maps else self.mapped_input(step)
            except _PrepareError as error:
                self.fail_step(run, error.failure)
                return
            self.schedule(step, run, agent_input)

    def skip(self, run: StepRun, reason: str) -> None:
        self.put(run.evolve(state=StepState.SKIPPED, end_time=self.now))
        self.emit(StepSkipped(reason), run.step_id)

    def schedule(self, step: Step, run: StepRun, agent_input: dict[str, Any]) -> None:
        """A ready step is scheduled, and its first attempt starts when it can (a waiting
        step takes a signal that came already, or waits for one)."""
        if step.sleeps:
            self.fall_asleep(step, run)
            return
        if step.workflow:
            self.emit(StepScheduled(""), step.id)
            self.start_child(step, run.evolve(schedule_time=self.now), agent_input)
            return
        if step.maps:
            self.start_map(step, run)
            return
        if step.waits:
            self.emit(StepScheduled(""), step.id)
            waiting = run.evolve(
                state=StepState.WAITING, schedule_time=self.now, start_time=self.now
            )
            self.put(waiting)
            self.keep_waiting(step, waiting)
            return
        agent = self.agent_at(step, 0, run)
        scheduled = run.evolve(
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
                self.decision.steps[run.position] = run.evolve(
                    state=StepState.CANCELLED, end_time=self.now
                )

    # Success and loops ------------------------------------------------------------------

    def succeed(self, step: Step, run: StepRun, output: dict[str, Any]) -> None:
        """The step's attempt (or wait, or sleep) ended well: it succeeds, unless it ends a
        loop whose condition does not hold yet, when the loop's body runs again."""
        if step.loop is not None and self.next_iteration(step, run, output):
            return
        self.put(self.ended(run, StepState.SUCCEEDED, output=output))
        self.emit(StepSucceeded(output), run.step_id, run.attempt)

    def next_iteration(self, step: Step, run: StepRun, output: dict[str, Any]) -> bool:
        """After an iteration of the loop ending at `step`: True when the body starts its
        next iteration, or the step failed (its condition could not be evaluated, or the
        iterations ran out); False when the loop is done."""
        assert step.loop is not None
        scope = {**self.scope(), "output": output, "iteration": run.iteration}
        try:
            done = self.plan.loop_conditions[step.id].execute(scope)
        except Exception as exc:  # CEL reports missing keys and type errors by raising
            done = exc
        if not isinstance(done, bool):
            because = f"gave {done!r}" if not isinstance(done, Exception) else f"failed: {done}"
            failure = Failure(
                failures.CONDITION_ERROR,
                f"loop condition {step.loop.until!r} {because}",
                non_retryable=True,
            )
            self.fail_step(run, failure)
            return True
        if done:
            return False
        if run.iteration + 1 >= step.loop.max_iterations:
            failure = Failure(
                failures.MAX_ITERATIONS_EXCEEDED,
                f"the loop's condition {step.loop.until!r} still did not hold after "
                f"{step.loop.max_iterations} iterations",
                non_retryable=True,
            )
            self.fail_step(run, failure)
            return True
        self.emit(StepSucceeded(output), run.step_id, run.attempt)
        self.forget_size_bound()
        body = self.plan.loop_bodies[step.id]
        for member in body:
            current = self.close_attempt(run, None) if member == step.id else self.run(member)
            kept = output if member == step.id else current.output
            done_well = member == step.id or current.state is StepState.SUCCEEDED
            self.reset(
                current,
                iteration=run.iteration + 1,
                past_outputs=[*current.past_outputs, kept if done_well else None],
            )
        self.emit(LoopIterationStarted(run.iteration + 1, list(body)), step.id)
        return True

    def loop_scope(self, step: Step) -> dict[str, Any]:
        """What a loop body's step also reads: `loop.iteration`, and `loop.last`, the
        loop's last step's output in the iteration before (None in the first)."""
        end = self.plan.loop_of.get(step.id)
        if end is None:
            return {}
        last = self.run(end)
        before = last.past_outputs[-1] if last.past_outputs else None
        return {"loop": {"iteration": self.run(step.id).iteration, "last": before}}

    # Map over data -----------------------------------------------------------------------

    def start_map(self, step: Step, run: StepRun) -> None:
        """A `for_each` step begins: its list is read, then items start, up to
        max_parallel at once."""
        try:
            values = self.map_values(step, run)
        except _PrepareError as error:
            self.fail_step(run, error.failure)
            return
        agent = self.agent_at(step, 0, run)
        if isinstance(agent, Failure):
            self.fail_step(run, agent)
            return
        self.emit(StepScheduled(agent.id), step.id)
        started = run.evolve(
            state=StepState.RUNNING,
            schedule_time=self.now,
            start_time=self.now,
            agent=agent.id,
            items_total=len(values),
            next_item=0,
            items_running={},
            items_succeeded=0,
            items_failed=0,
        )
        self.decision.cleared.append(run.position)
        self.emit(StepStarted(agent.id, "", None), step.id)
        self.fill_map(step, started)

    def map_values(self, step: Step, run: StepRun) -> list[Any]:
        """The list a `for_each` step runs over (rendered once per run of the step)."""
        key = (step.id, run.iteration, self.execution.run)
        values = self.state.values.get(key)
        if values is None:
            try:
                rendered = render(step.for_each, self.scope())
            except MappingError as exc:
                raise _PrepareError(failures.FOR_EACH_ERROR, str(exc)) from None
            if not isinstance(rendered, list):
                raise _PrepareError(
                    failures.FOR_EACH_ERROR,
                    f"for_each gave {type(rendered).__name__}, not a list",
                )
            if len(rendered) > MAX_MAP_ITEMS:
                raise _PrepareError(
                    failures.FOR_EACH_ERROR,
                    f"for_each gave {len(rendered)} items; at most {MAX_MAP_ITEMS}",
                )
            values = self.state.values[key] = rendered
        return values

    def fill_map(self, step: Step, run: StepRun) -> None:
        """Starts items while fewer than max_parallel run; ends the step once every item
        has ended."""
        running = dict(run.items_running)
        following = run.next_item
        if not self.holding():
            limit = step.max_parallel or DEFAULT_MAX_PARALLEL
            values = self.map_values(step, run) if following < run.items_total else []
            agent = self.agent_at(step, 0, run) if following < run.items_total else None
            if isinstance(agent, Failure):
                self.fail_step(run, agent)
                return
            while len(running) < limit and following < run.items_total:
                assert agent is not None
                entry = self.start_item(step, agent, following, values[following], 1, 0)
                following += 1
                if isinstance(entry, Failure):  # it could not even start
                    run = run.evolve(items_running=running, next_item=following)
                    if not self.item_ended_badly(step, run, following - 1, 1, entry):
                        return
                    run = self.run(step.id)
                    running = dict(run.items_running)
                    continue
                running[str(following - 1)] = entry
        run = run.evolve(items_running=running, next_item=following)
        if following >= run.items_total and not running:
            self.finish_map(step, run)
        else:
            self.put(run)

    def start_item(
        self, step: Step, agent: Agent, index: int, value: Any, attempt: int, tries: int
    ) -> dict[str, Any] | Failure:
        """Starts attempt `attempt` of item `index`; returns its entry among the running,
        or the failure that keeps it from starting (its input mapping)."""
        try:
            if step.input_mapping is None:
                item_input: dict[str, Any] = {"item": value, "index": index}
            else:
                item_input = render(
                    step.input_mapping, {**self.scope(), "item": value, "index": index}
                )
        except MappingError as exc:
            message = f"item {index}: {exc}"
            return Failure(failures.MAPPING_ERROR, message, step.id, non_retryable=True)
        key = idempotency_key(self.execution.id, f"{step.id}[{index}]", attempt)
        deadline = self.now + step.timeout if step.timeout else None
        self.command(RunAttempt(step.id, attempt, agent, item_input, key, deadline, index))
        self.arm_step_timeout(step, attempt, deadline, index)
        return {"attempt": attempt, "tries": tries + 1, "retry_at": 0.0}

    def item_ended_badly(
        self, step: Step, run: StepRun, index: int, attempt: int, failure: Failure
    ) -> bool:
        """Item `index` failed for good (it is no longer among the running in `run`): its
        result is kept; the step goes on if it continues on errors (True), else it fails
        and its other items stop (False)."""
        self.decision.items.append(
            ItemResult(step.id, run.position, index, StepState.FAILED, attempt, error=failure)
        )
        failed = run.evolve(items_failed=run.items_failed + 1)
        if step.continue_on_error:
            self.put(failed)
            return True
        self.command(StopAttempt(step.id))  # the other items no longer count
        self.put(self.ended(failed.evolve(items_running={}), StepState.FAILED, failure))
        self.emit(StepFailed(failure), step.id, attempt)
        return False

    def item_succeeded(self, event: AttemptSucceeded) -> None:
        step = self.plan.steps[event.step_id]
        run = self.run(step.id)
        entry = run.items_running.get(str(event.item))
        if run.state is not StepState.RUNNING or entry is None:
            return
        if entry["attempt"] != event.attempt or entry["retry_at"]:
            return
        run = items_counted(run, event.usage)
        running = {k: v for k, v in run.items_running.items() if k != str(event.item)}
        self.decision.items.append(
            ItemResult(
                step.id,
                run.position,
                event.item,
                StepState.SUCCEEDED,
                event.attempt,
                event.output,
            )
        )
        self.fill_map(
            step,
            run.evolve(items_running=running, items_succeeded=run.items_succeeded + 1),
        )

    def item_failed(
        self,
        step: Step,
        index: int,
        attempt: int,
        failure: Failure,
        retry_after: float | None,
        usage: Usage | None = None,
    ) -> None:
        """An item's attempt failed: it retries by the step's policy, else it fails for
        good, which fails the step unless it continues on errors."""
        run = self.run(step.id)
        entry = run.items_running.get(str(index))
        if run.state is not StepState.RUNNING or entry is None or entry["attempt"] != attempt:
            return
        run = items_counted(run, usage)
        failure = failure.evolve(step_id=step.id, message=f"item {index}: {failure.message}")
        backoff = self.plan.backoffs[step.id]
        running = dict(run.items_running)
        if backoff.should_retry(failure, entry["tries"]):
            delay = self.retry_delay(
                step, f"{step.id}[{index}]", attempt, entry["tries"], retry_after
            )
            running[str(index)] = {**entry, "retry_at": self.now + delay}
            self.put(run.evolve(items_running=running))
            self.emit(StepRetrying(failure, delay, attempt + 1), step.id, attempt)
            timer = Timer(TimerKind.RETRY, step.id, attempt, index)
            self.command(ArmTimer(timer, self.now + delay))
            return
        del running[str(index)]
        if self.item_ended_badly(step, run.evolve(items_running=running), index, attempt, failure):
            self.fill_map(step, self.run(step.id))

    def item_timer(self, timer: Timer) -> None:
        """An item's retry is due, or its attempt ran past the step timeout."""
        step = self.plan.steps[timer.step_id]
        run = self.run(step.id)
        entry = run.items_running.get(str(timer.item))
        if run.state is not StepState.RUNNING or entry is None:
            return
        if entry["attempt"] != timer.attempt:
            return
        if timer.kind is TimerKind.STEP_TIMEOUT and not entry["retry_at"]:
            self.command(StopAttempt(step.id, timer.item))
            failure = Failure(
                failures.STEP_TIMEOUT,
                f"attempt {timer.attempt} exceeded the step timeout of {step.timeout or 0:g}s",
            )
            self.item_failed(step, timer.item, timer.attempt, failure, None)
        elif timer.kind is TimerKind.RETRY and entry["retry_at"] and not self.holding():
            self.retry_item(step, run, timer.item, entry)

    def retry_item(self, step: Step, run: StepRun, index: int, entry: dict[str, Any]) -> None:
        agent = self.agent_at(step, 0, run)
        if isinstance(agent, Failure):
            self.fail_step(run, agent)
            return
        value = self.map_values(step, run)[index]
        running = dict(run.items_running)
        started = self.start_item(step, agent, index, value, entry["attempt"] + 1, entry["tries"])
        if isinstance(started, Failure):
            del running[str(index)]
            if self.item_ended_badly(
                step, run.evolve(items_running=running), index, entry["attempt"] + 1, started
            ):
                self.fill_map(step, self.run(step.id))
            return
        running[str(index)] = started
        self.put(run.evolve(items_running=running))

    def resume_map(self, step: Step, run: StepRun, *, restarted: bool) -> None:
        """A `for_each` step after a restart (its running items are delivered again with
        the same attempt numbers) or a resume (due retries start); then more items start."""
        agent = self.agent_at(step, 0, run)
        if isinstance(agent, Failure):
            self.fail_step(run, agent)
            return
        values = self.map_values(step, run)
        running = dict(run.items_running)
        for key, entry in run.items_running.items():
            index = int(key)
            if entry["retry_at"] and (entry["retry_at"] > self.now or self.holding()):
                timer = Timer(TimerKind.RETRY, step.id, entry["attempt"], index)
                self.command(ArmTimer(timer, entry["retry_at"]))
                continue
            if entry["retry_at"]:
                attempt, tries = entry["attempt"] + 1, entry["tries"]
            elif restarted:  # cut short by the restart: the same attempt again
                attempt, tries = entry["attempt"], entry["tries"] - 1
            else:
                continue  # it runs
            started = self.start_item(step, agent, index, values[index], attempt, tries)
            if isinstance(started, Failure):
                del running[key]
                if not self.item_ended_badly(
                    step, run.evolve(items_running=running), index, attempt, started
                ):
                    return
                run = self.run(step.id)
                continue
            running[key] = started
        self.fill_map(step, self.run(step.id).evolve(items_running=running))

    def ended_items(self, step: Step, run: StepRun) -> dict[int, ItemResult]:
        """The ended items of a `for_each` step, as decided so far (this decision too)."""
        started_now = run.position in self.decision.cleared  # none of its items is stored
        ended = {} if started_now else dict(self.state.ended_items(step.id))
        ended.update({r.index: r for r in self.decision.items if r.step_id == step.id})
        return ended

    def finish_map(self, step: Step, run: StepRun) -> None:
        """Every item has ended: the step's output is the results in order."""
        ended = self.ended_items(step, run)
        results: list[Any] = []
        errors: list[dict[str, Any]] = []
        for index in range(run.items_total):
            result = ended.get(index)
            if result is not None and result.state is StepState.SUCCEEDED:
                results.append(result.output)
            else:
                results.append(None)
                error = result.error if result is not None else None
                errors.append({"index": index, "error": error.to_doc() if error else None})
        output: dict[str, Any] = {"items": results}
        if errors:
            output["errors"] = errors
        try:
            output = self.step_output(step, output, -1)
        except RefusedError as error:
            self.fail_step(run, error.failure)
            return
        self.succeed(step, run, output)

    # Durable timers ---------------------------------------------------------------------

    def fall_asleep(self, step: Step, run: StepRun) -> None:
        """A sleep step sleeps until its wake time, on a timer that a restart re-arms at
        the same time (it fires at once if that time passed meanwhile)."""
        if step.sleep is not None:
            wake = self.now + step.sleep
        else:
            try:
                wake = _moment(render(step.sleep_until, self.scope()))
            except (MappingError, ValueError) as exc:
                self.fail_step(
                    run,
                    Failure(
                        failures.SLEEP_UNTIL_ERROR,
                        f"sleep_until gave no time: {exc}",
                        non_retryable=True,
                    ),
                )
                return
        self.emit(StepScheduled(""), step.id)
        sleeping = run.evolve(
            state=StepState.SLEEPING,
            schedule_time=self.now,
            start_time=self.now,
            wake_time=wake,
        )
        self.put(sleeping)
        if wake <= self.now and not self.holding():
            self.wake(sleeping)
        else:
            self.command(ArmTimer(Timer(TimerKind.WAKE, step.id), wake))

    def wake(self, run: StepRun) -> None:
        """The sleeping step succeeds; its output says when it woke."""
        self.forget_size_bound()
        self.succeed(self.plan.steps[run.step_id], run, {"woke_at": _rfc3339(self.now)})

    # Signals ----------------------------------------------------------------------------

    def keep_waiting(self, step: Step, run: StepRun) -> None:
        """A waiting step takes the first buffered signal it matches, else (re)arms its
        timeout, counted from when it began to wait. An approval step waits for its
        decision the same way."""
        buffered = self.buffered() if step.wait_for is not None else []
        for i, signal in enumerate(buffered):
            if self.matches(step, signal):
                self.decision.fields["signals"] = buffered[:i] + buffered[i + 1 :]
                self.take(step, run, signal["payload"])
                return
        wait = step.wait_for or step.approval
        if wait is not None and wait.timeout:
            at = run.start_time + wait.timeout
            self.command(ArmTimer(Timer(TimerKind.WAIT_TIMEOUT, step.id), at))

    def step_decided(self, event: StepDecided) -> None:
        """A person decided an approval step that waits: approved, it succeeds with the
        decision as its output; rejected, it fails (or, with `continue_on_reject`, succeeds
        with `approved: false`)."""
        step = self.plan.steps.get(event.step_id)
        if step is None or step.approval is None:
            return
        run = self.run(step.id)
        if run.state is not StepState.WAITING:
            return
        decided = ApprovalDecided(event.approved, event.decided_by, event.role, event.reason)
        self.emit(decided, step.id)
        if event.approved or step.approval.continue_on_reject:
            self.take(step, run, decided.to_doc())
            return
        because = f": {event.reason}" if event.reason else ""
        self.fail_step(
            run,
            Failure(
                failures.APPROVAL_REJECTED,
                f"rejected by {event.decided_by} ({event.role}){because}",
                non_retryable=True,
            ),
        )

    def take(self, step: Step, run: StepRun, payload: dict[str, Any]) -> None:
        """The waiting step succeeds with a signal's payload or a decision (through its
        output_mapping)."""
        try:
            output = self.step_output(step, payload, -1)
        except RefusedError as error:
            self.fail_step(run, error.failure)
            return
        self.succeed(step, run, output)

    def matches(self, step: Step, signal: dict[str, Any]) -> bool:
        """True when the waiting step takes this signal: its name, and its `when`."""
        if step.wait_for is None or signal["signal"] != step.wait_for.signal:
            return False
        condition = self.plan.signal_conditions.get(step.id)
        if condition is None:
            return True
        try:
            return condition.execute({**self.scope(), "signal": signal["payload"]}) is True
        except Exception:  # a condition that cannot be evaluated does not hold
            return False

    def buffered(self) -> list[dict[str, Any]]:
        """The signals no step has taken yet, as decided so far."""
        signals: list[dict[str, Any]] = self.decision.fields.get(
            "signals", self.state.field("signals")
        )
        return signals

    # Attempts ---------------------------------------------------------------------------

    def restart(self, step: Step, run: StepRun, *, slot_held: bool = False) -> None:
        """A SCHEDULED (or retrying) step starts its next attempt with the agent it is at
        (at once when the driver holds a slot of that agent for it)."""
        if step.workflow:
            try:
                self.start_child(step, run, self.attempt_input(step, run))
            except _PrepareError as error:
                self.fail_step(run, error.failure)
            return
        agent = self.agent_at(step, run.agent_index, run)
        if isinstance(agent, Failure):
            self.after_failure(step, run, agent, None)
            return
        try:
            agent_input = self.attempt_input(step, run)
        except _PrepareError as error:
            self.fail_step(run, error.failure)
            return
        if slot_held:
            self.start_attempt(step, run, agent, agent_input)
        else:
            self.try_start(step, run, agent, agent_input)

    def try_start(
        self, step: Step, run: StepRun, agent: Agent, agent_input: dict[str, Any]
    ) -> None:
        """Starts an attempt now, or waits for a slot of an agent with max_concurrency."""
        if run.state is not StepState.SCHEDULED or run.retry_at:
            run = run.evolve(state=StepState.SCHEDULED, retry_at=0.0)
        if self.holding():
            self.put(run)
        elif agent.max_concurrency:
            self.put(run)
            self.command(AwaitSlot(step.id, agent))
        else:
            self.start_attempt(step, run, agent, agent_input)

    def start_attempt(
        self, step: Step, run: StepRun, agent: Agent, agent_input: dict[str, Any]
    ) -> None:
        number, key, deadline = self.begin_attempt(
            step, run, agent.id, agent.id, agent_input, agent=agent.id
        )
        self.command(RunAttempt(step.id, number, agent, agent_input, key, deadline))
        self.arm_step_timeout(step, number, deadline)

    def begin_attempt(
        self,
        step: Step,
        run: StepRun,
        agent_id: str,
        shown: str,
        attempt_input: dict[str, Any],
        **changes: Any,
    ) -> tuple[int, str, float | None]:
        """The step's next attempt is running (by `agent_id`, '' for a child; `shown` in
        its STEP_STARTED event): its number, idempotency key and deadline."""
        number = run.attempt + 1
        self.put(
            run.evolve(
                state=StepState.RUNNING,
                attempt=number,
                tries=run.tries + 1,
                retry_at=0.0,
                start_time=run.start_time or self.now,
                attempts=[
                    *run.attempts,
                    StepAttempt(
                        number, agent_id, fallback=run.agent_index != 0, start_time=self.now
                    ),
                ],
                **changes,
            )
        )
        key = idempotency_key(self.execution.id, step.id, number)
        traced = attempt_input if self.execution.trace else None  # inputs only when traced
        self.emit(StepStarted(shown, key, traced), step.id, number)
        return number, key, self.now + step.timeout if step.timeout else None

    def arm_step_timeout(
        self, step: Step, attempt: int, deadline: float | None, item: int = -1
    ) -> None:
        """An attempt (of an item, with `item`) that is still running at `deadline` fails."""
        if deadline is not None:
            timer = Timer(TimerKind.STEP_TIMEOUT, step.id, attempt, item)
            self.command(ArmTimer(timer, deadline))

    def start_child(self, step: Step, run: StepRun, child_input: dict[str, Any]) -> None:
        """A `workflow` step's next attempt: a new child execution (the same one when a
        restart delivers the attempt again), unless the execution is held."""
        if self.holding():
            self.put(run.evolve(state=StepState.SCHEDULED, retry_at=0.0))
            return
        if self.execution.depth + 1 > MAX_CHILD_DEPTH:
            failure = Failure(
                failures.CHILD_DEPTH_EXCEEDED,
                f"children nest at most {MAX_CHILD_DEPTH} deep",
                non_retryable=True,
            )
            self.fail_step(run, failure)
            return
        child = child_id(self.execution.id, step.id, run.attempt + 1)
        shown = f"workflows/{step.workflow}"
        number, _, deadline = self.begin_attempt(step, run, "", shown, child_input, child=child)
        self.command(RunChild(step.id, number, step.workflow, child_input, child, deadline))
        self.arm_step_timeout(step, number, deadline)

    def after_attempt_failure(
        self, step: Step, run: StepRun, failure: Failure, retry_after: float | None
    ) -> None:
        """An attempt failed: close it, then retry, fall back, hand off or fail the step."""
        failure = failure.evolve(step_id=step.id)
        run = self.close_attempt(run, failure)
        if failure.type == failures.STEP_TIMEOUT:
            self.emit(StepTimedOut(step.timeout), step.id, run.attempt)
        self.after_failure(step, run, failure, retry_after)

    def retry_delay(
        self, step: Step, seed: str, attempt: int, tries: int, retry_after: float | None
    ) -> float:
        """How long before the next attempt of a step (or of a map item, `seed` naming it)."""
        backoff = self.plan.backoffs[step.id]
        rng = _jitter_source(self.execution.id, seed, attempt) if backoff.jitter else None
        return backoff.delay(tries, retry_after, rng)

    def after_failure(
        self, step: Step, run: StepRun, failure: Failure, retry_after: float | None
    ) -> None:
        """The step's current agent failed (an attempt, or it could not be used)."""
        failure = failure.evolve(step_id=step.id)
        backoff = self.plan.backoffs[step.id]
        if run.tries and backoff.should_retry(failure, run.tries):
            delay = self.retry_delay(step, step.id, run.attempt, run.tries, retry_after)
            retry_at = self.now + delay
            self.put(run.evolve(state=StepState.RETRYING, retry_at=retry_at, error=failure))
            self.emit(StepRetrying(failure, delay, run.attempt + 1), step.id, run.attempt)
            self.command(ArmTimer(Timer(TimerKind.RETRY, step.id, run.attempt), retry_at))
            return
        if 0 <= run.agent_index < len(step.fallback_agents):
            index = run.agent_index + 1
            target = step.fallback_agents[index - 1]
            self.emit(FallbackActivated(failure, run.agent, target), step.id, run.attempt)
            run = run.evolve(
                state=StepState.SCHEDULED,
                agent_index=index,
                tries=0,
                agent=target,
                error=failure,
                retry_at=0.0,
            )
            self.restart(step, run)
            return
        source = run.attempts[0].agent if run.attempts else step.agent
        rescue = None
        if source:
            rescue = handoffs.after_failure(
                self.directory.handoffs_from(source),
                run,
                self.execution.input,
                self.state.limits.max_handoff_depth,
            )
        if rescue is not None:
            try:
                agent_input = self.attempt_input(step, run)
            except _PrepareError as error:
                self.fail_step(run, error.failure)
                return
            run = run.evolve(error=failure)
            self.hand_off(step, run, rescue, agent_input, requested=False)
            return
        state = StepState.TIMED_OUT if failure.type == failures.STEP_TIMEOUT else StepState.FAILED
        ended = self.ended(run, state, failure)
        self.put(ended)
        self.emit(StepFailed(failure), run.step_id, run.attempt)

    def fail_step(self, run: StepRun, failure: Failure) -> None:
        """The step fails without a retry (it could not be prepared)."""
        failure = failure.evolve(step_id=run.step_id)
        ended = self.ended(run, StepState.FAILED, failure)
        self.put(ended)
        self.emit(StepFailed(failure), run.step_id, run.attempt)

    def close_attempt(self, run: StepRun, failure: Failure | None) -> StepRun:
        attempts = self.closed_attempts(run, failure)
        return run if attempts is None else run.evolve(attempts=attempts)

    def closed_attempts(self, run: StepRun, failure: Failure | None) -> list[StepAttempt] | None:
        """The step's attempts with the last one ended now (None: none is open)."""
        if not run.attempts or run.attempts[-1].end_time:
            return None
        last = run.attempts[-1].evolve(end_time=self.now, error=failure)
        return [*run.attempts[:-1], last]

    def ended(
        self,
        run: StepRun,
        state: StepState,
        error: Failure | None = None,
        output: dict[str, Any] | None = None,
    ) -> StepRun:
        attempts = self.closed_attempts(run, error)
        return run.evolve(
            state=state,
            end_time=self.now,
            error=error,
            output=output,
            retry_at=0.0,
            attempts=run.attempts if attempts is None else attempts,
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
        record = handoffs.record_of(handoff, requested=requested, now=self.now)
        self.emit(record, run.step_id, run.attempt)
        run = run.evolve(
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
        steps: dict[str, dict[str, Any]] = {}
        for step in self.plan.workflow.steps:
            run = self.run(step.id)
            if run.state is StepState.SUCCEEDED:
                steps[step.id] = {"output": run.output or {}}
                if step.id in self.plan.loop_of:
                    steps[step.id]["iterations"] = [*run.past_outputs, run.output]
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
            result = self.plan.conditions[step.id].execute(
                {**self.scope(), **self.loop_scope(step)}
            )
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
            scope = {**self.scope(), **self.loop_scope(step)}
            rendered: dict[str, Any] = render(step.input_mapping, scope)
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
                raise RefusedError(
                    Failure(failures.OUTPUT_MAPPING_ERROR, str(exc), non_retryable=True)
                ) from None
        problem = self.too_large(mapped, step.id, size)
        if problem is not None:
            raise RefusedError(problem)
        return mapped

    def too_large(
        self, output: dict[str, Any], step_id: str | None, size: int = -1
    ) -> Failure | None:
        """A failure if storing `output` (`size` bytes as JSON, when measured) would make the
        execution exceed its size bound (with its input and the other steps' outputs)."""
        if size < 0:
            size = len(orjson.dumps(output))
        limit = self.state.limits.max_execution_bytes
        sizes = self.state.sizes
        bound = sizes.get(_BOUND)
        if bound is None:
            bound = self.stored_bytes(None)
        if bound + size <= limit:  # within a bound of the total, so within the total
            sizes[_BOUND] = bound + size
            return None
        sizes.pop(_BOUND, None)  # near the limit: measured exactly from now on
        total = size + self.stored_bytes(step_id)
        if total <= limit:
            return None
        return Failure(
            failures.OUTPUT_TOO_LARGE,
            f"with this output the execution would hold {total} bytes of input and outputs; "
            f"at most {limit} (three quarters of BATON_MAX_MESSAGE_BYTES), so that it can "
            "always be read back",
            non_retryable=True,
        )

    def forget_size_bound(self) -> None:
        """An output is kept that did not go through `too_large` (a sleep's), or outputs
        moved into a loop's `past_outputs` (as a list, a few bytes longer): the bound on
        the execution's size is measured again at the next output."""
        self.state.sizes.pop(_BOUND, None)

    def stored_bytes(self, except_step: str | None) -> int:
        sizes = self.state.sizes
        total = sizes.get(("", 0), -1)
        if total < 0:
            total = sizes[("", 0)] = len(orjson.dumps(self.execution.input))
        for position in range(len(self.execution.steps)):
            run = self.at(position)
            if run.past_outputs:  # a loop's earlier iterations are kept too
                key = (run.step_id, -len(run.past_outputs))
                past = sizes.get(key)
                if past is None:
                    past = sizes[key] = len(orjson.dumps(run.past_outputs))
                total += past
            if run.state is not StepState.SUCCEEDED or run.step_id == except_step:
                continue
            key = (run.step_id, run.attempt)
            size = sizes.get(key)
            if size is None:
                size = sizes[key] = len(orjson.dumps(run.output or {}))
            total += size
        return total


_BOUND = ("", -1)
"""Where `sizes` keeps an upper bound of what the execution holds: its input and outputs
as last measured in full, plus every output checked since (some of which may have been
replaced, or never written): most outputs are checked against it without adding up all the
steps' outputs again."""


def _jitter_source(execution_id: str, step_id: str, attempt: int) -> random.Random:
    """The same jitter for the same retry, whenever and wherever it is decided."""
    return random.Random(f"{execution_id}/{step_id}/{attempt}")


def _moment(value: Any) -> float:
    """Epoch seconds from what a `sleep_until` expression gave: a number of epoch seconds,
    or an RFC 3339 timestamp (a time without a zone is UTC)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a time")
        return float(value)
    if isinstance(value, str) and len(value) <= 64:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    raise ValueError(f"{str(value)[:64]!r} is not an RFC 3339 timestamp or epoch seconds")


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def counted(run: StepRun, usage: Usage | None) -> StepRun:
    """The step with the tokens its current attempt's LLM calls counted on that attempt."""
    if not usage or not run.attempts or run.attempts[-1].end_time:
        return run
    last = run.attempts[-1].evolve(usage=usage.to_doc())
    return run.evolve(attempts=[*run.attempts[:-1], last])


def items_counted(run: StepRun, usage: Usage | None) -> StepRun:
    """The map step with the tokens an item's attempt counted."""
    if not usage:
        return run
    return run.evolve(items_usage=(Usage.from_doc(run.items_usage) + usage).to_doc())
