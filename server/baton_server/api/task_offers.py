"""Worker tasks across replicas, through the database. Every replica runs executions, and a
worker may be connected to any of them:

- A task that no worker connected to its owner (the replica that runs the execution) may
  take is offered: stored, as the Task message the worker will receive.
- A replica with a local worker that has room takes an offer for it (claimed with SKIP
  LOCKED, so that one replica takes each), sends it down the worker's stream, and tells the
  owner which worker took it: the lease starts there.
- The worker's answers (CompleteTask, FailTask, HeartbeatTask), wherever they arrive, are
  passed on to the owner, which carries each out and stores its verdict (accepted, or
  stop); the replica that received the answer answers with it. A task token starts with its
  owner's id, so that any replica knows where an answer goes.
- When the owner is done with an offered task, it marks the offer; the host then lets the
  task go (its worker's capacity is free again; after an expired lease, the worker takes
  nothing more until heard from). A host whose worker disconnects tells the owner, which
  fails the attempt as retryable.

Each replica looks every INTERVAL seconds (at once when it has something to say), so a task
or an answer that goes through another replica takes up to about that long more."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from baton.v1 import worker_pb2
from baton_server.cluster.membership import Membership
from baton_server.errors import BatonError, Code
from baton_server.runtimes.worker_broker import Hosted, Task, TaskBroker
from baton_server.storage.database import Database, SqlConnection
from baton_server.storage.task_offers import TaskOfferRepository

log = logging.getLogger(__name__)

INTERVAL = 0.1
"""How often each replica looks for offers it may take and answers it is to carry out."""
ANSWER_WAIT = 10.0
"""How long a worker's answer passed on waits for its owner's verdict."""
ANSWER_BATCH = 256


class TaskOffers:
    """This replica's side of the offers: it offers its tasks, hosts others', and carries
    out the answers addressed to it. `apply(kind, body)` carries out one answer and
    returns its verdict; `to_message(task)` is the Task message a worker receives."""

    def __init__(
        self,
        db: Database,
        broker: TaskBroker,
        membership: Membership,
        *,
        apply: Callable[[str, bytes], Awaitable[bool]],
        to_message: Callable[[Task], worker_pb2.Task],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._broker = broker
        self._membership = membership
        self._apply = apply
        self._to_message = to_message
        self._clock = clock
        self._repo = TaskOfferRepository()
        self._offers: list[tuple[str, str, str, bytes]] = []
        self._ends: list[tuple[str, str]] = []
        self._lost: list[tuple[str, str, bytes]] = []
        self._kick = asyncio.Event()
        self._outstanding: set[str] = set()
        """This replica's offered tasks that have not ended."""
        self._swept_for: frozenset[str] = frozenset()
        broker.offering = self

    # Offering (called by the broker) ----------------------------------------------------

    def wanted(self) -> bool:
        return len(self._membership.live) > 1

    def offer(self, task: Task) -> None:
        message = self._to_message(task).SerializeToString()
        self._offers.append((task.token, task.queue, self._membership.id, message))
        self._outstanding.add(task.token)
        self._kick.set()

    def ended(self, task: Task) -> None:
        self._ends.append((task.token, "expired" if task.expired else "done"))
        self._outstanding.discard(task.token)
        self._kick.set()

    def lost(self, hosted: Hosted) -> None:
        self._lost.append((hosted.token, hosted.owner, hosted.poller.identity.encode()))
        self._kick.set()

    # The loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """The background loop (until cancelled)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), INTERVAL)
            self._kick.clear()
            try:
                await self._round()
            except Exception:  # a failed round is tried again at the next one
                log.exception("worker task offers round failed")

    async def _round(self) -> None:
        await self._say()
        me, live = self._membership.id, self._membership.live
        if live != self._swept_for:  # replicas came or went: drop what the gone ones left
            await self._db.write(self._repo.sweep)
            self._swept_for = live
        if not (self.wanted() or self._broker.hosted_tokens or self._outstanding):
            return  # alone: every task is this replica's, and every worker is connected here
        self._broker.offer_waiting()
        await self._say()

        answers = await self._db.read(lambda conn: self._repo.open_answers(conn, me, ANSWER_BATCH))
        ends: list[tuple[str, str]] = []
        if self._broker.hosted_tokens:
            ends = await self._db.read(lambda conn: self._repo.hosted_ends(conn, me))
        verdicts: list[tuple[int, int]] = []
        done: list[int] = []
        for answer in answers:
            worker = answer.body.decode(errors="replace")
            if answer.kind == "taken":
                self._broker.taken(answer.token, worker)
                done.append(answer.seq)
            elif answer.kind == "lost":
                self._broker.lost(answer.token, worker)
                done.append(answer.seq)
            else:
                verdict = await self._apply(answer.kind, answer.body)
                verdicts.append((int(verdict), answer.seq))
        for token, how in ends:
            self._broker.let_go(token, stalled=how == "expired")
        if verdicts or done or ends:
            let_go = [token for token, _ in ends]

            async def settle(conn: SqlConnection) -> None:
                await self._repo.judge(conn, verdicts, done)
                await self._repo.drop(conn, let_go)

            await self._db.write(settle)
        await self._host(me)

    async def _say(self) -> None:
        """Stores what the broker said since the last round: new offers, ended ones, and
        hosted tasks whose worker was lost."""
        offers, ends, lost = self._offers, self._ends, self._lost
        if not (offers or ends or lost):
            return
        self._offers, self._ends, self._lost = [], [], []

        async def job(conn: SqlConnection) -> None:
            await self._repo.offer(conn, offers)
            await self._repo.end(conn, ends)
            for token, owner, worker in lost:
                await self._repo.post_answer(conn, token, owner, "lost", worker)

        try:
            await self._db.write(job)
        except BaseException:  # said again at the next round
            self._offers[:0], self._ends[:0], self._lost[:0] = offers, ends, lost
            raise

    async def _host(self, me: str) -> None:
        """Takes open offers for the local workers that have room."""
        free = self._broker.free_pollers()
        if not free:
            return
        queues = frozenset().union(*(poller.agents for poller, _ in free))
        if not await self._db.read(lambda conn: self._repo.any_open(conn, queues)):
            return
        for poller, room in free:
            taken = await self._db.write(
                lambda conn, p=poller, n=room: self._repo.take(  # type: ignore[misc]
                    conn, me, p.agents, n, p.identity
                )
            )
            for offer in taken:
                if not self._broker.host(poller, offer.token, offer.owner, offer.task):
                    self._lost.append((offer.token, offer.owner, poller.identity.encode()))

    # Answers received here for another replica's task ------------------------------------

    async def pass_on(self, owner: str, token: str, kind: str, body: bytes) -> bool:
        """Passes a worker's answer on to the owner of its task and waits for its verdict.
        An owner that is gone took its tasks with it: the answer is refused (for a
        heartbeat: stop)."""
        if owner not in self._membership.live and not await self._membership.address_of(owner):
            return kind == "heartbeat"
        seq = await self._db.write(
            lambda conn: self._repo.post_answer(conn, token, owner, kind, body)
        )
        try:
            deadline = self._clock() + ANSWER_WAIT
            while self._clock() < deadline:
                await asyncio.sleep(INTERVAL / 2)
                verdict = await self._db.read(lambda conn: self._repo.verdict(conn, seq))
                if verdict is not None:
                    return bool(verdict)
            raise BatonError(
                Code.UNAVAILABLE,
                "NO_ENGINE",
                "the server process that runs this task's execution did not answer; retry shortly",
            )
        finally:
            await asyncio.shield(self._db.write(lambda conn: self._repo.drop_answer(conn, seq)))
