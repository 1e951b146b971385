"""WorkflowService over real gRPC: validation, revisions, filters, dry runs."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import python_agent
from google.protobuf import duration_pb2, struct_pb2

import baton
from baton import Client, RetryPolicy, Step, Workflow


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


@pytest.fixture
async def agents(client: Client) -> Client:
    for agent_id in ("architect", "detail", "relationship", "fallback"):
        await client.agents.create(python_agent(agent_id), agent_id=agent_id)
    return client


def feature_workflow() -> Workflow:
    """The seed's Feature Implementation Workflow."""
    return Workflow(
        display_name="Feature Implementation Workflow",
        description="Workflow for implementing new features",
        tags=["feature", "implementation"],
        metadata=struct({"owner": "engineering", "priority": "high"}),
        steps=[
            Step(
                id="architecture",
                display_name="Architecture Planning",
                agent="agents/architect",
                input_mapping=struct({"feature_request": "${input.feature_request}"}),
                output_mapping=struct({"architecture_plan": "${output.plan}"}),
                timeout=duration_pb2.Duration(seconds=60),
                retry_policy=RetryPolicy(max_attempts=4, backoff_coefficient=2),
                fallback_agents=["agents/fallback"],
            ),
            Step(
                id="detail",
                agent="detail",
                input_mapping=struct(
                    {"architecture_plan": "${steps.architecture.output.architecture_plan}"}
                ),
                depends_on=["architecture"],
            ),
            Step(
                id="relationship",
                agent="agents/relationship",
                input_mapping=struct(
                    {
                        "specs": "${steps.detail.output.specifications}",
                        "summary": "plan for ${input.feature_request} (run ${execution.id})",
                    }
                ),
                depends_on=["detail"],
                when="steps.architecture.output.architecture_plan != null",
            ),
        ],
        output_mapping=struct({"relationships": "${steps.relationship.output.relationships}"}),
    )


async def test_create_get_and_revisions(agents: Client) -> None:
    client = agents
    created = await client.workflows.create(feature_workflow(), workflow_id="feature")
    assert created.name == "workflows/feature"
    assert created.revision == 1
    assert created.state == Workflow.STATE_ACTIVE
    assert created.steps[1].agent == "agents/detail"  # bare ids are normalised
    assert created.steps[0].retry_policy.max_attempts == 4
    assert created.steps[0].timeout.seconds == 60
    assert created.metadata["owner"] == "engineering"
    assert await client.workflows.get("workflows/feature") == created

    renamed = await client.workflows.update(
        Workflow(name=created.name, display_name="Updated Feature Implementation Workflow"),
        update_mask=["display_name"],
    )
    assert renamed.revision == 2
    assert renamed.steps == created.steps
    trimmed = await client.workflows.update(
        Workflow(name=created.name, steps=created.steps[:2]),
        update_mask=["steps", "output_mapping"],
    )
    assert trimmed.revision == 3
    assert len(trimmed.steps) == 2

    assert (await client.workflows.get(created.name)).revision == 3
    first = await client.workflows.get(created.name, revision=1)
    assert first.display_name == "Feature Implementation Workflow"
    assert len(first.steps) == 3
    assert (await client.workflows.get(created.name, revision=2)).display_name.startswith("Updated")
    with pytest.raises(baton.NotFoundError) as caught:
        await client.workflows.get(created.name, revision=4)
    assert caught.value.reason == "WORKFLOW_REVISION_NOT_FOUND"

    await client.workflows.delete(created.name)
    with pytest.raises(baton.NotFoundError) as caught:
        await client.workflows.get(created.name, revision=1)
    assert caught.value.reason == "WORKFLOW_NOT_FOUND"


async def test_list_filters_by_tags_and_state(agents: Client) -> None:
    client = agents
    step = [Step(id="only", agent="architect")]
    await client.workflows.create(Workflow(tags=["feature", "beta"], steps=step), workflow_id="w1")
    await client.workflows.create(Workflow(tags=["feature"], steps=step), workflow_id="w2")
    await client.workflows.create(
        Workflow(tags=["ops"], steps=step, state=Workflow.STATE_ARCHIVED), workflow_id="w3"
    )

    async def names(**filters: Any) -> list[str]:
        return [w.name async for w in client.workflows.list(**filters)]

    assert await names() == ["workflows/w1", "workflows/w2", "workflows/w3"]
    assert await names(tags=["feature"]) == ["workflows/w1", "workflows/w2"]
    assert await names(tags=["feature", "beta"]) == ["workflows/w1"]
    assert await names(state=Workflow.STATE_ARCHIVED) == ["workflows/w3"]
    assert await names(state=Workflow.STATE_ACTIVE, tags=["ops"]) == []
    archived = await client.workflows.update(
        Workflow(name="workflows/w1", state=Workflow.STATE_ARCHIVED), update_mask=["state"]
    )
    assert archived.revision == 2
    assert await names(state=Workflow.STATE_ARCHIVED) == ["workflows/w1", "workflows/w3"]


def steps_with(*steps: Step) -> Workflow:
    return Workflow(display_name="bad", steps=list(steps))


INVALID = [
    pytest.param(Workflow(display_name="empty"), "workflow.steps", "FIELD_REQUIRED", id="no-steps"),
    pytest.param(
        steps_with(Step(id="a", agent="architect"), Step(id="a", agent="detail")),
        "workflow.steps[1].id",
        "DUPLICATE_STEP_ID",
        id="duplicate-step",
    ),
    pytest.param(
        steps_with(Step(id="1a", agent="architect")),
        "workflow.steps[0].id",
        "INVALID_STEP_ID",
        id="bad-step-id",
    ),
    pytest.param(
        steps_with(Step(id="a", agent="architect", depends_on=["ghost"])),
        "workflow.steps[0].depends_on[0]",
        "UNKNOWN_STEP",
        id="unknown-dependency",
    ),
    pytest.param(
        steps_with(
            Step(id="a", agent="architect", depends_on=["c"]),
            Step(id="b", agent="architect", depends_on=["a"]),
            Step(id="c", agent="architect", depends_on=["b"]),
        ),
        "workflow.steps[0].depends_on",
        "WORKFLOW_CYCLE",
        id="cycle",
    ),
    pytest.param(
        steps_with(Step(id="a", agent="architect", depends_on=["a"])),
        "workflow.steps[0].depends_on",
        "WORKFLOW_CYCLE",
        id="self-cycle",
    ),
    pytest.param(
        steps_with(Step(id="a", agent="agents/nobody")),
        "workflow.steps[0].agent",
        "UNKNOWN_AGENT",
        id="unknown-agent",
    ),
    pytest.param(
        steps_with(Step(id="a", agent="architect", fallback_agents=["agents/nobody"])),
        "workflow.steps[0].fallback_agents[0]",
        "UNKNOWN_AGENT",
        id="unknown-fallback",
    ),
    pytest.param(
        steps_with(Step(id="a")), "workflow.steps[0].agent", "FIELD_REQUIRED", id="no-agent"
    ),
    pytest.param(
        steps_with(Step(id="a", agent="architect", input_mapping=struct({"x": "${input.a"}))),
        "workflow.steps[0].input_mapping.x",
        "INVALID_EXPRESSION",
        id="unterminated-expression",
    ),
    pytest.param(
        steps_with(Step(id="a", agent="architect", input_mapping=struct({"x": "${secrets.k}"}))),
        "workflow.steps[0].input_mapping.x",
        "INVALID_EXPRESSION",
        id="unknown-root",
    ),
    pytest.param(
        steps_with(
            Step(id="a", agent="architect", input_mapping=struct({"n": {"deep": ["${input..x}"]}}))
        ),
        "workflow.steps[0].input_mapping.n.deep[0]",
        "INVALID_EXPRESSION",
        id="nested-malformed",
    ),
    pytest.param(
        steps_with(Step(id="a", agent="architect", input_mapping=struct({"x": "${steps.a}"}))),
        "workflow.steps[0].input_mapping.x",
        "INVALID_EXPRESSION",
        id="steps-without-output",
    ),
    pytest.param(
        steps_with(
            Step(id="a", agent="architect"),
            Step(id="b", agent="architect", input_mapping=struct({"x": "${steps.a.output.v}"})),
        ),
        "workflow.steps[1].input_mapping.x",
        "STEP_NOT_ANCESTOR",
        id="sibling-read",
    ),
    pytest.param(
        steps_with(
            Step(id="a", agent="architect", input_mapping=struct({"x": "${steps.b.output}"})),
            Step(id="b", agent="architect", depends_on=["a"]),
        ),
        "workflow.steps[0].input_mapping.x",
        "STEP_NOT_ANCESTOR",
        id="descendant-read",
    ),
    pytest.param(
        steps_with(
            Step(id="a", agent="architect", input_mapping=struct({"x": "${steps.zz.output}"}))
        ),
        "workflow.steps[0].input_mapping.x",
        "UNKNOWN_STEP",
        id="expression-unknown-step",
    ),
    pytest.param(
        steps_with(Step(id="a", agent="architect", input_mapping=struct({"x": "${output.v}"}))),
        "workflow.steps[0].input_mapping.x",
        "INVALID_EXPRESSION",
        id="output-in-input",
    ),
    pytest.param(
        steps_with(Step(id="a", agent="architect", when="input.x >")),
        "workflow.steps[0].when",
        "INVALID_CONDITION",
        id="cel-syntax",
    ),
    pytest.param(
        steps_with(Step(id="a", agent="architect", when="source_output.ok == true")),
        "workflow.steps[0].when",
        "INVALID_CONDITION",
        id="cel-unknown-variable",
    ),
    pytest.param(
        steps_with(
            Step(id="a", agent="architect"),
            Step(id="b", agent="architect", when="steps.a.output.ok == true"),
        ),
        "workflow.steps[1].when",
        "STEP_NOT_ANCESTOR",
        id="cel-non-ancestor",
    ),
    pytest.param(
        Workflow(
            steps=[Step(id="a", agent="architect")],
            output_mapping=struct({"r": "${steps.ghost.output}"}),
        ),
        "workflow.output_mapping.r",
        "UNKNOWN_STEP",
        id="output-unknown-step",
    ),
    pytest.param(
        steps_with(
            Step(id="a", agent="architect", retry_policy=RetryPolicy(backoff_coefficient=0.5))
        ),
        "workflow.steps[0].retry_policy.backoff_coefficient",
        "INVALID_VALUE",
        id="retry-backoff",
    ),
    pytest.param(
        steps_with(Step(id="a", agent="architect", timeout=duration_pb2.Duration(seconds=-1))),
        "workflow.steps[0].timeout",
        "INVALID_VALUE",
        id="negative-timeout",
    ),
    pytest.param(
        Workflow(steps=[Step(id="a", agent="architect")], input_schema=struct({"type": "thing"})),
        "workflow.input_schema",
        "INVALID_VALUE",
        id="bad-json-schema",
    ),
]


@pytest.mark.parametrize(("workflow", "field", "reason"), INVALID)
async def test_invalid_workflows_are_refused_everywhere(
    agents: Client, workflow: Workflow, field: str, reason: str
) -> None:
    client = agents
    for attempt in (
        lambda: client.workflows.validate(workflow),
        lambda: client.workflows.create(workflow, workflow_id="bad"),
    ):
        with pytest.raises(baton.InvalidArgumentError) as caught:
            await attempt()
        assert caught.value.field == field, caught.value.message
        assert caught.value.reason == reason
        assert field in caught.value.message
        assert any(v.field == field for v in caught.value.violations)
    # No partial row: the workflow does not exist.
    with pytest.raises(baton.NotFoundError):
        await client.workflows.get("bad")
    assert [w async for w in client.workflows.list()] == []

    # The same definition is refused as an update, and the stored revision is untouched.
    good = await client.workflows.create(
        Workflow(steps=[Step(id="ok", agent="architect")]), workflow_id="good"
    )
    patch = Workflow()
    patch.CopyFrom(workflow)
    patch.name = good.name
    with pytest.raises(baton.InvalidArgumentError) as caught:
        await client.workflows.update(patch)
    assert caught.value.field == field
    assert await client.workflows.get(good.name) == good


async def test_every_violation_is_reported(agents: Client) -> None:
    workflow = steps_with(
        Step(id="a", agent="architect", depends_on=["ghost"]),
        Step(id="a", agent="architect", when="input.x >"),
    )
    with pytest.raises(baton.InvalidArgumentError) as caught:
        await agents.workflows.validate(workflow)
    fields = {v.field for v in caught.value.violations}
    assert {"workflow.steps[0].depends_on[0]", "workflow.steps[1].id"} <= fields


async def test_validate_returns_normalised_workflow_and_order(agents: Client) -> None:
    workflow = Workflow(
        steps=[
            Step(id="join", agent="detail", depends_on=["left", "right"]),
            Step(id="left", agent="architect", depends_on=["root"]),
            Step(id="right", agent="architect", depends_on=["root"]),
            Step(id="root", agent="architect"),
        ]
    )
    response = await agents.workflows.validate(workflow)
    order = list(response.topological_order)
    assert sorted(order) == ["join", "left", "right", "root"]
    assert order.index("root") < order.index("left") < order.index("join")
    assert order.index("right") < order.index("join")
    assert response.workflow.steps[0].agent == "agents/detail"
    assert [w async for w in agents.workflows.list()] == []  # a dry run stores nothing


async def test_capability_steps_need_no_agent(agents: Client) -> None:
    created = await agents.workflows.create(
        Workflow(steps=[Step(id="plan", capability="structure_generation")])
    )
    assert created.steps[0].capability == "structure_generation"
    assert created.steps[0].WhichOneof("target") == "capability"
