"""ToolService over real gRPC: tools of every kind, unique names, validation, and agents that
name tools (which must exist, and cannot be deleted while named)."""

from __future__ import annotations

import pytest
from google.protobuf import duration_pb2

import baton
from baton import Agent, Client, HttpTool, PythonRuntime, Step, Tool, WorkerRuntime, Workflow

SCHEMA = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}


async def test_tools_of_every_kind_and_the_agents_that_name_them(client: Client) -> None:
    echo = PythonRuntime(entry_point="baton_server.agents.builtin:echo")
    await client.agents.create(Agent(python=echo), agent_id="helper")
    await client.workflows.create(
        Workflow(steps=[Step(id="a", agent="helper")]), workflow_id="flow"
    )
    created = await client.tools.create(
        Tool(
            description="Searches the docs",
            parameters=SCHEMA,  # type: ignore[arg-type]
            python=echo,
            timeout=duration_pb2.Duration(seconds=5),
            retry_policy=baton.RetryPolicy(max_attempts=2),
        ),
        tool_id="search",
    )
    assert created.name == "tools/search" and created.parameters["required"] == ["query"]
    assert created.retry_policy.max_attempts == 2 and created.etag
    kinds = {
        "remote": Tool(worker=WorkerRuntime()),
        "fetch": Tool(http=HttpTool(url="https://example.com/api", headers={"x-a": "1"})),
        "ask-helper": Tool(agent="helper"),
        "run-flow": Tool(workflow="workflows/flow"),
    }
    for tool_id, tool in kinds.items():
        await client.tools.create(tool, tool_id=tool_id)
    with pytest.raises(baton.FailedPreconditionError) as agent_in_use:
        await client.agents.delete("helper")
    assert agent_in_use.value.reason == "AGENT_IN_USE" and "tools/ask-helper" in str(
        agent_in_use.value
    )
    with pytest.raises(baton.FailedPreconditionError) as workflow_in_use:
        await client.workflows.delete("flow")
    assert "tools/run-flow" in str(workflow_in_use.value)
    fetch = await client.tools.get("fetch")
    assert fetch.http.method == "POST" and fetch.http.headers["x-a"] == "1"
    assert (await client.tools.get("ask-helper")).agent == "agents/helper"
    listed = [t.name async for t in client.tools.list()]
    assert listed == ["tools/search", *(f"tools/{k}" for k in kinds)]
    with pytest.raises(baton.AlreadyExistsError):  # tool names are unique
        await client.tools.create(Tool(python=echo), tool_id="search")

    updated = await client.tools.update(
        Tool(name="tools/search", description="Searches everything"), update_mask=["description"]
    )
    assert updated.description == "Searches everything" and updated.python.entry_point

    agent = await client.agents.create(
        Agent(python=echo, tools=["search", "tools/fetch"]), agent_id="researcher"
    )
    assert list(agent.tools) == ["search", "fetch"]
    with pytest.raises(baton.InvalidArgumentError) as unknown:
        await client.agents.create(Agent(python=echo, tools=["nope"]), agent_id="lost")
    assert "agent.tools[0]" in str(unknown.value) and unknown.value.reason == "UNKNOWN_TOOL"
    with pytest.raises(baton.FailedPreconditionError) as in_use:
        await client.tools.delete("search")
    assert in_use.value.reason == "TOOL_IN_USE" and "agents/researcher" in str(in_use.value)
    await client.agents.update(Agent(name=agent.name, tools=["fetch"]), update_mask=["tools"])
    await client.tools.delete("search")  # no agent names it any more
    with pytest.raises(baton.NotFoundError) as gone:
        await client.tools.get("search")
    assert gone.value.reason == "TOOL_NOT_FOUND"


async def test_bad_tools_are_refused_naming_the_field(client: Client) -> None:
    echo = PythonRuntime(entry_point="baton_server.agents.builtin:echo")
    bad: list[tuple[Tool, str]] = [
        (Tool(), "tool.implementation"),
        (Tool(python=PythonRuntime(entry_point="os:system")), "tool.python.entry_point"),
        (Tool(python=echo, parameters={"type": "array"}), "tool.parameters.type"),  # type: ignore[arg-type]
        (Tool(http=HttpTool(url="ftp://x")), "tool.http.url"),
        (Tool(http=HttpTool(url="https://x.test", method="TRACE")), "tool.http.method"),
        (Tool(agent="nobody"), "tool.agent"),
        (Tool(workflow="workflows/none"), "tool.workflow"),
    ]
    for tool, field in bad:
        with pytest.raises(baton.InvalidArgumentError) as refused:
            await client.tools.create(tool)
        assert field in str(refused.value), (field, refused.value)
