"""Executions as the API sees them: start (queued by priority, then age, under a limit on
running executions), get, wait, list, cancel, the event log, and recovery at start-up."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import heapq
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from baton_server.cluster.lease import EngineLease
from baton_server.definitions.service import Definitions
from baton_server.domain import failures
from baton_server.domain.definitions import Agent, Workflow, WorkflowState
from baton_server.domain.events import ExecutionCancelled, ExecutionQueued, new_event
from baton_server.domain.executions import (
    Event,
    EventType,
    Execution,
    ExecutionState,
    Failure,
    StepRun,
    StepState,
)
from baton_server.domain.ids import new_id
from baton_server.domain.paging import Page
from baton_server.errors import BatonError, Code, invalid_field, not_found
from baton_server.events.hub import EventHub
from baton_server.executions.directory import AgentDirectory
from baton_server.executions.driver import RunDriver, RunEnv
from baton_server.executions.journal import Journal
from baton_server.executions.transitions import Decision, Limits
from baton_server.idempotency import RequestInfo
from baton_server.language.plan import Plan, build_plan
from baton_server.runtimes.registry import Runtimes
from baton_server.storage.coordination import CoordinationRepository
from baton_server.storage.executions import ExecutionFilter

log = logging.getLogger(__name__)

AGENT_CACHE_SECONDS = 1.0
RECENTLY_ENDED = 1000
STREAM_PAGE = 500


@dataclass(frozen=True)
class StartOptions:
    """How to run an execution."""

    priority: int = 0
    timeout: float | None = None
    trace: bool = False
    labels: dict[str, str] | None = None
    execution_id: str = ""


class Executions:
    """The engine's front door, in every server process. The process holding the engine
    lease runs the executions of the database (and resumes the unfinished ones when it gets
    the lease); the others store new executions and cancel requests for it to pick up, and
    serve reads, waits and streams from storage and the event bus."""

    def __init__(
        self,
        journal: Journal,
        definitions: Definitions,
        runtimes: Runtimes,
        *,
        max_running: int,
        http: Any = None,
        clock: Callable[[], float] = time.time,
        stream_buffer: int = 1000,
        stream_poll: float = 0.5,
        lease: EngineLease | None = None,
        coordination: CoordinationRepository | None = None,
        discovery_interval: float = 0.2,
        max_deltas: int = 1000,
        max_handoff_depth: int = 8,
        max_output_bytes: int = 1024 * 1024,
        max_execution_bytes: int = 3 * 1024 * 1024,
    ) -> None:
        self.journal = journal
        self.definitions = definitions
        self.max_running = max_running
        self.clock = clock
        self._runs: dict[str, RunDriver] = {}
        self._queue: list[tuple[int, int, str]] = []
        self._queued: dict[str, Execution] = {}
        self._plans_by_execution: dict[str, Plan] = {}
        self._waiters: dict[str, asyncio.Event] = {}
        # Executions that just ended here, as committed: waits and gets answer from memory.
        self._ended: collections.OrderedDict[str, Execution] = collections.OrderedDict()
        self._plans: dict[tuple[str, int, float], Plan] = {}
        self.directory = AgentDirectory(definitions)
        self._slots: dict[str, tuple[int, asyncio.Semaphore]] = {}
        self.hub = EventHub(stream_buffer)
        self._stream_poll = stream_poll
        self._listeners: list[Callable[[list[Event]], None]] = [self.hub.publish]
        self._stopping = False
        self.lease = lease
        self._coordination = coordination or CoordinationRepository()
        self._discovery_interval = discovery_interval
        self.owner = lease is None  # without a lease: the only process, always the engine
        self._creating: set[str] = set()
        self._reserved = 0
        self._discovered_up_to = 0
        self._coordinator: asyncio.Task[None] | None = None
        self._env = RunEnv(
            journal=journal,
            runtimes=runtimes,
            directory=self.directory,
            slots=self._agent_slots,
            published=self._publish,
            finished=self._finished,
            clock=clock,
            limits=Limits(
                max_output_bytes=max_output_bytes,
                max_execution_bytes=max_execution_bytes,
                max_handoff_depth=max_handoff_depth,
            ),
            http=http,
            max_deltas=max_deltas,
        )

    # Commands -------------------------------------------------------------------------

    async def start(
        self,
        workflow_id: str,
        revision: int,
        value: dict[str, Any],
        options: StartOptions,
        request: RequestInfo,
    ) -> Execution:
        """Validates and stores a new execution, then runs it or queues it."""
        if self._stopping:
            raise BatonError(Code.UNAVAILABLE, "SHUTTING_DOWN", "the server is shutting down")
        if options.timeout is not None and options.timeout <= 0:
            raise invalid_field("timeout", "must be positive")
        size = len(orjson.dumps(value))
        if size > self._env.limits.max_output_bytes:
            raise invalid_field(
                "input",
                f"is {size} bytes as JSON; at most {self._env.limits.max_output_bytes} "
                "(BATON_MAX_OUTPUT_BYTES)",
                "PAYLOAD_TOO_LARGE",
            )
        workflow = await self.definitions.get_workflow(workflow_id, revision)
        if workflow.state is not WorkflowState.ACTIVE:
            raise BatonError(
                Code.FAILED_PRECONDITION,
                "WORKFLOW_ARCHIVED",
                f"workflow {workflow_id!r} is archived; set it ACTIVE to start executions",
                metadata={"name": f"workflows/{workflow_id}"},
            )
        plan = self._plan(workflow)
        problems = await asyncio.to_thread(plan.check_input, value) if plan.input_schema else []
        if problems:
            raise invalid_field(
                "input",
                "does not match the workflow's input_schema: " + "; ".join(problems[:5]),
                "INPUT_SCHEMA_MISMATCH",
            )
        now = self.clock()
        execution = Execution(
            id=options.execution_id or new_id("execution"),
            workflow_id=workflow.id,
            workflow_revision=workflow.revision,
            input=value,
            priority=options.priority,
            timeout=options.timeout,
            trace=options.trace,
            labels=dict(options.labels or {}),
            steps=[StepRun(s.id, i) for i, s in enumerate(workflow.steps)],
            create_time=now,
        )
        event = new_event(ExecutionQueued(workflow.revision, options.priority), time=now)

        self._creating.add(execution.id)  # not "discovered" as another process's work
        events = [event]
        run: RunDriver | None = None
        first: Decision | None = None
        created = False
        try:
            if self._capacity_now():
                # It can run at once: its first steps' start is written with the execution.
                run = RunDriver(execution, plan, self._env)
                self._reserved += 1  # given back in `finally`, which checks `run`
                first = await run.prepare()
                for name, value in first.fields.items():
                    setattr(execution, name, value)
                for position, step_run in first.steps.items():
                    execution.steps[position] = step_run
                events += first.events
            stored, written, created = await self.journal.create(execution, events, request)
        finally:
            self._creating.discard(execution.id)
            if run is not None:
                self._reserved -= 1
                if not created:
                    run.release()  # failed, or a repeated request: nothing starts
        if not created:
            return stored
        self._publish(written)
        if run is not None and first is not None:
            self._runs[stored.id] = run
            run.start(first)  # (a run that ended at once just finishes)
        elif self.owner:
            self._enqueue(stored, plan)
        return stored

    def _capacity_now(self) -> bool:
        """True when a new execution may start at once: this process runs executions,
        nothing waits in the queue, and the limit leaves room."""
        if not self.owner or self._stopping or self._queue:
            return False
        in_use = len(self._runs) + self._reserved
        return not self.max_running or in_use < self.max_running

    async def cancel(self, execution_id: str, reason: str, request: RequestInfo) -> Execution:
        """Cancels an execution that has not ended."""
        if request.request_id and await self.journal.answered(request):
            return await self.get(execution_id)
        if not self.owner:
            return await self._cancel_elsewhere(execution_id, reason, request)
        run = self._runs.get(execution_id)
        if run is not None:
            if await run.cancel(reason):
                await self.journal.remember(request, {"id": execution_id})
                return run.execution
        elif execution_id in self._queued:
            execution = self._queued.pop(execution_id)
            now = self.clock()
            written = await self.journal.record(
                execution,
                fields={
                    "state": ExecutionState.CANCELLED,
                    "end_time": now,
                    "error": Failure(failures.CANCELLED, reason or "cancelled on request"),
                },
                steps=[
                    dataclasses.replace(r, state=StepState.CANCELLED, end_time=now)
                    for r in execution.steps
                ],
                events=[new_event(ExecutionCancelled(reason))],
            )
            self._publish(written)
            await self.journal.remember(request, {"id": execution_id})
            self._notify(execution_id)
            return execution
        raise _already_terminal(await self.get(execution_id))

    async def _cancel_elsewhere(
        self, execution_id: str, reason: str, request: RequestInfo
    ) -> Execution:
        """Cancel in a process that does not run executions: leave a request for the one
        that does, and wait a moment for it to be carried out."""
        execution = await self.get(execution_id)
        if execution.state.terminal:
            raise _already_terminal(execution)
        await self.journal.db.write(
            lambda conn: self._coordination.request_cancel(conn, execution_id, reason, self.clock())
        )
        await self.journal.remember(request, {"id": execution_id})
        return await self.wait(execution_id, 5.0)

    # Queries --------------------------------------------------------------------------

    async def get(self, execution_id: str) -> Execution:
        """The execution as last committed."""
        run = self._runs.get(execution_id)
        if run is not None:
            return run.execution
        queued = self._queued.get(execution_id)
        if queued is not None:
            return queued
        ended = self._ended.get(execution_id)
        if ended is not None:
            return ended
        execution = await self.journal.get(execution_id)
        if execution is None:
            raise not_found("execution", f"executions/{execution_id}")
        return execution

    async def wait(self, execution_id: str, within: float | None) -> Execution:
        """The execution once it has ended, or as it is after `within` seconds."""
        execution = await self.get(execution_id)
        if execution.state.terminal or (within is not None and within <= 0):
            return execution
        if execution_id not in self._runs and execution_id not in self._queued:
            return await self._wait_elsewhere(execution_id, within)
        waiter = self._waiters.setdefault(execution_id, asyncio.Event())
        # Look again now that the waiter is registered: an end in between would be missed.
        execution = await self.get(execution_id)
        if execution.state.terminal:
            return execution
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.wait(), within)
        return await self.get(execution_id)

    async def _wait_elsewhere(self, execution_id: str, within: float | None) -> Execution:
        """Waits for an execution another process runs: woken by its events (from the event
        bus), and checking storage every `stream_poll` seconds in any case."""
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        subscription = self.hub.subscribe(execution_id)
        try:
            while True:
                execution = await self.get(execution_id)
                remaining = None if deadline is None else deadline - loop.time()
                if execution.state.terminal or (remaining is not None and remaining <= 0):
                    return execution
                await subscription.next(min(self._stream_poll, remaining or self._stream_poll))
        finally:
            self.hub.unsubscribe(subscription)

    async def list_executions(
        self, *, before: int, limit: int, where: ExecutionFilter
    ) -> Page[Execution]:
        """Executions newest first, filtered."""
        found = await self.journal.list_executions(before=before, limit=limit + 1, where=where)
        return Page.of(found, limit, lambda execution: execution.seq)

    async def events(
        self, execution_id: str, *, after: int, limit: int, types: Sequence[EventType]
    ) -> Page[Event]:
        """A page of the execution's event log, in sequence order."""
        execution = await self.get(execution_id)
        if not execution.seq:
            stored = await self.journal.get(execution_id)
            assert stored is not None
            execution = stored
        found = await self.journal.events(
            execution, after=after, limit=limit + 1, types=[t.value for t in types]
        )
        return Page.of(found, limit, lambda event: event.sequence)

    async def follow(
        self, execution_id: str, *, after: int, types: Sequence[EventType] = ()
    ) -> AsyncIterator[Event]:
        """The execution's events after sequence `after`: stored ones, then live ones, until
        the terminal event. Live events come from this process's hub (fed by the engine and,
        across processes, by Redis); storage fills any gap, and is polled every
        `stream_poll` seconds in case a live event never arrives (e.g. Redis is down)."""
        subscription = self.hub.subscribe(execution_id)  # before reading: nothing slips by
        try:
            execution = await self.get(execution_id)
            if execution.state.terminal and after >= execution.last_sequence:
                return  # the terminal event is behind the caller already
            wanted = set(types)
            last = after
            while True:
                page = await self.journal.events(execution, after=last, limit=STREAM_PAGE)
                for event in page:
                    last = event.sequence
                    if not wanted or event.type in wanted:
                        yield event
                    if event.type.terminal:
                        return
                if len(page) == STREAM_PAGE:
                    continue
                in_order = True
                while in_order:
                    batch = await subscription.next(self._stream_poll)
                    if batch is None:
                        break  # quiet, or lagging: look at storage
                    for event in batch:
                        if event.sequence <= last:
                            continue
                        if event.sequence != last + 1:
                            in_order = False  # a gap: storage has the missing events
                            break
                        last = event.sequence
                        if not wanted or event.type in wanted:
                            yield event
                        if event.type.terminal:
                            return
        finally:
            self.hub.unsubscribe(subscription)

    def subscribe(self, listener: Callable[[list[Event]], None]) -> None:
        """Calls `listener` with every batch of events once it is committed."""
        self._listeners.append(listener)

    @property
    def running(self) -> int:
        """Executions running in this process."""
        return len(self._runs)

    @property
    def queued(self) -> int:
        """Executions waiting for a slot."""
        return len(self._queued)

    # Lifecycle ------------------------------------------------------------------------

    async def recover(self) -> int:
        """Resumes every execution that had not ended: running ones continue (finished steps
        are kept; a step that was running starts a new attempt), queued ones queue again."""
        active = await self.journal.active()
        for execution in active:
            workflow = await self.definitions.get_workflow(
                execution.workflow_id, execution.workflow_revision
            )
            plan = self._plan(workflow)
            if execution.state is ExecutionState.RUNNING:
                self._run(execution, plan)
            else:
                self._enqueue(execution, plan)
        if active:
            log.info("resumed executions", extra={"count": len(active)})
        return len(active)

    async def begin(self) -> None:
        """At start-up: takes the engine lease if it is free (then resumes the unfinished
        executions), and keeps coordinating with other processes in the background."""
        if self.lease is not None:
            self.owner = await self.lease.hold()
        if self.owner:
            await self.recover()
        self._coordinator = asyncio.create_task(self._coordinate(), name="baton-coordinator")

    async def shutdown(self, grace: float) -> None:
        """Stops starting executions, lets running attempts finish within `grace`, and
        leaves the rest to be resumed by the next start (or by a standby process, which
        gets the released lease at once)."""
        self._stopping = True
        if self._coordinator is not None:
            self._coordinator.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._coordinator
        runs = list(self._runs.values())
        await asyncio.gather(*(run.drain(grace) for run in runs))
        if self.owner and self.lease is not None:
            with contextlib.suppress(Exception):
                await self.lease.release()

    async def _coordinate(self) -> None:
        """Renews (or tries to take) the lease and, holding it, picks up the executions and
        cancel requests that other processes stored."""
        loop = asyncio.get_running_loop()
        renew_every = self.lease.ttl / 3 if self.lease is not None else float("inf")
        next_renewal = loop.time() + renew_every
        while True:
            await asyncio.sleep(self._discovery_interval if self.owner else min(renew_every, 1.0))
            try:
                if self.lease is not None and (not self.owner or loop.time() >= next_renewal):
                    held = await self.lease.hold()
                    next_renewal = loop.time() + renew_every
                    if held and not self.owner:
                        log.info("took over the engine lease; resuming executions")
                        self.owner = True
                        await self.recover()
                    elif not held and self.owner:
                        log.error("lost the engine lease to another process; stopping runs")
                        self.owner = False
                        await asyncio.gather(*(r.drain(0.0) for r in list(self._runs.values())))
                        self._queue.clear()
                        self._queued.clear()
                if self.owner:
                    await self._discover()
            except Exception:  # a failed round is retried at the next one
                log.exception("coordination round failed")

    async def _discover(self) -> None:
        """Queues executions other processes stored, then carries out cancel requests."""
        for execution in await self.journal.queued_after(self._discovered_up_to):
            self._discovered_up_to = max(self._discovered_up_to, execution.seq)
            known = (
                execution.id in self._runs
                or execution.id in self._queued
                or execution.id in self._creating
            )
            if not known:
                workflow = await self.definitions.get_workflow(
                    execution.workflow_id, execution.workflow_revision
                )
                self._enqueue(execution, self._plan(workflow))
        requests = await self.journal.db.write(self._coordination.take_cancel_requests)
        for execution_id, reason in requests:
            with contextlib.suppress(BatonError):
                await self.cancel(execution_id, reason, RequestInfo("CancelExecution"))

    # Scheduling -----------------------------------------------------------------------

    def _enqueue(self, execution: Execution, plan: Plan) -> None:
        self._queued[execution.id] = execution
        self._plans_by_execution[execution.id] = plan
        heapq.heappush(self._queue, (-execution.priority, execution.seq, execution.id))
        self._fill()

    def _fill(self) -> None:
        while (
            self._queue
            and not self._stopping
            and (not self.max_running or len(self._runs) + self._reserved < self.max_running)
        ):
            _, _, execution_id = heapq.heappop(self._queue)
            execution = self._queued.pop(execution_id, None)
            plan = self._plans_by_execution.pop(execution_id, None)
            if execution is None or plan is None:
                continue  # cancelled while queued
            self._run(execution, plan)

    def _run(self, execution: Execution, plan: Plan) -> None:
        run = RunDriver(execution, plan, self._env)
        self._runs[execution.id] = run
        run.start()

    def _finished(self, run: RunDriver) -> None:
        self._runs.pop(run.execution.id, None)
        if run.execution.state.terminal:
            execution = run.execution
            log.info(
                "execution ended",
                extra={
                    "execution": execution.id,
                    "workflow": execution.workflow_id,
                    "state": execution.state.value,
                    "seconds": round(
                        execution.end_time - (execution.start_time or execution.create_time), 6
                    ),
                },
            )
            self._ended[run.execution.id] = run.execution
            if len(self._ended) > RECENTLY_ENDED:
                self._ended.popitem(last=False)
            self._notify(run.execution.id)
        self._fill()

    def _notify(self, execution_id: str) -> None:
        waiter = self._waiters.pop(execution_id, None)
        if waiter is not None:
            waiter.set()

    def _publish(self, events: list[Event]) -> None:
        for listener in self._listeners:
            listener(events)

    # Lookups --------------------------------------------------------------------------

    def _plan(self, workflow: Workflow) -> Plan:
        key = (workflow.id, workflow.revision, workflow.create_time)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = build_plan(workflow)
        return plan

    def _agent_slots(self, agent: Agent) -> asyncio.Semaphore | None:
        if not agent.max_concurrency:
            return None
        current = self._slots.get(agent.id)
        if current is None or current[0] != agent.max_concurrency:
            current = (agent.max_concurrency, asyncio.Semaphore(agent.max_concurrency))
            self._slots[agent.id] = current
        return current[1]


def _already_terminal(execution: Execution) -> BatonError:
    return BatonError(
        Code.FAILED_PRECONDITION,
        "EXECUTION_ALREADY_TERMINAL",
        f"execution {execution.id!r} has already ended ({execution.state.value})",
        metadata={"name": f"executions/{execution.id}", "state": execution.state.value},
    )
