"""Running one execution: walking its DAG, starting steps whose dependencies are done,
skipping those whose condition is false, running attempts with retries, timeouts and
fallbacks, and ending it (succeeded, failed, cancelled or timed out).

Every transition is written through the journal under the run's lock, and the in-memory
execution changes only after the write commits, so what readers see is always durable.
A step's completion and the transitions it unlocks share one commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from baton import StepContext, StepLogger
from baton_server.engine import failures
from baton_server.engine.attempts import AgentResult, AttemptFailedError
from baton_server.engine.conditions import compile_condition
from baton_server.engine.events import (
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionTimedOut,
    FallbackActivated,
    HandoffRecord,
    Log,
    OutputDelta,
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
from baton_server.engine.execution_model import (
    Event,
    Execution,
    ExecutionState,
    Failure,
    StepAttempt,
    StepRun,
    StepState,
)
from baton_server.engine.expressions import parse_path
from baton_server.engine.journal import Journal
from baton_server.engine.mapping import MappingError, lookup, render
from baton_server.engine.model import Agent, AgentState, Handoff, HandoffType, Step
from baton_server.engine.plan import Plan
from baton_server.engine.runtimes import Runtimes
from baton_server.errors import BatonError

log = logging.getLogger(__name__)


@dataclass
class Transition:
    """One commit's worth of change: execution fields, step runs, events, and the steps to
    start once it is written (with the agent whose slot is already held, if any)."""

    fields: dict[str, Any]
    steps: list[StepRun]
    events: list[Event]
    to_spawn: list[tuple[StepRun, dict[str, Any], Agent | None]]


class RunStoppedError(Exception):
    """The run stopped (cancelled, finished, or the server is draining): write nothing more."""


@dataclass
class RunEnv:
    """What a run needs from the engine around it."""

    journal: Journal
    runtimes: Runtimes
    agent: Callable[[str], Awaitable[Agent]]
    capable_agent: Callable[[str], Awaitable[Agent | None]]
    slots: Callable[[Agent], asyncio.Semaphore | None]
    handoffs_from: Callable[[str], Awaitable[list[Handoff]]]
    published: Callable[[list[Event]], None]
    finished: Callable[[ExecutionRun], None]
    clock: Callable[[], float]
    http: Any = None
    rng: random.Random = dataclasses.field(default_factory=random.Random)
    max_deltas: int = 1000
    max_handoff_depth: int = 8
    max_output_bytes: int = 1024 * 1024
    max_execution_bytes: int = 3 * 1024 * 1024
    """Most bytes (as JSON) of an execution's input, step outputs and output together, so
    that GetExecution can always send it."""


class ExecutionRun:
    """Drives one execution until it ends, is cancelled, or the server stops it."""

    def __init__(self, execution: Execution, plan: Plan, env: RunEnv) -> None:
        self.execution = execution
        self.plan = plan
        self.env = env
        self._lock = asyncio.Lock()
        self._tasks: dict[str, asyncio.Future[StepRun]] = {}
        self._done: asyncio.Queue[tuple[str, asyncio.Future[StepRun]]] = asyncio.Queue()
        self._cancel_flags: dict[str, threading.Event] = {}
        self._driver: asyncio.Task[None] | None = None
        self._first: Transition | None = None
        self._draining = False
        self._input_bytes = -1  # the input's size as JSON, measured once when needed
        self._sizes: dict[str, int] = {}  # step id -> bytes of its stored output

    # Lifecycle ------------------------------------------------------------------------

    def start(self, first: Transition | None = None) -> None:
        """Starts driving the execution in a task; `first` is a transition from `prepare`
        that was written with the execution."""
        self._first = first
        self._driver = asyncio.create_task(self._main(), name=f"execution-{self.execution.id}")

    async def cancel(self, reason: str) -> bool:
        """Ends the execution CANCELLED; running agents are told, nothing new starts.
        Returns False when it had already ended."""
        ended = await self._end(
            ExecutionState.CANCELLED,
            Failure(failures.CANCELLED, reason or "cancelled on request"),
            new_event(ExecutionCancelled(reason)),
        )
        if ended and self._driver is not None and self._driver is not asyncio.current_task():
            self._driver.cancel()
        return ended

    async def drain(self, grace: float) -> None:
        """Server shutdown: starts nothing new, lets running attempts finish within `grace`,
        then stops without ending the execution (it resumes when the server restarts)."""
        self._draining = True
        if self._driver is None:
            return
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._driver), grace)
        if not self._driver.done():
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._driver

    # Driving --------------------------------------------------------------------------

    async def _main(self) -> None:
        try:
            timeout = self.execution.timeout
            if timeout:
                started = self.execution.start_time or self.env.clock()
                remaining = max(started + timeout - self.env.clock(), 0.0)
                limit = asyncio.timeout(remaining)
                try:
                    async with limit:
                        await self._drive()
                except TimeoutError:
                    if not limit.expired():
                        raise
                    await self._end(
                        ExecutionState.TIMED_OUT,
                        Failure(
                            failures.EXECUTION_TIMED_OUT,
                            f"the execution timeout of {timeout:g}s passed",
                        ),
                        new_event(ExecutionTimedOut(timeout)),
                    )
            else:
                await self._drive()
        except asyncio.CancelledError:
            pass  # cancelled (already written) or the server is stopping (resumes later)
        except Exception as exc:  # an engine bug must not leave the execution hanging
            log.exception("execution run failed", extra={"execution": self.execution.id})
            with contextlib.suppress(Exception):
                await self._end(
                    ExecutionState.FAILED,
                    Failure(failures.INTERNAL_ERROR, f"the engine failed: {exc}"),
                    None,
                )
        finally:
            self._stop_steps()
            self.env.finished(self)

    async def _drive(self) -> None:
        if self._first is not None:  # a new execution: its first steps were just written
            first, self._first = self._first, None
            if self._after(first):
                return
        else:  # possibly after a restart: steps that were active carry on
            for run in self.execution.steps:
                if run.state in (StepState.SCHEDULED, StepState.RUNNING, StepState.RETRYING):
                    self._spawn(self._resume(run), run.step_id)
        finished: list[StepRun] = []
        while True:
            if await self._advance(finished):
                return
            if not self._tasks:
                return
            # Step tasks report here when they end: one wait, then take all that are done.
            done = [await self._done.get()]
            while not self._done.empty():
                done.append(self._done.get_nowait())
            finished = []
            for step_id, task in done:
                if self._tasks.get(step_id) is not task:
                    continue
                del self._tasks[step_id]
                if task.cancelled():
                    continue
                error = task.exception()
                if error is None:
                    finished.append(task.result())
                elif not isinstance(error, RunStoppedError):
                    log.error(
                        "step task failed",
                        exc_info=error,
                        extra={"execution": self.execution.id, "step": step_id},
                    )
                    run = self.execution.step(step_id)
                    finished.append(
                        self._ended(
                            run,
                            StepState.FAILED,
                            Failure(failures.INTERNAL_ERROR, f"the engine failed: {error}"),
                        )
                    )

    async def _advance(self, finished: list[StepRun]) -> bool:
        """Records finished steps and everything they unlock in one commit; returns True
        when the run should stop driving."""
        async with self._lock:
            if self.execution.state.terminal:
                return True
            transition = await self._transition(finished)
            await self._write(transition.fields, transition.steps, transition.events)
            return self._after(transition)

    async def prepare(self) -> Transition:
        """For a new execution that can run at once: its first transition (started, first
        steps scheduled and started), which the caller writes with the execution itself.
        Pass it to `start` once written."""
        return await self._transition([])

    def _after(self, transition: Transition) -> bool:
        """Acts on a written transition: starts its steps, or stops when it ended the run."""
        if self.execution.state.terminal:
            self.release(transition)
            self._stop_steps()
            return True
        for run, agent_input, holding in transition.to_spawn:
            self._spawn(self._run_step(run, agent_input, holding), run.step_id)
        return self._draining and not self._tasks

    def release(self, transition: Transition) -> None:
        """Gives back the agent slots a transition took for steps that will not start."""
        for _, _, holding in transition.to_spawn:
            if holding is not None:
                slots = self.env.slots(holding)
                if slots is not None:
                    slots.release()

    async def _transition(self, finished: list[StepRun]) -> Transition:
        """What follows from `finished` steps: their completion, the steps they unlock
        (skipped or started), and the end of the execution if it came; nothing is written."""
        now = self.env.clock()
        fields: dict[str, Any] = {}
        events: list[Event] = []
        changes: dict[int, StepRun] = {}

        def view(step_id: str) -> StepRun:
            run = self.execution.step(step_id)
            return changes.get(run.position, run)

        if self.execution.state is ExecutionState.QUEUED:
            fields.update(state=ExecutionState.RUNNING, start_time=now)
            events.append(new_event(ExecutionStarted()))
        for run in finished:
            changes[run.position] = run
            events.append(self._completion_event(run))

        failed = next(
            (r for r in finished if r.state in (StepState.FAILED, StepState.TIMED_OUT)), None
        )
        to_spawn: list[tuple[StepRun, dict[str, Any], Agent | None]] = []
        if failed is None and not self._draining:
            failed = await self._schedule(view, changes, events, to_spawn, now)

        if failed is not None:
            assert failed.error is not None
            error = Failure(
                failed.error.type,
                f"step {failed.step_id!r} failed: {failed.error.message}",
                step_id=failed.step_id,
                cause=failed.error,
            )
            for run in self.execution.steps:
                current = view(run.step_id)
                if not current.state.terminal:
                    changes[run.position] = dataclasses.replace(
                        current, state=StepState.CANCELLED, end_time=now
                    )
            fields.update(state=ExecutionState.FAILED, error=error, end_time=now)
            events.append(new_event(ExecutionFailed(error)))
        elif all(view(s.step_id).state.terminal for s in self.execution.steps):
            output, output_error = self._output(view)
            if output_error is None:
                fields.update(state=ExecutionState.SUCCEEDED, output=output, end_time=now)
                events.append(new_event(ExecutionSucceeded(output)))
            else:
                fields.update(state=ExecutionState.FAILED, error=output_error, end_time=now)
                events.append(new_event(ExecutionFailed(output_error)))
        return Transition(fields, list(changes.values()), events, to_spawn)

    async def _schedule(
        self,
        view: Callable[[str], StepRun],
        changes: dict[int, StepRun],
        events: list[Event],
        to_spawn: list[tuple[StepRun, dict[str, Any], Agent | None]],
        now: float,
    ) -> StepRun | None:
        """Decides every PENDING step whose dependencies are done: skip, or start. Returns a
        step that failed before it could start (bad input mapping or condition)."""
        progress = True
        while progress:
            progress = False
            for step in self.plan.workflow.steps:
                run = view(step.id)
                if run.state is not StepState.PENDING:
                    continue
                deps = [view(d) for d in step.depends_on]
                if not all(d.state.terminal for d in deps):
                    continue
                progress = True
                not_done = next((d for d in deps if d.state is not StepState.SUCCEEDED), None)
                reason = ""
                if not_done is not None:
                    reason = f"dependency {not_done.step_id!r} was {not_done.state.value.lower()}"
                else:
                    try:
                        if step.when and not self._condition(step, view):
                            reason = "condition is false"
                        agent_input = self._input(step, view)
                    except (MappingError, _ConditionError) as exc:
                        failed = self._ended(
                            run,
                            StepState.FAILED,
                            Failure(
                                _failure_type(exc),
                                str(exc),
                                non_retryable=True,
                            ),
                        )
                        changes[run.position] = failed
                        events.append(self._completion_event(failed))
                        return failed
                if reason:
                    changes[run.position] = dataclasses.replace(
                        run, state=StepState.SKIPPED, end_time=now
                    )
                    events.append(new_event(StepSkipped(reason), step.id))
                    continue
                started, holding = await self._first_attempt(step, run, agent_input, now, events)
                changes[run.position] = started
                to_spawn.append((started, agent_input, holding))
        return None

    async def _first_attempt(
        self,
        step: Step,
        run: StepRun,
        agent_input: dict[str, Any],
        now: float,
        events: list[Event],
    ) -> tuple[StepRun, Agent | None]:
        """Schedules a step; starts its first attempt at once when its agent is available
        and has a free slot (else the step's task starts it)."""
        agent = await self._agent_at(step, 0, run)
        scheduled = dataclasses.replace(
            run,
            state=StepState.SCHEDULED,
            schedule_time=now,
            agent=agent.id if isinstance(agent, Agent) else run.agent,
        )
        events.append(new_event(StepScheduled(scheduled.agent), step.id))
        if not isinstance(agent, Agent) or agent.state is not AgentState.ACTIVE:
            return scheduled, None
        slots = self.env.slots(agent)
        if slots is not None and slots.locked():
            return scheduled, None
        if slots is not None:
            await slots.acquire()  # free: does not wait
        started = self._new_attempt(scheduled, agent, now)
        events.append(self._started_event(started, agent_input))
        return started, agent

    # Steps ----------------------------------------------------------------------------

    async def _resume(self, run: StepRun) -> StepRun:
        """Continues a step that was active when the server stopped. An attempt the stop cut
        short (it never reported an end) is delivered again with the same attempt number,
        hence the same idempotency key, and does not count against the retry policy; its
        first delivery stays on record, closed as `Interrupted`."""
        step = self.plan.steps[run.step_id]
        if run.state is StepState.RUNNING and run.attempts:
            last = run.attempts[-1]
            cut_short = not last.end_time and last.attempt == run.attempt
            closed = dataclasses.replace(
                last,
                end_time=last.end_time or self.env.clock(),
                error=last.error
                or Failure(
                    failures.INTERRUPTED,
                    "the server stopped during this attempt; it was delivered again",
                ),
            )
            run = dataclasses.replace(
                run,
                attempts=[*run.attempts[:-1], closed],
                tries=max(run.tries - 1, 0),
                attempt=run.attempt - 1 if cut_short else run.attempt,
            )
        agent_input = run.handoff_input
        if agent_input is None:
            agent_input = self._input(step, self._committed)
        return await self._run_step(run, agent_input, None)

    async def _run_step(
        self, run: StepRun, agent_input: dict[str, Any], holding: Agent | None
    ) -> StepRun:
        """Runs attempts until the step is done: retries per the policy, then the fallback
        agents, then ON_FAILURE handoffs; after a success, SEQUENTIAL or agent-requested
        handoffs pass the step on. Returns the step's final run (not yet recorded: the
        driver records it together with what follows)."""
        step = self.plan.steps[run.step_id]
        backoff = self.plan.backoffs[step.id]
        pending: list[Event] = []
        agent = holding
        while True:
            failure: Failure | None = None
            retry_after: float | None = None
            if agent is None:
                if run.state is StepState.RETRYING:
                    await asyncio.sleep(max(run.retry_at - self.env.clock(), 0.0))
                found = await self._agent_at(step, run.agent_index, run)
                if isinstance(found, Failure):
                    failure = found
                else:
                    agent = found
                    slots = self.env.slots(agent)
                    if slots is not None:
                        await slots.acquire()
                    try:
                        run = self._new_attempt(run, agent, self.env.clock())
                        await self._record(
                            steps=[run], events=[*pending, self._started_event(run, agent_input)]
                        )
                    except BaseException:
                        if slots is not None:
                            slots.release()
                        raise
                    pending = []
            if agent is not None:
                try:
                    result = await self._attempt(step, run, agent, agent_input)
                    handoff, next_input = await self._sequential_handoff(run, agent, result)
                    if handoff is None:
                        output = self._step_output(step, result)
                        return self._ended(run, StepState.SUCCEEDED, output=output)
                except AttemptFailedError as failed:
                    failure, retry_after = failed.failure, failed.retry_after
                finally:
                    slots = self.env.slots(agent)
                    if slots is not None:
                        slots.release()
                if failure is None and handoff is not None:  # the handoff's target goes on
                    run = self._close_attempt(run, None)
                    requested = bool(result.handoff_to)
                    run = self._handed_off(run, handoff, next_input, pending, requested=requested)
                    agent_input = next_input
                    agent = None
                    continue
            assert failure is not None
            failure = dataclasses.replace(failure, step_id=step.id)
            run = self._close_attempt(run, failure)
            agent = None
            if failure.type == failures.STEP_TIMEOUT:
                pending.append(new_event(StepTimedOut(step.timeout), step.id, run.attempt))
            if run.tries and backoff.should_retry(failure, run.tries):
                delay = backoff.delay(run.tries, retry_after, self.env.rng)
                run = dataclasses.replace(
                    run, state=StepState.RETRYING, retry_at=self.env.clock() + delay, error=failure
                )
                pending.append(
                    new_event(StepRetrying(failure, delay, run.attempt + 1), step.id, run.attempt)
                )
                await self._record(steps=[run], events=pending)
                pending = []
                if self._draining:
                    raise RunStoppedError
                continue
            if 0 <= run.agent_index < len(step.fallback_agents):
                next_index = run.agent_index + 1
                target = step.fallback_agents[next_index - 1]
                pending.append(
                    new_event(FallbackActivated(failure, run.agent, target), step.id, run.attempt)
                )
                run = dataclasses.replace(
                    run,
                    state=StepState.SCHEDULED,
                    agent_index=next_index,
                    tries=0,
                    agent=target,
                    error=failure,
                    retry_at=0.0,
                )
                if self._draining:
                    await self._record(steps=[run], events=pending)
                    raise RunStoppedError
                continue
            rescue = await self._failure_handoff(step, run)
            if rescue is not None:
                run = dataclasses.replace(run, error=failure)
                run = self._handed_off(run, rescue, agent_input, pending, requested=False)
                continue
            state = (
                StepState.TIMED_OUT if failure.type == failures.STEP_TIMEOUT else StepState.FAILED
            )
            log.warning(
                "step failed",
                extra={
                    "execution": self.execution.id,
                    "step": step.id,
                    "attempt": run.attempt,
                    "error_type": failure.type,
                    "error": failure.message[:500],
                },
            )
            ended = self._ended(run, state, failure)
            if pending:
                await self._record(events=pending)
            return ended

    # Handoffs -------------------------------------------------------------------------

    async def _sequential_handoff(
        self, run: StepRun, agent: Agent, result: AgentResult
    ) -> tuple[Handoff | None, dict[str, Any]]:
        """After a success: the handoff the agent asked for (which must be declared), or
        the first SEQUENTIAL handoff from it, by priority, whose conditions all hold. Also
        returns the target's input (the output through the handoff's data_mapping)."""
        declared = await self.env.handoffs_from(agent.id)
        chosen: Handoff | None = None
        if result.handoff_to:
            chosen = next((h for h in declared if h.target_agent == result.handoff_to), None)
            if chosen is None:
                raise AttemptFailedError(
                    Failure(
                        failures.HANDOFF_NOT_ALLOWED,
                        f"agents/{agent.id} asked to hand off to agents/{result.handoff_to}, "
                        "but no Handoff from it to that agent exists",
                        non_retryable=True,
                    )
                )
        else:
            for handoff in declared:
                if handoff.type is HandoffType.SEQUENTIAL and self._triggered(
                    handoff, result.output
                ):
                    chosen = handoff
                    break
        if chosen is None:
            return None, {}
        if len(run.handoffs) >= self.env.max_handoff_depth:
            raise AttemptFailedError(
                Failure(
                    failures.HANDOFF_DEPTH_EXCEEDED,
                    f"the step was handed off {len(run.handoffs)} times, the most allowed",
                    non_retryable=True,
                )
            )
        return chosen, self._handoff_input(chosen, result.output)

    async def _failure_handoff(self, step: Step, run: StepRun) -> Handoff | None:
        """After the step's agent (and its fallbacks) failed: an ON_FAILURE handoff from
        it whose conditions hold, if the chain is not too long and it was not used yet."""
        source = run.attempts[0].agent if run.attempts else step.agent
        if not source or len(run.handoffs) >= self.env.max_handoff_depth:
            return None
        used = {record.get("handoff") for record in run.handoffs}
        for handoff in await self.env.handoffs_from(source):
            if (
                handoff.type is HandoffType.ON_FAILURE
                and f"handoffs/{handoff.id}" not in used
                and self._triggered(handoff, {})
            ):
                return handoff
        return None

    def _triggered(self, handoff: Handoff, source_output: dict[str, Any]) -> bool:
        for condition in handoff.trigger_conditions:
            if condition.strip() == "completion":
                continue
            try:
                if (
                    compile_condition(condition).execute(
                        {"source_output": source_output, "input": self.execution.input}
                    )
                    is not True
                ):
                    return False
            except Exception:  # a condition that cannot be evaluated does not hold
                return False
        return True

    def _handoff_input(self, handoff: Handoff, output: dict[str, Any]) -> dict[str, Any]:
        if not handoff.data_mapping:
            return dict(output)
        mapped: dict[str, Any] = {}
        for source_path, target_field in handoff.data_mapping.items():
            try:
                mapped[target_field] = lookup(
                    output, parse_path(f"output.{source_path}")[1:], f"output.{source_path}"
                )
            except MappingError as exc:
                raise AttemptFailedError(
                    Failure(
                        failures.MAPPING_ERROR,
                        f"handoffs/{handoff.id} data_mapping: {exc}",
                        non_retryable=True,
                    )
                ) from None
        return mapped

    def _handed_off(
        self,
        run: StepRun,
        handoff: Handoff,
        target_input: dict[str, Any],
        pending: list[Event],
        *,
        requested: bool,
    ) -> StepRun:
        """The step passed to the handoff's target, with its input (recorded with the
        target's first start, so a restarted server hands it the same input)."""
        record = HandoffRecord(
            handoff=f"handoffs/{handoff.id}",
            source_agent=handoff.source_agent,
            target_agent=handoff.target_agent,
            type=handoff.type.value if handoff.type else "",
            requested_by_agent=requested,
            time=self.env.clock(),
        )
        pending.append(new_event(record, run.step_id, run.attempt))
        return dataclasses.replace(
            run,
            state=StepState.SCHEDULED,
            agent=handoff.target_agent,
            agent_index=-1,
            tries=0,
            retry_at=0.0,
            handoffs=[*run.handoffs, record.to_doc()],
            handoff_input=target_input,
        )

    async def _attempt(
        self, step: Step, run: StepRun, agent: Agent, agent_input: dict[str, Any]
    ) -> AgentResult:
        """One agent call with the step timeout."""
        cancelled = threading.Event()
        self._cancel_flags[step.id] = cancelled
        sink = _AttemptEvents(self, step.id, run.attempt)
        ctx = StepContext(
            execution=f"executions/{self.execution.id}",
            step_id=step.id,
            attempt=run.attempt,
            idempotency_key=f"{self.execution.id}/{step.id}/{run.attempt}",
            agent=f"agents/{agent.id}",
            config=agent.config,
            cancelled=cancelled,
            log=StepLogger(sink.log),
            http=self.env.http,
            deltas=sink.delta,
            deadline=self.env.clock() + step.timeout if step.timeout else None,
        )
        try:
            if step.timeout:
                limit = asyncio.timeout(step.timeout)
                try:
                    async with limit:
                        result = await self.env.runtimes.invoke(agent, agent_input, ctx)
                except TimeoutError:
                    if not limit.expired():
                        raise
                    cancelled.set()
                    raise AttemptFailedError(
                        Failure(
                            failures.STEP_TIMEOUT,
                            f"attempt {run.attempt} exceeded the step timeout of {step.timeout:g}s",
                        )
                    ) from None
            else:
                result = await self.env.runtimes.invoke(agent, agent_input, ctx)
        finally:
            self._cancel_flags.pop(step.id, None)
        size = len(orjson.dumps(result.output))
        if size > self.env.max_output_bytes:
            raise AttemptFailedError(
                Failure(
                    failures.OUTPUT_TOO_LARGE,
                    f"the agent's output is {size} bytes; at most {self.env.max_output_bytes} are "
                    "kept (BATON_MAX_OUTPUT_BYTES)",
                    non_retryable=True,
                )
            )
        return dataclasses.replace(result, size=size)

    def _step_output(self, step: Step, result: AgentResult) -> dict[str, Any]:
        """The step's output: the (last) agent's output through `output_mapping`, within
        what the execution may hold in all."""
        output, size = result.output, result.size
        mapped = output
        if step.output_mapping is not None:
            size = -1
            try:
                mapped = render(
                    step.output_mapping, {**self._scope(self._committed), "output": output}
                )
            except MappingError as exc:
                raise AttemptFailedError(
                    Failure(failures.OUTPUT_MAPPING_ERROR, str(exc), non_retryable=True)
                ) from None
        problem = self._too_large(mapped, self._committed, step.id, size)
        if problem is not None:
            raise AttemptFailedError(problem)
        return mapped

    def _too_large(
        self,
        output: dict[str, Any],
        view: Callable[[str], StepRun],
        step_id: str | None,
        size: int = -1,
    ) -> Failure | None:
        """A failure if storing `output` (`size` bytes as JSON, when already measured) would
        make the execution exceed its size bound (counting its input and the step outputs in
        `view`, except `step_id`'s)."""
        if size < 0:
            size = len(orjson.dumps(output))
        total = size + self._stored_bytes(view, step_id)
        if total <= self.env.max_execution_bytes:
            return None
        return Failure(
            failures.OUTPUT_TOO_LARGE,
            f"with this output the execution would hold {total} bytes of input and outputs; "
            f"at most {self.env.max_execution_bytes} (three quarters of "
            "BATON_MAX_MESSAGE_BYTES), so that it can always be read back",
            non_retryable=True,
        )

    def _stored_bytes(self, view: Callable[[str], StepRun], except_step: str | None) -> int:
        if self._input_bytes < 0:
            self._input_bytes = len(orjson.dumps(self.execution.input))
        total = self._input_bytes
        for step in self.plan.workflow.steps:
            run = view(step.id)
            if step.id == except_step or run.state is not StepState.SUCCEEDED:
                continue
            if step.id not in self._sizes:
                self._sizes[step.id] = len(orjson.dumps(run.output or {}))
            total += self._sizes[step.id]
        return total

    async def _agent_at(self, step: Step, index: int, run: StepRun) -> Agent | Failure:
        """The agent for position `index` of the step's chain (0: its own agent or one with
        its capability; k: its k-th fallback; -1: the handoff target in `run.agent`), or the
        failure that makes it unusable."""
        if index == 0 and step.capability and not run.agent:
            agent = await self.env.capable_agent(step.capability)
            if agent is None:
                return Failure(
                    failures.NO_AGENT_FOR_CAPABILITY,
                    f"no active agent has capability {step.capability!r}",
                    non_retryable=True,
                )
            return agent
        if index < 0:  # a handoff target
            agent_id = run.agent
        elif index == 0:
            agent_id = run.agent or step.agent
        else:
            agent_id = step.fallback_agents[index - 1]
        try:
            agent = await self.env.agent(agent_id)
        except BatonError as exc:
            return Failure(failures.AGENT_NOT_FOUND, exc.message, non_retryable=True)
        if agent.state is not AgentState.ACTIVE:
            return Failure(
                failures.AGENT_DISABLED, f"agents/{agent.id} is disabled", non_retryable=True
            )
        return agent

    # Transitions ----------------------------------------------------------------------

    def _new_attempt(self, run: StepRun, agent: Agent, now: float) -> StepRun:
        number = run.attempt + 1
        return dataclasses.replace(
            run,
            state=StepState.RUNNING,
            attempt=number,
            tries=run.tries + 1,
            agent=agent.id,
            retry_at=0.0,
            start_time=run.start_time or now,
            attempts=[
                *run.attempts,
                StepAttempt(number, agent.id, fallback=run.agent_index != 0, start_time=now),
            ],
        )

    def _close_attempt(self, run: StepRun, failure: Failure | None) -> StepRun:
        if not run.attempts or run.attempts[-1].end_time:
            return run
        last = dataclasses.replace(run.attempts[-1], end_time=self.env.clock(), error=failure)
        return dataclasses.replace(run, attempts=[*run.attempts[:-1], last])

    def _ended(
        self,
        run: StepRun,
        state: StepState,
        error: Failure | None = None,
        output: dict[str, Any] | None = None,
    ) -> StepRun:
        now = self.env.clock()
        attempts = run.attempts
        if attempts and not attempts[-1].end_time:
            attempts = [
                *attempts[:-1],
                dataclasses.replace(attempts[-1], end_time=now, error=error),
            ]
        return dataclasses.replace(
            run,
            state=state,
            end_time=now,
            error=error,
            output=output,
            attempts=attempts,
            retry_at=0.0,
        )

    def _started_event(self, run: StepRun, agent_input: dict[str, Any]) -> Event:
        started = StepStarted(
            agent=run.agent,
            idempotency_key=f"{self.execution.id}/{run.step_id}/{run.attempt}",
            input=agent_input if self.execution.trace else None,  # inputs only when traced
        )
        return new_event(started, run.step_id, run.attempt)

    def _completion_event(self, run: StepRun) -> Event:
        if run.state is StepState.SUCCEEDED:
            return new_event(StepSucceeded(run.output), run.step_id, run.attempt)
        assert run.error is not None
        return new_event(StepFailed(run.error), run.step_id, run.attempt)

    async def _end(self, state: ExecutionState, error: Failure, event: Event | None) -> bool:
        """Ends the execution in `state` unless it has ended already."""
        async with self._lock:
            if self.execution.state.terminal:
                return False
            now = self.env.clock()
            steps = [
                dataclasses.replace(r, state=StepState.CANCELLED, end_time=now)
                for r in self.execution.steps
                if not r.state.terminal
            ]
            events = [event] if event else [new_event(ExecutionFailed(error))]
            await self._write({"state": state, "error": error, "end_time": now}, steps, events)
            self._stop_steps()
            return True

    async def _record(
        self, *, steps: list[StepRun] | None = None, events: list[Event] | None = None
    ) -> None:
        """A write from a step task; refused once the run has ended or been stopped."""
        async with self._lock:
            if self.execution.state.terminal:
                raise RunStoppedError
            await self._write({}, steps or [], events or [])

    async def _write(
        self, fields: dict[str, Any], steps: list[StepRun], events: list[Event]
    ) -> None:
        if not fields and not steps and not events:
            return
        written = await self.env.journal.record(
            self.execution, fields=fields, steps=steps, events=events
        )
        if written:
            self.env.published(written)

    def _stop_steps(self) -> None:
        for flag in self._cancel_flags.values():
            flag.set()
        for task in self._tasks.values():
            if task is not asyncio.current_task():
                task.cancel()

    def _spawn(self, work: Awaitable[StepRun], step_id: str) -> None:
        task = asyncio.ensure_future(work)
        self._tasks[step_id] = task
        task.add_done_callback(lambda t: self._done.put_nowait((step_id, t)))

    def _write_log(self, event: Event) -> None:
        async def write() -> None:
            with contextlib.suppress(RunStoppedError):
                await self._record(events=[event])

        task = asyncio.ensure_future(write())
        task.add_done_callback(_log_task_errors)

    # Data -----------------------------------------------------------------------------

    def _committed(self, step_id: str) -> StepRun:
        return self.execution.step(step_id)

    def _scope(self, view: Callable[[str], StepRun]) -> dict[str, Any]:
        steps = {}
        for step in self.plan.workflow.steps:
            run = view(step.id)
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

    def _input(self, step: Step, view: Callable[[str], StepRun]) -> dict[str, Any]:
        if step.input_mapping is None:
            return dict(self.execution.input)
        rendered: dict[str, Any] = render(step.input_mapping, self._scope(view))
        size = len(orjson.dumps(rendered))
        if size > self.env.max_output_bytes:
            raise _InputTooLargeError(
                f"the step's mapped input is {size} bytes; at most "
                f"{self.env.max_output_bytes} (BATON_MAX_OUTPUT_BYTES)"
            )
        return rendered

    def _condition(self, step: Step, view: Callable[[str], StepRun]) -> bool:
        try:
            result = self.plan.conditions[step.id].execute(self._scope(view))
        except Exception as exc:  # CEL reports missing keys and type errors by raising
            raise _ConditionError(
                f"condition {step.when!r} could not be evaluated: {exc}"
            ) from None
        if not isinstance(result, bool):
            raise _ConditionError(f"condition {step.when!r} gave {result!r}, not a boolean")
        return result

    def _output(
        self, view: Callable[[str], StepRun]
    ) -> tuple[dict[str, Any] | None, Failure | None]:
        mapping = self.plan.workflow.output_mapping
        if mapping is None:
            output: dict[str, Any] = {
                sink: view(sink).output
                for sink in self.plan.sinks
                if view(sink).state is StepState.SUCCEEDED
            }
        else:
            try:
                output = render(mapping, self._scope(view))
            except MappingError as exc:
                return None, Failure(failures.OUTPUT_MAPPING_ERROR, str(exc))
        problem = self._too_large(output, view, None)
        return (None, problem) if problem is not None else (output, None)


class _AttemptEvents:
    """Writes an attempt's LOG and STEP_OUTPUT_DELTA events (safe from any thread), each
    kind up to BATON_MAX_DELTAS, then one warning, then nothing: an attempt cannot flood the
    event log. One small object per attempt (many attempts may wait at once)."""

    __slots__ = ("_attempt", "_deltas", "_logs", "_loop", "_run", "_step_id")

    def __init__(self, run: ExecutionRun, step_id: str, attempt: int) -> None:
        self._run = run
        self._loop = asyncio.get_running_loop()
        self._step_id = step_id
        self._attempt = attempt
        self._logs = 0
        self._deltas = 0

    def log(self, level: str, message: str, fields: dict[str, Any]) -> None:
        """A log line (the StepLogger's sink)."""
        self._logs += 1
        if self._within(self._logs, "log lines"):
            self._put(Log(level, message, fields))

    def delta(self, text: str, data: dict[str, Any] | None) -> None:
        """Partial output (the StepContext's `deltas`)."""
        self._deltas += 1
        if self._within(self._deltas, "output deltas"):
            self._put(OutputDelta(text, data))

    def _within(self, count: int, what: str) -> bool:
        limit = self._run.env.max_deltas
        if count == limit + 1:
            dropped = f"more than {limit} {what}: the rest are dropped"
            self._put(Log("WARNING", dropped, {"limit": limit}))
        return count <= limit

    def _put(self, payload: Payload) -> None:
        event = new_event(payload, self._step_id, self._attempt)
        self._loop.call_soon_threadsafe(self._run._write_log, event)


class _ConditionError(ValueError):
    """A step condition that could not be evaluated."""

    failure_type = failures.CONDITION_ERROR


def _failure_type(exc: Exception) -> str:
    """The catalogued type of a failure to prepare a step."""
    return getattr(exc, "failure_type", failures.MAPPING_ERROR)


class _InputTooLargeError(MappingError):
    """A step input mapping that makes an input larger than a step output may be."""

    failure_type = failures.INPUT_TOO_LARGE


def _log_task_errors(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("writing a log event failed", exc_info=task.exception())
