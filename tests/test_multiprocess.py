"""Two replicas on one SQLite file, each running executions: the other one streams, waits,
cancels and passes commands on; workers connected to one serve both; when one dies, the
other takes its executions over."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
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
    worker_agent,
    worker_process,
)
from google.protobuf import struct_pb2
from test_streams import busy_workflow

import baton
from baton import Client, EventType, Execution
from baton.v1 import worker_pb2, worker_pb2_grpc

pytestmark = pytest.mark.sqlite_only  # reads or shares the SQLite file


async def two_servers(
    tmp_path: Path, redis: RedisProcess | None, **env: str
) -> tuple[list[subprocess.Popen[str]], int, int]:
    common = {"BATON_STREAM_POLL": "5", **env}
    if redis is not None:
        common.update(BATON_REDIS_URL=redis.url, BATON_REDIS_PREFIX=redis_prefix())
    first, first_port = await start_process(tmp_path / "baton.db", extra_env=common)
    second, second_port = await start_process(tmp_path / "baton.db", extra_env=common)
    await asyncio.sleep(1.2)  # each has read the other's row
    return [first, second], first_port, second_port


@pytest.mark.timeout(90)
async def test_run_by_one_process_streamed_live_from_the_other(
    tmp_path: Path, own_redis: RedisProcess
) -> None:
    processes, first_port, second_port = await two_servers(tmp_path, own_redis)
    try:
        async with (
            Client.connect(f"127.0.0.1:{first_port}") as first,
            Client.connect(f"127.0.0.1:{second_port}") as second,
        ):
            assert (await first.system_health()).running_executions == 0
            workflow = await busy_workflow(second, pause=0.05, steps=5)
            # Started through the first replica, idle: it runs there.
            execution = await first.executions.start(workflow, {})
            begun = time.monotonic()
            streamed = [e async for e in second.executions.stream(execution.name)]
            elapsed = time.monotonic() - begun
            # Streams check storage only every 5 s here: finishing sooner means live events
            # came through Redis.
            assert elapsed < 4, elapsed
            assert [e.sequence for e in streamed] == list(range(1, len(streamed) + 1))
            assert streamed[-1].type == EventType.EVENT_TYPE_EXECUTION_SUCCEEDED
            stored = [e async for e in first.executions.events(execution.name)]
            assert [(e.sequence, e.type) for e in stored] == [
                (e.sequence, e.type) for e in streamed
            ]

            waited = await second.executions.wait(execution.name, timeout=10)
            assert waited.state == Execution.STATE_SUCCEEDED

            # Cancel through the second reaches the replica that runs the execution.
            sleeper = await second.workflows.create(
                baton.Workflow(
                    steps=[baton.Step(id="nap", agent="slow", input_mapping={"seconds": 60})]
                )
            )
            long = await first.executions.start(sleeper.name, {})
            await asyncio.sleep(0.3)
            cancelled = await second.executions.cancel(long.name, reason="from the second")
            assert cancelled.state == Execution.STATE_CANCELLED
            assert cancelled.error.message == "from the second"
            with pytest.raises(baton.FailedPreconditionError):
                await second.executions.cancel(long.name)
    finally:
        stop_processes(processes)


@pytest.mark.timeout(90)
async def test_redis_stopped_while_streaming_loses_nothing(
    tmp_path: Path, own_redis: RedisProcess
) -> None:
    processes, first_port, second_port = await two_servers(
        tmp_path, own_redis, BATON_STREAM_POLL="0.3"
    )
    try:
        async with (
            Client.connect(f"127.0.0.1:{first_port}") as first,
            Client.connect(f"127.0.0.1:{second_port}") as second,
        ):
            workflow = await busy_workflow(second, pause=0.1, steps=6)
            execution = await first.executions.start(workflow, {})  # runs on the first
            seen = []
            async for event in second.executions.stream(execution.name):
                seen.append(event)
                if len(seen) == 10:
                    own_redis.stop()  # SIGKILL: the live path is gone
            assert [e.sequence for e in seen] == list(range(1, len(seen) + 1))
            assert seen[-1].type == EventType.EVENT_TYPE_EXECUTION_SUCCEEDED
            assert len(seen) > 20
    finally:
        stop_processes(processes)


@pytest.mark.timeout(90)
async def test_a_replica_takes_over_when_the_other_dies(tmp_path: Path) -> None:
    processes, first_port, second_port = await two_servers(
        tmp_path, None, BATON_ENGINE_LEASE="1.5", BATON_STREAM_POLL="0.2"
    )
    try:
        async with (
            Client.connect(f"127.0.0.1:{first_port}", timeout=30) as first,
            Client.connect(f"127.0.0.1:{second_port}", timeout=30) as second,
        ):
            workflow = await busy_workflow(second, pause=0.2, steps=6)
            executions = [await first.executions.start(workflow, {}) for _ in range(5)]
            await asyncio.sleep(0.8)
            held = sqlite3.connect(tmp_path / "baton.db").execute(
                "SELECT count(*) FROM executions e JOIN replicas r ON r.id = e.owner "
                f"WHERE r.pid = {processes[0].pid} AND e.end_time IS NULL"
            )
            assert held.fetchone()[0] > 0  # the first runs some of them
            processes[0].send_signal(signal.SIGKILL)
            finished = await asyncio.gather(
                *(second.executions.wait(e.name, timeout=60) for e in executions)
            )
            assert all(e.state == Execution.STATE_SUCCEEDED for e in finished), [
                (e.state, e.error.message) for e in finished
            ]
            assert (await second.system_health()).running_executions == 0
            events = [e async for e in second.executions.events(finished[0].name)]
            assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    finally:
        stop_processes(processes)


@pytest.mark.timeout(90)
async def test_a_worker_on_one_replica_serves_the_other(tmp_path: Path) -> None:
    processes, first_port, second_port = await two_servers(tmp_path, None, BATON_STREAM_POLL="0.2")
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        str(TESTS / "worker_process.py"),
        f"127.0.0.1:{second_port}",
        "shout",
        env={**os.environ, "PYTHONPATH": str(TESTS)},
    )
    try:
        async with Client.connect(f"127.0.0.1:{first_port}") as first:
            await worker_agent(first, "shout")
            workflow = await first.workflows.create(
                baton.Workflow(
                    steps=[
                        baton.Step(
                            id="loud", agent="shout", input_mapping={"text": "${input.text}"}
                        )
                    ]
                )
            )
            execution = await first.executions.start(workflow.name, {"text": "relayed"})
            done = await first.executions.wait(execution.name, timeout=30)
        assert done.state == Execution.STATE_SUCCEEDED, done.error
        assert done.steps[0].output["text"] == "RELAYED"
        assert int(done.steps[0].output["pid"]) == worker.pid
    finally:
        worker.kill()
        await worker.wait()
        stop_processes(processes)


@pytest.mark.timeout(90)
async def test_commands_through_one_replica_reach_the_one_running_the_execution(
    tmp_path: Path,
) -> None:
    """Pause, resume, signal and approve act on a run in memory: the other replica passes
    them on to the one that runs the execution, with the caller's token (so the approver
    is the caller, and a reader may still not approve); retry works on any replica."""
    tokens = "o-token=operator:olga,r-token=reader:rita"
    processes, first_port, second_port = await two_servers(
        tmp_path, None, BATON_AUTH_TOKENS=tokens, BATON_STREAM_POLL="0.2"
    )
    try:
        async with (
            Client.connect(f"127.0.0.1:{first_port}", token="o-token") as first,
            Client.connect(f"127.0.0.1:{second_port}", token="o-token") as second,
            Client.connect(f"127.0.0.1:{second_port}", token="r-token") as reader,
        ):
            for agent_id, entry in (("slow", "test_agents_lib:slow"), ("flaky", "flaky")):
                await first.agents.create(
                    baton.Agent(
                        python=baton.PythonRuntime(
                            entry_point=entry if ":" in entry else f"test_agents_lib:{entry}"
                        )
                    ),
                    agent_id=agent_id,
                )
            workflow = await first.workflows.create(
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
            started = await first.executions.start(workflow.name, {})  # it runs on the first

            async def state_is(state: int, step: int = -1) -> bool:
                now = await second.executions.get(started.name)
                return (now.state if step < 0 else now.steps[step].state) == state

            await eventually(lambda: state_is(Execution.STATE_RUNNING))
            paused = await second.executions.pause(started.name, reason="hold on")
            assert paused.state == Execution.STATE_PAUSED
            resumed = await second.executions.resume(started.name)
            assert resumed.state == Execution.STATE_RUNNING
            await eventually(lambda: state_is(baton.StepRun.STATE_WAITING, 1))
            with pytest.raises(baton.PermissionDeniedError):
                await reader.executions.approve(started.name, "review")
            approved = await second.executions.approve(started.name, "review", reason="fine")
            assert approved.steps[1].state == baton.StepRun.STATE_SUCCEEDED
            assert approved.steps[1].output["decided_by"] == "olga"
            await second.executions.signal(started.name, "go", {"n": 1})
            failed = await second.executions.wait(started.name, timeout=20)
            assert failed.state == Execution.STATE_FAILED, failed.error
            retried = await second.executions.retry(started.name, ["last"])
            assert retried.state == Execution.STATE_RUNNING
            done = await second.executions.wait(started.name, timeout=20)
            assert done.state == Execution.STATE_SUCCEEDED, done.error
            assert done.steps[3].output["attempt"] == 2
            assert done.steps[2].output == {"n": 1}
    finally:
        stop_processes(processes)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("stop", ["SIGSTOP", "SIGKILL"])
async def test_a_lost_worker_on_the_other_replica_hands_the_retry_on(
    tmp_path: Path, stop: str
) -> None:
    """Two workers on the second replica: the first's task reaches one through the
    database, and its heartbeats keep it alive there. Frozen (SIGSTOP), its lease runs out
    on the first and the retry goes to the other worker, not down the frozen one's open
    stream. Killed, its stream ends on the second, which tells the first: the task fails
    WORKER_LOST at once."""
    processes, first_port, second_port = await two_servers(tmp_path, None)
    workers = {p.pid: p for p in (worker_process(second_port, "marked") for _ in range(2))}
    try:
        async with Client.connect(f"127.0.0.1:{first_port}") as first:
            runtime = baton.WorkerRuntime()
            runtime.heartbeat_timeout.FromSeconds(2)
            await first.agents.create(baton.Agent(worker=runtime), agent_id="marked")
            retry = baton.RetryPolicy(max_attempts=3)
            retry.initial_interval.FromNanoseconds(50_000_000)
            workflow = await first.workflows.create(
                baton.Workflow(steps=[baton.Step(id="work", agent="marked", retry_policy=retry)])
            )
            marker = tmp_path / "marker"
            started = await first.executions.start(
                workflow.name, {"marker": str(marker), "seconds": 3.0}
            )

            await eventually(lambda: file_has(marker, "\n"), within=15)
            frozen = workers[int(marker.read_text().split()[0])]
            frozen.send_signal(getattr(signal, stop))
            try:
                done = await first.executions.wait(started.name, timeout=30)
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
async def test_a_worker_on_the_other_replica_with_tls(tmp_path: Path, certificates: Path) -> None:
    """With TLS, worker calls cannot be relayed in plaintext; through the database a worker
    connected to the second replica still serves the first."""
    env = {
        "BATON_TLS_CERT": str(certificates / "server.pem"),
        "BATON_TLS_KEY": str(certificates / "server.key"),
    }
    processes, first_port, second_port = await two_servers(tmp_path, None, **env)
    try:
        credentials = tls(certificates)
        async with (
            Client.connect(f"127.0.0.1:{first_port}", credentials=credentials) as first,
            Client.connect(f"127.0.0.1:{second_port}", credentials=credentials) as second,
        ):
            await worker_agent(first, "upper")

            async def upper(value: dict[str, Any], ctx: baton.StepContext) -> dict[str, Any]:
                ctx.log.info("upper-casing")
                return {"text": str(value["text"]).upper()}

            worker = asyncio.create_task(baton.Worker(second, {"agents/upper": upper}).run())
            try:
                workflow = await first.workflows.create(
                    baton.Workflow(
                        steps=[
                            baton.Step(
                                id="up", agent="upper", input_mapping={"text": "${input.text}"}
                            )
                        ]
                    )
                )
                started = await first.executions.start(workflow.name, {"text": "secure"})
                done = await first.executions.wait(started.name, timeout=30)
            finally:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            assert done.state == Execution.STATE_SUCCEEDED, done.error
            assert done.steps[0].output["text"] == "SECURE"
            logs = [
                e.log.message
                async for e in first.executions.events(
                    done.name, event_types=[EventType.EVENT_TYPE_LOG]
                )
            ]
            assert "upper-casing" in logs  # sent with a heartbeat, through the database
    finally:
        stop_processes(processes)


@pytest.mark.timeout(90)
async def test_a_worker_holds_no_more_tasks_than_its_room_whichever_replica_runs_them(
    tmp_path: Path,
) -> None:
    """A worker with room for one task, connected to one replica, serves the executions
    of both replicas: the tasks of the other come through the database, and it never holds
    two at once, wherever they come from."""
    processes, first_port, second_port = await two_servers(tmp_path, None)
    holding = 0
    most = 0
    served: list[str] = []

    async def hold(value: dict[str, Any], ctx: baton.StepContext) -> dict[str, Any]:
        nonlocal holding, most
        holding += 1
        most = max(most, holding)
        served.append(ctx.execution)
        try:
            await asyncio.sleep(0.3)
        finally:
            holding -= 1
        return {"n": value["n"]}

    try:
        async with (
            Client.connect(f"127.0.0.1:{first_port}") as first,
            Client.connect(f"127.0.0.1:{second_port}") as second,
        ):
            await worker_agent(first, "hold")
            workflow = await first.workflows.create(
                baton.Workflow(
                    steps=[baton.Step(id="h", agent="hold", input_mapping={"n": "${input.n}"})]
                )
            )
            worker = asyncio.create_task(
                baton.Worker(second, {"agents/hold": hold}, max_concurrent_tasks=1).run()
            )
            try:
                await asyncio.sleep(1.5)  # both replicas have read each other's rows
                # Each replica runs those started through it while it is the least busy.
                started = [
                    await (first if i % 2 else second).executions.start(workflow.name, {"n": i})
                    for i in range(6)
                ]
                done = [await first.executions.wait(e.name, timeout=30) for e in started]
            finally:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
    finally:
        stop_processes(processes)
    assert [d.state for d in done] == [Execution.STATE_SUCCEEDED] * 6, [d.error for d in done]
    assert [d.steps[0].output["n"] for d in done] == list(range(6))
    assert sorted(served) == sorted(d.name for d in done)
    assert most == 1
    owners = dict(
        sqlite3.connect(tmp_path / "baton.db")
        .execute("SELECT owner, count(*) FROM executions GROUP BY owner")
        .fetchall()
    )
    assert len(owners) == 2, owners  # both replicas ran some


@pytest.mark.timeout(90)
async def test_a_worker_answer_may_reach_any_replica(tmp_path: Path) -> None:
    """Three replicas: the first runs the execution, the second hosts the worker's stream,
    and the worker answers through the third. The task token says whose the task is, so
    the answer reaches the first; a heartbeat through the third keeps the lease."""
    common = {"BATON_STREAM_POLL": "0.2"}
    started_processes = [
        await start_process(tmp_path / "baton.db", extra_env=common) for _ in range(3)
    ]
    processes = [process for process, _ in started_processes]
    ports = [port for _, port in started_processes]
    await asyncio.sleep(1.2)  # each has read the others' rows
    try:
        async with (
            Client.connect(f"127.0.0.1:{ports[0]}") as first,
            Client.connect(f"127.0.0.1:{ports[1]}") as second,
            Client.connect(f"127.0.0.1:{ports[2]}") as third,
        ):
            runtime = baton.WorkerRuntime()
            runtime.heartbeat_timeout.FromSeconds(1)
            await first.agents.create(baton.Agent(worker=runtime), agent_id="far")
            workflow = await first.workflows.create(
                baton.Workflow(steps=[baton.Step(id="f", agent="far")])
            )
            hosting = worker_pb2_grpc.WorkerServiceStub(second._channel)
            answering = worker_pb2_grpc.WorkerServiceStub(third._channel)
            poll = hosting.PollTasks(
                worker_pb2.PollTasksRequest(agents=["agents/far"], identity="far-worker")
            )
            started = await first.executions.start(workflow.name, {"x": 1})
            task = await asyncio.wait_for(poll.read(), 10)
            assert task.execution == started.name and task.attempt == 1
            for _ in range(3):  # 1.5 s of work, past the heartbeat timeout
                await asyncio.sleep(0.5)
                beat = await answering.HeartbeatTask(
                    worker_pb2.HeartbeatTaskRequest(task_token=task.task_token)
                )
                assert not beat.cancel_requested
            output = struct_pb2.Struct()
            output.update({"answered": "through the third"})
            completed = await answering.CompleteTask(
                worker_pb2.CompleteTaskRequest(task_token=task.task_token, output=output)
            )
            assert completed.accepted
            again = await answering.CompleteTask(
                worker_pb2.CompleteTaskRequest(task_token=task.task_token, output=output)
            )
            assert not again.accepted  # the lease has ended
            done = await second.executions.wait(started.name, timeout=20)
            poll.cancel()
    finally:
        stop_processes(processes)
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    assert done.steps[0].output == {"answered": "through the third"}
    assert [a.attempt for a in done.steps[0].attempts] == [1]


@pytest.mark.timeout(90)
async def test_a_queued_execution_no_replica_holds_is_claimed_by_the_one_acting_on_it(
    tmp_path: Path,
) -> None:
    """With no room anywhere (one execution at a time on each replica), a new execution is
    stored for any replica to claim. A cancel or a signal for it is carried out by the
    replica that receives the call, which claims it; the signalled one runs there once it
    has room, and takes the signal."""
    processes, first_port, second_port = await two_servers(
        tmp_path, None, BATON_MAX_RUNNING="1", BATON_STREAM_POLL="0.2"
    )
    try:
        async with (
            Client.connect(f"127.0.0.1:{first_port}") as first,
            Client.connect(f"127.0.0.1:{second_port}") as second,
        ):
            await first.agents.create(
                baton.Agent(python=baton.PythonRuntime(entry_point="test_agents_lib:slow")),
                agent_id="slow",
            )
            sleeper = await first.workflows.create(
                baton.Workflow(
                    steps=[baton.Step(id="nap", agent="slow", input_mapping={"seconds": 60})]
                )
            )
            waiter = await first.workflows.create(
                baton.Workflow(steps=[baton.Step(id="w", wait_for=baton.WaitFor(signal="go"))])
            )
            busy = [
                await first.executions.start(sleeper.name, {}),
                await second.executions.start(sleeper.name, {}),
            ]
            cancelled = await first.executions.start(waiter.name, {})
            signalled = await first.executions.start(waiter.name, {})
            await asyncio.sleep(0.5)  # neither replica has room to claim them
            for queued in (cancelled, signalled):
                assert (await second.executions.get(queued.name)).state == (Execution.STATE_QUEUED)
            gone = await second.executions.cancel(cancelled.name, reason="not needed")
            assert gone.state == Execution.STATE_CANCELLED
            await second.executions.signal(signalled.name, "go", {"n": 7})
            await second.executions.cancel(busy[1].name)  # room on the second
            done = await first.executions.wait(signalled.name, timeout=20)
            for execution in busy:
                with contextlib.suppress(baton.FailedPreconditionError):
                    await first.executions.cancel(execution.name)
        ran_at = (
            sqlite3.connect(tmp_path / "baton.db")
            .execute(
                "SELECT r.pid FROM executions e JOIN replicas r ON r.id = e.owner WHERE e.id = ?",
                (signalled.name.split("/")[1],),
            )
            .fetchall()
        )
    finally:
        stop_processes(processes)
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    assert done.steps[0].output == {"n": 7}
    assert ran_at == [(processes[1].pid,)]


@pytest.mark.timeout(90)
async def test_a_task_that_waits_for_a_busy_local_worker_goes_to_an_idle_one_elsewhere(
    tmp_path: Path,
) -> None:
    """Two steps at once for workers with room for one task each, one worker on each
    replica: the step the busy local worker cannot take yet is offered, after a moment,
    to the idle worker on the other replica."""
    processes, first_port, second_port = await two_servers(tmp_path, None)

    def working(name: str) -> Any:
        async def work(value: dict[str, Any], ctx: baton.StepContext) -> dict[str, Any]:
            await asyncio.sleep(2.0)
            return {"by": name}

        return work

    try:
        async with (
            Client.connect(f"127.0.0.1:{first_port}") as first,
            Client.connect(f"127.0.0.1:{second_port}") as second,
        ):
            await worker_agent(first, "job")
            workflow = await first.workflows.create(
                baton.Workflow(steps=[baton.Step(id=s, agent="job") for s in ("a", "b")])
            )
            workers = [
                asyncio.create_task(
                    baton.Worker(
                        client, {"agents/job": working(name)}, max_concurrent_tasks=1
                    ).run()
                )
                for client, name in ((first, "near"), (second, "far"))
            ]
            try:
                await asyncio.sleep(0.5)  # both workers are connected
                begun = time.monotonic()
                started = await first.executions.start(workflow.name, {})  # runs on the first
                done = await first.executions.wait(started.name, timeout=30)
                took = time.monotonic() - begun
            finally:
                for worker in workers:
                    worker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker
    finally:
        stop_processes(processes)
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    assert sorted(run.output["by"] for run in done.steps) == ["far", "near"]
    assert took < 3.5, took  # side by side, not one after the other (4 s)
