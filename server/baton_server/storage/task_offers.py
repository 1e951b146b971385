"""SQL of worker tasks across replicas: the tasks an execution's owner offers to the workers
connected to any replica (taken by the replica that hosts one, marked ended by the owner),
and workers' answers received by another replica, addressed to the task's owner, with the
owner's verdict on each."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from baton_server.storage.database import SqlConnection


@dataclass(frozen=True)
class TakenOffer:
    """An offer a replica took for one of its workers."""

    token: str
    owner: str
    task: bytes


@dataclass(frozen=True)
class AnswerRow:
    """A worker's answer (or a host's word: the task was taken, its worker lost), for the
    owner of its task to carry out."""

    seq: int
    token: str
    kind: str
    body: bytes


class TaskOfferRepository:
    """Offer and answer rows."""

    async def offer(
        self, conn: SqlConnection, offers: Collection[tuple[str, str, str, bytes]]
    ) -> None:
        """Stores offers as (token, queue, owner, Task message)."""
        await conn.executemany(
            "INSERT INTO task_offers (token, queue, owner, task) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (token) DO NOTHING",
            offers,
        )

    async def end(self, conn: SqlConnection, ended: Collection[tuple[str, str]]) -> None:
        """The owner is done with these tasks, as (token, 'done' or 'expired'): an offer
        nobody took goes; a taken one is marked, for its host to let go of."""
        await conn.executemany(
            "DELETE FROM task_offers WHERE token = ? AND host = ''", [(t,) for t, _ in ended]
        )
        await conn.executemany(
            "UPDATE task_offers SET ended = ? WHERE token = ?", [(e, t) for t, e in ended]
        )

    async def any_open(self, conn: SqlConnection, queues: Collection[str]) -> bool:
        """Whether an offer of one of these queues waits for a host."""
        marks = ", ".join("?" * len(queues))
        rows = await conn.execute_fetchall(
            f"SELECT 1 FROM task_offers WHERE host = '' AND queue IN ({marks}) LIMIT 1",
            tuple(queues),
        )
        return bool(list(rows))

    async def take(
        self, conn: SqlConnection, host: str, queues: Collection[str], limit: int, worker: str
    ) -> list[TakenOffer]:
        """Takes up to `limit` open offers of these queues for a worker of `host`, oldest
        first, and tells each owner (a 'taken' answer naming the worker)."""
        marks = ", ".join("?" * len(queues))
        lock = getattr(conn, "row_lock", "")
        rows = await conn.execute_fetchall(
            "UPDATE task_offers SET host = ? WHERE seq IN (SELECT seq FROM task_offers "
            f"WHERE host = '' AND queue IN ({marks}) ORDER BY seq LIMIT ?{lock}) "
            "RETURNING token, owner, task",
            (host, *queues, limit),
        )
        taken = [TakenOffer(str(r[0]), str(r[1]), bytes(r[2])) for r in rows]
        await conn.executemany(
            "INSERT INTO worker_answers (token, owner, kind, body) VALUES (?, ?, 'taken', ?)",
            [(t.token, t.owner, worker.encode()) for t in taken],
        )
        return taken

    async def hosted_ends(self, conn: SqlConnection, host: str) -> list[tuple[str, str]]:
        """The tasks `host` hosts that ended, as (token, how): 'done', 'expired', or
        'gone' when their owner is gone (its replica row deleted as dead)."""
        rows = await conn.execute_fetchall(
            "SELECT token, CASE WHEN ended <> '' THEN ended ELSE 'gone' END FROM task_offers "
            "WHERE host = ? AND (ended <> '' OR owner NOT IN (SELECT id FROM replicas))",
            (host,),
        )
        return [(str(r[0]), str(r[1])) for r in rows]

    async def drop(self, conn: SqlConnection, tokens: Collection[str]) -> None:
        """The host let go of these tasks: their offers go."""
        await conn.executemany("DELETE FROM task_offers WHERE token = ?", [(t,) for t in tokens])

    async def sweep(self, conn: SqlConnection) -> None:
        """Drops what replicas that are gone (their rows deleted as dead) left: their offers,
        the ended offers they hosted, and the answers addressed to them."""
        await conn.execute(
            "DELETE FROM task_offers WHERE owner NOT IN (SELECT id FROM replicas) "
            "OR (ended <> '' AND host <> '' AND host NOT IN (SELECT id FROM replicas))"
        )
        await conn.execute(
            "DELETE FROM worker_answers WHERE owner NOT IN (SELECT id FROM replicas)"
        )

    async def post_answer(
        self, conn: SqlConnection, token: str, owner: str, kind: str, body: bytes
    ) -> int:
        rows = await conn.execute_fetchall(
            "INSERT INTO worker_answers (token, owner, kind, body) VALUES (?, ?, ?, ?) "
            "RETURNING seq",
            (token, owner, kind, body),
        )
        return int(next(iter(rows))[0])

    async def open_answers(self, conn: SqlConnection, owner: str, limit: int) -> list[AnswerRow]:
        """Answers for `owner` not carried out yet, oldest first."""
        rows = await conn.execute_fetchall(
            "SELECT seq, token, kind, body FROM worker_answers "
            "WHERE owner = ? AND verdict IS NULL ORDER BY seq LIMIT ?",
            (owner, limit),
        )
        return [AnswerRow(int(r[0]), str(r[1]), str(r[2]), bytes(r[3])) for r in rows]

    async def judge(
        self, conn: SqlConnection, verdicts: Collection[tuple[int, int]], done: Collection[int]
    ) -> None:
        """Records (verdict, seq) pairs for the answers someone waits on; drops the `done`
        ones nobody waits on (a host's word)."""
        await conn.executemany("UPDATE worker_answers SET verdict = ? WHERE seq = ?", verdicts)
        await conn.executemany("DELETE FROM worker_answers WHERE seq = ?", [(s,) for s in done])

    async def verdict(self, conn: SqlConnection, seq: int) -> int | None:
        rows = list(
            await conn.execute_fetchall("SELECT verdict FROM worker_answers WHERE seq = ?", (seq,))
        )
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    async def drop_answer(self, conn: SqlConnection, seq: int) -> None:
        await conn.execute("DELETE FROM worker_answers WHERE seq = ?", (seq,))
