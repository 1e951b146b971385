"""Replicas on one PostgreSQL database, each running executions: new executions spread over
them; one SIGKILLed under load has its executions taken over by the others within the lease
timeout, with nothing lost and no step that durably succeeded run again; a worker connected
to one replica serves the executions another runs, before and after that one dies."""

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


async def owners(url: str, where: str = "TRUE") -> dict[int, int]:
    """How many executions (matching `where`) each live replica holds, by process id."""
    rows = await query_database(
        url,
        "SELECT r.pid, count(*) FROM executions e JOIN replicas r ON r.id = e.owner "
        f"WHERE {where} GROUP BY r.pid",
    )
    return {int(pid): int(count) for pid, count in rows}


async def unfinished_of(url: str, pid: int) -> int:
    """How many unfinished executions the replica with this process id holds."""
    rows = await query_database(
        url,
        "SELECT count(*) FROM executions e JOIN replicas r ON r.id = e.owner "
        f"WHERE r.pid = {pid} AND e.end_time IS NULL",
    )
    return int(rows[0][0])


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
                await asyncio.sleep(LEASE)  # every replica has read the others' rows
                # All started through one replica: they spread over the three.
                started = await asyncio.gather(
                    *(clients[0].executions.start(workflow, {"n": i}) for i in range(150))
                )
                target = 120 + random.randint(0, 60)  # of 450 side effects
                while sum(effects(effect_log).values()) < target:  # noqa: ASYNC110 - other processes write it
                    await asyncio.sleep(0.01)
                spread = await owners(url)
                # The victim is the replica holding the most unfinished executions. Not
                # reaped until the others took over: a zombie's pid still answers, so they
                # cannot tell it is gone (as with a replica on another host) and must wait
                # for its row to expire.
                held = await owners(url, "e.end_time IS NULL")
                victim_pid = max(held, key=lambda pid: held[pid])
                victim = next(p for p in processes if p.pid == victim_pid)
                victim.send_signal(signal.SIGKILL)
                killed_at = time.monotonic()

                at_kill = await AtTheKill.read(url, effect_log)
                assert at_kill.done and len(at_kill.done) < 450

                # The others take its executions over within the lease timeout (each
                # reads the replicas twice a second at most).
                while await unfinished_of(url, victim_pid):
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
        assert len(spread) == 3 and all(spread.values()), spread
        assert held[victim_pid] > 0
        assert LEASE / 2 < took_over < LEASE + 2.0
        await at_kill.check_chains_recovered(url, effect_log, finished)


@pytest.mark.timeout(90)
async def test_a_worker_on_another_replica_before_and_after_that_one_dies(
    tmp_path: Path,
) -> None:
    """A worker connected to one replica gets, through the database, the tasks of the
    executions another replica runs, and its answers go back the same way. That replica
    dies while the worker holds a task: the worker's replica takes the execution over,
    delivers the cut-short attempt again (same number, same key) down the same worker
    stream, and goes on serving it."""
    env = {"BATON_ENGINE_LEASE": str(LEASE), "BATON_STREAM_POLL": "0.2"}
    processes: list[subprocess.Popen[str]] = []
    async with database_for_test(tmp_path, "postgresql") as url:
        try:
            runner, hoster = await asyncio.gather(
                *(start_process(url, extra_env=env) for _ in range(2))
            )
            processes += [runner[0], hoster[0]]
            worker = worker_process(hoster[1], "shout", "marked")
            try:
                async with (
                    Client.connect(f"127.0.0.1:{runner[1]}", timeout=30) as client,
                    Client.connect(f"127.0.0.1:{hoster[1]}", timeout=30) as far,
                ):
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
                    await asyncio.sleep(LEASE)  # both have read the other's row
                    # Started on the idle replica without the worker, it runs there.
                    before = await client.executions.start(workflow.name, {"t": "before"})
                    done = await client.executions.wait(before.name, timeout=30)
                    assert done.state == Execution.STATE_SUCCEEDED, done.error
                    assert done.steps[0].output["text"] == "BEFORE"
                    assert int(done.steps[0].output["pid"]) == worker.pid
                    assert await owners(url) == {runner[0].pid: 1}

                    marker = tmp_path / "marker"
                    cut = await client.executions.start(
                        held.name, {"marker": str(marker), "seconds": 1.0}
                    )
                    await eventually(lambda: file_has(marker, "\n"), within=15)  # the worker has it
                    assert await unfinished_of(url, runner[0].pid) == 1
                    runner[0].send_signal(signal.SIGKILL)
                    await asyncio.to_thread(runner[0].wait)
                    done = await far.executions.wait(cut.name, timeout=30)
                    assert done.state == Execution.STATE_SUCCEEDED, done.error
                    run = done.steps[0]
                    assert [a.attempt for a in run.attempts] == [1, 1]
                    assert run.attempts[0].error.type == "INTERRUPTED"
                    assert int(run.output["pid"]) == worker.pid
                    assert marker.read_text().split() == [str(worker.pid)] * 2
                    assert await owners(url, f"e.id = '{cut.name.split('/')[1]}'") == {
                        hoster[0].pid: 1
                    }

                    after = await far.executions.start(workflow.name, {"t": "after"})
                    done = await far.executions.wait(after.name, timeout=30)
                    assert done.state == Execution.STATE_SUCCEEDED, done.error
                    assert done.steps[0].output["text"] == "AFTER"
                    assert int(done.steps[0].output["pid"]) == worker.pid
            finally:
                worker.kill()
                worker.wait()
        finally:
            stop_processes(processes)
