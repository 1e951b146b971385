"""The SQLite database: one writer connection that batches jobs into shared commits, and one
reader connection (WAL lets it read while the writer writes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiosqlite

from baton_server.storage.migrations import migrate

T = TypeVar("T")
WriteJob = Callable[[aiosqlite.Connection], Awaitable[T]]

log = logging.getLogger(__name__)

_MAX_BATCH = 256


@dataclass
class _Pending:
    job: WriteJob[Any]
    isolated: bool
    future: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Database:
    """Long-lived aiosqlite connections with explicit transactions.

    Writes go through `write(job)`: jobs queued while a commit is in progress are run
    together in the next transaction, each inside its own savepoint, so one failing job
    rolls back alone and many callers share one fsync.
    """

    def __init__(
        self, path: str, writer: aiosqlite.Connection, reader: aiosqlite.Connection
    ) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: str, *, synchronous: str = "FULL") -> Database:
        """Opens (creating if needed) the database at `path` and brings its schema up to date."""
        writer = await _connect(path, synchronous)
        try:
            await migrate(writer)
            reader = await _connect(path, synchronous)
        except BaseException:
            await writer.close()
            raise
        db = cls(path, writer, reader)
        db._task = asyncio.create_task(db._write_loop(), name="baton-sqlite-writer")
        return db

    async def close(self) -> None:
        """Finishes queued writes, then closes both connections."""
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._reader.close()
        await self._writer.close()

    async def write(self, job: WriteJob[T], *, isolated: bool = True) -> T:
        """Runs `job(conn)` inside a write transaction and returns its result once committed.

        An `isolated` job runs in a savepoint, so its own error rolls back only its writes.
        A job that cannot fail but for I/O may skip that (two thread hops); if it fails
        anyway, the whole shared transaction is rolled back and every job in it fails."""
        pending = _Pending(job, isolated)
        self._queue.put_nowait(pending)
        result: T = await asyncio.shield(pending.future)
        return result

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        """Runs a query on the reader connection and returns its first row."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        """Runs a query on the reader connection and returns all rows."""
        return list(await self._reader.execute_fetchall(sql, tuple(params)))

    async def read(self, job: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Runs a read-only job with the reader connection.

        The connection is shared by concurrent readers, so each query of a job must be a
        single `execute_fetchall`: a cursor left open across awaits would hold a read
        transaction and make every other reader see an old snapshot. A job that needs a
        consistent view of several tables reads them in one statement."""
        return await job(self._reader)

    async def ping(self) -> float:
        """Round-trips a trivial query; returns its latency in seconds."""
        start = time.perf_counter()
        await self.fetchone("SELECT 1")
        return time.perf_counter() - start

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < _MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._run_batch(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _run_batch(self, batch: list[_Pending]) -> None:
        conn = self._writer
        outcomes: list[tuple[_Pending, Any, BaseException | None]] = []
        # A lone job needs no savepoint: if it fails, the whole transaction is rolled back.
        alone = len(batch) == 1
        try:
            await conn.execute("BEGIN IMMEDIATE")
            if alone:
                try:
                    outcomes.append((batch[0], await batch[0].job(conn), None))
                except Exception as exc:  # the job's own error goes back to its caller
                    await conn.rollback()
                    batch[0].future.set_exception(exc)
                    return
            for pending in () if alone else batch:
                if not pending.isolated:
                    outcomes.append((pending, await pending.job(conn), None))
                    continue
                await conn.execute("SAVEPOINT job")
                try:
                    result = await pending.job(conn)
                except Exception as exc:  # the job's own error goes back to its caller
                    await conn.execute("ROLLBACK TO job")
                    await conn.execute("RELEASE job")
                    outcomes.append((pending, None, exc))
                else:
                    await conn.execute("RELEASE job")
                    outcomes.append((pending, result, None))
            await conn.commit()
        except Exception as exc:  # the commit or a non-isolated job failed: nothing is durable
            log.exception("sqlite write batch failed")
            with contextlib.suppress(Exception):
                await conn.rollback()
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        for pending, result, error in outcomes:
            if pending.future.done():
                continue
            if error is not None:
                pending.future.set_exception(error)
            else:
                pending.future.set_result(result)


async def _connect(path: str, synchronous: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
    # execute_fetchall: a PRAGMA returns a row, and an unread row keeps a statement open.
    for pragma in (
        "journal_mode=WAL",
        f"synchronous={synchronous}",
        "foreign_keys=ON",
        "busy_timeout=5000",
    ):
        await conn.execute_fetchall(f"PRAGMA {pragma}")
    return conn
