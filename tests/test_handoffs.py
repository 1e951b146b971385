"""HandoffService over real gRPC: CRUD, filters and bad input."""

from __future__ import annotations

import pytest
from conftest import python_agent

import baton
from baton import Client, Handoff


@pytest.fixture
async def agents(client: Client) -> Client:
    for agent_id in ("architect", "detail", "reviewer"):
        await client.agents.create(python_agent(agent_id), agent_id=agent_id)
    return client


async def test_create_get_list_update_delete(agents: Client) -> None:
    client = agents
    created = await client.handoffs.create(
        Handoff(
            source_agent="agents/architect",
            target_agent="detail",
            type=Handoff.TYPE_SEQUENTIAL,
            data_mapping={"architecture_plan": "detailed_requirements"},
            trigger_conditions=["completion", "source_output.plan_complete == true"],
            priority=5,
        ),
        handoff_id="plan-to-detail",
    )
    assert created.name == "handoffs/plan-to-detail"
    assert created.target_agent == "agents/detail"
    assert dict(created.data_mapping) == {"architecture_plan": "detailed_requirements"}
    assert await client.handoffs.get("plan-to-detail") == created

    escalation = await client.handoffs.create(
        Handoff(source_agent="detail", target_agent="reviewer", type=Handoff.TYPE_ON_FAILURE)
    )
    assert escalation.name.startswith("handoffs/handoff-")

    async def names(**filters: object) -> list[str]:
        return [h.name async for h in client.handoffs.list(**filters)]  # type: ignore[arg-type]

    assert await names() == [created.name, escalation.name]
    assert await names(source_agent="agents/architect") == [created.name]
    assert await names(source_agent="detail") == [escalation.name]
    assert await names(target_agent="agents/reviewer") == [escalation.name]
    assert await names(type=Handoff.TYPE_ON_FAILURE) == [escalation.name]
    assert await names(source_agent="architect", type=Handoff.TYPE_ON_FAILURE) == []

    updated = await client.handoffs.update(
        Handoff(name=created.name, priority=9, trigger_conditions=["completion"]),
        update_mask=["priority", "trigger_conditions"],
    )
    assert updated.priority == 9
    assert list(updated.trigger_conditions) == ["completion"]
    assert updated.source_agent == created.source_agent

    await client.handoffs.delete(created.name)
    with pytest.raises(baton.NotFoundError) as caught:
        await client.handoffs.get(created.name)
    assert caught.value.reason == "HANDOFF_NOT_FOUND"


@pytest.mark.parametrize(
    ("handoff", "field", "reason"),
    [
        (
            Handoff(target_agent="detail", type=Handoff.TYPE_SEQUENTIAL),
            "handoff.source_agent",
            "FIELD_REQUIRED",
        ),
        (
            Handoff(
                source_agent="architect", target_agent="architect", type=Handoff.TYPE_SEQUENTIAL
            ),
            "handoff.target_agent",
            "INVALID_VALUE",
        ),
        (
            Handoff(source_agent="architect", target_agent="detail"),
            "handoff.type",
            "FIELD_REQUIRED",
        ),
        (
            Handoff(source_agent="architect", target_agent="ghost", type=Handoff.TYPE_SEQUENTIAL),
            "handoff.target_agent",
            "UNKNOWN_AGENT",
        ),
        # The seed writes `=`; CEL needs `==`.
        (
            Handoff(
                source_agent="architect",
                target_agent="detail",
                type=Handoff.TYPE_SEQUENTIAL,
                trigger_conditions=["completion", "source_output.plan_complete = true"],
            ),
            "handoff.trigger_conditions[1]",
            "INVALID_CONDITION",
        ),
        (
            Handoff(
                source_agent="architect",
                target_agent="detail",
                type=Handoff.TYPE_SEQUENTIAL,
                trigger_conditions=["steps.a.output == 1"],
            ),
            "handoff.trigger_conditions[0]",
            "INVALID_CONDITION",
        ),
        (
            Handoff(
                source_agent="architect",
                target_agent="detail",
                type=Handoff.TYPE_SEQUENTIAL,
                data_mapping={"plan..x": "y"},
            ),
            "handoff.data_mapping.plan..x",
            "INVALID_EXPRESSION",
        ),
        (
            Handoff(
                source_agent="architect",
                target_agent="detail",
                type=Handoff.TYPE_SEQUENTIAL,
                data_mapping={"plan": "not a field"},
            ),
            "handoff.data_mapping.plan",
            "INVALID_VALUE",
        ),
    ],
)
async def test_invalid_handoffs_are_refused(
    agents: Client, handoff: Handoff, field: str, reason: str
) -> None:
    with pytest.raises(baton.InvalidArgumentError) as caught:
        await agents.handoffs.create(handoff)
    assert caught.value.field == field
    assert caught.value.reason == reason
    assert [h async for h in agents.handoffs.list()] == []
