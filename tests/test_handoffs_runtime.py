"""Handoffs at run time: SEQUENTIAL chains, conditions and data mappings, ON_FAILURE
escalation, agent-requested handoffs, and the depth bound."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import StartServer
from google.protobuf import duration_pb2

from baton import (
    Agent,
    Client,
    EventType,
    Execution,
    Handoff,
    PythonRuntime,
    RetryPolicy,
    Step,
    StepRun,
    Workflow,
)


def agent(entry_point: str) -> Agent:
    return Agent(python=PythonRuntime(entry_point=f"test_agents_lib:{entry_point}"))


def once() -> RetryPolicy:
    interval = duration_pb2.Duration()
    interval.FromNanoseconds(10_000_000)
    return RetryPolicy(max_attempts=1, initial_interval=interval)


async def run_step(client: Client, agent_id: str, value: dict[str, Any], **step: Any) -> Execution:
    workflow = await client.workflows.create(
        Workflow(steps=[Step(id="work", agent=agent_id, retry_policy=once(), **step)])
    )
    execution = await client.executions.start(workflow.name, value)
    return await client.executions.wait(execution.name, timeout=20)


async def test_sequential_chain_a_b_c(client: Client) -> None:
    for name in ("a", "b", "c"):
        await client.agents.create(agent("relay"), agent_id=name)
    await client.handoffs.create(
        Handoff(
            source_agent="a",
            target_agent="b",
            type=Handoff.TYPE_SEQUENTIAL,
            trigger_conditions=["completion"],
        ),
        handoff_id="a-b",
    )
    await client.handoffs.create(
        Handoff(
            source_agent="b",
            target_agent="c",
            type=Handoff.TYPE_SEQUENTIAL,
            trigger_conditions=["source_output.done == true"],
        ),
        handoff_id="b-c",
    )
    done = await run_step(client, "a", {"chain": []})
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    run = done.steps[0]
    assert list(run.output["chain"]) == ["agents/a", "agents/b", "agents/c"]  # C's output
    assert run.agent == "agents/c"
    assert [(h.handoff, h.source_agent, h.target_agent) for h in run.handoffs] == [
        ("handoffs/a-b", "agents/a", "agents/b"),
        ("handoffs/b-c", "agents/b", "agents/c"),
    ]
    assert all(h.type == Handoff.TYPE_SEQUENTIAL and not h.requested_by_agent for h in run.handoffs)
    assert [(a.agent, a.fallback) for a in run.attempts] == [
        ("agents/a", False),
        ("agents/b", True),
        ("agents/c", True),
    ]
    handoffs = [
        e
        async for e in client.executions.events(
            done.name, event_types=[EventType.EVENT_TYPE_HANDOFF]
        )
    ]
    assert [(e.handoff.source_agent, e.handoff.target_agent) for e in handoffs] == [
        ("agents/a", "agents/b"),
        ("agents/b", "agents/c"),
    ]


async def test_priority_conditions_and_data_mapping(client: Client) -> None:
    for name in ("source", "low", "high", "never"):
        await client.agents.create(agent("relay"), agent_id=name)
    await client.handoffs.create(
        Handoff(source_agent="source", target_agent="low", type=Handoff.TYPE_SEQUENTIAL, priority=1)
    )
    await client.handoffs.create(
        Handoff(
            source_agent="source",
            target_agent="never",
            type=Handoff.TYPE_SEQUENTIAL,
            priority=9,
            trigger_conditions=["source_output.plan == 'other'"],
        )
    )
    await client.handoffs.create(
        Handoff(
            source_agent="source",
            target_agent="high",
            type=Handoff.TYPE_SEQUENTIAL,
            priority=5,
            data_mapping={"plan": "requirements"},
        )
    )
    done = await run_step(client, "source", {"plan": "build it"})
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    output = dict(done.steps[0].output)
    # `high` won (priority 5; `never`'s condition failed) and got only the mapped field.
    assert output["requirements"] == "build it" and "plan" not in output
    assert list(output["chain"]) == ["agents/high"]


async def test_on_failure_handoff_takes_over(client: Client) -> None:
    await client.agents.create(agent("fail"), agent_id="fragile")
    await client.agents.create(agent("relay"), agent_id="rescuer")
    await client.handoffs.create(
        Handoff(source_agent="fragile", target_agent="rescuer", type=Handoff.TYPE_ON_FAILURE)
    )
    done = await run_step(client, "fragile", {"message": "broke"})
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    run = done.steps[0]
    assert run.agent == "agents/rescuer"
    assert run.handoffs[0].type == Handoff.TYPE_ON_FAILURE
    assert run.attempts[0].error.message == "broke"


async def test_agent_requested_handoffs(client: Client) -> None:
    await client.agents.create(agent("request_handoff"), agent_id="asker")
    await client.agents.create(agent("relay"), agent_id="allowed")
    await client.agents.create(agent("relay"), agent_id="stranger")
    await client.handoffs.create(
        Handoff(
            source_agent="asker",
            target_agent="allowed",
            type=Handoff.TYPE_SEQUENTIAL,
            trigger_conditions=["source_output.never == true"],
        )
    )
    done = await run_step(client, "asker", {"to": "agents/allowed"})
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    assert list(done.steps[0].output["chain"]) == ["agents/asker", "agents/allowed"]
    assert done.steps[0].handoffs[0].requested_by_agent

    refused = await run_step(client, "asker", {"to": "agents/stranger"})
    assert refused.state == Execution.STATE_FAILED
    assert refused.steps[0].state == StepRun.STATE_FAILED
    assert refused.error.type == "HANDOFF_NOT_ALLOWED"


async def test_chains_are_bounded(start_server: StartServer) -> None:
    server = await start_server(max_handoff_depth=3)
    async with Client.connect(f"127.0.0.1:{server.port}") as client:
        await client.agents.create(agent("relay"), agent_id="ping")
        await client.agents.create(agent("relay"), agent_id="pong")
        for source, target in (("ping", "pong"), ("pong", "ping")):
            await client.handoffs.create(
                Handoff(source_agent=source, target_agent=target, type=Handoff.TYPE_SEQUENTIAL)
            )
        done = await run_step(client, "ping", {})
        assert done.state == Execution.STATE_FAILED
        assert done.error.type == "HANDOFF_DEPTH_EXCEEDED"
        assert len(done.steps[0].handoffs) == 3


@pytest.mark.parametrize("depth", [8])
async def test_default_depth_is_eight(client: Client, depth: int) -> None:
    await client.agents.create(agent("relay"), agent_id="ping")
    await client.agents.create(agent("relay"), agent_id="pong")
    for source, target in (("ping", "pong"), ("pong", "ping")):
        await client.handoffs.create(
            Handoff(source_agent=source, target_agent=target, type=Handoff.TYPE_SEQUENTIAL)
        )
    done = await run_step(client, "ping", {})
    assert done.error.type == "HANDOFF_DEPTH_EXCEEDED"
    assert len(done.steps[0].handoffs) == depth
