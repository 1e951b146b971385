"""Three replicas on one PostgreSQL database under load: the one running executions is
SIGKILLed, another takes over within the lease timeout, nothing is lost, and no step that
durably succeeded runs again. (One replica runs every execution for now: the engine lease.
Per-execution ownership, with executions spread over the replicas, is not built yet.)"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import (
    database_for_test,
    eventually,
    file_has,
    query_database,
    start_process,
    stop_processes,
    worker_process,
)
from test_recovery import AtTheKill, effect_chain, effects

from baton import Agent, Client, Execution, Step, WorkerRuntime, Workflow

# The test picks PostgreSQL itself, so it runs once, in the first pass of `make test`.
pytestmark = pytest.mark.sqlite_only

LEASE = 1.5


async def lease_holder(url: str) -> tuple[str, int]:
    """The engine lease's owner and process id, as stored."""
    rows = await query_database(url, "SELECT owner, pid FROM engine_lease WHERE id = 1")
    return (str(rows[0][0]), int(rows[0][1])) if rows else ("", 0)


@pytest.mark.timeout(150)
async def test_sigkill_one_of_three_replicas_under_load(tmp_path: Path) -> None:
    effect_log = tmp_path / "effects.log"
    env = {"BATON_ENGINE_LEASE": str(LEASE), "BATON_STREAM_POLL": "0.2"}
    processes: list[subprocess.Popen[str]] = []
    async with database_for_test(tmp_path, "postgresql") as url:
        try:
            started_processes = await asyncio.gather(
                *(start_process(url, extra_env=env) for _ in range(3))
            )
            processes += [process for process, _ in started_processes]
            clients = [
                Client.connect(f"127.0.0.1:{port}", timeout=60) for _, port in started_processes
            ]
            try:
                workflow = await effect_chain(clients[0], effect_log, 0.1)
                # Started through all three replicas.
                started = await asyncio.gather(
                    *(clients[i % 3].executions.start(workflow, {"n": i}) for i in range(150))
                )
                owner, pid = await lease_holder(url)
                victim = next(p for p in processes if p.pid == pid)
                target = 120 + random.randint(0, 60)  # of 450 side effects
                while sum(effects(effect_log).values()) < target:  # noqa: ASYNC110 - other processes write it
                    await asyncio.sleep(0.01)
                # Not reaped until another replica took over: a zombie's pid still answers,
                # so the others cannot tell it is gone (as with a replica on another host)
                # and must wait for its lease to run out.
                victim.send_signal(signal.SIGKILL)
                killed_at = time.monotonic()

                at_kill = await AtTheKill.read(url, effect_log)
                assert at_kill.done and len(at_kill.done) < 450

                # Another replica takes the engine over within the lease timeout (it tries
                # once a second at most).
                while (await lease_holder(url))[0] in ("", owner):
                    assert time.monotonic() - killed_at < LEASE + 2.0, "nobody took over"
                    await asyncio.sleep(0.05)
                took_over = time.monotonic() - killed_at
                await asyncio.to_thread(victim.wait)

                survivor = next(
                    c for c, p in zip(clients, processes, strict=True) if p is not victim
                )
                finished = await asyncio.gather(
                    *(survivor.executions.wait(e.name, timeout=60) for e in started)
                )
            finally:
                for client in clients:
                    await client.close()
        finally:
            stop_processes(processes)

        assert all(e.state == Execution.STATE_SUCCEEDED for e in finished), [
            (e.name, e.state, e.error.message)
            for e in finished
            if e.state != Execution.STATE_SUCCEEDED
        ][:3]
        assert LEASE / 2 < took_over < LEASE + 2.0
        await at_kill.check_chains_recovered(url, effect_log, finished)


@pytest.mark.timeout(90)
async def test_a_worker_on_another_replica_before_and_after_a_takeover(tmp_path: Path) -> None:
    """A worker connected to the replica that does not run executions gets its tasks
    through the database. The engine replica dies while the worker holds a task: the
    other replica takes over, delivers the cut-short attempt again (same number, same
    key) down the same worker stream, and goes on serving it."""
    env = {"BATON_ENGINE_LEASE": str(LEASE), "BATON_STREAM_POLL": "0.2"}
    processes: list[subprocess.Popen[str]] = []
    async with database_for_test(tmp_path, "postgresql") as url:
        try:
            first, second = await asyncio.gather(
                *(start_process(url, extra_env=env) for _ in range(2))
            )
            processes += [first[0], second[0]]
            _, engine_pid = await lease_holder(url)
            engine, other = (first, second) if first[0].pid == engine_pid else (second, first)
            worker = worker_process(other[1], "shout", "marked")
            try:
                async with Client.connect(f"127.0.0.1:{other[1]}", timeout=30) as client:
                    await client.agents.create(Agent(worker=WorkerRuntime()), agent_id="shout")
                    await client.agents.create(Agent(worker=WorkerRuntime()), agent_id="marked")
                    held = await client.workflows.create(
                        Workflow(steps=[Step(id="m", agent="marked")])
                    )
                    workflow = await client.workflows.create(
                        Workflow(
                            steps=[
                                Step(id="s", agent="shout", input_mapping={"text": "${input.t}"})
                            ]
                        )
                    )
                    before = await client.executions.start(workflow.name, {"t": "before"})
                    done = await client.executions.wait(before.name, timeout=30)
                    assert done.state == Execution.STATE_SUCCEEDED, done.error
                    assert done.steps[0].output["text"] == "BEFORE"
                    assert int(done.steps[0].output["pid"]) == worker.pid

                    marker = tmp_path / "marker"
                    cut = await client.executions.start(
                        held.name, {"marker": str(marker), "seconds": 1.0}
                    )
                    await eventually(lambda: file_has(marker, "\n"), within=15)  # the worker has it
                    engine[0].send_signal(signal.SIGKILL)
                    await asyncio.to_thread(engine[0].wait)
                    done = await client.executions.wait(cut.name, timeout=30)
                    assert done.state == Execution.STATE_SUCCEEDED, done.error
                    run = done.steps[0]
                    assert [a.attempt for a in run.attempts] == [1, 1]
                    assert run.attempts[0].error.type == "INTERRUPTED"
                    assert int(run.output["pid"]) == worker.pid
                    assert marker.read_text().split() == [str(worker.pid)] * 2

                    after = await client.executions.start(workflow.name, {"t": "after"})
                    done = await client.executions.wait(after.name, timeout=30)
                    assert done.state == Execution.STATE_SUCCEEDED, done.error
                    assert done.steps[0].output["text"] == "AFTER"
                    assert int(done.steps[0].output["pid"]) == worker.pid
                    assert (await lease_holder(url))[1] == other[0].pid
            finally:
                worker.kill()
                worker.wait()
        finally:
            stop_processes(processes)
