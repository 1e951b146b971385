"""Step attempts for agents served by remote workers: queued as tasks, leased to polling
workers, kept alive by heartbeats, and answered by CompleteTask / FailTask.

A lease lasts one heartbeat timeout; a worker that disconnects or stops heartbeating loses
its tasks, which fail as retryable (so the engine's retry policy hands them to another
worker as a new attempt). A worker whose lease ran out gets no new task until it shows it
is alive again (a heartbeat or an answer, even a late one): a frozen worker keeps its stream
open, and retries must not be pushed down it. An answer to a lost lease is recorded but
changes nothing.

With other replicas alive, a task no worker connected here can take is offered to the
workers connected to any replica (`Offering`): the replica that takes the offer hosts it
(sends it down its worker's stream, counts it against the worker's capacity) and passes the
worker's answers on; this one, which runs the execution, keeps the lease."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from baton_server.domain import failures
from baton_server.domain.attempts import AgentResult, AttemptFailedError, AttemptInfo
from baton_server.domain.definitions import WorkerRuntime
from baton_server.domain.executions import Failure

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_TIMEOUT = 30.0
OFFER_AFTER = 0.5
"""Seconds a task waits for a local worker (one that serves its queue, busy) before it is
offered to the workers of every replica too."""


@dataclass(eq=False)
class Task:
    """One step attempt waiting for, or leased to, a worker."""

    token: str
    queue: str
    """What it is for: an agent id, or `tools/{tool}` for a tool call."""
    config: dict[str, Any]
    input: dict[str, Any]
    attempt: AttemptInfo
    heartbeat_timeout: float
    deadline: float | None
    result: asyncio.Future[dict[str, Any]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    picked: asyncio.Event = field(default_factory=asyncio.Event)
    worker: str = ""
    poller: _Poller | None = None
    lease_expires: float = 0.0
    handoff_to: str = ""
    offered: bool = False
    """Offered to the workers of every replica (taken only through the offer)."""
    queued_at: float = field(default_factory=time.monotonic)
    expired: bool = False
    """Its lease ran out: its worker sent no heartbeat in time."""

    @property
    def done(self) -> bool:
        """True once answered, failed, expired or abandoned."""
        return self.result.done()


@dataclass(eq=False)
class Hosted:
    """A task of an execution another replica runs, taken from its offer and leased here
    to a local worker; `message` is the Task message as that replica made it."""

    token: str
    owner: str
    message: bytes
    poller: _Poller


@dataclass(eq=False)
class _Poller:
    """A connected PollTasks stream."""

    identity: str
    agents: frozenset[str]
    capacity: int
    leased: set[str] = field(default_factory=set)
    inbox: list[Hosted] = field(default_factory=list)
    """Hosted tasks to send down the stream."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    stalled: bool = False
    """A lease of this worker ran out: it takes nothing until it is heard from again."""

    @property
    def free(self) -> int:
        """How many more tasks it may take now."""
        return 0 if self.stalled else max(0, self.capacity - len(self.leased))


class Offering(Protocol):
    """Offers of tasks to the workers of every replica (see the module's docstring)."""

    def wanted(self) -> bool:
        """Whether other replicas are alive (tasks no local worker takes are offered)."""
        ...

    def offer(self, task: Task) -> None:
        """Offers a task to every replica's workers."""
        ...

    def ended(self, task: Task) -> None:
        """An offered task ended (answered, expired, withdrawn): its host lets it go."""
        ...

    def lost(self, hosted: Hosted) -> None:
        """A hosted task's worker disconnected: its owner fails the attempt."""
        ...


class TaskBroker:
    """Matches worker-agent attempts with connected workers."""

    def __init__(self, owner: str = "local") -> None:
        self.owner = owner
        """This replica's id, the first part of its tasks' tokens (so that any replica
        knows whose a task is)."""
        self._pending: dict[str, list[Task]] = {}
        self._tasks: dict[str, Task] = {}
        self._hosted: dict[str, Hosted] = {}
        self._pollers: set[_Poller] = set()
        self._watchers: set[asyncio.Task[None]] = set()
        self._closing = False
        self.offering: Offering | None = None
        """Set when other replicas may be alive."""

    @property
    def connected_workers(self) -> int:
        """Open PollTasks streams."""
        return len(self._pollers)

    async def run(
        self,
        queue: str,
        runtime: WorkerRuntime,
        value: dict[str, Any],
        info: AttemptInfo,
        config: dict[str, Any],
    ) -> AgentResult:
        """Runs one attempt of an agent (by id), or one tool call (`tools/{tool}`), on a
        worker; returns its result or raises AttemptFailedError."""
        task = Task(
            token=f"{self.owner}.{secrets.token_urlsafe(18)}",
            queue=queue,
            config=config,
            input=value,
            attempt=info,
            heartbeat_timeout=runtime.heartbeat_timeout or DEFAULT_HEARTBEAT_TIMEOUT,
            deadline=info.deadline,
        )
        self._tasks[task.token] = task
        self._pending.setdefault(queue, []).append(task)
        if not self._served(queue):
            self._offer_stranded(queue)
        self._wake(queue)
        try:
            if runtime.schedule_timeout:
                picked = asyncio.ensure_future(task.picked.wait())
                answered = asyncio.ensure_future(_settled(task.result))
                try:
                    await asyncio.wait({picked, answered}, timeout=runtime.schedule_timeout)
                finally:
                    picked.cancel()
                    answered.cancel()
                if not task.picked.is_set():
                    self._fail(
                        task,
                        Failure(
                            failures.SCHEDULE_TIMEOUT,
                            f"no worker took the task within {runtime.schedule_timeout:g}s",
                        ),
                    )
            output = await asyncio.shield(task.result)
            return AgentResult(output, task.handoff_to)
        except asyncio.CancelledError:
            info.cancelled.set()  # heartbeats now answer cancel_requested
            self._fail(task, Failure(failures.CANCELLED, "the attempt was cancelled"))
            task.result.exception()  # nobody else will read it
            raise
        finally:
            self._withdraw(task)
            if task.offered and self.offering is not None:
                self.offering.ended(task)
            # Keep the token a while so that late answers are recognised as late.
            asyncio.get_running_loop().call_later(
                max(task.heartbeat_timeout, 60.0), self._tasks.pop, task.token, None
            )

    async def poll(
        self, identity: str, agents: frozenset[str], capacity: int
    ) -> AsyncIterator[Task | Hosted]:
        """Yields tasks for `agents` (agent ids, and `tools/{tool}` for tools) while the
        worker has fewer than `capacity` unanswered ones: this replica's, and those it
        hosts for others. When the stream ends, its unanswered tasks fail as retryable."""
        poller = _Poller(identity, agents, max(capacity, 1))
        self._pollers.add(poller)
        try:
            while True:
                if poller.inbox:
                    yield poller.inbox.pop(0)
                    continue
                if self._closing:
                    if not poller.leased:
                        return  # the server is stopping: the stream ends once idle
                elif len(poller.leased) < poller.capacity:
                    task = self._take(poller)
                    if task is not None:
                        yield task
                        continue
                poller.wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await poller.wake.wait()
        finally:
            self._pollers.discard(poller)
            for token in list(poller.leased):
                task = self._tasks.get(token)
                hosted = self._hosted.pop(token, None)
                if task is not None and not task.done:
                    self._fail(
                        task, Failure(failures.WORKER_LOST, f"worker {identity!r} disconnected")
                    )
                elif hosted is not None and self.offering is not None:
                    self.offering.lost(hosted)
            for queue in agents:
                if not self._served(queue):
                    self._offer_stranded(queue)

    def complete(self, token: str, output: dict[str, Any], handoff_to: str) -> bool:
        """Answers a task with its output; False (and nothing changes) if the lease is gone."""
        task = self._live(token, "CompleteTask")
        if task is None:
            return False
        task.handoff_to = handoff_to
        task.result.set_result(output)
        self._release(task)
        return True

    def fail(self, token: str, failure: Failure, retry_after: float | None) -> bool:
        """Answers a task with a failure; False (and nothing changes) if the lease is gone."""
        task = self._live(token, "FailTask")
        if task is None:
            return False
        task.result.set_exception(AttemptFailedError(failure, retry_after))
        self._release(task)
        return True

    def heartbeat(self, token: str) -> tuple[Task | None, bool]:
        """Extends a lease. Returns the task (None if unknown) and whether the worker should
        stop: the execution was cancelled or the lease is gone."""
        task = self._tasks.get(token)
        if task is None:
            return None, True
        self._heard_from(task)
        if task.done or task.attempt.cancelled.is_set():
            return task, True
        task.lease_expires = time.monotonic() + task.heartbeat_timeout
        return task, False

    # Offers ---------------------------------------------------------------------------

    def free_pollers(self) -> list[tuple[_Poller, int]]:
        """The local streams that may take more tasks now, with how many."""
        return [(p, p.free) for p in self._pollers if p.free and not self._closing]

    def host(self, poller: _Poller, token: str, owner: str, message: bytes) -> bool:
        """Sends another replica's task down a local stream (taken from its offer); False
        when the stream is gone."""
        if poller not in self._pollers:
            return False
        hosted = Hosted(token, owner, message, poller)
        self._hosted[token] = hosted
        poller.leased.add(token)
        poller.inbox.append(hosted)
        poller.wake.set()
        return True

    def knows(self, token: str) -> bool:
        """Whether a task of this replica has this token (even one that ended lately)."""
        return token in self._tasks

    def hosted(self, token: str) -> Hosted | None:
        """A task hosted here for another replica, by its token."""
        return self._hosted.get(token)

    @property
    def hosted_tokens(self) -> list[str]:
        """The tokens of the tasks hosted here."""
        return list(self._hosted)

    def let_go(self, token: str, *, stalled: bool = False, heard: bool = False) -> None:
        """A hosted task ended (its owner says so, or its answer was passed on): its
        worker's capacity is free again; `stalled`: its lease ran out, so the worker takes
        nothing more until heard from; `heard`: the worker just answered."""
        hosted = self._hosted.pop(token, None)
        if hosted is None:
            return
        poller = hosted.poller
        poller.leased.discard(token)
        with contextlib.suppress(ValueError):
            poller.inbox.remove(hosted)
        if stalled and not heard:
            poller.stalled = True
        elif heard:
            poller.stalled = False
        poller.wake.set()

    def heard_from_host(self, token: str) -> None:
        """The worker of a hosted task sent a heartbeat: it may take tasks again."""
        hosted = self._hosted.get(token)
        if hosted is not None and hosted.poller.stalled:
            hosted.poller.stalled = False
            hosted.poller.wake.set()

    def taken(self, token: str, worker: str) -> None:
        """An offered task was taken by a worker of some replica: its lease starts."""
        task = self._tasks.get(token)
        if task is None or task.done or task.picked.is_set():
            return
        task.worker = worker
        self._lease(task)

    def lost(self, token: str, worker: str) -> None:
        """The worker holding an offered task disconnected from the replica hosting it."""
        task = self._tasks.get(token)
        if task is not None and not task.done:
            self._fail(task, Failure(failures.WORKER_LOST, f"worker {worker!r} disconnected"))

    def offer_waiting(self) -> None:
        """Offers the waiting tasks no local worker may take (another replica may have
        come up since they were queued), and those that waited OFFER_AFTER seconds for a
        busy local worker: a worker of another replica may be idle."""
        before = time.monotonic() - OFFER_AFTER
        for queue in list(self._pending):
            self._offer_stranded(queue, None if not self._served(queue) else before)

    # Internals ------------------------------------------------------------------------

    def _served(self, queue: str) -> bool:
        """Whether a local worker that may take tasks serves `queue`."""
        return any(queue in p.agents and not p.stalled for p in self._pollers)

    def _offer_stranded(self, queue: str, queued_before: float | None = None) -> None:
        """Offers the tasks of `queue` waiting here to every replica's workers (all of them,
        or those queued before `queued_before`)."""
        offering = self.offering
        waiting = self._pending.get(queue)
        if offering is None or not waiting or not offering.wanted():
            return
        kept = []
        for task in waiting:
            if task.done:
                continue
            if queued_before is not None and task.queued_at > queued_before:
                kept.append(task)
                continue
            task.offered = True
            offering.offer(task)
        waiting[:] = kept

    def _take(self, poller: _Poller) -> Task | None:
        if poller.stalled:
            return None
        for agent_id in poller.agents:
            queue = self._pending.get(agent_id)
            while queue:
                task = queue.pop(0)
                if task.done:
                    continue
                task.worker = poller.identity
                task.poller = poller
                poller.leased.add(task.token)
                self._lease(task)
                return task
        return None

    def _lease(self, task: Task) -> None:
        task.lease_expires = time.monotonic() + task.heartbeat_timeout
        task.picked.set()
        watcher = asyncio.get_running_loop().create_task(self._watch_lease(task))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _watch_lease(self, task: Task) -> None:
        """Fails the attempt when its lease runs out without a heartbeat."""
        while not task.done:
            remaining = task.lease_expires - time.monotonic()
            if remaining <= 0:
                task.expired = True
                if task.poller is not None:
                    task.poller.stalled = True
                    for queue in task.poller.agents:
                        if not self._served(queue):
                            self._offer_stranded(queue)
                self._fail(
                    task,
                    Failure(
                        failures.HEARTBEAT_TIMEOUT,
                        f"worker {task.worker!r} sent no heartbeat for {task.heartbeat_timeout:g}s",
                    ),
                )
                return
            await asyncio.sleep(remaining)

    def _live(self, token: str, what: str) -> Task | None:
        task = self._tasks.get(token)
        if task is None:
            log.info("answer for an unknown task ignored", extra={"rpc": what})
            return None
        self._heard_from(task)
        if task.done:
            task.attempt.log(
                "WARNING",
                f"late {what} from worker {task.worker!r} ignored: the lease had ended",
                {"worker": task.worker},
            )
            return None
        return task

    def _heard_from(self, task: Task) -> None:
        """The worker that holds `task` is alive: it may take tasks again."""
        poller = task.poller
        if poller is not None and poller.stalled:
            poller.stalled = False
            poller.wake.set()

    def close(self) -> None:
        """Server shutdown: no new tasks are handed out, and each PollTasks stream ends as
        soon as its worker holds no task (so an idle server stops at once)."""
        self._closing = True
        for poller in self._pollers:
            poller.wake.set()

    def _fail(self, task: Task, failure: Failure) -> None:
        if not task.done:
            task.result.set_exception(AttemptFailedError(failure))
        self._release(task)

    def _release(self, task: Task) -> None:
        for poller in self._pollers:
            if task.token in poller.leased:
                poller.leased.discard(task.token)
                poller.wake.set()

    def _withdraw(self, task: Task) -> None:
        queue = self._pending.get(task.queue)
        if queue and task in queue:
            queue.remove(task)

    def _wake(self, queue: str) -> None:
        for poller in self._pollers:
            if queue in poller.agents:
                poller.wake.set()


def owner_of(token: str) -> str:
    """The replica whose task a token is ('' when the token does not say)."""
    owner, dot, _ = token.partition(".")
    return owner if dot else ""


async def _settled(future: asyncio.Future[Any]) -> None:
    """Waits until `future` is done, without consuming its result or exception."""
    await asyncio.wait({future})
