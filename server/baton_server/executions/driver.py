"""Drives one execution: feeds the transition function its inputs (attempt results, timers,
slots, cancels), writes each decision with its events in one transaction, and only then
carries out its commands (runs attempts, arms timers, waits for agent slots). It decides
nothing itself: every rule is in `transitions`.

Inputs that arrive together are decided one after the other and written in one commit, so
a step's completion and the steps it unlocks are one write. The in-memory execution changes
only after the write commits, so what readers see is always durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from baton_server.domain import failures
from baton_server.domain.attempts import (
    AgentResult,
    AttemptFailedError,
    AttemptInfo,
    Cancellation,
)
from baton_server.domain.definitions import Agent, OpenAIRuntime
from baton_server.domain.events import (
    AGENT_LOOP_KINDS,
    Log,
    OutputDelta,
    Payload,
    new_event,
    payload_of,
)
from baton_server.domain.executions import (
    Event,
    EventType,
    Execution,
    ExecutionState,
    Failure,
    ItemResult,
    StepState,
)
from baton_server.domain.tools import AgentTool
from baton_server.executions.decisions import (
    ArmTimer,
    AttemptFailed,
    AttemptSucceeded,
    AwaitSlot,
    Begin,
    CancelRequested,
    Command,
    Decision,
    EngineFailed,
    Input,
    Limits,
    NotLoaded,
    PauseRequested,
    ResumeRequested,
    RunAttempt,
    RunChild,
    RunState,
    SignalDelivered,
    SlotGranted,
    StepDecided,
    StopAttempt,
    Timer,
    TimerFired,
    child_id_for,
)
from baton_server.executions.directory import AgentDirectory
from baton_server.executions.journal import ClaimLostError, Journal
from baton_server.executions.spans import RunSpans
from baton_server.executions.transitions import MAX_CHILD_DEPTH, decide
from baton_server.language.plan import Plan
from baton_server.runtimes.registry import Runtimes
from baton_server.tracing import Tracing

log = logging.getLogger(__name__)

MAX_LOADS = 64
"""Most directory loads one decision may need (more means the cache cannot keep up)."""


class Children(Protocol):
    """How a run starts, waits for and cancels child executions (the execution service)."""

    async def run_child(self, parent: Execution, command: RunChild) -> AgentResult:
        """Starts the child (or finds it, started before) and waits for its end: its output,
        or AttemptFailedError with its error."""
        ...

    def cancel_child(self, child_id: str, reason: str) -> None:
        """Cancels a child execution, in the background."""
        ...


@dataclass
class RunEnv:
    """What a run needs from the engine around it."""

    journal: Journal
    runtimes: Runtimes
    directory: AgentDirectory
    slots: Callable[[Agent], asyncio.Semaphore | None]
    published: Callable[[list[Event]], None]
    finished: Callable[[RunDriver], None]
    clock: Callable[[], float]
    limits: Limits
    http: Any = None
    children: Children | None = None
    max_deltas: int = 1000
    tracing: Tracing = field(default_factory=lambda: Tracing(None))


class RunDriver:
    """Carries out the decisions about one execution until it ends or the server stops."""

    def __init__(self, execution: Execution, plan: Plan, env: RunEnv) -> None:
        self.execution = execution
        self.plan = plan
        self.env = env
        self._lock = asyncio.Lock()
        self._inputs: list[Input] = []
        self._waiter: asyncio.Future[None] | None = None  # the loop's, while it sleeps
        self._attempts: dict[str, _Running] = {}  # by step
        self._held: dict[str, asyncio.Semaphore] = {}  # slots granted to steps, not yet used
        self._granted: set[str] = set()  # steps whose grant the decision at hand took
        self._slot_waits: dict[str, asyncio.Task[None]] = {}
        self._timers: dict[Timer, asyncio.TimerHandle] = {}
        self._sizes: dict[tuple[str, int], int] = {}
        self._values: dict[tuple[str, int, int], list[Any]] = {}  # `for_each` lists
        self._items: dict[str, dict[int, ItemResult]] = {}  # ended items, once loaded
        self._draining = False
        self._task: asyncio.Task[None] | None = None
        self._first: Decision | None = None
        self._spans = RunSpans(env.tracing, execution)
        self._loop = asyncio.get_running_loop()

    # Lifecycle ------------------------------------------------------------------------

    async def prepare(self, first: Input | None = None) -> Decision:
        """The first decision of a run the caller writes itself (a new execution: started,
        first steps scheduled and started, written with the execution; or a retry of an
        ended one), then passes to `start`, or to `release` if it is not written."""
        return await self._decide_all([first or Begin()])

    def start(self, first: Decision | None = None) -> None:
        """Starts driving the execution in a task; `first` is the written decision from
        `prepare` (else the run begins, or resumes after a restart)."""
        self._first = first
        self._task = asyncio.create_task(self._main(), name=f"execution-{self.execution.id}")

    def release(self) -> None:
        """Gives back the agent slots granted to steps whose attempts did not start (the
        decision was not written, or the run stopped)."""
        for semaphore in self._held.values():
            semaphore.release()
        self._held.clear()
        self._granted.clear()

    async def cancel(self, reason: str) -> bool:
        """Ends the execution CANCELLED; running agents are told, nothing new starts.
        Returns False when it had already ended."""
        if self.execution.state.terminal:
            return False
        await self._apply([CancelRequested(reason)])
        return self.execution.state.terminal

    async def signal(self, signal: str, payload: dict[str, Any], request_id: str) -> bool:
        """Delivers a signal (written before this returns); False when the execution had
        already ended."""
        return await self._apply([SignalDelivered(signal, payload, request_id)]) is not None

    async def decide_step(self, decided: StepDecided) -> bool:
        """Records a person's decision on an approval step; False when the step does not
        wait for one (it has not started waiting, or has ended)."""
        decision = await self._apply([decided])
        return decision is not None and any(
            e.type is EventType.APPROVAL_DECIDED for e in decision.events
        )

    async def pause(self, reason: str) -> bool:
        """Pauses a RUNNING execution; False when it was not running."""
        await self._apply([PauseRequested(reason)])
        return self.execution.state is ExecutionState.PAUSED

    async def resume(self) -> bool:
        """Resumes a PAUSED execution; False when it was not paused."""
        if self.execution.state is not ExecutionState.PAUSED:
            return False
        await self._apply([ResumeRequested()])
        return self.execution.state is not ExecutionState.PAUSED

    async def drain(self, grace: float) -> None:
        """Server shutdown: starts nothing new, lets running attempts finish within `grace`
        (their results are written), then stops without ending the execution; it resumes
        when the server restarts."""
        self._draining = True
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for waiting in self._slot_waits.values():
            waiting.cancel()
        self._wake()
        if self._task is None:
            return
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), grace)
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # The loop -------------------------------------------------------------------------

    async def _main(self) -> None:
        self._spans.begin()
        try:
            if self._first is not None:  # a new execution: its first decision is written
                first, self._first = self._first, None
                self._carry_out(first)
            else:
                await self._apply([Begin()])
            while not self.execution.state.terminal:
                if self._inputs:
                    inputs, self._inputs = self._inputs, []
                    await self._apply(inputs)
                    continue
                if self._draining and all(a.child for a in self._attempts.values()):
                    return  # (children are drained on their own; they resume too)
                if not (
                    self._attempts
                    or self._timers
                    or self._slot_waits
                    or self._draining
                    or self.execution.state is ExecutionState.PAUSED
                    or any(run.state is StepState.WAITING for run in self.execution.steps)
                ):
                    raise RuntimeError("the execution waits for nothing")
                self._waiter = self._loop.create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
        except asyncio.CancelledError:
            pass  # cancelled (already written) or the server is stopping (resumes later)
        except ClaimLostError:
            # Another process claimed the execution (this one was paused or cut off past its
            # lease): nothing of this run was written since; it goes on there.
            log.warning(
                "execution claimed by another process: the run stops here",
                extra={"execution": self.execution.id},
            )
        except Exception as exc:  # an engine bug must not leave the execution hanging
            log.exception("execution run failed", extra={"execution": self.execution.id})
            with contextlib.suppress(Exception):
                await self._apply([EngineFailed(str(exc))])
        finally:
            self._stop_all()
            self._spans.end()
            self.env.finished(self)

    def _wake(self) -> None:
        """Wakes the loop if it sleeps (it looks at everything before it sleeps again)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _push(self, event: Input) -> None:
        self._inputs.append(event)
        self._wake()

    async def _apply(self, inputs: list[Input]) -> Decision | None:
        """Decides `inputs`, writes the decision, then carries it out; None when the
        execution had already ended (nothing was decided)."""
        async with self._lock:
            if self.execution.state.terminal:
                return None
            decision = await self._decide_all(inputs)
            try:
                await self._write(
                    decision.fields,
                    list(decision.steps.values()),
                    decision.events,
                    decision.items,
                    decision.cleared,
                )
            except BaseException:
                self.release()
                raise
            self._carry_out(decision)
            return decision

    async def _decide_all(self, inputs: list[Input]) -> Decision:
        """Decides the inputs in turn, each on the state the ones before it left; a slot
        that is free at once is taken and its grant decided in the same batch."""
        state = RunState(self.execution, self.plan, self.env.limits, self._draining)
        state.sizes = self._sizes
        state.values = self._values
        state.items = self._items
        total: Decision | None = None
        queue = list(inputs)
        while queue:
            event = queue.pop(0)
            if isinstance(event, SlotGranted):
                self._granted.add(event.step_id)
            decision = await self._decide(state, event)
            if any(isinstance(c, AwaitSlot) for c in decision.commands):
                kept: list[Command] = []
                for command in decision.commands:
                    if isinstance(command, AwaitSlot) and await self._take_free_slot(command):
                        queue.append(SlotGranted(command.step_id))  # decided in this batch
                    else:
                        kept.append(command)
                decision.commands = kept
            total = decision if total is None else total.then(decision)
            if queue:
                state = state.after(decision)
        return total or Decision()

    async def _decide(self, state: RunState, event: Input) -> Decision:
        now = self.env.clock()
        for _ in range(MAX_LOADS):
            try:
                return decide(state, event, now, self.env.directory)
            except NotLoaded as missing:
                if missing.kind == "items":
                    await self._load_items(missing.key)
                else:
                    await self.env.directory.load(missing)
        raise RuntimeError("agent lookups keep expiring before they can be used")

    async def _load_items(self, step_id: str) -> None:
        """Reads the ended items of a `for_each` step (after a restart)."""
        position = self.plan.positions[step_id]
        total = self.execution.steps[position].items_total
        found = await self.env.journal.items(
            self.execution.id, step_id, position, limit=max(total, 1)
        )
        self._items[step_id] = {r.index: r for r in found}

    async def _take_free_slot(self, command: AwaitSlot) -> bool:
        """Takes a slot for the step if one is free now (acquiring it does not wait)."""
        if command.step_id in self._held:
            return True
        slots = self.env.slots(command.agent)
        if slots is None or slots.locked():
            return slots is None
        await slots.acquire()
        self._held[command.step_id] = slots
        return True

    # Commands -------------------------------------------------------------------------

    def _carry_out(self, decision: Decision) -> None:
        """Carries out a written decision's commands (all of them moot once it ended)."""
        if self.execution.state.terminal:
            self._stop_all()
            return
        started: set[str] = set()
        for command in decision.commands:
            if isinstance(command, RunAttempt):
                started.add(command.step_id)
                self._run_attempt(command)
            elif isinstance(command, RunChild):
                self._run_child(command)
            elif isinstance(command, AwaitSlot):
                self._await_slot(command)
            elif isinstance(command, ArmTimer):
                self._arm(command)
            elif isinstance(command, StopAttempt):
                if command.item >= 0:
                    self._stop_attempt(_attempt_key(command.step_id, command.item))
                else:  # the step's attempt, or all of its items'
                    prefix = f"{command.step_id}{_ITEM}"
                    for key in [k for k in self._attempts if k.startswith(prefix)]:
                        self._stop_attempt(key)
                    self._stop_attempt(command.step_id)
        for run in decision.steps.values():
            if run.state.terminal:
                self._spans.step_ended(run.step_id, run.state.value)
        for step_id in self._granted - started:  # granted, but the step did not start
            slot = self._held.pop(step_id, None)
            if slot is not None:
                slot.release()
        self._granted.clear()
        for event in decision.events:
            if event.type is EventType.STEP_FAILED:
                log.warning(
                    "step failed",
                    extra={
                        "execution": self.execution.id,
                        "step": event.step_id,
                        "attempt": event.attempt,
                        "error_type": (event.payload.get("error") or {}).get("type", ""),
                    },
                )

    def _run_attempt(self, command: RunAttempt) -> None:
        cancelled = Cancellation()
        task = self._loop.create_task(self._attempt(command, cancelled))
        key = _attempt_key(command.step_id, command.item)
        slot = self._held.pop(command.step_id, None) if command.item < 0 else None
        self._attempts[key] = _Running(command.attempt, task, cancelled, slot)

    async def _attempt(self, command: RunAttempt, cancelled: Cancellation) -> None:
        """Runs one attempt and reports how it ended."""
        step_id, number, item = command.step_id, command.attempt, command.item
        key = _attempt_key(step_id, item)
        sink = _AttemptEvents(self, step_id, number)
        info = AttemptInfo(
            execution=f"executions/{self.execution.id}",
            step_id=step_id,
            attempt=number,
            idempotency_key=command.idempotency_key,
            agent=f"agents/{command.agent.id}",
            config=command.agent.config,
            deadline=command.deadline,
            cancelled=cancelled,
            log=sink.log,
            deltas=sink.delta,
            http=self.env.http,
            traceparent=self._spans.attempt_started(key, number, command.agent.id, command.input),
            item=item,
        )
        try:
            llm = isinstance(command.agent.runtime, OpenAIRuntime)
            if llm:
                info = await self._loop_info(info, command)
            result: AgentResult = await self.env.runtimes.invoke(command.agent, command.input, info)
            schema = self.plan.output_schemas.get(step_id)
            if schema is not None and not llm:
                problems = await asyncio.to_thread(schema.problems, result.output)
                if problems:
                    raise AttemptFailedError(
                        Failure(
                            failures.OUTPUT_SCHEMA_MISMATCH,
                            "the output does not match the step's output_schema: "
                            + "; ".join(problems),
                        )
                    )
            size = len(orjson.dumps(result.output))
            self._spans.attempt_ended(key, output=result.output)
            self._push(
                AttemptSucceeded(
                    step_id, number, result.output, size, result.handoff_to, item, result.usage
                )
            )
        except AttemptFailedError as failed:
            self._spans.attempt_ended(key, failure=failed.failure)
            self._push(
                AttemptFailed(
                    step_id, number, failed.failure, failed.retry_after, item, failed.usage
                )
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an engine bug: the attempt fails for good
            log.error(
                "step task failed",
                exc_info=exc,
                extra={"execution": self.execution.id, "step": step_id},
            )
            failure = Failure(
                failures.INTERNAL_ERROR, f"the engine failed: {exc}", non_retryable=True
            )
            self._spans.attempt_ended(key, failure=failure)
            self._push(AttemptFailed(step_id, number, failure, item=item))
        finally:
            current = self._attempts.get(key)
            if current is not None and current.attempt == number:  # (else it was stopped)
                del self._attempts[key]
                current.release()
            self._wake()

    async def _loop_info(self, info: AttemptInfo, command: RunAttempt) -> AttemptInfo:
        """What an LLM agent's loop is given besides the attempt: the agent's tools (and
        the agents of its `agent` tools), its handoffs, the step's output schema, and how to
        read and write its checkpoints."""
        directory = self.env.directory
        tools = await directory.tools_of(command.agent)
        tool_agents = {}
        for tool in tools:
            if isinstance(tool.implementation, AgentTool):
                agent = await directory.agent_async(tool.implementation.agent)
                if agent is not None:
                    tool_agents[agent.id] = agent
        schema = self.plan.output_schemas.get(command.step_id)
        run = self.execution.steps[self.plan.positions[command.step_id]]
        iteration = run.iteration

        async def checkpoints() -> list[Payload]:
            events = await self.env.journal.attempt_events(
                self.execution, command.step_id, command.attempt, AGENT_LOOP_KINDS
            )
            return [
                payload
                for event in events
                if event.iteration == iteration
                and getattr(payload := payload_of(event), "item", -1) == command.item
            ]

        async def record(payloads: Sequence[Payload]) -> None:
            events = [
                new_event(p, command.step_id, command.attempt, iteration=iteration)
                for p in payloads
            ]
            async with self._lock:
                if self.execution.state.terminal:
                    raise asyncio.CancelledError  # the run ended: the attempt stops here
                await self._write({}, [], events)

        async def run_workflow(workflow_id: str, value: dict[str, Any], key: str) -> AgentResult:
            assert self.env.children is not None, "the execution service runs children"
            if self.execution.depth + 1 > MAX_CHILD_DEPTH:
                raise AttemptFailedError(
                    Failure(
                        failures.CHILD_DEPTH_EXCEEDED,
                        f"children nest at most {MAX_CHILD_DEPTH} deep",
                        non_retryable=True,
                    )
                )
            child = child_id_for(key)
            start = RunChild(
                command.step_id, command.attempt, workflow_id, value, child, command.deadline
            )
            try:
                return await self.env.children.run_child(self.execution, start)
            except asyncio.CancelledError:  # the attempt stopped: so does the tool's child
                reason = f"its parent {self.execution.id!r} stopped step {command.step_id!r}"
                self.env.children.cancel_child(child, reason)
                raise

        return dataclasses.replace(
            info,
            run_workflow=run_workflow,
            tools=tools,
            tool_agents=tool_agents,
            handoffs=await directory.handoffs_async(command.agent.id),
            output_schema=self.plan.steps[command.step_id].output_schema,
            check_output=schema.problems if schema is not None else None,
            checkpoints=checkpoints,
            record=record,
        )

    def _run_child(self, command: RunChild) -> None:
        task = asyncio.ensure_future(self._child(command))
        self._attempts[command.step_id] = _Running(
            command.attempt, task, Cancellation(), None, command.child_id
        )

    async def _child(self, command: RunChild) -> None:
        """Runs a `workflow` step's attempt: its child execution, to its end."""
        step_id, number = command.step_id, command.attempt
        assert self.env.children is not None, "the execution service runs children"
        try:
            result = await self.env.children.run_child(self.execution, command)
            size = len(orjson.dumps(result.output))
            self._push(AttemptSucceeded(step_id, number, result.output, size))
        except AttemptFailedError as failed:
            self._push(AttemptFailed(step_id, number, failed.failure, failed.retry_after))
        finally:
            current = self._attempts.get(step_id)
            if current is not None and current.attempt == number:
                del self._attempts[step_id]
            self._wake()

    def _await_slot(self, command: AwaitSlot) -> None:
        if command.step_id in self._slot_waits or command.step_id in self._held:
            return
        slots = self.env.slots(command.agent)

        async def wait() -> None:
            try:
                if slots is not None:
                    await slots.acquire()
                    self._held[command.step_id] = slots
                self._push(SlotGranted(command.step_id))
            finally:
                self._slot_waits.pop(command.step_id, None)

        self._slot_waits[command.step_id] = asyncio.ensure_future(wait())

    def _arm(self, command: ArmTimer) -> None:
        if self._draining:
            return
        previous = self._timers.pop(command.timer, None)
        if previous is not None:
            previous.cancel()
        delay = max(command.at - self.env.clock(), 0.0)
        timer = command.timer

        def fire() -> None:
            self._timers.pop(timer, None)
            self._push(TimerFired(timer))

        self._timers[timer] = self._loop.call_later(delay, fire)

    def _stop_attempt(self, step_id: str) -> None:
        current = self._attempts.pop(step_id, None)
        if current is None:
            return
        current.cancelled.set()
        current.task.cancel()
        current.release()
        if current.child and self.env.children is not None:
            reason = f"its parent {self.execution.id!r} stopped step {step_id!r}"
            self.env.children.cancel_child(current.child, reason)
        self._spans.attempt_stopped(step_id)

    def _stop_all(self) -> None:
        for step_id in list(self._attempts):
            self._stop_attempt(step_id)
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for waiting in self._slot_waits.values():
            waiting.cancel()
        self.release()
        self._wake()

    # Writing --------------------------------------------------------------------------

    async def _write(
        self,
        fields: dict[str, Any],
        steps: list[Any],
        events: list[Event],
        items: Sequence[ItemResult] = (),
        cleared: Sequence[int] = (),
    ) -> None:
        if not fields and not steps and not events and not items and not cleared:
            return
        written = await self.env.journal.record(
            self.execution, fields=fields, steps=steps, events=events, items=items, cleared=cleared
        )
        for position in cleared:  # they run again: nothing of theirs has ended
            self._items[self.plan.workflow.steps[position].id] = {}
        for item in items:
            known = self._items.get(item.step_id)
            if known is not None:  # (else they are read when needed)
                known[item.index] = item
        if written:
            self.env.published(written)

    def write_log(self, event: Event) -> None:
        """Writes an attempt's LOG or STEP_OUTPUT_DELTA event, unless the run has ended."""

        async def write() -> None:
            async with self._lock:
                if not self.execution.state.terminal:
                    await self._write({}, [], [event])

        task = asyncio.ensure_future(write())
        task.add_done_callback(_log_task_errors)


_ITEM = "#"


def _attempt_key(step_id: str, item: int) -> str:
    """How the driver knows a running attempt: by step, and by item for `for_each` steps."""
    return step_id if item < 0 else f"{step_id}{_ITEM}{item}"


@dataclass(slots=True)
class _Running:
    """An attempt being run, with the agent slot it holds (if its agent has a limit)."""

    attempt: int
    task: asyncio.Task[None]
    cancelled: Cancellation
    slot: asyncio.Semaphore | None
    child: str = ""
    """The child execution the attempt waits for (a `workflow` step)."""

    def release(self) -> None:
        if self.slot is not None:
            self.slot.release()
            self.slot = None


class _AttemptEvents:
    """Writes an attempt's LOG and STEP_OUTPUT_DELTA events (safe from any thread), each
    kind up to BATON_MAX_DELTAS, then one warning, then nothing: an attempt cannot flood the
    event log. One small object per attempt (many attempts may wait at once)."""

    __slots__ = ("_attempt", "_deltas", "_logs", "_loop", "_run", "_step_id")

    def __init__(self, run: RunDriver, step_id: str, attempt: int) -> None:
        self._run = run
        self._loop = run._loop
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
        self._loop.call_soon_threadsafe(self._run.write_log, event)


def _log_task_errors(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("writing a log event failed", exc_info=task.exception())
