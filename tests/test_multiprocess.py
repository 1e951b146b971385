"""Several server processes on one database with a real Redis: one runs the executions
(the engine lease), any of them streams, waits, and cancels; a standby takes over."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    TESTS,
    RedisProcess,
    eventually,
    file_has,
    redis_prefix,
    start_process,
    stop_processes,
    tls,
    worker_process,
)
from test_streams import busy_workflow

import baton
from baton import Client, EventType, Execution

pytestmark = pytest.mark.sqlite_only  # reads or shares the SQLite file


async def two_servers(
    tmp_path: Path, redis: RedisProcess | None, **env: str
) -> tuple[list[subprocess.Popen[str]], int, int]:
    common = {"BATON_STREAM_POLL": "5", **env}
    if redis is not None:
        common.update(BATON_REDIS_URL=redis.url, BATON_REDIS_PREFIX=redis_prefix())
    owner, owner_port = await start_process(tmp_path / "baton.db", extra_env=common)
    standby, standby_port = await start_process(tmp_path / "baton.db", extra_env=common)
    return [owner, standby], owner_port, standby_port


@pytest.mark.timeout(90)
async def test_run_by_one_process_streamed_live_from_the_other(
    tmp_path: Path, own_redis: RedisProcess
) -> None:
    processes, owner_port, standby_port = await two_servers(tmp_path, own_redis)
    try:
        async with (
            Client.connect(f"127.0.0.1:{owner_port}") as owner,
            Client.connect(f"127.0.0.1:{standby_port}") as standby,
        ):
            assert (await owner.system_health()).running_executions == 0
            workflow = await busy_workflow(standby, pause=0.05, steps=5)
            # Started through the standby: stored there, run by the lease holder.
            execution = await standby.executions.start(workflow, {})
            begun = time.monotonic()
            streamed = [e async for e in standby.executions.stream(execution.name)]
            elapsed = time.monotonic() - begun
            # Streams check storage only every 5 s here: finishing sooner means live events
            # came through Redis.
            assert elapsed < 4, elapsed
            assert [e.sequence for e in streamed] == list(range(1, len(streamed) + 1))
            assert streamed[-1].type == EventType.EVENT_TYPE_EXECUTION_SUCCEEDED
            stored = [e async for e in owner.executions.events(execution.name)]
            assert [(e.sequence, e.type) for e in stored] == [
                (e.sequence, e.type) for e in streamed
            ]

            waited = await standby.executions.wait(execution.name, timeout=10)
            assert waited.state == Execution.STATE_SUCCEEDED

            # Cancel through the standby reaches the process that runs the execution.
            sleeper = await standby.workflows.create(
                baton.Workflow(
                    steps=[baton.Step(id="nap", agent="slow", input_mapping={"seconds": 60})]
                )
            )
            long = await standby.executions.start(sleeper.name, {})
            await asyncio.sleep(0.3)
            cancelled = await standby.executions.cancel(long.name, reason="from the standby")
            assert cancelled.state == Execution.STATE_CANCELLED
            assert cancelled.error.message == "from the standby"
            with pytest.raises(baton.FailedPreconditionError):
                await standby.executions.cancel(long.name)
    finally:
        stop_processes(processes)


@pytest.mark.timeout(90)
async def test_redis_stopped_while_streaming_loses_nothing(
    tmp_path: Path, own_redis: RedisProcess
) -> None:
    processes, _, standby_port = await two_servers(tmp_path, own_redis, BATON_STREAM_POLL="0.3")
    try:
        async with Client.connect(f"127.0.0.1:{standby_port}") as standby:
            workflow = await busy_workflow(standby, pause=0.1, steps=6)
            execution = await standby.executions.start(workflow, {})
            seen = []
            async for event in standby.executions.stream(execution.name):
                seen.append(event)
                if len(seen) == 10:
                    own_redis.stop()  # SIGKILL: the live path is gone
            assert [e.sequence for e in seen] == list(range(1, len(seen) + 1))
            assert seen[-1].type == EventType.EVENT_TYPE_EXECUTION_SUCCEEDED
            assert len(seen) > 20
    finally:
        stop_processes(processes)


@pytest.mark.timeout(90)
async def test_standby_takes_over_when_the_engine_process_dies(tmp_path: Path) -> None:
    processes, _, standby_port = await two_servers(
        tmp_path, None, BATON_ENGINE_LEASE="1.5", BATON_STREAM_POLL="0.2"
    )
    try:
        async with Client.connect(f"127.0.0.1:{standby_port}", timeout=30) as standby:
            workflow = await busy_workflow(standby, pause=0.2, steps=6)
            executions = [await standby.executions.start(workflow, {}) for _ in range(5)]
            await asyncio.sleep(0.8)
            processes[0].send_signal(signal.SIGKILL)  # the lease holder
            finished = await asyncio.gather(
                *(standby.executions.wait(e.name, timeout=60) for e in executions)
            )
            assert all(e.state == Execution.STATE_SUCCEEDED for e in finished), [
                (e.state, e.error.message) for e in finished
            ]
            assert (await standby.system_health()).running_executions == 0
            events = [e async for e in standby.executions.events(finished[0].name)]
            assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    finally:
        stop_processes(processes)


@pytest.mark.timeout(90)
async def test_a_worker_on_the_standby_serves_the_engine(tmp_path: Path) -> None:
    processes, owner_port, standby_port = await two_servers(tmp_path, None, BATON_STREAM_POLL="0.2")
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        str(TESTS / "worker_process.py"),
        f"127.0.0.1:{standby_port}",
        "shout",
        env={**os.environ, "PYTHONPATH": str(TESTS)},
    )
    try:
        async with Client.connect(f"127.0.0.1:{owner_port}") as owner:
            await owner.agents.create(baton.Agent(worker=baton.WorkerRuntime()), agent_id="shout")
            workflow = await owner.workflows.create(
                baton.Workflow(
                    steps=[
                        baton.Step(
                            id="loud", agent="shout", input_mapping={"text": "${input.text}"}
                        )
                    ]
                )
            )
            execution = await owner.executions.start(workflow.name, {"text": "relayed"})
            done = await owner.executions.wait(execution.name, timeout=30)
        assert done.state == Execution.STATE_SUCCEEDED, done.error
        assert done.steps[0].output["text"] == "RELAYED"
        assert int(done.steps[0].output["pid"]) == worker.pid
    finally:
        worker.kill()
        await worker.wait()
        stop_processes(processes)


@pytest.mark.timeout(90)
async def test_commands_through_the_standby_reach_the_engine(tmp_path: Path) -> None:
    """Pause, resume, signal, approve and retry act on a run in memory: a standby passes
    them on to the process that runs executions, with the caller's token (so the approver
    is the caller, and a reader may still not approve)."""
    tokens = "o-token=operator:olga,r-token=reader:rita"
    processes, owner_port, standby_port = await two_servers(
        tmp_path, None, BATON_AUTH_TOKENS=tokens, BATON_STREAM_POLL="0.2"
    )
    try:
        async with (
            Client.connect(f"127.0.0.1:{owner_port}", token="o-token") as owner,
            Client.connect(f"127.0.0.1:{standby_port}", token="o-token") as standby,
            Client.connect(f"127.0.0.1:{standby_port}", token="r-token") as reader,
        ):
            for agent_id, entry in (("slow", "test_agents_lib:slow"), ("flaky", "flaky")):
                await owner.agents.create(
                    baton.Agent(
                        python=baton.PythonRuntime(
                            entry_point=entry if ":" in entry else f"test_agents_lib:{entry}"
                        )
                    ),
                    agent_id=agent_id,
                )
            workflow = await owner.workflows.create(
                baton.Workflow(
                    steps=[
                        baton.Step(id="nap", agent="slow", input_mapping={"seconds": 0.5}),
                        baton.Step(
                            id="review",
                            approval=baton.Approval(prompt="go on?"),
                            depends_on=["nap"],
                        ),
                        baton.Step(
                            id="gate",
                            wait_for=baton.WaitFor(signal="go"),
                            depends_on=["review"],
                        ),
                        baton.Step(
                            id="last",
                            agent="flaky",
                            depends_on=["gate"],
                            input_mapping={"succeed_on": 2},
                            retry_policy=baton.RetryPolicy(max_attempts=1),
                        ),
                    ]
                )
            )
            started = await standby.executions.start(workflow.name, {})  # the engine takes it

            async def state_is(state: int, step: int = -1) -> bool:
                now = await standby.executions.get(started.name)
                return (now.state if step < 0 else now.steps[step].state) == state

            await eventually(lambda: state_is(Execution.STATE_RUNNING))
            paused = await standby.executions.pause(started.name, reason="hold on")
            assert paused.state == Execution.STATE_PAUSED
            resumed = await standby.executions.resume(started.name)
            assert resumed.state == Execution.STATE_RUNNING
            await eventually(lambda: state_is(baton.StepRun.STATE_WAITING, 1))
            with pytest.raises(baton.PermissionDeniedError):
                await reader.executions.approve(started.name, "review")
            approved = await standby.executions.approve(started.name, "review", reason="fine")
            assert approved.steps[1].state == baton.StepRun.STATE_SUCCEEDED
            assert approved.steps[1].output["decided_by"] == "olga"
            await standby.executions.signal(started.name, "go", {"n": 1})
            failed = await standby.executions.wait(started.name, timeout=20)
            assert failed.state == Execution.STATE_FAILED, failed.error
            retried = await standby.executions.retry(started.name, ["last"])
            assert retried.state == Execution.STATE_RUNNING
            done = await standby.executions.wait(started.name, timeout=20)
            assert done.state == Execution.STATE_SUCCEEDED, done.error
            assert done.steps[3].output["attempt"] == 2
            assert done.steps[2].output == {"n": 1}
    finally:
        stop_processes(processes)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("stop", ["SIGSTOP", "SIGKILL"])
async def test_a_lost_worker_on_the_standby_hands_the_retry_on(tmp_path: Path, stop: str) -> None:
    """Two workers on the standby: the task reaches one through the mailbox, and its
    heartbeats keep it alive there. Frozen (SIGSTOP), its lease runs out on the engine and
    the retry goes to the other worker, not down the frozen one's open stream. Killed, its
    stream ends on the standby and the engine fails the task WORKER_LOST at once."""
    processes, owner_port, standby_port = await two_servers(tmp_path, None)
    workers = {p.pid: p for p in (worker_process(standby_port, "marked") for _ in range(2))}
    try:
        async with Client.connect(f"127.0.0.1:{owner_port}") as owner:
            runtime = baton.WorkerRuntime()
            runtime.heartbeat_timeout.FromSeconds(2)
            await owner.agents.create(baton.Agent(worker=runtime), agent_id="marked")
            retry = baton.RetryPolicy(max_attempts=3)
            retry.initial_interval.FromNanoseconds(50_000_000)
            workflow = await owner.workflows.create(
                baton.Workflow(steps=[baton.Step(id="work", agent="marked", retry_policy=retry)])
            )
            marker = tmp_path / "marker"
            started = await owner.executions.start(
                workflow.name, {"marker": str(marker), "seconds": 3.0}
            )

            await eventually(lambda: file_has(marker, "\n"), within=15)
            frozen = workers[int(marker.read_text().split()[0])]
            frozen.send_signal(getattr(signal, stop))
            try:
                done = await owner.executions.wait(started.name, timeout=30)
            finally:
                frozen.send_signal(signal.SIGCONT)
        assert done.state == Execution.STATE_SUCCEEDED, done.error
        run = done.steps[0]
        lost = {"SIGSTOP": "HEARTBEAT_TIMEOUT", "SIGKILL": "WORKER_LOST"}[stop]
        assert run.attempts[0].error.type == lost
        assert run.attempt == 2 and int(run.output["pid"]) != frozen.pid
    finally:
        for worker in workers.values():
            worker.kill()
            worker.wait()
        stop_processes(processes)


@pytest.mark.timeout(90)
async def test_a_worker_on_the_standby_with_tls(tmp_path: Path, certificates: Path) -> None:
    """With TLS, worker calls cannot be relayed in plaintext; through the mailbox a worker
    connected to the standby still serves the engine."""
    env = {
        "BATON_TLS_CERT": str(certificates / "server.pem"),
        "BATON_TLS_KEY": str(certificates / "server.key"),
    }
    processes, owner_port, standby_port = await two_servers(tmp_path, None, **env)
    try:
        credentials = tls(certificates)
        async with (
            Client.connect(f"127.0.0.1:{owner_port}", credentials=credentials) as owner,
            Client.connect(f"127.0.0.1:{standby_port}", credentials=credentials) as standby,
        ):
            await owner.agents.create(baton.Agent(worker=baton.WorkerRuntime()), agent_id="upper")

            async def upper(value: dict[str, Any], ctx: baton.StepContext) -> dict[str, Any]:
                ctx.log.info("upper-casing")
                return {"text": str(value["text"]).upper()}

            worker = asyncio.create_task(baton.Worker(standby, {"agents/upper": upper}).run())
            try:
                workflow = await owner.workflows.create(
                    baton.Workflow(
                        steps=[
                            baton.Step(
                                id="up", agent="upper", input_mapping={"text": "${input.text}"}
                            )
                        ]
                    )
                )
                started = await owner.executions.start(workflow.name, {"text": "secure"})
                done = await owner.executions.wait(started.name, timeout=30)
            finally:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            assert done.state == Execution.STATE_SUCCEEDED, done.error
            assert done.steps[0].output["text"] == "SECURE"
            logs = [
                e.log.message
                async for e in owner.executions.events(
                    done.name, event_types=[EventType.EVENT_TYPE_LOG]
                )
            ]
            assert "upper-casing" in logs  # sent with a heartbeat, through the mailbox
    finally:
        stop_processes(processes)
