"""AIP behaviour over real gRPC: cursor pages, page tokens, request_id idempotency."""

from __future__ import annotations

import asyncio
import base64

import pytest
from conftest import python_agent

import baton
from baton import Agent, Client, Step, Workflow
from baton.v1 import agent_pb2, agent_pb2_grpc, workflow_pb2


async def test_paging_through_1000_agents(client: Client) -> None:
    created = await asyncio.gather(
        *(
            client.agents.create(
                python_agent(f"agent {i}", capabilities=["even" if i % 2 == 0 else "odd"]),
                agent_id=f"a{i:04d}",
            )
            for i in range(1000)
        )
    )
    expected = {a.name for a in created}

    seen = [a.name async for a in client.agents.list(page_size=7)]
    assert len(seen) == 1000
    assert set(seen) == expected  # none missing, none twice

    evens = [a.name async for a in client.agents.list(capabilities=["even"], page_size=13)]
    assert len(evens) == len(set(evens)) == 500
    assert all(int(name[-4:]) % 2 == 0 for name in evens)


async def test_page_size_limits_and_tokens(client: Client, server: object) -> None:
    for i in range(5):
        await client.agents.create(python_agent(), agent_id=f"p{i}")
    stub = agent_pb2_grpc.AgentServiceStub(client._channel)

    first = await stub.ListAgents(agent_pb2.ListAgentsRequest(page_size=2))
    assert [a.name for a in first.agents] == ["agents/p0", "agents/p1"]
    assert first.next_page_token
    second = await stub.ListAgents(
        agent_pb2.ListAgentsRequest(page_size=2, page_token=first.next_page_token)
    )
    assert [a.name for a in second.agents] == ["agents/p2", "agents/p3"]
    # Inserting while paging moves nothing: new rows come after the cursor.
    await client.agents.create(python_agent(), agent_id="p5")
    third = await stub.ListAgents(
        agent_pb2.ListAgentsRequest(page_size=2, page_token=second.next_page_token)
    )
    assert [a.name for a in third.agents] == ["agents/p4", "agents/p5"]
    assert third.next_page_token == ""

    whole = await stub.ListAgents(agent_pb2.ListAgentsRequest(page_size=5000))
    assert len(whole.agents) == 6 and whole.next_page_token == ""

    async def refused(request: agent_pb2.ListAgentsRequest) -> baton.BatonError:
        with pytest.raises(baton.InvalidArgumentError) as caught:
            await client._call(stub.ListAgents, request)
        return caught.value

    error = await refused(agent_pb2.ListAgentsRequest(page_size=-1))
    assert error.field == "page_size"

    # A token altered by one byte is refused.
    raw = bytearray(base64.urlsafe_b64decode(first.next_page_token + "=="))
    raw[-3] ^= 0x01
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    error = await refused(agent_pb2.ListAgentsRequest(page_size=2, page_token=tampered))
    assert (error.field, error.reason) == ("page_token", "INVALID_PAGE_TOKEN")
    error = await refused(agent_pb2.ListAgentsRequest(page_token="not-a-token"))
    assert error.reason == "INVALID_PAGE_TOKEN"

    # A token reused with other filters is refused.
    error = await refused(
        agent_pb2.ListAgentsRequest(
            page_size=2, page_token=first.next_page_token, state=Agent.STATE_ACTIVE
        )
    )
    assert error.reason == "INVALID_PAGE_TOKEN"
    assert "filters" in error.message
    # ... and so is a token from another list method.
    with pytest.raises(baton.InvalidArgumentError) as caught:
        await client._call(
            client.workflows._stub.ListWorkflows,
            workflow_pb2.ListWorkflowsRequest(page_token=first.next_page_token),
        )
    assert caught.value.reason == "INVALID_PAGE_TOKEN"


async def test_request_id_makes_create_idempotent(client: Client) -> None:
    first = await client.agents.create(python_agent(), request_id="req-1")
    again = await client.agents.create(python_agent(), request_id="req-1")
    assert again == first  # the first answer, generated id included
    assert [a.name async for a in client.agents.list()] == [first.name]

    # Concurrent repeats still create one resource.
    results = await asyncio.gather(
        *(client.agents.create(python_agent("racer"), request_id="req-2") for _ in range(10))
    )
    assert len({r.name for r in results}) == 1
    assert len([a async for a in client.agents.list()]) == 2

    with pytest.raises(baton.InvalidArgumentError) as caught:
        await client.agents.create(python_agent("different"), request_id="req-1")
    assert (caught.value.field, caught.value.reason) == ("request_id", "REQUEST_ID_REUSED")


async def test_request_id_on_update_and_delete(client: Client) -> None:
    await client.agents.create(python_agent(), agent_id="target")
    await client.workflows.create(Workflow(steps=[Step(id="s", agent="target")]), workflow_id="w")
    patch = Workflow(name="workflows/w", display_name="renamed")
    first = await client.workflows.update(patch, update_mask=["display_name"], request_id="u-1")
    again = await client.workflows.update(patch, update_mask=["display_name"], request_id="u-1")
    assert first == again
    assert (await client.workflows.get("w")).revision == 2  # one update, not two

    await client.workflows.delete("w", request_id="d-1")
    await client.workflows.delete("w", request_id="d-1")  # a repeat answers as the first did
    with pytest.raises(baton.NotFoundError):
        await client.workflows.delete("w", request_id="d-2")


async def test_failed_requests_are_not_remembered(client: Client) -> None:
    workflow = Workflow(steps=[Step(id="s", agent="agents/later")])
    with pytest.raises(baton.InvalidArgumentError) as caught:
        await client.workflows.create(workflow, workflow_id="w", request_id="r")
    assert caught.value.reason == "UNKNOWN_AGENT"
    await client.agents.create(python_agent(), agent_id="later")
    # The same request with the same id is evaluated again, not answered from memory.
    created = await client.workflows.create(workflow, workflow_id="w", request_id="r")
    assert created.name == "workflows/w"
