"""AgentService over real gRPC: CRUD, filters, update masks, etags and bad input."""

from __future__ import annotations

import grpc
import pytest
from conftest import python_agent
from google.protobuf import duration_pb2, struct_pb2

import baton
from baton import Agent, Client, OpenAIRuntime, PythonRuntime, Step, WorkerRuntime, Workflow


async def test_create_get_list_update_delete(client: Client) -> None:
    await client.tools.create(
        baton.Tool(python=PythonRuntime(entry_point="baton_server.agents.builtin:echo")),
        tool_id="tool-structure-generator",
    )
    config = struct_pb2.Struct()
    config.update({"model": "gpt-4o", "instructions": "Design the project", "depth": 3})
    created = await client.agents.create(
        python_agent(
            "Project Architect Agent",
            description="Designs and maintains project structure",
            capabilities=["structure_generation", "dependency_analysis"],
            tools=["tool-structure-generator"],
            labels={"team": "platform"},
            config=config,
            max_concurrency=4,
        ),
        agent_id="architect",
    )
    assert created.name == "agents/architect"
    assert created.state == Agent.STATE_ACTIVE
    assert created.create_time.seconds > 0 and created.etag
    assert created.config["depth"] == 3

    fetched = await client.agents.get("agents/architect")
    assert fetched == created
    assert await client.agents.get("architect") == created  # bare ids are accepted

    listed = [a async for a in client.agents.list()]
    assert [a.name for a in listed] == ["agents/architect"]

    patch = Agent(name=created.name, display_name="Architect", state=Agent.STATE_DISABLED)
    updated = await client.agents.update(patch, update_mask=["display_name", "state"])
    assert updated.display_name == "Architect"
    assert updated.state == Agent.STATE_DISABLED
    assert updated.description == created.description  # not in the mask: kept
    assert updated.python.entry_point == created.python.entry_point
    assert updated.etag != created.etag
    assert updated.create_time == created.create_time

    await client.agents.delete("agents/architect")
    with pytest.raises(baton.NotFoundError) as caught:
        await client.agents.get("agents/architect")
    assert caught.value.reason == "AGENT_NOT_FOUND"
    assert caught.value.code is grpc.StatusCode.NOT_FOUND


async def test_generated_ids_and_runtimes(client: Client) -> None:
    worker = await client.agents.create(
        Agent(
            display_name="Remote",
            worker=WorkerRuntime(heartbeat_timeout=duration_pb2.Duration(seconds=15)),
        )
    )
    assert worker.name.startswith("agents/agent-")
    assert worker.worker.heartbeat_timeout.seconds == 15
    llm = await client.agents.create(
        Agent(
            display_name="LLM",
            openai=OpenAIRuntime(
                base_url="http://127.0.0.1:9/v1",
                model="gpt-4o-mini",
                api_key_env="OPENAI_API_KEY",
                temperature=0.2,
            ),
        )
    )
    assert llm.openai.model == "gpt-4o-mini"
    assert llm.openai.HasField("temperature")

    # Replacing the runtime through its oneof member.
    switched = await client.agents.update(
        Agent(name=llm.name, python=baton.PythonRuntime(entry_point="pkg.mod:fn")),
        update_mask=["python"],
    )
    assert switched.WhichOneof("runtime") == "python"
    assert switched.display_name == "LLM"


async def test_list_filters_by_capability_and_state(client: Client) -> None:
    await client.agents.create(python_agent(capabilities=["a", "b"]), agent_id="ab")
    await client.agents.create(python_agent(capabilities=["a"]), agent_id="a-only")
    await client.agents.create(
        python_agent(capabilities=["b"], state=Agent.STATE_DISABLED), agent_id="b-off"
    )

    async def names(**filters: object) -> list[str]:
        return [a.name async for a in client.agents.list(**filters)]  # type: ignore[arg-type]

    assert await names(capabilities=["a"]) == ["agents/ab", "agents/a-only"]
    assert await names(capabilities=["a", "b"]) == ["agents/ab"]
    assert await names(capabilities=["b"], state=Agent.STATE_ACTIVE) == ["agents/ab"]
    assert await names(state=Agent.STATE_DISABLED) == ["agents/b-off"]
    assert await names(capabilities=["nothing"]) == []


async def test_etag_guards_concurrent_changes(client: Client) -> None:
    agent = await client.agents.create(python_agent(), agent_id="guarded")
    await client.agents.update(
        Agent(name=agent.name, display_name="v2"), update_mask=["display_name"]
    )
    stale = Agent(name=agent.name, display_name="v3", etag=agent.etag)
    with pytest.raises(baton.AbortedError) as caught:
        await client.agents.update(stale, update_mask=["display_name"])
    assert caught.value.reason == "ETAG_MISMATCH"
    with pytest.raises(baton.AbortedError):
        await client.agents.delete(agent.name, etag=agent.etag)
    assert (await client.agents.get(agent.name)).display_name == "v2"


async def test_agent_in_use_cannot_be_deleted_unless_forced(client: Client) -> None:
    await client.agents.create(python_agent(), agent_id="worker-a")
    await client.agents.create(python_agent(), agent_id="worker-b")
    await client.workflows.create(
        Workflow(steps=[Step(id="s", agent="agents/worker-a")]), workflow_id="uses-a"
    )
    await client.handoffs.create(
        baton.Handoff(
            source_agent="agents/worker-a",
            target_agent="agents/worker-b",
            type=baton.Handoff.TYPE_SEQUENTIAL,
        ),
        handoff_id="a-to-b",
    )
    with pytest.raises(baton.FailedPreconditionError) as caught:
        await client.agents.delete("agents/worker-a")
    assert caught.value.reason == "AGENT_IN_USE"
    assert "workflows/uses-a" in caught.value.metadata["usedBy"]
    assert (await client.agents.get("worker-a")).name == "agents/worker-a"

    await client.agents.delete("agents/worker-a", force=True)
    with pytest.raises(baton.NotFoundError):
        await client.agents.get("worker-a")
    with pytest.raises(baton.NotFoundError):  # its handoffs went with it
        await client.handoffs.get("a-to-b")


@pytest.mark.parametrize(
    ("agent", "agent_id", "field", "reason"),
    [
        (Agent(display_name="no runtime"), "", "agent.runtime", "FIELD_REQUIRED"),
        (
            Agent(python=baton.PythonRuntime(entry_point="nocolon")),
            "",
            "agent.python.entry_point",
            "INVALID_VALUE",
        ),
        (
            Agent(openai=OpenAIRuntime(base_url="ftp://x", model="m")),
            "",
            "agent.openai.base_url",
            "INVALID_VALUE",
        ),
        (
            Agent(openai=OpenAIRuntime(base_url="http://x")),
            "",
            "agent.openai.model",
            "FIELD_REQUIRED",
        ),
        (
            Agent(openai=OpenAIRuntime(base_url="http://x", model="m", api_key_env="NOT VALID")),
            "",
            "agent.openai.api_key_env",
            "INVALID_VALUE",
        ),
        (python_agent(max_concurrency=-1), "", "agent.max_concurrency", "INVALID_VALUE"),
        (python_agent(display_name="x" * 201), "", "agent.display_name", "FIELD_TOO_LONG"),
        (python_agent(capabilities=[""]), "", "agent.capabilities[0]", "INVALID_VALUE"),
        (python_agent(labels={"Bad Key": "v"}), "", "agent.labels.Bad Key", "INVALID_VALUE"),
        (python_agent(state=7), "", "agent.state", "INVALID_VALUE"),  # type: ignore[arg-type]
        (python_agent(), "Upper_Case", "agent_id", "INVALID_ID"),
        (python_agent(), "ends-with-", "agent_id", "INVALID_ID"),
    ],
)
async def test_invalid_agents_are_refused(
    client: Client, agent: Agent, agent_id: str, field: str, reason: str
) -> None:
    with pytest.raises(baton.InvalidArgumentError) as caught:
        await client.agents.create(agent, agent_id=agent_id)
    assert caught.value.field == field
    assert caught.value.reason == reason
    assert caught.value.violations[0].field == field
    assert [a async for a in client.agents.list()] == []  # nothing was stored


async def test_duplicate_id_is_already_exists(client: Client) -> None:
    await client.agents.create(python_agent(), agent_id="dup")
    with pytest.raises(baton.AlreadyExistsError) as caught:
        await client.agents.create(python_agent("other"), agent_id="dup")
    assert caught.value.reason == "AGENT_ALREADY_EXISTS"
    assert (await client.agents.get("dup")).display_name == "Echo"


async def test_bad_names_and_masks(client: Client) -> None:
    with pytest.raises(baton.InvalidArgumentError) as caught:
        await client.agents.get("workflows/x")
    assert caught.value.field == "name"
    with pytest.raises(baton.NotFoundError):
        await client.agents.update(
            Agent(name="agents/ghost", display_name="x"), update_mask=["display_name"]
        )
    agent = await client.agents.create(python_agent(), agent_id="masked")
    with pytest.raises(baton.InvalidArgumentError) as caught:
        await client.agents.update(Agent(name=agent.name), update_mask=["create_time"])
    assert caught.value.field == "update_mask.paths[0]"
    assert caught.value.reason == "INVALID_UPDATE_MASK"
    with pytest.raises(baton.InvalidArgumentError) as caught:
        # A full replacement must still be a valid agent: no runtime is refused.
        await client.agents.update(Agent(name=agent.name, display_name="x"))
    assert caught.value.field == "agent.runtime"
    assert (await client.agents.get(agent.name)) == agent
