"""The database interface storage code uses, and its SQLite implementation: one writer
thread that runs batches of jobs in shared commits, and one reader connection (WAL lets it
read while the writer writes). `open_database` picks SQLite or PostgreSQL by the URL."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

import aiosqlite
import asyncpg

from baton_server.storage.migrations import migrate

T = TypeVar("T")


class SqlConnection(Protocol):
    """What storage code uses of a connection: the aiosqlite reader, or the writer thread's
    connection (whose awaitables complete at once, inside that thread)."""

    def execute(self, sql: str, parameters: Iterable[Any] = ..., /) -> Awaitable[Any]: ...

    def executemany(self, sql: str, parameters: Iterable[Iterable[Any]], /) -> Awaitable[Any]: ...

    def execute_fetchall(
        self, sql: str, parameters: Iterable[Any] = ..., /
    ) -> Awaitable[Iterable[sqlite3.Row]]: ...


WriteJob = Callable[[SqlConnection], Awaitable[T]]

INTEGRITY_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.IntegrityError,
    asyncpg.IntegrityConstraintViolationError,
)
"""What a write that breaks a constraint (a duplicate key) raises, on either database."""

log = logging.getLogger(__name__)

_MAX_BATCH = 256


@dataclass
class PendingWrite:
    """A write job waiting for its batch, and the future of its result."""

    job: WriteJob[Any]
    isolated: bool
    before: Callable[[], None] | None = None
    future: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


Outcome = tuple[Any, BaseException | None]
"""A job's result, or its error."""


class GroupCommit:
    """The queue of write jobs both databases share: jobs submitted while a batch is being
    committed wait and go together in the next batch (at most _MAX_BATCH), so many callers
    share one commit. `dispatch(batch)` runs a batch in one transaction, the database's
    way, and reports each job's outcome through `finish`."""

    def __init__(self, dispatch: Callable[[list[PendingWrite]], None]) -> None:
        self._dispatch = dispatch
        self._waiting: list[PendingWrite] = []
        self._busy = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def write(
        self, job: WriteJob[T], *, isolated: bool = True, before: Callable[[], None] | None = None
    ) -> T:
        """The job's result once committed (see Database.write)."""
        result: T = await asyncio.shield(self.submit(job, isolated=isolated, before=before))
        return result

    def submit(
        self, job: WriteJob[T], *, isolated: bool = True, before: Callable[[], None] | None = None
    ) -> asyncio.Future[T]:
        """`write` without waiting: the future of the job's result."""
        pending = PendingWrite(job, isolated, before)
        self._waiting.append(pending)
        if not self._busy:
            self._send()
        return pending.future

    async def drain(self) -> None:
        """Waits until every job submitted has been committed (or failed)."""
        while self._busy or self._waiting:
            await self._idle.wait()

    def _send(self) -> None:
        batch, self._waiting = self._waiting[:_MAX_BATCH], self._waiting[_MAX_BATCH:]
        self._busy = True
        self._idle.clear()
        try:
            for pending in batch:
                if pending.before is not None:
                    pending.before()
        except BaseException as exc:  # a bug in a hook: fail the batch, keep the writer
            self.finish(batch, [(None, exc)] * len(batch))
            return
        self._dispatch(batch)

    def finish(self, batch: list[PendingWrite], outcomes: list[Outcome]) -> None:
        """Called (on the event loop) with the outcome of each job of `batch`."""
        for pending, (result, error) in zip(batch, outcomes, strict=True):
            if pending.future.done():
                continue
            if error is not None:
                pending.future.set_exception(error)
            else:
                pending.future.set_result(result)
        self._busy = False
        if self._waiting:
            self._send()
        else:
            self._idle.set()


class GroupCommitted:
    """`write` and `submit` through the database's GroupCommit (both databases)."""

    _commits: GroupCommit

    async def write(
        self, job: WriteJob[T], *, isolated: bool = True, before: Callable[[], None] | None = None
    ) -> T:
        """See Database.write."""
        return await self._commits.write(job, isolated=isolated, before=before)

    def submit(
        self, job: WriteJob[T], *, isolated: bool = True, before: Callable[[], None] | None = None
    ) -> asyncio.Future[T]:
        """`write` without waiting: the future of the job's result."""
        return self._commits.submit(job, isolated=isolated, before=before)


class Database(Protocol):
    """What the engine and the services use of a database (SQLite or PostgreSQL)."""

    path: str
    """Where it is: a file path, or a postgresql:// URL."""
    kind: str
    """`sqlite` or `postgresql`."""

    async def close(self) -> None: ...

    async def write(
        self, job: WriteJob[T], *, isolated: bool = True, before: Callable[[], None] | None = None
    ) -> T:
        """Runs `job(conn)` inside a write transaction and returns its result once committed.

        The job may only await the connection's methods, and must not touch the event
        loop's objects (`before`, if given, runs on the loop just before the job's batch is
        sent). An `isolated` job runs in a savepoint, so its own error rolls back only its
        writes; a job that cannot fail but for I/O may skip that, and if it fails anyway
        the whole shared transaction is rolled back and every job in it fails."""
        ...

    def submit(
        self, job: WriteJob[T], *, isolated: bool = True, before: Callable[[], None] | None = None
    ) -> asyncio.Future[T]:
        """`write` without waiting: the future of the job's result."""
        ...

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Any: ...

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Any]: ...

    async def read(self, job: Callable[[SqlConnection], Awaitable[T]]) -> T: ...

    async def ping(self) -> float: ...


async def open_database(location: str, *, synchronous: str = "FULL") -> Database:
    """Opens the database `location` names: a `postgresql://` (or `postgres://`) URL, else a
    SQLite file (created if needed); its schema is brought up to date."""
    if location.startswith(("postgresql://", "postgres://")):
        from baton_server.storage.postgres import PostgresDatabase

        return await PostgresDatabase.open(location)
    return await SqliteDatabase.open(location, synchronous=synchronous)


class SqliteDatabase(GroupCommitted):
    """A writer thread that owns the write connection, and an aiosqlite reader connection
    (WAL lets it read while the writer writes).

    Writes go through `write(job)`: jobs queued while a commit is in progress are run
    together in the next transaction, each inside its own savepoint, so one failing job
    rolls back alone and many callers share one fsync. The writer thread runs a whole batch
    (BEGIN, every job, COMMIT) at once: one thread hop per batch, not one per statement.
    """

    kind = "sqlite"

    def __init__(self, path: str, writer: _Writer, reader: aiosqlite.Connection) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._commits = GroupCommit(self._dispatch)

    @classmethod
    async def open(cls, path: str, *, synchronous: str = "FULL") -> SqliteDatabase:
        """Opens (creating if needed) the database at `path` and brings its schema up to date."""
        writer = await _Writer.open(path, synchronous)
        try:
            await writer.run(lambda: _complete(migrate(writer.conn)))
            reader = await _connect(path, synchronous)
        except BaseException:
            await writer.close()
            raise
        return cls(path, writer, reader)

    async def close(self) -> None:
        """Finishes queued writes, then closes both connections."""
        await self._commits.drain()
        await self._reader.close()
        await self._writer.close()

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        """Runs a query on the reader connection and returns its first row."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        """Runs a query on the reader connection and returns all rows."""
        return list(await self._reader.execute_fetchall(sql, tuple(params)))

    async def read(self, job: Callable[[SqlConnection], Awaitable[T]]) -> T:
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

    def _dispatch(self, batch: list[PendingWrite]) -> None:
        """Runs a batch in the writer thread, which answers with one call back to the loop."""
        loop = asyncio.get_running_loop()

        def work() -> None:
            try:
                outcomes = self._writer.batch(batch)
            except Exception as exc:  # the commit or a non-isolated job failed
                log.exception("sqlite write batch failed")
                outcomes = [(None, exc)] * len(batch)
            loop.call_soon_threadsafe(self._commits.finish, batch, outcomes)

        self._writer.submit(work)


class _Writer:
    """The write connection and the one thread that uses it. Work reaches the thread through
    a SimpleQueue (a thread pool's futures, work items and idle semaphore cost each batch
    some 10-20 us of GIL-held Python on both threads, for nothing here)."""

    def __init__(self, conn: _ThreadConnection) -> None:
        self.conn = conn
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="baton-sqlite-writer", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (work := self._queue.get()) is not None:
            work()

    @classmethod
    async def open(cls, path: str, synchronous: str) -> _Writer:
        writer = cls(_ThreadConnection(None))

        def connect() -> None:
            raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            raw.row_factory = sqlite3.Row
            for pragma in _pragmas(synchronous):
                raw.execute(f"PRAGMA {pragma}").fetchall()
            writer.conn.raw = raw

        try:
            await writer.run(connect)
        except BaseException:
            await writer.stop()
            raise
        return writer

    async def run(self, work: Callable[[], T]) -> T:
        """Runs `work()` in the writer thread."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(work())
                except BaseException as exc:  # reported to the caller
                    future.set_exception(exc)

        self._queue.put(call)
        return await asyncio.wrap_future(future)

    def submit(self, work: Callable[[], None]) -> None:
        """Runs `work()` in the writer thread; it reports back by itself."""
        self._queue.put(work)

    async def stop(self) -> None:
        """Lets the thread finish the work queued, then end."""
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)

    async def close(self) -> None:
        raw = self.conn.raw
        if raw is not None:
            await self.run(raw.close)
        await self.stop()

    def batch(self, batch: list[PendingWrite]) -> list[Outcome]:
        """Runs a batch of jobs in one transaction (in the writer thread); returns each
        job's result or error. Raises when the transaction as a whole failed."""
        raw = self.conn.raw
        assert raw is not None
        outcomes: list[Outcome] = []
        # A lone job needs no savepoint: if it fails, the whole transaction is rolled back.
        alone = len(batch) == 1
        raw.execute("BEGIN IMMEDIATE")
        try:
            if alone:
                try:
                    outcomes.append((_complete(batch[0].job(self.conn)), None))
                except Exception as exc:  # the job's own error goes back to its caller
                    raw.rollback()
                    return [(None, exc)]
            for pending in () if alone else batch:
                if not pending.isolated:
                    outcomes.append((_complete(pending.job(self.conn)), None))
                    continue
                raw.execute("SAVEPOINT job")
                try:
                    result = _complete(pending.job(self.conn))
                except Exception as exc:  # the job's own error goes back to its caller
                    raw.execute("ROLLBACK TO job")
                    raw.execute("RELEASE job")
                    outcomes.append((None, exc))
                else:
                    raw.execute("RELEASE job")
                    outcomes.append((result, None))
            raw.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                raw.rollback()
            raise
        return outcomes


class _ThreadConnection:
    """The writer's sqlite3 connection behind the methods storage code awaits. Used only
    inside the writer thread, where each call runs at once and its awaitable is done."""

    def __init__(self, raw: sqlite3.Connection | None) -> None:
        self.raw = raw

    def _conn(self) -> sqlite3.Connection:
        assert self.raw is not None
        return self.raw

    async def execute(self, sql: str, parameters: Iterable[Any] = (), /) -> sqlite3.Cursor:
        return self._conn().execute(sql, tuple(parameters))

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]], /) -> sqlite3.Cursor:
        return self._conn().executemany(sql, cast(Any, parameters))

    async def execute_fetchall(
        self, sql: str, parameters: Iterable[Any] = (), /
    ) -> list[sqlite3.Row]:
        return self._conn().execute(sql, tuple(parameters)).fetchall()

    async def commit(self) -> None:
        self._conn().commit()

    async def rollback(self) -> None:
        self._conn().rollback()


def _complete(awaitable: Awaitable[T]) -> T:
    """Runs a coroutine that never suspends (it awaits only a _ThreadConnection) to its end."""
    coroutine = awaitable.__await__()
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coroutine.close()
    raise RuntimeError("a write job awaited something other than its connection")


def _pragmas(synchronous: str) -> tuple[str, ...]:
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
    return (
        "journal_mode=WAL",
        f"synchronous={synchronous}",
        "foreign_keys=ON",
        "busy_timeout=5000",
    )


async def _connect(path: str, synchronous: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    # execute_fetchall: a PRAGMA returns a row, and an unread row keeps a statement open.
    for pragma in _pragmas(synchronous):
        await conn.execute_fetchall(f"PRAGMA {pragma}")
    return conn
