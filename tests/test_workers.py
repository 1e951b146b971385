"""Remote workers over real gRPC, in real worker processes: sharing, leases, cancellation,
late answers, schedule timeouts."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
from conftest import eventually, file_has, python_agent
from google.protobuf import duration_pb2

import baton
from baton import Agent, Client, EventType, Execution, RetryPolicy, Step, WorkerRuntime, Workflow
from baton.v1 import worker_pb2, worker_pb2_grpc
from baton_server.app import Baton

TESTS = Path(__file__).resolve().parent


def seconds(value: float) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromNanoseconds(round(value * 1e9))
    return message


def fast_retries(attempts: int = 3) -> RetryPolicy:
    return RetryPolicy(max_attempts=attempts, initial_interval=seconds(0.05))


async def worker_agent(client: Client, agent_id: str, **runtime: float) -> None:
    await client.agents.create(
        Agent(worker=WorkerRuntime(**{k: seconds(v) for k, v in runtime.items()})),
        agent_id=agent_id,
    )


@pytest.fixture
async def spawn_worker(server: Baton) -> AsyncIterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def spawn(*agents: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, str(TESTS / "worker_process.py"), f"127.0.0.1:{server.port}", *agents],
            env={**os.environ, "PYTHONPATH": str(TESTS)},
        )
        started.append(process)
        return process

    yield spawn
    for process in started:
        process.kill()
        process.wait()


async def connected(server: Baton, count: int) -> None:
    deadline = time.monotonic() + 15
    while server.executions and server.runtimes.broker.connected_workers < count:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "workers did not connect"
        await asyncio.sleep(0.05)


async def test_two_python_workers_share_a_workflow(
    server: Baton, client: Client, spawn_worker: Callable[..., subprocess.Popen[bytes]]
) -> None:
    await worker_agent(client, "shout")
    workflow = await client.workflows.create(
        Workflow(
            steps=[
                Step(id=f"s{i}", agent="shout", input_mapping={"text": f"part {i}"})
                for i in range(8)
            ]
        )
    )
    first, second = spawn_worker("shout"), spawn_worker("shout")
    await connected(server, 2)
    assert (await client.system_health()).connected_workers == 2
    done = await client.executions.wait(
        (await client.executions.start(workflow.name, {})).name, timeout=30
    )
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    assert [s.output["text"] for s in done.steps] == [f"PART {i}" for i in range(8)]
    pids = {int(s.output["pid"]) for s in done.steps}
    assert pids <= {first.pid, second.pid}
    logs = [
        e async for e in client.executions.events(done.name, event_types=[EventType.EVENT_TYPE_LOG])
    ]
    assert len(logs) == 8 and logs[0].log.message == "shouting"  # sent with heartbeats


async def two_workers_one_task(
    server: Baton,
    client: Client,
    spawn_worker: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> tuple[Execution, subprocess.Popen[bytes]]:
    """Two workers serve `marked` (2 s leases); starts a one-step execution and returns it
    with the worker process that took its first attempt."""
    await worker_agent(client, "marked", heartbeat_timeout=2.0)
    workflow = await client.workflows.create(
        Workflow(steps=[Step(id="work", agent="marked", retry_policy=fast_retries())])
    )
    workers = {p.pid: p for p in (spawn_worker("marked"), spawn_worker("marked"))}
    await connected(server, 2)
    marker = tmp_path / "marker"
    execution = await client.executions.start(
        workflow.name, {"marker": str(marker), "seconds": 1.0}
    )
    await eventually(lambda: file_has(marker, "\n"), within=10)
    return execution, workers[int(marker.read_text().split()[0])]


async def test_killed_worker_task_moves_to_the_other_worker(
    server: Baton,
    client: Client,
    spawn_worker: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    execution, first = await two_workers_one_task(server, client, spawn_worker, tmp_path)
    first.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    done = await client.executions.wait(execution.name, timeout=30)
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    run = done.steps[0]
    assert run.attempt == 2
    assert int(run.output["pid"]) != first.pid
    assert run.attempts[0].error.type in ("WORKER_LOST", "HEARTBEAT_TIMEOUT")
    assert time.monotonic() - killed_at < 2.0 + 1.0 + 1.5  # within the heartbeat timeout


async def test_retries_skip_a_frozen_worker(
    server: Baton,
    client: Client,
    spawn_worker: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    """A frozen worker (SIGSTOP) keeps its stream open but sends no heartbeat: once its lease
    runs out it gets no new task, and the retry goes to the healthy worker."""
    execution, frozen = await two_workers_one_task(server, client, spawn_worker, tmp_path)
    frozen.send_signal(signal.SIGSTOP)
    try:
        done = await client.executions.wait(execution.name, timeout=30)
        assert server.runtimes.broker is not None
        assert server.runtimes.broker.connected_workers == 2  # the frozen stream is still open
    finally:
        frozen.send_signal(signal.SIGCONT)
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    run = done.steps[0]
    assert run.attempts[0].error.type == "HEARTBEAT_TIMEOUT"
    assert run.attempt == 2 and int(run.output["pid"]) != frozen.pid


async def test_cancel_reaches_a_heartbeating_worker(
    server: Baton,
    client: Client,
    spawn_worker: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    await worker_agent(client, "marked", heartbeat_timeout=0.6)
    workflow = await client.workflows.create(Workflow(steps=[Step(id="work", agent="marked")]))
    spawn_worker("marked")
    await connected(server, 1)
    marker = tmp_path / "marker"
    execution = await client.executions.start(workflow.name, {"marker": str(marker), "seconds": 60})
    await eventually(lambda: file_has(marker, ""))
    await client.executions.cancel(execution.name)
    await eventually(lambda: file_has(marker, "cancelled"))  # the worker was told


async def test_late_answer_after_the_lease_ended_changes_nothing(
    server: Baton, client: Client
) -> None:
    await worker_agent(client, "manual", heartbeat_timeout=0.5)
    workflow = await client.workflows.create(
        Workflow(steps=[Step(id="work", agent="manual", retry_policy=fast_retries())])
    )
    stub = worker_pb2_grpc.WorkerServiceStub(client._channel)
    poll = stub.PollTasks(
        worker_pb2.PollTasksRequest(
            agents=["agents/manual"], identity="slow-worker", max_concurrent_tasks=2
        )
    )
    execution = await client.executions.start(workflow.name, {"n": 1})
    first = await poll.read()
    assert first.attempt == 1 and first.idempotency_key.endswith("/work/1")
    assert first.input["n"] == 1
    # No heartbeat: after 0.5 s the lease is gone. Attempt 2 waits: this worker gets no new
    # task until it is heard from again.
    reading = asyncio.ensure_future(poll.read())
    await asyncio.sleep(1.5)
    assert not reading.done()
    late = await stub.CompleteTask(
        worker_pb2.CompleteTaskRequest(task_token=first.task_token, output={"from": "late"})
    )
    assert not late.accepted
    second = await asyncio.wait_for(reading, 10)  # it answered: alive again
    assert second.attempt == 2 and second.task_token != first.task_token
    beat = await stub.HeartbeatTask(worker_pb2.HeartbeatTaskRequest(task_token=first.task_token))
    assert beat.cancel_requested
    on_time = await stub.CompleteTask(
        worker_pb2.CompleteTaskRequest(task_token=second.task_token, output={"from": "second"})
    )
    assert on_time.accepted
    poll.cancel()
    done = await client.executions.wait(execution.name, timeout=10)
    assert done.state == Execution.STATE_SUCCEEDED
    assert dict(done.steps[0].output) == {"from": "second"}
    assert done.steps[0].attempts[0].error.type == "HEARTBEAT_TIMEOUT"
    messages = [
        e.log.message
        async for e in client.executions.events(done.name, event_types=[EventType.EVENT_TYPE_LOG])
    ]
    assert any("late CompleteTask" in m for m in messages)


async def test_no_worker_means_a_schedule_timeout(client: Client) -> None:
    await worker_agent(client, "nobody", schedule_timeout=0.2)
    workflow = await client.workflows.create(
        Workflow(steps=[Step(id="work", agent="nobody", retry_policy=fast_retries(2))])
    )
    done = await client.executions.wait(
        (await client.executions.start(workflow.name, {})).name, timeout=10
    )
    assert done.state == Execution.STATE_FAILED
    assert [a.error.type for a in done.steps[0].attempts] == ["SCHEDULE_TIMEOUT"] * 2


async def test_worker_rpcs_refuse_bad_input(client: Client) -> None:
    stub = worker_pb2_grpc.WorkerServiceStub(client._channel)
    with pytest.raises(baton.InvalidArgumentError) as caught:
        await client._call(stub.CompleteTask, worker_pb2.CompleteTaskRequest())
    assert caught.value.field == "task_token"
    unknown = await stub.FailTask(worker_pb2.FailTaskRequest(task_token="nope"))
    assert not unknown.accepted
    poll = stub.PollTasks(worker_pb2.PollTasksRequest())
    with pytest.raises(Exception) as raw:
        await poll.read()
    assert "agents" in str(raw.value)
    await client.agents.create(python_agent(), agent_id="local")
    await client.tools.create(
        baton.Tool(python=baton.PythonRuntime(entry_point="baton_server.agents:echo")),
        tool_id="local-tool",
    )
    for request, code, field in (
        (worker_pb2.PollTasksRequest(agents=["agents/ghost"]), grpc.StatusCode.NOT_FOUND, ""),
        (
            worker_pb2.PollTasksRequest(agents=["agents/local"]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "agents[0]",
        ),
        (worker_pb2.PollTasksRequest(tools=["tools/ghost"]), grpc.StatusCode.NOT_FOUND, ""),
        (
            worker_pb2.PollTasksRequest(tools=["tools/local-tool"]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "tools[0]",
        ),
        (
            worker_pb2.PollTasksRequest(tools=["tools/Not A Tool"]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "tools[0]",
        ),
        (
            worker_pb2.PollTasksRequest(tools=["tools/x"] * 101),
            grpc.StatusCode.INVALID_ARGUMENT,
            "tools",
        ),
    ):
        poll = stub.PollTasks(request)
        with pytest.raises(grpc.aio.AioRpcError) as raw:
            await poll.read()
        assert raw.value.code() is code, request
        assert field in (raw.value.details() or ""), (field, raw.value.details())


async def test_max_concurrency_holds_across_workers(
    server: Baton, client: Client, spawn_worker: Callable[..., subprocess.Popen[bytes]]
) -> None:
    await client.agents.create(Agent(worker=WorkerRuntime(), max_concurrency=1), agent_id="slow")
    workflow = await client.workflows.create(
        Workflow(
            steps=[Step(id=f"s{i}", agent="slow", input_mapping={"seconds": 0.2}) for i in range(3)]
        )
    )
    spawn_worker("slow")
    spawn_worker("slow")
    await connected(server, 2)
    done = await client.executions.wait(
        (await client.executions.start(workflow.name, {})).name, timeout=30
    )
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    spans = sorted(
        (s.attempts[0].start_time.ToNanoseconds(), s.attempts[0].end_time.ToNanoseconds())
        for s in done.steps
    )
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))
