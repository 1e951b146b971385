"""Workers on any server process, through the database: tasks live in the process that runs
executions, and a worker connected to another process reaches them by a mailbox, not by a
relayed call (so it works with TLS, and with whichever process runs executions next).

- The other process stores the worker's PollTasks stream as a poller row and renews it.
  The engine process serves each live poller from its task broker like a local stream
  (the same capacity, leases and stall rule) and stores each task it hands out as a
  delivery, which the other process sends down the stream.
- CompleteTask, FailTask and HeartbeatTask received elsewhere are stored as sent; the
  engine process carries each out as if it had received it, and stores its verdict
  (accepted, or stop), which the other process answers with.

Both sides look every MAILBOX_INTERVAL seconds, so a task or an answer takes about that
long more than on the engine process itself."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from baton.v1 import worker_pb2
from baton_server.errors import BatonError, Code
from baton_server.runtimes.worker_broker import Task, TaskBroker
from baton_server.storage.database import Database, SqlConnection
from baton_server.storage.worker_mailbox import AnswerRow, PollerRow, WorkerMailboxRepository

log = logging.getLogger(__name__)

MAILBOX_INTERVAL = 0.1
"""How often each side looks for what the other stored."""
POLLER_RENEWAL = 1.0
"""How often a process renews its pollers' rows."""
POLLER_TTL = 5.0
"""A poller row not renewed for this long belongs to a process that is gone."""
ANSWER_WAIT = 10.0
"""How long a worker's answer waits for the engine process's verdict."""


class MailboxEngine:
    """The engine process's side: serves the pollers of other processes, and carries out
    the answers they received. `apply(kind, body)` carries out one answer and returns
    its verdict; `to_message(task)` is the Task message a worker receives."""

    def __init__(
        self,
        db: Database,
        broker: TaskBroker,
        *,
        runs_executions: Callable[[], bool],
        apply: Callable[[str, bytes], Awaitable[bool]],
        to_message: Callable[[Task], worker_pb2.Task],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._broker = broker
        self._runs_executions = runs_executions
        self._apply = apply
        self._to_message = to_message
        self._clock = clock
        self._repo = WorkerMailboxRepository()
        self._proxies: dict[str, asyncio.Task[None]] = {}
        self._serving = False

    async def run(self) -> None:
        """The background loop (until cancelled)."""
        try:
            while True:
                await asyncio.sleep(MAILBOX_INTERVAL)
                try:
                    if self._runs_executions():
                        await self._round()
                    elif self._serving:
                        self._stop_serving()
                except Exception:  # a failed round is tried again at the next one
                    log.exception("worker mailbox round failed")
        finally:
            self._stop_serving()

    async def _round(self) -> None:
        if not self._serving:  # this process just began running executions
            self._serving = True
            await self._db.write(self._repo.clear_deliveries)

        async def look(conn: SqlConnection) -> tuple[list[PollerRow], list[AnswerRow]]:
            return await self._repo.pollers(conn), await self._repo.open_answers(conn, 256)

        pollers, answers = await self._db.read(look)
        stale_before = self._clock() - POLLER_TTL
        stale = [p.id for p in pollers if p.seen < stale_before]  # their process is gone
        if stale:
            await self._db.write(functools.partial(self._repo.remove_pollers, pollers=stale))
        live = {p.id: p for p in pollers if p.seen >= stale_before}
        for poller_id in [p for p in self._proxies if p not in live]:
            self._proxies.pop(poller_id).cancel()  # its leased tasks fail WORKER_LOST
        for poller_id, poller in live.items():
            proxy = self._proxies.get(poller_id)
            if proxy is None or proxy.done():  # new, or its last delivery failed
                self._proxies[poller_id] = asyncio.create_task(self._serve(poller))
        if not answers:
            return
        verdicts: list[tuple[int, int]] = []
        finished: list[str] = []
        for answer in answers:
            verdict = await self._apply(answer.kind, answer.body)
            verdicts.append((int(verdict), answer.seq))
            if answer.kind != "heartbeat":
                finished.append(answer.token)
        await self._db.write(
            functools.partial(self._repo.judge, verdicts=verdicts, delivered=finished)
        )

    async def _serve(self, poller: PollerRow) -> None:
        """Hands tasks to another process's poller, as a local PollTasks stream would. When
        it ends (the poller is gone, or a delivery failed), the tasks leased to it fail as
        retryable, as when a local stream ends."""
        try:
            async for task in self._broker.poll(poller.identity, poller.queues, poller.capacity):
                await self._db.write(
                    functools.partial(
                        self._repo.deliver,
                        token=task.token,
                        poller=poller.id,
                        task=self._to_message(task).SerializeToString(),
                    )
                )
        except asyncio.CancelledError:
            pass
        except Exception:  # served again at the next round
            log.exception("delivering a task to another process failed")

    def _stop_serving(self) -> None:
        self._serving = False
        for proxy in self._proxies.values():
            proxy.cancel()
        self._proxies.clear()


class MailboxClient:
    """The side of a process that does not run executions."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock
        self._repo = WorkerMailboxRepository()
        self._closing = asyncio.Event()

    def close(self) -> None:
        """Server shutdown: the PollTasks streams end."""
        self._closing.set()

    async def poll(
        self, identity: str, queues: frozenset[str], capacity: int
    ) -> AsyncIterator[worker_pb2.Task]:
        """A worker's PollTasks stream, served by the engine process through the mailbox."""
        poller = secrets.token_hex(12)
        await self._db.write(
            lambda conn: self._repo.add_poller(
                conn, poller, identity, queues, capacity, self._clock()
            )
        )
        renewed = self._clock()
        try:
            while not self._closing.is_set():
                found = await self._db.read(lambda conn: self._repo.undelivered(conn, poller))
                if found:
                    await self._db.write(
                        functools.partial(self._repo.mark_sent, tokens=[t for t, _ in found])
                    )
                    for _, body in found:
                        yield worker_pb2.Task.FromString(body)
                if self._clock() - renewed >= POLLER_RENEWAL:
                    renewed = self._clock()
                    await self._db.write(
                        functools.partial(self._repo.renew_poller, poller=poller, now=renewed)
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), MAILBOX_INTERVAL)
        finally:
            await asyncio.shield(
                self._db.write(lambda conn: self._repo.remove_poller(conn, poller))
            )

    async def answer(self, token: str, kind: str, body: bytes) -> bool:
        """Stores a worker's answer and waits for the engine process's verdict."""
        seq = await self._db.write(lambda conn: self._repo.post_answer(conn, token, kind, body))
        try:
            deadline = self._clock() + ANSWER_WAIT
            while self._clock() < deadline:
                verdict = await self._db.read(lambda conn: self._repo.verdict(conn, seq))
                if verdict is not None:
                    return bool(verdict)
                await asyncio.sleep(MAILBOX_INTERVAL / 2)
            raise BatonError(
                Code.UNAVAILABLE,
                "NO_ENGINE",
                "no server process runs executions right now; retry shortly",
            )
        finally:
            await asyncio.shield(self._db.write(lambda conn: self._repo.drop_answer(conn, seq)))
