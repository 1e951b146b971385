"""Child workflows over the real server: a step runs another workflow and takes its output;
the child records its parent; cancelling the parent cancels the child; a failed child fails
the attempt and a retry starts a new one; recursion is bounded; and a SIGKILL while a child
runs (the parent finds the same child again, which finishes once)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from conftest import restartable
from google.protobuf import duration_pb2
from test_executions import agent, step
from test_recovery import effect_agent, kill_after_effects

import baton
from baton import Client, Execution, RetryPolicy, Step, StepRun, Workflow


async def children(client: Client, parent: str) -> list[Any]:
    return [e async for e in client.executions.list(parent=parent)]


async def test_a_step_runs_a_child_workflow_and_takes_its_output(client: Client) -> None:
    await agent(client, "echo", "baton_server.agents.builtin:echo")
    await client.workflows.create(
        Workflow(steps=[Step(id="inner", agent="echo")]), workflow_id="inner"
    )
    outer = await client.workflows.create(
        Workflow(
            steps=[
                Step(id="sub", workflow="inner", input_mapping={"x": "${input.x}"}),
                Step(
                    id="after",
                    agent="echo",
                    depends_on=["sub"],
                    input_mapping={"got": "${steps.sub.output.inner.x}"},
                ),
            ]
        )
    )
    assert outer.steps[0].workflow == "workflows/inner"
    started = await client.executions.start(outer.name, {"x": 7})
    done = await client.executions.wait(started.name, timeout=20)
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    assert step(done, "sub").output == {"inner": {"x": 7}}
    assert done.output == {"after": {"got": 7}}
    (child,) = await children(client, started.name)
    assert child.parent == started.name and child.name == step(done, "sub").child_execution
    assert child.state == Execution.STATE_SUCCEEDED and child.input == {"x": 7}

    with pytest.raises(baton.InvalidArgumentError) as unknown:
        await client.workflows.create(Workflow(steps=[Step(id="s", workflow="nope")]))
    assert "steps[0].workflow" in str(unknown.value)


async def test_cancel_failure_retry_and_depth(client: Client) -> None:
    await agent(client, "sleeper", "baton_server.agents.builtin:sleep")
    await agent(client, "failing", "test_agents_lib:fail")
    await client.workflows.create(
        Workflow(steps=[Step(id="nap", agent="sleeper", input_mapping={"seconds": 30})]),
        workflow_id="long",
    )
    parent = await client.workflows.create(Workflow(steps=[Step(id="sub", workflow="long")]))
    started = await client.executions.start(parent.name, {})
    for _ in range(100):
        if await children(client, started.name):
            break
        await asyncio.sleep(0.05)
    await client.executions.cancel(started.name, reason="enough")
    (child,) = await children(client, started.name)
    ended = await client.executions.wait(child.name, timeout=10)
    assert ended.state == Execution.STATE_CANCELLED  # cancelling the parent cancels the child

    await client.workflows.create(
        Workflow(
            steps=[Step(id="boom", agent="failing", retry_policy=RetryPolicy(max_attempts=1))]
        ),
        workflow_id="broken",
    )
    twice = RetryPolicy(max_attempts=2, initial_interval=duration_pb2.Duration(nanos=50_000_000))
    retrying = await client.workflows.create(
        Workflow(steps=[Step(id="sub", workflow="broken", retry_policy=twice)])
    )
    failed = await client.executions.wait(
        (await client.executions.start(retrying.name, {})).name, timeout=20
    )
    assert failed.state == Execution.STATE_FAILED
    assert step(failed, "sub").attempt == 2
    assert len(await children(client, failed.name)) == 2  # a retry starts a new child

    recursive = await client.workflows.create(
        Workflow(steps=[Step(id="again", workflow="deep")]), workflow_id="deep"
    )
    deep = await client.executions.wait(
        (await client.executions.start(recursive.name, {})).name, timeout=30
    )
    assert deep.state == Execution.STATE_FAILED
    assert deep.error.type == "CHILD_DEPTH_EXCEEDED"


@pytest.mark.timeout(90)
async def test_a_child_survives_a_sigkill_and_is_found_again(tmp_path: Path) -> None:
    effect_log = tmp_path / "effects.log"
    async with restartable(tmp_path) as servers:
        async with Client.connect(f"127.0.0.1:{servers.port}", timeout=5) as client:
            await effect_agent(client, "effect", "effect", effect_log, 0.3)
            await client.workflows.create(
                Workflow(
                    steps=[
                        Step(id="one", agent="effect"),
                        Step(id="two", agent="effect", depends_on=["one"]),
                        Step(id="three", agent="effect", depends_on=["two"]),
                    ]
                ),
                workflow_id="inner",
            )
            outer = await client.workflows.create(
                Workflow(steps=[Step(id="sub", workflow="inner")])
            )
            started = await client.executions.start(outer.name, {})
            await kill_after_effects(servers.process, effect_log, 1)
        async with Client.connect(f"127.0.0.1:{await servers.start()}", timeout=5) as client:
            done = await client.executions.wait(started.name, timeout=30)
            assert done.state == Execution.STATE_SUCCEEDED, done.error
            (child,) = await children(client, started.name)  # the same child, found again
            assert child.state == Execution.STATE_SUCCEEDED
            assert step(done, "sub").state == StepRun.STATE_SUCCEEDED
    keys = effect_log.read_text().split()
    # Each of the child's steps once; only an attempt the kill cut short may repeat.
    assert len(set(keys)) == 3 and len(keys) - len(set(keys)) <= 1
