"""Fencing: a server process paused past its engine lease (SIGSTOP), while a standby takes
its executions over, writes nothing when it wakes; on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import StartServer, start_process, stop_processes

from baton import Agent, Client, EventType, Execution, PythonRuntime, Step, StepRun, Workflow
from baton_server.cluster.lease import EngineLease
from baton_server.storage.coordination import CoordinationRepository
from baton_server.storage.database import SqlConnection, SqliteDatabase


@pytest.mark.timeout(90)
async def test_a_paused_engine_cannot_commit_after_a_standby_took_over(database: str) -> None:
    env = {"BATON_ENGINE_LEASE": "1.5", "BATON_STREAM_POLL": "0.2"}
    old_log: list[str] = []
    old, old_port = await start_process(database, extra_env=env, log=old_log)
    standby, standby_port = await start_process(database, extra_env=env)
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
        # The engine freezes in the middle of s0's attempt; its lease runs out and the
        # standby takes the execution over, delivering s0 again.
        os.kill(old.pid, signal.SIGSTOP)
        async with Client.connect(f"127.0.0.1:{standby_port}", timeout=10) as client:
            deadline = time.monotonic() + 20
            while True:
                events = [e async for e in client.executions.events(started.name)]
                if any(e.type == EventType.EVENT_TYPE_STEP_INTERRUPTED for e in events):
                    break
                assert time.monotonic() < deadline, "the standby did not take over"
                await asyncio.sleep(0.1)
            # The old engine wakes with s0's first delivery finishing: its writes are refused.
            os.kill(old.pid, signal.SIGCONT)
            done = await client.executions.wait(started.name, timeout=30)
            assert done.state == Execution.STATE_SUCCEEDED, done.error
            await asyncio.sleep(1.0)  # time for the old engine to try (and fail) to write
            events = [e async for e in client.executions.events(started.name)]
    finally:
        with_signal = old.poll() is None
        if with_signal:
            os.kill(old.pid, signal.SIGCONT)
        stop_processes([old, standby])
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    succeeded = collections.Counter(
        e.step_id for e in events if e.type == EventType.EVENT_TYPE_STEP_SUCCEEDED
    )
    assert succeeded == {"s0": 1, "s1": 1, "s2": 1}
    interrupted = [e for e in events if e.type == EventType.EVENT_TYPE_STEP_INTERRUPTED]
    assert [(e.step_id, e.attempt) for e in interrupted] == [("s0", 1)]
    # Whichever the old engine noticed first (its lease renewal failing, or the fence on
    # its first write), it stopped without writing or failing anything.
    log = "".join(old_log)
    assert "lost the engine lease" in log or "engine lease lost" in log, log[-2000:]
    assert "execution run failed" not in log and "write batch failed" not in log


async def test_a_state_change_the_fence_refuses_is_not_written(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The journal asks the fence in the transaction of each state change: once it says
    the lease is gone, the attempt's end is not written and the run stops."""
    server = await start_server()
    async with Client.connect(f"127.0.0.1:{server.port}") as client:
        await client.agents.create(
            Agent(python=PythonRuntime(entry_point="test_agents_lib:slow")), agent_id="slow"
        )
        workflow = await client.workflows.create(
            Workflow(steps=[Step(id="s0", agent="slow", input_mapping={"seconds": 0.5})])
        )
        started = await client.executions.start(workflow.name, {})

        async def taken_over(conn: SqlConnection) -> bool:
            return False

        server.executions.journal.fence = taken_over
        await asyncio.sleep(1.5)  # the attempt ends, and its end is refused
        stored = await server.executions.journal.get(started.name.removeprefix("executions/"))
    assert stored is not None
    assert stored.state.value == "RUNNING" and stored.steps[0].state.value == "RUNNING"
    assert "engine lease lost: the run stops here" in caplog.text


async def test_the_lease_is_asked_for_once_it_may_have_run_out(tmp_path: Path) -> None:
    """The fence answers from memory while the lease cannot have run out, and from the
    database after (as when the process wakes from a pause past its lease)."""
    now = [1000.0]
    db = await SqliteDatabase.open(str(tmp_path / "lease.db"))
    try:
        lease = EngineLease(db, CoordinationRepository(), 10.0, lambda: now[0])
        assert await lease.hold()

        async def fence() -> bool:
            return await db.write(lease.still_ours)

        assert await fence()
        await db.write(lambda conn: conn.execute("UPDATE engine_lease SET owner = 'other'"))
        assert await fence()  # nobody could have taken it 0 s into a 10 s lease
        now[0] += 9.0  # paused: the last quarter of the lease has come
        assert not await fence()
        lease.forget()
    finally:
        await db.close()
