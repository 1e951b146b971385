"""Executions as the API sees them: start (queued by priority, then age, under a limit on
running executions), get, wait, list, cancel, the event log, and recovery at start-up."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from baton_server.cluster.coordinator import Coordinator
from baton_server.cluster.membership import Membership
from baton_server.definitions.service import Definitions, VersionCheck, WorkflowChangedError
from baton_server.domain import failures
from baton_server.domain.attempts import AgentResult, AttemptFailedError
from baton_server.domain.definitions import APPROVING_ROLES, Workflow, WorkflowState
from baton_server.domain.events import (
    ExecutionCancelled,
    ExecutionQueued,
    SignalReceived,
    new_event,
)
from baton_server.domain.executions import (
    PARENT_LABEL,
    Event,
    EventType,
    Execution,
    ExecutionState,
    Failure,
    ItemResult,
    StepRun,
    StepState,
)
from baton_server.domain.ids import new_id
from baton_server.domain.paging import Page
from baton_server.errors import BatonError, Code, invalid_field, not_found
from baton_server.events.hub import EventHub
from baton_server.events.streams import Streams
from baton_server.executions.decisions import (
    MAX_SIGNAL_REQUESTS,
    Limits,
    RetryRequested,
    RunChild,
    StepDecided,
)
from baton_server.executions.directory import AgentDirectory
from baton_server.executions.driver import RunDriver, RunEnv
from baton_server.executions.journal import Journal
from baton_server.executions.scheduler import Scheduler
from baton_server.executions.transitions import RETRYABLE_STATES
from baton_server.idempotency import RequestInfo
from baton_server.language.plan import Plan, build_plan
from baton_server.limits import shorten
from baton_server.runtimes.registry import Runtimes
from baton_server.storage.coordination import CoordinationRepository
from baton_server.storage.executions import ExecutionFilter
from baton_server.tracing import Tracing, traceparent

log = logging.getLogger(__name__)

RECENTLY_ENDED = 1000
CLAIM_BATCH = 64
"""Most executions one claim takes (queued ones, or those of a replica that is gone)."""
CLAIM_ROUNDS = 8
"""Most claims of queued executions in one coordination round."""
MAX_BUFFERED_SIGNALS = 100
"""Most signals an execution keeps that no step has taken yet."""


@dataclass(frozen=True)
class StartOptions:
    """How to run an execution."""

    priority: int = 0
    timeout: float | None = None
    trace: bool = False
    labels: dict[str, str] | None = None
    execution_id: str = ""
    parent: Execution | None = None
    """The execution whose `workflow` step starts this one as its child."""


class Executions:
    """The engine's front door, in every server process. Every process runs executions:
    those it claimed (new ones it started, while it runs no more than its share of the
    replicas' executions; those stored for any replica to run; those of replicas that are
    gone). Commands for an execution another process runs are passed on to it (or left for
    it, a cancel); reads, waits and streams are served from storage and the event bus."""

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
        membership: Membership | None = None,
        coordination: CoordinationRepository | None = None,
        discovery_interval: float = 0.2,
        max_deltas: int = 1000,
        max_handoff_depth: int = 8,
        max_output_bytes: int = 1024 * 1024,
        max_execution_bytes: int = 3 * 1024 * 1024,
        tracing: Tracing | None = None,
    ) -> None:
        self.journal = journal
        self.definitions = definitions
        self.clock = clock
        self.directory = AgentDirectory(definitions)
        self.hub = EventHub(stream_buffer)
        self.streams = Streams(self, self.hub, stream_poll)
        self.scheduler = Scheduler(max_running, self._new_run, self._run_ended)
        self._coordination = coordination or CoordinationRepository()
        self.membership = membership or Membership(journal.db, self._coordination, 10.0, clock)
        journal.owner = self.membership.id  # one name for this process, as replica and owner
        self.coordinator = Coordinator(
            self.membership,
            interval=discovery_interval,
            running=self._load,
            each_round=self._coordinate,
        )
        self._waiters: dict[str, asyncio.Event] = {}
        # Executions that just ended here, as committed: waits and gets answer from memory.
        self._ended: collections.OrderedDict[str, Execution] = collections.OrderedDict()
        self._plans: dict[tuple[str, int, float], Plan] = {}
        self._listeners: list[Callable[[list[Event]], None]] = [self.hub.publish]
        self._background: asyncio.Task[None] | None = None
        self._retrying = asyncio.Lock()
        self._child_cancels: set[asyncio.Task[None]] = set()
        self._claimed: list[Execution] = []
        """Executions claimed and not yet run or queued here."""
        self._env = RunEnv(
            journal=journal,
            runtimes=runtimes,
            directory=self.directory,
            slots=self.scheduler.slots,
            published=self._publish,
            finished=self.scheduler.finished,
            clock=clock,
            limits=Limits(
                max_output_bytes=max_output_bytes,
                max_execution_bytes=max_execution_bytes,
                max_handoff_depth=max_handoff_depth,
            ),
            http=http,
            children=self,
            max_deltas=max_deltas,
            tracing=tracing or Tracing(None),
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
        if self.scheduler.stopping:
            raise BatonError(Code.UNAVAILABLE, "SHUTTING_DOWN", "the server is shutting down")
        if options.timeout is not None and options.timeout <= 0:
            raise invalid_field("timeout", "must be positive")
        self._check_size(value, "input")
        for tries_left in (2, 1, 0):
            # The workflow as this process last read it, checked when the execution is
            # stored: read again if it changed since (the last try reads it, unchecked).
            workflow, check = await self.definitions.workflow_to_start(workflow_id, revision)
            try:
                return await self._start(
                    workflow, value, options, request, check if tries_left else None
                )
            except WorkflowChangedError:
                self.definitions.forget(workflow_id)
            except BatonError:  # refused: on the workflow as it is now, or as it was?
                if check is None:
                    raise
                if await self.definitions.workflow_to_run(workflow_id, revision) is workflow:
                    raise
        raise AssertionError("the last try is not checked")

    async def _start(
        self,
        workflow: Workflow,
        value: dict[str, Any],
        options: StartOptions,
        request: RequestInfo,
        check: VersionCheck | None,
    ) -> Execution:
        workflow_id = workflow.id
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
            traceparent=traceparent() if self._env.tracing.enabled else "",
            labels=dict(options.labels or {}),
            steps=[StepRun(s.id, i) for i, s in enumerate(workflow.steps)],
            create_time=now,
        )
        if options.parent is not None:
            execution.parent = options.parent.id
            execution.depth = options.parent.depth + 1
            execution.labels[PARENT_LABEL] = options.parent.id
        event = new_event(ExecutionQueued(workflow.revision, options.priority), time=now)

        # A child runs at once: its parent holds a place and waits for it.
        if options.parent is not None or (self.scheduler.has_capacity() and self._least_busy()):
            with self.scheduler.reserved():
                return await self._create_running(execution, event, plan, request, check)
        # Alone, it waits here for room; else any replica with room claims it.
        alone = len(self.membership.live) == 1
        stored, written, created = await self.journal.create(
            execution, [event], request, claimed=alone, check=check
        )
        if created:
            self._publish(written)
            if alone:
                self.scheduler.enqueue(stored, plan)
        return stored

    def _load(self) -> int:
        """How many executions this process runs, is creating to run, or queues (a burst
        of starts sees the ones before it, though none is stored yet)."""
        return self.scheduler.load

    def _least_busy(self) -> bool:
        """Whether this process runs no more executions than any other replica (as each
        last reported): a new execution then runs here at once, else it is left to the
        replicas' claims, so that new executions spread over the replicas."""
        others = self.membership.running_elsewhere()
        return not others or self._load() <= min(others)

    async def _create_running(
        self,
        execution: Execution,
        event: Event,
        plan: Plan,
        request: RequestInfo,
        check: VersionCheck | None = None,
    ) -> Execution:
        """Creates an execution that runs at once: its start and its first steps' start are
        written with it."""
        run = self._new_run(execution, plan)
        first = await run.prepare()
        for name, value in first.fields.items():
            setattr(execution, name, value)
        for position, step_run in first.steps.items():
            execution.steps[position] = step_run
        created = False
        try:
            stored, written, created = await self.journal.create(
                execution, [event, *first.events], request, check=check
            )
        finally:
            if not created:
                run.release()  # failed, or a repeated request: nothing starts
        if created:
            if first.items:  # items that could not even start (their input mapping)
                await self.journal.record(stored, items=first.items)
            self._publish(written)
            self.scheduler.start(run)
            run.start(first)  # (a run that ended at once just finishes)
        return stored

    # Children ---------------------------------------------------------------------------

    async def run_child(self, parent: Execution, command: RunChild) -> AgentResult:
        """Starts a `workflow` step's child execution (or finds it, started before a
        restart) and waits for its end."""
        try:
            await self.start(
                command.workflow_id,
                0,
                command.input,
                StartOptions(
                    execution_id=command.child_id,
                    parent=parent,
                    priority=parent.priority,
                    trace=parent.trace,
                ),
                RequestInfo("StartExecution"),
            )
        except BatonError as exc:
            if exc.reason != "EXECUTION_ALREADY_EXISTS":
                failure = Failure(
                    failures.CHILD_NOT_STARTED,
                    f"child execution of workflow {command.workflow_id!r} could not start: "
                    f"{exc.message}",
                    non_retryable=exc.code is not Code.UNAVAILABLE,
                )
                raise AttemptFailedError(failure) from None
        child = await self.wait(command.child_id, None)
        if child.state is ExecutionState.SUCCEEDED:
            return AgentResult(child.output or {})
        cause = child.error or Failure(failures.CANCELLED, "the child did not succeed")
        root = cause.cause or cause  # the child's failed step: was it worth retrying?
        raise AttemptFailedError(
            Failure(
                cause.type,
                f"child execution {child.id!r} ended {child.state.value}: {cause.message}",
                cause=cause,
                non_retryable=root.non_retryable,
            )
        )

    def cancel_child(self, child_id: str, reason: str) -> None:
        """Cancels a child execution whose parent's step stopped (in the background)."""

        async def cancel() -> None:
            with contextlib.suppress(BatonError):
                await self.cancel(child_id, reason, RequestInfo("CancelExecution"))

        task = asyncio.ensure_future(cancel())
        self._child_cancels.add(task)
        task.add_done_callback(self._child_cancels.discard)

    async def cancel(self, execution_id: str, reason: str, request: RequestInfo) -> Execution:
        """Cancels an execution that has not ended."""
        if request.request_id and await self.journal.answered(request):
            return await self.get(execution_id)
        run = self.scheduler.runs.get(execution_id)
        queued = self.scheduler.take_queued(execution_id) if run is None else None
        if run is None and queued is None:
            execution = await self.get(execution_id)
            if execution.state.terminal:
                raise _already_terminal(execution)
            if not self._unheld_queued(execution):
                return await self._cancel_elsewhere(execution, reason, request)
            await self.journal.claim(execution)  # queued for any replica: cancelled here
            queued = execution
        if run is not None:
            if await run.cancel(reason):
                await self.journal.remember(request, {"id": execution_id})
                return run.execution
        elif queued is not None:
            execution = queued
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

    async def retry(
        self, execution_id: str, from_steps: Sequence[str], request: RequestInfo
    ) -> Execution:
        """Runs a FAILED, CANCELLED or TIMED_OUT execution again from `from_steps` (default:
        the steps that did not finish), keeping the outputs upstream of them."""
        if request.request_id and await self.journal.answered(request):
            return await self.get(execution_id)
        if self.scheduler.stopping:
            raise BatonError(Code.UNAVAILABLE, "SHUTTING_DOWN", "the server is shutting down")
        async with self._retrying:
            execution = await self.get(execution_id)
            if execution.state not in RETRYABLE_STATES:
                raise BatonError(
                    Code.FAILED_PRECONDITION,
                    "EXECUTION_NOT_ENDED_BADLY",
                    f"execution {execution_id!r} is {execution.state.value}; only a failed, "
                    "cancelled or timed-out execution can be retried",
                    metadata={"name": f"executions/{execution_id}"},
                )
            plan = await self._plan_of(execution)
            for i, step_id in enumerate(from_steps):
                if step_id not in plan.steps:
                    raise invalid_field(
                        f"from_steps[{i}]", f"{shorten(step_id)!r} is not a step of the workflow"
                    )
            await self.journal.claim(execution)
            run = self._new_run(execution, plan)
            first = await run.prepare(RetryRequested(tuple(from_steps)))
            try:
                written = await self.journal.record(
                    execution,
                    fields=first.fields,
                    steps=list(first.steps.values()),
                    events=first.events,
                    items=first.items,
                    cleared=first.cleared,
                )
            except BaseException:
                run.release()
                raise
            self._ended.pop(execution_id, None)
            await self.journal.forget_cached(execution)
            self._publish(written)
            self.scheduler.start(run)
            run.start(first)
        await self.journal.remember(request, {"id": execution_id})
        return execution

    async def pause(self, execution_id: str, reason: str, request: RequestInfo) -> Execution:
        """Pauses a RUNNING execution: nothing new starts until it is resumed."""
        return await self._pause_or_resume(execution_id, request, reason)

    async def resume(self, execution_id: str, request: RequestInfo) -> Execution:
        """Resumes a PAUSED execution."""
        return await self._pause_or_resume(execution_id, request, None)

    async def _pause_or_resume(
        self, execution_id: str, request: RequestInfo, reason: str | None
    ) -> Execution:
        pausing = reason is not None
        if request.request_id and await self.journal.answered(request):
            return await self.get(execution_id)
        execution = await self.get(execution_id)
        expected = ExecutionState.RUNNING if pausing else ExecutionState.PAUSED
        run = self.scheduler.runs.get(execution_id)
        if execution.state is expected and run is None:
            raise self._elsewhere(execution, "pause" if pausing else "resume")
        done = False
        if execution.state is expected and run is not None:
            done = await (run.pause(reason or "") if pausing else run.resume())
        if not done:
            raise BatonError(
                Code.FAILED_PRECONDITION,
                "EXECUTION_NOT_RUNNING" if pausing else "EXECUTION_NOT_PAUSED",
                f"execution {execution_id!r} is {execution.state.value}; only a "
                f"{expected.value} execution can be {'paused' if pausing else 'resumed'}",
                metadata={"name": f"executions/{execution_id}", "state": execution.state.value},
            )
        await self.journal.remember(request, {"id": execution_id})
        return run.execution if run is not None else execution

    async def approve(
        self, execution_id: str, decided: StepDecided, request: RequestInfo
    ) -> Execution:
        """Records a person's decision on an approval step that waits for one, if the
        caller's role may decide it."""
        if request.request_id and await self.journal.answered(request):
            return await self.get(execution_id)
        execution = await self.get(execution_id)
        workflow = await self.definitions.get_workflow(
            execution.workflow_id, execution.workflow_revision
        )
        step = next((s for s in workflow.steps if s.id == decided.step_id), None)
        name = f"executions/{execution_id}"
        if step is None:
            raise invalid_field("step", f"{decided.step_id!r} is not a step of the workflow")
        if step.approval is None:
            raise BatonError(
                Code.FAILED_PRECONDITION,
                "NOT_AN_APPROVAL_STEP",
                f"step {step.id!r} is not an approval step",
                metadata={"name": name, "step": step.id},
            )
        if not step.approval.allows(decided.role):
            allowed = ", ".join([*APPROVING_ROLES, *step.approval.roles])
            raise BatonError(
                Code.PERMISSION_DENIED,
                "ROLE_MAY_NOT_DECIDE",
                f"role {decided.role!r} may not decide step {step.id!r}; {allowed} may",
                metadata={"name": name, "step": step.id, "role": decided.role},
            )
        if execution.state.terminal:
            raise _already_terminal(execution)
        run = self.scheduler.runs.get(execution_id)
        if run is None and execution.state is not ExecutionState.QUEUED:
            raise self._elsewhere(execution, "decide")
        if run is None or not await run.decide_step(decided):
            now = run.execution if run is not None else execution
            state = now.step(step.id).state.value
            raise BatonError(
                Code.FAILED_PRECONDITION,
                "STEP_NOT_WAITING",
                f"step {step.id!r} is {state}; only a WAITING approval step can be decided",
                metadata={"name": name, "step": step.id, "state": state},
            )
        await self.journal.remember(request, {"id": execution_id})
        return run.execution

    async def signal(
        self, execution_id: str, signal: str, payload: dict[str, Any], request: RequestInfo
    ) -> Execution:
        """Delivers a signal to an execution that has not ended: stored before this
        returns, taken by a step waiting for it or kept for one."""
        if self.scheduler.stopping:
            raise BatonError(Code.UNAVAILABLE, "SHUTTING_DOWN", "the server is shutting down")
        self._check_size(payload, "payload")
        execution = await self.get(execution_id)
        if execution.state.terminal:
            raise _already_terminal(execution)
        if len(execution.signals) >= MAX_BUFFERED_SIGNALS:
            raise BatonError(
                Code.FAILED_PRECONDITION,
                "TOO_MANY_SIGNALS",
                f"execution {execution_id!r} holds {len(execution.signals)} signals no step "
                "has taken; it takes no more",
                metadata={"name": f"executions/{execution_id}"},
            )
        run = self.scheduler.runs.get(execution_id)
        if run is not None:
            if not await run.signal(signal, payload, request.request_id):
                raise _already_terminal(run.execution)
            return run.execution
        queued = self.scheduler.queued.get(execution_id)
        claimed = queued is None and self._unheld_queued(execution)
        if claimed:  # queued for any replica: this one claims it, and queues it here
            await self.journal.claim(execution)
            queued = execution
        if queued is None:
            raise self._elsewhere(execution, "signal")
        if request.request_id and request.request_id in queued.signal_requests:
            return queued
        written = await self.journal.record(
            queued,
            fields={
                "signals": [*queued.signals, {"signal": signal, "payload": payload}],
                "signal_requests": [*queued.signal_requests, request.request_id][
                    -MAX_SIGNAL_REQUESTS:
                ]
                if request.request_id
                else queued.signal_requests,
            },
            events=[new_event(SignalReceived(signal, payload))],
        )
        self._publish(written)
        if claimed:
            self.scheduler.enqueue(queued, await self._plan_of(queued))
        return queued

    def _check_size(self, value: dict[str, Any], field: str) -> None:
        """A payload may be as large as a step output, as JSON."""
        size = len(orjson.dumps(value))
        limit = self._env.limits.max_output_bytes
        if size > limit:
            raise invalid_field(
                field,
                f"is {size} bytes as JSON; at most {limit} (BATON_MAX_OUTPUT_BYTES)",
                "PAYLOAD_TOO_LARGE",
            )

    async def delete(self, execution_id: str, request: RequestInfo) -> None:
        """Deletes an execution that has ended, with its steps and event log."""
        if request.request_id and await self.journal.answered(request):
            return
        execution = await self.get(execution_id)
        if not execution.state.terminal:
            raise BatonError(
                Code.FAILED_PRECONDITION,
                "EXECUTION_NOT_TERMINAL",
                f"execution {execution_id!r} has not ended ({execution.state.value}); "
                "cancel it first",
                metadata={"name": f"executions/{execution_id}", "state": execution.state.value},
            )
        if not await self.journal.delete(execution):
            raise not_found("execution", f"executions/{execution_id}")
        self._ended.pop(execution_id, None)
        await self.journal.remember(request, {"id": execution_id})

    async def purge_ended(self, older_than: float, batch: int = 50) -> int:
        """Deletes executions that ended more than `older_than` seconds ago, `batch` per
        transaction (other writes go between batches); returns how many."""
        before = self.clock() - older_than
        total = 0
        while True:
            deleted = await self.journal.delete_ended_before(before, batch)
            for execution_id in deleted:
                self._ended.pop(execution_id, None)
            total += len(deleted)
            if len(deleted) < batch:
                return total
            await asyncio.sleep(0)  # let the writes that queued meanwhile go first

    async def _cancel_elsewhere(
        self, execution: Execution, reason: str, request: RequestInfo
    ) -> Execution:
        """Cancels an execution another replica runs (or will, once it claims one whose
        replica is gone): leaves a request for it, and waits a moment for it to be
        carried out."""
        await self.journal.db.write(
            lambda conn: self._coordination.request_cancel(conn, execution.id, reason, self.clock())
        )
        await self.journal.remember(request, {"id": execution.id})
        return await self.wait(execution.id, 5.0)

    def _unheld_queued(self, execution: Execution) -> bool:
        """A QUEUED execution that no live replica holds: whichever replica acts on it
        first claims it."""
        return (
            execution.state is ExecutionState.QUEUED and execution.owner not in self.membership.live
        )

    def _elsewhere(self, execution: Execution, action: str) -> BatonError:
        """An execution another replica runs: the call is passed on to it (ENGINE_ELSEWHERE,
        naming the replica), or, when no live replica holds it yet, tried again shortly."""
        name = f"executions/{execution.id}"
        if execution.owner and execution.owner in self.membership.live:
            return BatonError(
                Code.UNAVAILABLE,
                "ENGINE_ELSEWHERE",
                f"another server process runs this execution; {action} it there",
                metadata={"name": name, "owner": execution.owner},
            )
        return BatonError(
            Code.UNAVAILABLE,
            "NO_ENGINE",
            "the server process that ran this execution is gone; another one takes it over "
            "within the lease timeout: retry shortly",
            metadata={"name": name},
        )

    # Queries --------------------------------------------------------------------------

    async def get(self, execution_id: str) -> Execution:
        """The execution as last committed."""
        run = self.scheduler.runs.get(execution_id)
        if run is not None:
            return run.execution
        queued = self.scheduler.queued.get(execution_id)
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
        if execution_id not in self.scheduler.runs and execution_id not in self.scheduler.queued:
            return await self.streams.wait(execution_id, within)  # another process runs it
        waiter = self._waiters.setdefault(execution_id, asyncio.Event())
        # Look again now that the waiter is registered: an end in between would be missed.
        execution = await self.get(execution_id)
        if execution.state.terminal:
            return execution
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):  # (no task, unlike wait_for)
                await waiter.wait()
        return await self.get(execution_id)

    async def step_items(
        self, execution_id: str, step_id: str, *, after: int, limit: int
    ) -> Page[ItemResult]:
        """A page of the ended items of a `for_each` step, by index (`after`: a cursor,
        0 for the start)."""
        execution = await self.get(execution_id)
        position = next((s.position for s in execution.steps if s.step_id == step_id), None)
        if position is None:
            raise invalid_field("step", f"{step_id!r} is not a step of the execution")
        found = await self.journal.items(
            execution_id, step_id, position, after=after - 1, limit=limit + 1
        )
        return Page.of(found, limit, lambda item: item.index + 1)

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

    def follow(
        self, execution_id: str, *, after: int, types: Sequence[EventType] = ()
    ) -> AsyncIterator[Event]:
        """The execution's events after sequence `after`: stored ones, then live ones, until
        the terminal event."""
        return self.streams.follow(execution_id, after=after, types=types)

    async def stored_events(self, execution: Execution, after: int, limit: int) -> list[Event]:
        """Up to `limit` of the execution's stored events after sequence `after`."""
        return await self.journal.events(execution, after=after, limit=limit)

    def subscribe(self, listener: Callable[[list[Event]], None]) -> None:
        """Calls `listener` with every batch of events once it is committed."""
        self._listeners.append(listener)

    @property
    def running(self) -> int:
        """Executions running in this process."""
        return len(self.scheduler.runs)

    @property
    def queued(self) -> int:
        """Executions waiting for a slot."""
        return len(self.scheduler.queued)

    # Lifecycle ------------------------------------------------------------------------

    async def begin(self) -> None:
        """At start-up: joins the replicas, resumes the unfinished executions of those that
        are gone (this process's earlier life among them), claims queued ones it has room
        for, and keeps coordinating with the other replicas in the background."""
        await self.coordinator.join()
        await self._coordinate(renewed=True)
        self._background = asyncio.create_task(self.coordinator.run(), name="baton-coordinator")

    async def shutdown(self, grace: float) -> None:
        """Stops starting executions, lets running attempts finish within `grace`, and
        leaves the rest to the other replicas (which claim them at once) or to the next
        start."""
        self.scheduler.stopping = True
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background
        runs = list(self.scheduler.runs.values())
        await asyncio.gather(*(run.drain(grace) for run in runs))
        with contextlib.suppress(Exception):
            await self.membership.leave()

    async def _coordinate(self, renewed: bool) -> None:
        """One round: after reading the replicas again, resume the executions of those that
        are gone; claim the queued executions no live replica holds, as many as there is
        room for; carry out the cancel requests for executions run here."""
        if self.scheduler.stopping:
            return
        await self._take_on()  # claimed before, and not started: its plan was not read
        if renewed:
            while True:
                orphans = await self.journal.claim_orphans(CLAIM_BATCH)
                self._claimed.extend(orphans)
                await self._take_on()
                if orphans:
                    log.info("resumed executions", extra={"count": len(orphans)})
                if len(orphans) < CLAIM_BATCH:
                    break
        for _ in range(CLAIM_ROUNDS):
            room = self.scheduler.room(CLAIM_BATCH)
            claimed = await self.journal.claim_queued(room) if room else []
            self._claimed.extend(claimed)
            await self._take_on()
            if len(claimed) < room or not room:
                break
        requests = await self.journal.db.write(
            lambda conn: self._coordination.take_cancel_requests(conn, self.journal.owner)
        )
        for execution_id, reason in requests:
            with contextlib.suppress(BatonError):
                await self.cancel(execution_id, reason, RequestInfo("CancelExecution"))

    async def _take_on(self) -> None:
        """Runs the claimed executions that were running before, and queues the others
        (each waits here until its plan is read: a failed read is tried at the next
        round)."""
        while self._claimed:
            execution = self._claimed[0]
            plan = await self._plan_of(execution)
            self._claimed.pop(0)
            if execution.id in self.scheduler.runs or execution.id in self.scheduler.queued:
                continue
            if execution.state is ExecutionState.QUEUED:
                self.scheduler.enqueue(execution, plan)
            else:
                self.scheduler.run(execution, plan)

    async def _plan_of(self, execution: Execution) -> Plan:
        workflow = await self.definitions.workflow_to_run(
            execution.workflow_id, execution.workflow_revision
        )
        return self._plan(workflow)

    # Scheduling -----------------------------------------------------------------------

    def _new_run(self, execution: Execution, plan: Plan) -> RunDriver:
        return RunDriver(execution, plan, self._env)

    def _run_ended(self, run: RunDriver) -> None:
        execution = run.execution
        if not execution.state.terminal:
            return  # stopped by a shutdown or a lost claim: it resumes elsewhere or later
        log.debug(  # (at INFO, a busy server would log a line per execution)
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
        self._ended[execution.id] = execution
        if len(self._ended) > RECENTLY_ENDED:
            self._ended.popitem(last=False)
        self._notify(execution.id)

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


def _already_terminal(execution: Execution) -> BatonError:
    return BatonError(
        Code.FAILED_PRECONDITION,
        "EXECUTION_ALREADY_TERMINAL",
        f"execution {execution.id!r} has already ended ({execution.state.value})",
        metadata={"name": f"executions/{execution.id}", "state": execution.state.value},
    )
