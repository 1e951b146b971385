"""Fencing: a replica paused (SIGSTOP) past the lease timeout, while another takes its
executions over, writes nothing when it wakes; on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sqlite3
import time

import pytest
from conftest import StartServer, start_process, stop_processes

from baton import Agent, Client, EventType, Execution, PythonRuntime, Step, StepRun, Workflow
from baton_server.domain import executions as domain
from baton_server.executions.journal import ClaimLostError, Journal
from baton_server.idempotency import RequestInfo
from baton_server.storage.codec import Codec
from baton_server.storage.coordination import CoordinationRepository, ReplicaRow
from baton_server.storage.database import open_database
from baton_server.storage.executions import ExecutionRepository
from baton_server.storage.idempotency import IdempotencyRepository


def _sqlite_write_locked(database: str) -> bool:
    """Whether a process holds the SQLite database's write lock (never, on PostgreSQL)."""
    if database.startswith("postgresql://"):
        return False
    conn = sqlite3.connect(database, timeout=0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.rollback()
        return False
    except sqlite3.OperationalError:  # database is locked
        return True
    finally:
        conn.close()


@pytest.mark.timeout(90)
async def test_a_paused_replica_cannot_commit_after_another_took_over(database: str) -> None:
    env = {"BATON_ENGINE_LEASE": "1.5", "BATON_STREAM_POLL": "0.2"}
    old_log: list[str] = []
    old, old_port = await start_process(database, extra_env=env, log=old_log)
    other, other_port = await start_process(database, extra_env=env)
    try:
        async with Client.connect(f"127.0.0.1:{old_port}", timeout=10) as client:
            await client.agents.create(
                Agent(python=PythonRuntime(entry_point="test_agents_lib:slow")), agent_id="slow"
            )
            steps = [
                Step(
                    id=f"s{i}",
                    agent="slow",
                    input_mapping={"seconds": 1.0},
                    depends_on=[f"s{i - 1}"] if i else [],
                )
                for i in range(3)
            ]
            workflow = await client.workflows.create(Workflow(steps=steps))
            started = await client.executions.start(workflow.name, {})
            deadline = time.monotonic() + 10
            while (await client.executions.get(started.name)).steps[0].state != (
                StepRun.STATE_RUNNING
            ):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        # The replica running it freezes in the middle of s0's attempt; its row expires
        # and the other replica takes the execution over, delivering s0 again.
        os.kill(old.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        async with Client.connect(f"127.0.0.1:{other_port}", timeout=10) as client:
            deadline = time.monotonic() + 20
            while True:
                events = [e async for e in client.executions.events(started.name)]
                if any(e.type == EventType.EVENT_TYPE_STEP_INTERRUPTED for e in events):
                    break
                assert time.monotonic() < deadline, "the other replica did not take over"
                if time.monotonic() - frozen_at > 5 and _sqlite_write_locked(database):
                    pytest.skip(
                        "frozen in the few ms it held SQLite's write lock, which nothing can "
                        "take back (a known limit of SQLite replicas): nothing to fence"
                    )
                await asyncio.sleep(0.1)
            # The old replica wakes with s0's first delivery finishing: its writes are refused.
            os.kill(old.pid, signal.SIGCONT)
            done = await client.executions.wait(started.name, timeout=30)
            assert done.state == Execution.STATE_SUCCEEDED, done.error
            await asyncio.sleep(1.0)  # time for the old replica to try (and fail) to write
            events = [e async for e in client.executions.events(started.name)]
    finally:
        with_signal = old.poll() is None
        if with_signal:
            os.kill(old.pid, signal.SIGCONT)
        stop_processes([old, other])
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    succeeded = collections.Counter(
        e.step_id for e in events if e.type == EventType.EVENT_TYPE_STEP_SUCCEEDED
    )
    assert succeeded == {"s0": 1, "s1": 1, "s2": 1}
    interrupted = [e for e in events if e.type == EventType.EVENT_TYPE_STEP_INTERRUPTED]
    assert [(e.step_id, e.attempt) for e in interrupted] == [("s0", 1)]
    # The fence on its first write stopped the old replica's run, without writing or
    # failing anything.
    log = "".join(old_log)
    assert "claimed by another process" in log, log[-2000:]
    assert "execution run failed" not in log and "write batch failed" not in log


async def test_a_state_change_the_fence_refuses_is_not_written(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Each state change is written only while the writer's claim on the execution is the
    current one: once another claim bumped its fence, the attempt's end is not written and
    the run stops."""
    server = await start_server()
    async with Client.connect(f"127.0.0.1:{server.port}") as client:
        await client.agents.create(
            Agent(python=PythonRuntime(entry_point="test_agents_lib:slow")), agent_id="slow"
        )
        workflow = await client.workflows.create(
            Workflow(steps=[Step(id="s0", agent="slow", input_mapping={"seconds": 0.5})])
        )
        started = await client.executions.start(workflow.name, {})
        execution_id = started.name.removeprefix("executions/")
        journal = server.executions.journal
        await journal.db.write(
            lambda conn: conn.execute(
                "UPDATE executions SET fence = fence + 1 WHERE id = ?", (execution_id,)
            )
        )
        await asyncio.sleep(1.5)  # the attempt ends, and its end is refused
        stored = await journal.get(execution_id)
    assert stored is not None
    assert stored.state.value == "RUNNING" and stored.steps[0].state.value == "RUNNING"
    assert "execution claimed by another process: the run stops here" in caplog.text


async def test_a_claim_taken_over_refuses_only_that_executions_changes(database: str) -> None:
    """Two processes on one database: once B claims an execution A runs, A's changes to it
    are refused (ClaimLostError), while A's changes to the executions it still holds are
    written; B's are written too. On SQLite and on PostgreSQL."""
    db = await open_database(database)
    try:
        codec = Codec()
        repo = ExecutionRepository(codec)
        a = Journal(db, repo, IdempotencyRepository(codec), time.time)
        b = Journal(db, repo, IdempotencyRepository(codec), time.time)
        kept, taken = (
            domain.Execution(
                id=name, workflow_id="w", workflow_revision=1, steps=[domain.StepRun("s", 0)]
            )
            for name in ("kept", "taken")
        )
        for execution in (kept, taken):
            await a.create(execution, [], RequestInfo("StartExecution"))
        assert (kept.fence, taken.fence) == (1, 1)
        taken_by_b = await b.get("taken")
        assert taken_by_b is not None
        await b.claim(taken_by_b)
        assert taken_by_b.fence == 2

        running = {"state": domain.ExecutionState.RUNNING, "start_time": 5.0}
        results = await asyncio.gather(
            a.record(kept, fields=running),
            a.record(taken, fields=running),
            return_exceptions=True,
        )
        assert results[0] == [] and isinstance(results[1], ClaimLostError)
        await b.record(taken_by_b, fields={**running, "start_time": 7.0})
        stored = {e: await a.get(e) for e in ("kept", "taken")}
    finally:
        await db.close()
    assert stored["kept"] is not None and stored["kept"].start_time == 5.0
    assert stored["taken"] is not None and stored["taken"].start_time == 7.0
    assert taken.state is domain.ExecutionState.QUEUED  # A's refused change was not applied


async def test_replicas_claim_what_no_live_replica_holds(database: str) -> None:
    """A replica claims the QUEUED executions no live replica holds (stored for any replica
    to run), highest priority first and no more than asked, but not those a live replica
    holds; once a replica is gone, another claims its running executions, and the gone
    replica's next change to any of them is refused. On both databases."""
    db = await open_database(database)
    try:
        codec = Codec()
        repo = ExecutionRepository(codec)
        a, b, c = (Journal(db, repo, IdempotencyRepository(codec), time.time) for _ in range(3))
        replicas = CoordinationRepository()
        for journal in (a, b, c):  # alive for a minute
            row = ReplicaRow(journal.owner, "host", 1, "", time.time() + 60, 0)
            await db.write(lambda conn, r=row: replicas.renew(conn, r))  # type: ignore[misc]

        def new(name: str, priority: int = 0) -> domain.Execution:
            return domain.Execution(
                id=name,
                workflow_id="w",
                workflow_revision=1,
                priority=priority,
                steps=[domain.StepRun("s", 0)],
            )

        own = new("own")
        await a.create(own, [], RequestInfo("StartExecution"))
        for name, priority in (("low", 1), ("high", 9), ("middle", 5)):
            await b.create(new(name, priority), [], RequestInfo("StartExecution"), claimed=False)
        assert own.fence == 1

        claimed = await a.claim_queued(2)
        assert [(e.id, e.owner, e.fence) for e in claimed] == [
            ("high", a.owner, 1),
            ("middle", a.owner, 1),
        ]  # (the two of highest priority, read back oldest first)
        assert [e.id for e in await b.claim_queued(10)] == ["low"]
        assert await a.claim_queued(10) == []  # held by live replicas: not again
        assert await c.claim_orphans(10) == []
        running = {"state": domain.ExecutionState.RUNNING, "start_time": 5.0}
        high = next(e for e in claimed if e.id == "high")
        for execution in (own, high):
            await a.record(execution, fields=running)  # the claim lets it write

        # `a` is gone (its row deleted as dead): `c` claims its running executions.
        await db.write(lambda conn: replicas.forget(conn, [a.owner]))
        taken = {e.id: e.fence for e in await c.claim_orphans(10)}
        assert taken == {"own": 2, "high": 2}
        for execution in (own, high):
            with pytest.raises(ClaimLostError):
                await a.record(execution, fields={"start_time": 9.0})
        # The queued one `a` held is claimed by whoever has room next.
        assert [e.id for e in await c.claim_queued(10)] == ["middle"]
    finally:
        await db.close()
