"""The PostgreSQL database (`BATON_DATABASE=postgresql://…`): the same interface and the
same semantics as the SQLite one, so that the repositories run unchanged on either.

- Writes go through one connection, as SQLite's do through one thread: jobs queued while a
  commit is in progress run together in the next transaction, each in its own savepoint,
  and share one commit (group commit). Each write transaction first takes an advisory
  lock, so that, as with SQLite's BEGIN IMMEDIATE, one process writes at a time: a job
  may read, decide and write without another process writing in between (the engine
  lease, versions and per-execution event sequences rely on it).
- Reads take a connection from a small pool.
- Repositories write SQLite-style SQL with `?` placeholders; `pg_sql` turns it into
  PostgreSQL's (`$1`, `$2`, …, and BLOB as BYTEA). The schema is PostgreSQL's own
  (`POSTGRES_MIGRATIONS`), versioned like SQLite's in its own table.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import asyncpg

from baton_server.storage.database import (
    GroupCommit,
    GroupCommitted,
    Outcome,
    PendingWrite,
    SqlConnection,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

_WRITE_LOCK = 7405124
"""The advisory lock that serialises write transactions across processes."""
_WRITER_SETTINGS = {"idle_in_transaction_session_timeout": "5000"}
"""A write transaction left idle 5 s (its process paused or frozen while holding the write
lock) is ended by PostgreSQL, so that the other replicas can write (and take that one's
executions over); that process reconnects when it wakes."""
_PLACEHOLDER = re.compile(r"\?")


@functools.lru_cache(maxsize=1024)
def pg_sql(sql: str) -> str:
    """SQLite-style SQL as PostgreSQL's: numbered placeholders, BYTEA for BLOB."""
    numbers = iter(range(1, 10_000))
    converted = _PLACEHOLDER.sub(lambda _: f"${next(numbers)}", sql)
    return converted.replace(" AS BLOB)", " AS BYTEA)")


class PgConnection:
    """An asyncpg connection behind the methods storage code awaits (SqlConnection)."""

    row_lock = " FOR UPDATE SKIP LOCKED"
    """Appended to a SELECT that picks rows to claim: rows being claimed are skipped."""

    def __init__(self, raw: asyncpg.Connection) -> None:
        self.raw = raw

    async def execute(self, sql: str, parameters: Iterable[Any] = (), /) -> Any:
        return await self.raw.execute(pg_sql(sql), *parameters)

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]], /) -> None:
        rows = [tuple(p) for p in parameters]
        if rows:
            await self.raw.executemany(pg_sql(sql), rows)

    async def execute_fetchall(
        self, sql: str, parameters: Iterable[Any] = (), /
    ) -> list[asyncpg.Record]:
        return list(await self.raw.fetch(pg_sql(sql), *parameters))


class PostgresDatabase(GroupCommitted):
    """One write connection with group commit, and a pool of read connections."""

    def __init__(self, url: str, writer: asyncpg.Connection, readers: asyncpg.Pool) -> None:
        self.path = url
        self.kind = "postgresql"
        self._writer = writer
        self._readers = readers
        self._commits = GroupCommit(self._dispatch)
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(cls, url: str) -> PostgresDatabase:
        """Connects to the database at `url` and brings its schema up to date."""
        writer = await asyncpg.connect(url, server_settings=_WRITER_SETTINGS)
        try:
            await migrate_postgres(writer)
            readers = await asyncpg.create_pool(url, min_size=1, max_size=8)
        except BaseException:
            await writer.close()
            raise
        return cls(url, writer, readers)

    async def close(self) -> None:
        """Finishes queued writes, then closes the connections."""
        await self._commits.drain()
        await self._readers.close()
        await self._writer.close()

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """Runs a query on a read connection and returns its first row."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """Runs a query on a read connection and returns all rows."""
        async with self._readers.acquire() as raw:
            return list(await raw.fetch(pg_sql(sql), *params))

    async def read(self, job: Callable[[SqlConnection], Awaitable[T]]) -> T:
        """Runs a read-only job with a read connection (each of its statements sees the
        latest committed data)."""
        async with self._readers.acquire() as raw:
            return await job(PgConnection(raw))

    async def ping(self) -> float:
        """Round-trips a trivial query; returns its latency in seconds."""
        start = time.perf_counter()
        await self.fetchone("SELECT 1")
        return time.perf_counter() - start

    def _dispatch(self, batch: list[PendingWrite]) -> None:
        """Runs a batch on the write connection, in a task of its own."""
        task = asyncio.ensure_future(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[PendingWrite]) -> None:
        for attempt in (1, 2):
            committing = [False]
            try:
                outcomes = await self._batch(batch, committing)
                break
            except Exception as exc:  # the commit or a non-isolated job failed
                if attempt == 1 and self._writer.is_closed() and not committing[0]:
                    # The connection went (PostgreSQL ended the transaction, which left
                    # nothing): the batch runs again on a new one.
                    log.warning("postgresql write connection lost; reconnecting")
                    with contextlib.suppress(Exception):
                        self._writer = await asyncpg.connect(
                            self.path, server_settings=_WRITER_SETTINGS
                        )
                        continue
                log.exception("postgresql write batch failed")
                outcomes = [(None, exc)] * len(batch)
                break
        self._commits.finish(batch, outcomes)

    async def _batch(self, batch: Sequence[PendingWrite], committing: list[bool]) -> list[Outcome]:
        """Runs a batch of jobs in one transaction; returns each job's result or error.
        `committing[0]` is set once the commit is sent (after which a lost connection
        leaves the outcome unknown)."""
        conn = PgConnection(self._writer)
        outcomes: list[Outcome] = []
        transaction = self._writer.transaction()
        await transaction.start()
        try:
            # One writer at a time across every process on this database, as SQLite's
            # BEGIN IMMEDIATE gives: jobs read, decide and write without racing another
            # process (claims, versions, event sequences rely on it).
            await self._writer.execute("SELECT pg_advisory_xact_lock($1)", _WRITE_LOCK)
            for pending in batch:
                if not pending.isolated:
                    outcomes.append((await pending.job(conn), None))
                    continue
                try:
                    async with self._writer.transaction():  # a savepoint
                        result = await pending.job(conn)
                except Exception as exc:  # the job's own error goes back to its caller
                    outcomes.append((None, exc))
                else:
                    outcomes.append((result, None))
        except BaseException:
            if not self._writer.is_closed():
                with contextlib.suppress(Exception):
                    await transaction.rollback()
            raise
        if self._writer.is_closed():  # (so the jobs' errors are not theirs: nothing committed)
            raise ConnectionError("the write connection was closed")
        committing[0] = True
        await transaction.commit()
        return outcomes


# Each entry is one schema version. Version 1 is SQLite's schema as of its version 10;
# later changes append to both lists.
POSTGRES_MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
        """CREATE TABLE agents (
            seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL, version BIGINT NOT NULL, doc BYTEA NOT NULL)""",
        "CREATE INDEX agents_state ON agents (state, seq)",
        """CREATE TABLE agent_capabilities (
            owner_seq BIGINT NOT NULL REFERENCES agents (seq) ON DELETE CASCADE,
            value TEXT NOT NULL, PRIMARY KEY (value, owner_seq))""",
        "CREATE INDEX agent_capabilities_owner ON agent_capabilities (owner_seq)",
        """CREATE TABLE workflows (
            seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL, version BIGINT NOT NULL, doc BYTEA NOT NULL)""",
        "CREATE INDEX workflows_state ON workflows (state, seq)",
        """CREATE TABLE workflow_tags (
            owner_seq BIGINT NOT NULL REFERENCES workflows (seq) ON DELETE CASCADE,
            value TEXT NOT NULL, PRIMARY KEY (value, owner_seq))""",
        "CREATE INDEX workflow_tags_owner ON workflow_tags (owner_seq)",
        """CREATE TABLE workflow_agents (
            owner_seq BIGINT NOT NULL REFERENCES workflows (seq) ON DELETE CASCADE,
            value TEXT NOT NULL, PRIMARY KEY (value, owner_seq))""",
        "CREATE INDEX workflow_agents_owner ON workflow_agents (owner_seq)",
        """CREATE TABLE workflow_revisions (
            workflow_seq BIGINT NOT NULL REFERENCES workflows (seq) ON DELETE CASCADE,
            revision BIGINT NOT NULL, doc BYTEA NOT NULL, PRIMARY KEY (workflow_seq, revision))""",
        """CREATE TABLE handoffs (
            seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE,
            source TEXT NOT NULL, target TEXT NOT NULL, type TEXT NOT NULL,
            version BIGINT NOT NULL, doc BYTEA NOT NULL)""",
        "CREATE INDEX handoffs_source ON handoffs (source, seq)",
        "CREATE INDEX handoffs_target ON handoffs (target, seq)",
        "CREATE INDEX handoffs_type ON handoffs (type, seq)",
        """CREATE TABLE idempotency (
            key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, response BYTEA,
            create_time DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX idempotency_time ON idempotency (create_time)",
        """CREATE TABLE executions (
            seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE,
            workflow_id TEXT NOT NULL, workflow_revision BIGINT NOT NULL, state TEXT NOT NULL,
            priority BIGINT NOT NULL, create_time DOUBLE PRECISION NOT NULL,
            start_time DOUBLE PRECISION, end_time DOUBLE PRECISION,
            last_sequence BIGINT NOT NULL DEFAULT 0, input BYTEA NOT NULL, doc BYTEA NOT NULL)""",
        "CREATE INDEX executions_workflow ON executions (workflow_id, seq)",
        "CREATE INDEX executions_state ON executions (state, seq)",
        "CREATE INDEX executions_create_time ON executions (create_time)",
        "CREATE INDEX executions_workflow_time ON executions (workflow_id, create_time)",
        "CREATE INDEX executions_end_time ON executions (end_time) WHERE end_time IS NOT NULL",
        """CREATE TABLE step_runs (
            execution_seq BIGINT NOT NULL REFERENCES executions (seq) ON DELETE CASCADE,
            position BIGINT NOT NULL, step_id TEXT NOT NULL, state TEXT NOT NULL,
            attempt BIGINT NOT NULL, doc BYTEA NOT NULL, PRIMARY KEY (execution_seq, position))""",
        "CREATE INDEX step_runs_waiting ON step_runs (execution_seq) WHERE state = 'WAITING'",
        """CREATE TABLE events (
            execution_seq BIGINT NOT NULL REFERENCES executions (seq) ON DELETE CASCADE,
            sequence BIGINT NOT NULL, type TEXT NOT NULL, time DOUBLE PRECISION NOT NULL,
            step_id TEXT NOT NULL, attempt BIGINT NOT NULL, doc BYTEA NOT NULL,
            PRIMARY KEY (execution_seq, sequence))""",
        "CREATE INDEX events_type ON events (execution_seq, type, sequence)",
        """CREATE TABLE engine_lease (
            id INTEGER PRIMARY KEY CHECK (id = 1), owner TEXT NOT NULL, host TEXT NOT NULL,
            pid BIGINT NOT NULL, expires DOUBLE PRECISION NOT NULL,
            address TEXT NOT NULL DEFAULT '')""",
        """CREATE TABLE cancel_requests (
            execution_id TEXT PRIMARY KEY, reason TEXT NOT NULL,
            create_time DOUBLE PRECISION NOT NULL)""",
        """CREATE TABLE execution_labels (
            execution_seq BIGINT NOT NULL REFERENCES executions (seq) ON DELETE CASCADE,
            key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (key, value, execution_seq))""",
        "CREATE INDEX execution_labels_owner ON execution_labels (execution_seq)",
        """CREATE TABLE schedules (
            seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL, workflow TEXT NOT NULL, version BIGINT NOT NULL,
            doc BYTEA NOT NULL)""",
        "CREATE INDEX schedules_state ON schedules (state, seq)",
        "CREATE INDEX schedules_workflow ON schedules (workflow, seq)",
        """CREATE TABLE schedule_firings (
            schedule_seq BIGINT PRIMARY KEY REFERENCES schedules (seq) ON DELETE CASCADE,
            next_fire DOUBLE PRECISION, doc BYTEA NOT NULL)""",
        "CREATE INDEX schedule_firings_due ON schedule_firings (next_fire) "
        "WHERE next_fire IS NOT NULL",
        """CREATE TABLE map_items (
            execution_seq BIGINT NOT NULL REFERENCES executions (seq) ON DELETE CASCADE,
            position BIGINT NOT NULL, item BIGINT NOT NULL, state TEXT NOT NULL,
            attempt BIGINT NOT NULL, doc BYTEA NOT NULL,
            PRIMARY KEY (execution_seq, position, item))""",
        """CREATE TABLE tools (
            seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE,
            version BIGINT NOT NULL, doc BYTEA NOT NULL)""",
        """CREATE TABLE agent_tools (
            owner_seq BIGINT NOT NULL REFERENCES agents (seq) ON DELETE CASCADE,
            value TEXT NOT NULL, PRIMARY KEY (value, owner_seq))""",
        "CREATE INDEX agent_tools_owner ON agent_tools (owner_seq)",
        """CREATE TABLE tool_runs (
            owner_seq BIGINT NOT NULL REFERENCES tools (seq) ON DELETE CASCADE,
            value TEXT NOT NULL, PRIMARY KEY (value, owner_seq))""",
        "CREATE INDEX tool_runs_owner ON tool_runs (owner_seq)",
        "INSERT INTO meta (key, value) VALUES ('version', '0')",
    ],
    # 2 (SQLite's 11): the mailbox between the engine process and workers polling others.
    [
        """CREATE TABLE worker_pollers (
            id TEXT PRIMARY KEY, identity TEXT NOT NULL, queues TEXT NOT NULL,
            capacity INTEGER NOT NULL, seen DOUBLE PRECISION NOT NULL)""",
        """CREATE TABLE worker_deliveries (
            token TEXT PRIMARY KEY, poller TEXT NOT NULL, task BYTEA NOT NULL,
            sent INTEGER NOT NULL DEFAULT 0)""",
        "CREATE INDEX worker_deliveries_poller ON worker_deliveries (poller, sent)",
        """CREATE TABLE worker_answers (
            seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, token TEXT NOT NULL,
            kind TEXT NOT NULL, body BYTEA NOT NULL, verdict INTEGER)""",
    ],
    # 3 (SQLite's 12): who runs each execution, and the fencing token of its claim.
    [
        "ALTER TABLE executions ADD COLUMN owner TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE executions ADD COLUMN fence BIGINT NOT NULL DEFAULT 0",
    ],
    # 4 (SQLite's 13): every replica runs executions.
    [
        "DROP TABLE engine_lease",
        "DROP TABLE worker_pollers",
        "DROP TABLE worker_deliveries",
        "DROP TABLE worker_answers",
        """CREATE TABLE replicas (
            id TEXT PRIMARY KEY, host TEXT NOT NULL, pid BIGINT NOT NULL,
            address TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL, running BIGINT NOT NULL)""",
        """CREATE TABLE task_offers (
            seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, token TEXT NOT NULL UNIQUE,
            queue TEXT NOT NULL, owner TEXT NOT NULL, task BYTEA NOT NULL,
            host TEXT NOT NULL DEFAULT '', ended TEXT NOT NULL DEFAULT '')""",
        "CREATE INDEX task_offers_open ON task_offers (queue, seq) WHERE host = ''",
        "CREATE INDEX task_offers_host ON task_offers (host)",
        """CREATE TABLE worker_answers (
            seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, token TEXT NOT NULL,
            owner TEXT NOT NULL, kind TEXT NOT NULL, body BYTEA NOT NULL, verdict INTEGER)""",
        "CREATE INDEX worker_answers_open ON worker_answers (owner, seq) WHERE verdict IS NULL",
    ],
]


async def migrate_postgres(conn: asyncpg.Connection) -> int:
    """Applies every migration newer than the schema's version, each in one transaction,
    under an advisory lock (several replicas may start at once); returns the version. The
    lock comes first: two `CREATE TABLE IF NOT EXISTS` at once can both try to create."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(7405123)")
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = await conn.fetchval("SELECT max(version) FROM schema_version") or 0
        if current > len(POSTGRES_MIGRATIONS):
            raise RuntimeError(
                f"database schema version {current} is newer than this server "
                f"(knows {len(POSTGRES_MIGRATIONS)}): upgrade Baton"
            )
        for version in range(current + 1, len(POSTGRES_MIGRATIONS) + 1):
            async with conn.transaction():
                for statement in POSTGRES_MIGRATIONS[version - 1]:
                    await conn.execute(statement)
                if version == 1:
                    await conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('page_token_secret', $1)",
                        secrets.token_hex(32),
                    )
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
            log.info("migrated database schema", extra={"schema_version": version})
    return len(POSTGRES_MIGRATIONS)
