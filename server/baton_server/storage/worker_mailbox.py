"""SQL of the mailbox between the process that runs executions and workers connected to the
other processes: their PollTasks streams (pollers, kept fresh by their process), the tasks
delivered to them, and their answers (CompleteTask, FailTask, HeartbeatTask, as sent) with
the engine's verdict on each."""

from __future__ import annotations

import json
from dataclasses import dataclass

from baton_server.storage.database import SqlConnection


@dataclass(frozen=True)
class PollerRow:
    """A PollTasks stream of another process."""

    id: str
    identity: str
    queues: frozenset[str]
    capacity: int
    seen: float
    """When its process last renewed it."""


@dataclass(frozen=True)
class AnswerRow:
    """A worker's answer as another process received it."""

    seq: int
    token: str
    kind: str
    body: bytes


class WorkerMailboxRepository:
    """Poller, delivery and answer rows."""

    async def add_poller(
        self,
        conn: SqlConnection,
        poller: str,
        identity: str,
        queues: frozenset[str],
        capacity: int,
        now: float,
    ) -> None:
        await conn.execute(
            "INSERT INTO worker_pollers (id, identity, queues, capacity, seen) "
            "VALUES (?, ?, ?, ?, ?)",
            (poller, identity, json.dumps(sorted(queues)), capacity, now),
        )

    async def renew_poller(self, conn: SqlConnection, poller: str, now: float) -> None:
        await conn.execute("UPDATE worker_pollers SET seen = ? WHERE id = ?", (now, poller))

    async def remove_poller(self, conn: SqlConnection, poller: str) -> None:
        """The stream ended: the poller and what was delivered to it go."""
        await self.remove_pollers(conn, [poller])

    async def remove_pollers(self, conn: SqlConnection, pollers: list[str]) -> None:
        """These pollers and what was delivered to them go."""
        rows = [(p,) for p in pollers]
        await conn.executemany("DELETE FROM worker_pollers WHERE id = ?", rows)
        await conn.executemany("DELETE FROM worker_deliveries WHERE poller = ?", rows)

    async def pollers(self, conn: SqlConnection) -> list[PollerRow]:
        """Every poller stored, with when it was last renewed."""
        rows = await conn.execute_fetchall(
            "SELECT id, identity, queues, capacity, seen FROM worker_pollers"
        )
        return [
            PollerRow(str(r[0]), str(r[1]), frozenset(json.loads(r[2])), int(r[3]), float(r[4]))
            for r in rows
        ]

    async def deliver(self, conn: SqlConnection, token: str, poller: str, task: bytes) -> None:
        await conn.execute(
            "INSERT INTO worker_deliveries (token, poller, task) VALUES (?, ?, ?)",
            (token, poller, task),
        )

    async def undelivered(self, conn: SqlConnection, poller: str) -> list[tuple[str, bytes]]:
        """Tasks delivered to `poller` and not yet sent to its worker, in order."""
        rows = await conn.execute_fetchall(
            "SELECT token, task FROM worker_deliveries WHERE poller = ? AND sent = 0 "
            "ORDER BY token",
            (poller,),
        )
        return [(str(r[0]), bytes(r[1])) for r in rows]

    async def mark_sent(self, conn: SqlConnection, tokens: list[str]) -> None:
        await conn.executemany(
            "UPDATE worker_deliveries SET sent = 1 WHERE token = ?", [(t,) for t in tokens]
        )

    async def clear_deliveries(self, conn: SqlConnection) -> None:
        """A new engine process: the tasks of the one before are gone."""
        await conn.execute("DELETE FROM worker_deliveries")

    async def post_answer(self, conn: SqlConnection, token: str, kind: str, body: bytes) -> int:
        rows = await conn.execute_fetchall(
            "INSERT INTO worker_answers (token, kind, body) VALUES (?, ?, ?) RETURNING seq",
            (token, kind, body),
        )
        return int(next(iter(rows))[0])

    async def open_answers(self, conn: SqlConnection, limit: int) -> list[AnswerRow]:
        """Answers the engine has not judged yet, oldest first."""
        rows = await conn.execute_fetchall(
            "SELECT seq, token, kind, body FROM worker_answers WHERE verdict IS NULL "
            "ORDER BY seq LIMIT ?",
            (limit,),
        )
        return [AnswerRow(int(r[0]), str(r[1]), str(r[2]), bytes(r[3])) for r in rows]

    async def judge(
        self, conn: SqlConnection, verdicts: list[tuple[int, int]], delivered: list[str]
    ) -> None:
        """Records (verdict, seq) pairs; the deliveries of tasks answered for good go."""
        await conn.executemany("UPDATE worker_answers SET verdict = ? WHERE seq = ?", verdicts)
        await conn.executemany(
            "DELETE FROM worker_deliveries WHERE token = ?", [(t,) for t in delivered]
        )

    async def verdict(self, conn: SqlConnection, seq: int) -> int | None:
        rows = list(
            await conn.execute_fetchall("SELECT verdict FROM worker_answers WHERE seq = ?", (seq,))
        )
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    async def drop_answer(self, conn: SqlConnection, seq: int) -> None:
        await conn.execute("DELETE FROM worker_answers WHERE seq = ?", (seq,))
