"""The server as operators see it: health, reflection, unimplemented RPCs, limits, logs, and
SIGTERM on a real `python -m baton_server` process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from conftest import python_agent, start_process, stop_processes
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import baton
from baton import Agent, Client, WorkerRuntime
from baton.v1 import worker_pb2, worker_pb2_grpc
from baton_server.app import Baton

BATON_SERVICES = {
    "baton.v1.AgentService",
    "baton.v1.WorkflowService",
    "baton.v1.ExecutionService",
    "baton.v1.HandoffService",
    "baton.v1.ScheduleService",
    "baton.v1.ToolService",
    "baton.v1.WorkerService",
    "baton.v1.MonitoringService",
}


async def test_health_reports_serving_overall_and_per_service(server: Baton) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ["", *sorted(BATON_SERVICES)]:
            response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
            assert response.status == health_pb2.HealthCheckResponse.SERVING, service
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Check(health_pb2.HealthCheckRequest(service="baton.v1.Nope"))
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_the_eight_services(server: Baton) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        async for response in stub.ServerReflectionInfo(requests()):
            names = {s.name for s in response.list_services_response.service}
            break
    assert names >= BATON_SERVICES | {"grpc.health.v1.Health"}
    assert {n for n in names if n.startswith("baton.v1.")} == BATON_SERVICES


async def test_oversized_requests_are_refused(start_server: object) -> None:
    server = await start_server(max_message_bytes=64 * 1024)  # type: ignore[operator]
    async with Client.connect(f"127.0.0.1:{server.port}") as client:
        config = struct_pb2.Struct()
        config.update({"blob": "x" * 100_000})
        with pytest.raises(baton.ResourceExhaustedError):
            await client.agents.create(python_agent(config=config), agent_id="big")
        assert [a async for a in client.agents.list()] == []
        # A definition must fit four times in a message, so that Get and List can send it.
        config.update({"blob": "z" * 20_000})
        with pytest.raises(baton.InvalidArgumentError) as refused:
            await client.agents.create(python_agent(config=config), agent_id="big")
        assert (refused.value.reason, refused.value.field) == ("RESOURCE_TOO_LARGE", "agent")
        # Just under that is fine, and is stored compressed.
        config.update({"blob": "y" * 16_000})
        created = await client.agents.create(python_agent(config=config), agent_id="fits")
        assert (await client.agents.get("fits")).config == created.config


@pytest.mark.sqlite_only
async def test_sigterm_stops_serving_drains_and_exits_zero(tmp_path: Path) -> None:
    processes: list[subprocess.Popen[str]] = []
    try:
        process, port = await start_process(
            tmp_path / "baton.db", extra_env={"BATON_SHUTDOWN_GRACE": "5"}
        )
        processes.append(process)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
            first = await watch.read()
            assert first.status == health_pb2.HealthCheckResponse.SERVING

            client = Client(channel, timeout=10)
            calls = [
                asyncio.ensure_future(client.agents.create(python_agent(), agent_id=f"a{i}"))
                for i in range(200)
            ]
            await asyncio.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            after = await watch.read()
            assert after.status == health_pb2.HealthCheckResponse.NOT_SERVING
            results = await asyncio.gather(*calls, return_exceptions=True)
        assert await asyncio.to_thread(process.wait, 15) == 0
        acknowledged = {r.name for r in results if isinstance(r, baton.Agent)}
        failures = [r for r in results if not isinstance(r, baton.Agent)]
        assert acknowledged, "some calls finished before the shutdown"
        # Calls refused during shutdown were retried by the client, then found no server.
        assert all(isinstance(f, baton.UnavailableError) for f in failures), failures

        # Every acknowledged create survived the shutdown.
        process, port = await start_process(
            tmp_path / "baton.db", extra_env={"BATON_SHUTDOWN_GRACE": "5"}
        )
        processes.append(process)
        async with Client.connect(f"127.0.0.1:{port}") as again:
            stored = {a.name async for a in again.agents.list()}
        assert acknowledged <= stored
    finally:
        stop_processes(processes)


@pytest.mark.sqlite_only
async def test_a_second_server_on_a_taken_port_refuses_to_start(tmp_path: Path) -> None:
    processes: list[subprocess.Popen[str]] = []
    try:
        process, port = await start_process(tmp_path / "first.db")
        processes.append(process)
        second = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "baton_server", "--listen", f"127.0.0.1:{port}"],
            env={**os.environ, "BATON_DATABASE": str(tmp_path / "second.db")},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
        assert "another server" in second.stderr
        # The first one alone answers on the port.
        async with Client.connect(f"127.0.0.1:{port}") as client:
            await client.agents.create(python_agent(), agent_id="only-here")
            assert [a.name async for a in client.agents.list()] == ["agents/only-here"]
    finally:
        stop_processes(processes)


@pytest.mark.sqlite_only
async def test_an_idle_server_with_a_connected_worker_stops_at_once(tmp_path: Path) -> None:
    processes: list[subprocess.Popen[str]] = []
    try:
        process, port = await start_process(
            tmp_path / "baton.db", extra_env={"BATON_SHUTDOWN_GRACE": "10"}
        )
        processes.append(process)
        async with Client.connect(f"127.0.0.1:{port}") as client:
            await client.agents.create(Agent(worker=WorkerRuntime()), agent_id="remote")
            stub = worker_pb2_grpc.WorkerServiceStub(client._channel)
            poll = stub.PollTasks(
                worker_pb2.PollTasksRequest(agents=["agents/remote"], identity="idle-worker")
            )
            await asyncio.sleep(0.5)  # the stream is open and waiting for tasks
            begun = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(process.wait, 15) == 0
            stopped_in = time.monotonic() - begun
            # The worker's stream ended cleanly: it may reconnect elsewhere.
            assert await poll.read() is grpc.aio.EOF
        assert stopped_in < 3.0, f"an idle server took {stopped_in:.1f}s to stop"
    finally:
        stop_processes(processes)
