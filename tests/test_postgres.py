"""The PostgreSQL database itself (the rest of the suite runs on it too, with
BATON_TEST_DATABASE=postgresql): SQL translation, group commit with savepoints, and writes
serialised across processes as SQLite's are."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import database_for_test

from baton_server.storage.database import SqlConnection, open_database
from baton_server.storage.postgres import PostgresDatabase, pg_sql


def test_sqlite_style_sql_becomes_postgresql() -> None:
    assert pg_sql("SELECT a FROM t WHERE b = ? AND c IN (?, ?)") == (
        "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"
    )
    assert pg_sql("SELECT CAST(? AS BLOB)") == "SELECT CAST($1 AS BYTEA)"


async def test_a_job_that_fails_rolls_back_alone(tmp_path: Path) -> None:
    async with database_for_test(tmp_path, "postgresql") as url:
        db = await open_database(url)
        assert isinstance(db, PostgresDatabase)
        try:

            async def good(conn: SqlConnection) -> None:
                await conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", ("good", "1"))

            async def bad(conn: SqlConnection) -> None:
                await conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", ("bad", "1"))
                await conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", ("bad", "2"))

            # Submitted together, they share one transaction; the duplicate key fails only
            # the second job, whose first insert is rolled back with it.
            outcomes = await asyncio.gather(db.submit(good), db.submit(bad), return_exceptions=True)
            assert outcomes[0] is None and isinstance(outcomes[1], Exception)
            keys = {r[0] for r in await db.fetchall("SELECT key FROM meta")}
            assert "good" in keys and "bad" not in keys
        finally:
            await db.close()


async def test_writes_of_two_processes_never_interleave(tmp_path: Path) -> None:
    """Each job reads a counter, waits, and writes it plus one. Two databases (as two
    processes would have) run such jobs at once: no update is lost, because a write
    transaction holds the database's write lock from its start, as SQLite's does."""
    processes = 2
    async with database_for_test(tmp_path, "postgresql") as url:
        dbs = [await open_database(url) for _ in range(processes)]
        try:
            await dbs[0].write(
                lambda conn: conn.execute("INSERT INTO meta (key, value) VALUES ('n', '0')")
            )

            async def bump(conn: SqlConnection) -> Any:
                rows = await conn.execute_fetchall("SELECT value FROM meta WHERE key = 'n'")
                await asyncio.sleep(0.05)  # the other process would write now, if it could
                await conn.execute(
                    "UPDATE meta SET value = ? WHERE key = 'n'", (str(int(rows[0][0]) + 1),)
                )

            await asyncio.gather(*(db.write(bump) for db in dbs for _ in range(5)))
            rows = await dbs[0].fetchall("SELECT value FROM meta WHERE key = 'n'")
            assert int(rows[0][0]) == 5 * processes
        finally:
            for db in dbs:
                await db.close()


@pytest.mark.timeout(60)
async def test_a_write_transaction_left_idle_is_ended_and_run_again(tmp_path: Path) -> None:
    """A process that stalls inside a write transaction (frozen, or paused while it holds
    the write lock) does not stop the others' writes for long: PostgreSQL ends the idle
    transaction after 5 s, which wrote nothing, and the stalled process runs the batch
    again on a new connection when it goes on."""
    async with database_for_test(tmp_path, "postgresql") as url:
        stalled, other = await open_database(url), await open_database(url)
        try:
            runs = 0
            finished: dict[str, float] = {}

            async def slow(conn: SqlConnection) -> str:
                nonlocal runs
                runs += 1
                await conn.execute("INSERT INTO meta (key, value) VALUES ('slow', ?)", (str(runs),))
                if runs == 1:
                    await asyncio.sleep(7)  # holding the write lock, idle in its transaction
                await conn.execute("SELECT 1")
                finished["slow"] = time.monotonic()
                return "written"

            async def quick(conn: SqlConnection) -> None:
                await conn.execute("INSERT INTO meta (key, value) VALUES ('quick', '1')")
                finished["quick"] = time.monotonic()

            begun = time.monotonic()
            first = asyncio.ensure_future(stalled.write(slow))
            await asyncio.sleep(0.5)  # it holds the lock
            await other.write(quick)
            assert 4.0 < finished["quick"] - begun < 7.0  # not held up until the stall ends
            assert await first == "written"
            rows = dict(
                await other.fetchall("SELECT key, value FROM meta WHERE key IN ('slow', 'quick')")
            )
        finally:
            await stalled.close()
            await other.close()
    assert runs == 2
    assert rows == {"slow": "2", "quick": "1"}  # the first run's insert was rolled back
