"""Clients other than the async one: `baton.SyncClient`, and the plain generated sync stubs
through pytest-grpc's `grpc_channel`/`grpc_stub` fixtures pointed at the real server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from conftest import AGENT_MODULES, python_agent
from google.protobuf import field_mask_pb2
from grpc_status import rpc_status

import baton
from baton import Agent, Step, SyncClient, Workflow
from baton.v1 import agent_pb2, agent_pb2_grpc
from baton_server.app import Baton, create_server
from baton_server.config import Settings


class ThreadedServer:
    """The real server on its own event loop in a thread, for synchronous callers."""

    def __init__(self, database: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        settings = replace(
            Settings(),
            listen="127.0.0.1:0",
            database=str(database),
            sqlite_synchronous="NORMAL",
            python_agent_modules=AGENT_MODULES,
        )
        self.baton: Baton = asyncio.run_coroutine_threadsafe(
            create_server(settings), self.loop
        ).result()
        self.address = f"127.0.0.1:{self.baton.port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.baton.stop(0), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture(scope="module")
def threaded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    server = ThreadedServer(tmp_path_factory.mktemp("sync") / "baton.db")
    yield server
    server.stop()


# pytest-grpc's fixtures, pointed at our real server instead of a servicer it would host.
@pytest.fixture(scope="module")
def grpc_addr(threaded_server: ThreadedServer) -> str:
    return threaded_server.address


@pytest.fixture(scope="module")
def grpc_server(threaded_server: ThreadedServer) -> ThreadedServer:
    return threaded_server


@pytest.fixture(scope="module")
def grpc_stub_cls() -> type[agent_pb2_grpc.AgentServiceStub]:
    return agent_pb2_grpc.AgentServiceStub


def test_plain_generated_stub_via_pytest_grpc(grpc_stub: agent_pb2_grpc.AgentServiceStub) -> None:
    created = grpc_stub.CreateAgent(
        agent_pb2.CreateAgentRequest(agent=python_agent("plain"), agent_id="plain-stub")
    )
    assert created.name == "agents/plain-stub"
    got = grpc_stub.GetAgent(agent_pb2.GetAgentRequest(name="agents/plain-stub"))
    assert got == created
    updated = grpc_stub.UpdateAgent(
        agent_pb2.UpdateAgentRequest(
            agent=Agent(name=created.name, description="via plain stubs"),
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
        )
    )
    assert updated.description == "via plain stubs"

    with pytest.raises(grpc.RpcError) as caught:
        grpc_stub.GetAgent(agent_pb2.GetAgentRequest(name="agents/absent"))
    error = caught.value
    assert error.code() is grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None and status.details  # ErrorInfo travels in the status details

    grpc_stub.DeleteAgent(agent_pb2.DeleteAgentRequest(name=created.name))


def test_sync_client(threaded_server: ThreadedServer) -> None:
    with SyncClient.connect(threaded_server.address, timeout=10) as client:
        for i in range(12):
            client.agents.create(
                python_agent(f"sync {i}", capabilities=["sync"]), agent_id=f"sync-{i}"
            )
        names = [a.name for a in client.agents.list(capabilities=["sync"], page_size=5)]
        assert names == [f"agents/sync-{i}" for i in range(12)]

        workflow = client.workflows.create(
            Workflow(steps=[Step(id="s", agent="sync-0")]), workflow_id="sync-wf"
        )
        assert client.workflows.validate(workflow).topological_order == ["s"]
        renamed = client.workflows.update(
            Workflow(name=workflow.name, display_name="renamed"), update_mask=["display_name"]
        )
        assert client.workflows.get(workflow.name, revision=1).revision == 1
        assert renamed.revision == 2
        handoff = client.handoffs.create(
            baton.Handoff(
                source_agent="sync-0", target_agent="sync-1", type=baton.Handoff.TYPE_ON_FAILURE
            )
        )
        assert [h.name for h in client.handoffs.list(target_agent="sync-1")] == [handoff.name]
        client.handoffs.delete(handoff.name)
        client.workflows.delete(workflow.name)
        with pytest.raises(baton.NotFoundError) as caught:
            client.workflows.get(workflow.name)
        assert caught.value.reason == "WORKFLOW_NOT_FOUND"
        assert client.system_health().version
