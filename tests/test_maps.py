"""Map over data over the real server: a `for_each` step runs its agent once per element,
at most max_parallel at once, keeps the results in order, pages its items through
ListStepItems, fails or collects failed items, and survives a SIGKILL mid-map with 1,000
items (items that ended do not run again)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import restartable
from test_executions import agent, step
from test_recovery import effect_agent, kill_after_effects

import baton
from baton import Client, Execution, RetryPolicy, Step, StepRun, Workflow


async def test_items_run_in_parallel_and_come_back_in_order(client: Client) -> None:
    await agent(client, "echo", "baton_server.agents.builtin:echo")
    workflow = await client.workflows.create(
        Workflow(
            steps=[
                Step(
                    id="each",
                    agent="echo",
                    for_each="${input.numbers}",
                    max_parallel=4,
                    input_mapping={"n": "${item}", "at": "${index}"},
                ),
                Step(
                    id="after",
                    agent="echo",
                    depends_on=["each"],
                    input_mapping={"all": "${steps.each.output.items}"},
                ),
            ]
        )
    )
    numbers = list(range(100, 125))
    started = await client.executions.start(workflow.name, {"numbers": numbers})
    done = await client.executions.wait(started.name, timeout=30)
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    each = step(done, "each")
    assert (each.items_total, each.items_succeeded, each.items_failed) == (25, 25, 0)
    assert each.output["items"] == [{"n": n, "at": i} for i, n in enumerate(numbers)]
    assert len(step(done, "after").output["all"]) == 25
    items = [i async for i in client.executions.items(done.name, "each", page_size=10)]
    assert [i.index for i in items] == list(range(25))
    assert all(i.state == StepRun.STATE_SUCCEEDED and i.attempt == 1 for i in items)
    assert items[3].output == {"n": 103, "at": 3}


async def test_failed_items_fail_the_step_or_are_collected(client: Client) -> None:
    await agent(client, "picky", "test_agents_lib:picky")
    once = RetryPolicy(max_attempts=1)
    strict = await client.workflows.create(
        Workflow(steps=[Step(id="each", agent="picky", for_each="${input.xs}", retry_policy=once)])
    )
    failed = await client.executions.wait(
        (await client.executions.start(strict.name, {"xs": [1, 2, 3, 4]})).name, timeout=20
    )
    assert failed.state == Execution.STATE_FAILED
    assert failed.error.type == "Picky" and "item 2" in failed.error.message
    lenient = await client.workflows.create(
        Workflow(
            steps=[
                Step(
                    id="each",
                    agent="picky",
                    for_each="${input.xs}",
                    continue_on_error=True,
                    retry_policy=once,
                )
            ]
        )
    )
    done = await client.executions.wait(
        (await client.executions.start(lenient.name, {"xs": [1, 2, 3, 4, 6]})).name, timeout=20
    )
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    each = step(done, "each")
    assert each.output["items"] == [{"v": 1}, {"v": 2}, None, {"v": 4}, None]
    assert [e["index"] for e in each.output["errors"]] == [2, 4]
    assert each.items_failed == 2

    bad = [
        (Step(id="a", agent="picky", for_each="${nope}"), "for_each"),
        (Step(id="a", agent="picky", for_each="${input.xs}", max_parallel=5000), "max_parallel"),
        (Step(id="a", agent="picky", continue_on_error=True), "continue_on_error"),
        (
            Step(id="a", agent="picky", for_each="${input.xs}", fallback_agents=["picky"]),
            "fallback_agents",
        ),
        (Step(id="a", agent="picky", input_mapping={"x": "${item}"}), "input_mapping"),
    ]
    for bad_step, field in bad:
        with pytest.raises(baton.InvalidArgumentError) as refused:
            await client.workflows.create(Workflow(steps=[bad_step]))
        assert field in str(refused.value), (field, refused.value)


@pytest.mark.timeout(120)
async def test_a_map_of_1000_items_survives_a_sigkill(tmp_path: Path) -> None:
    effect_log = tmp_path / "effects.log"
    async with restartable(tmp_path) as servers:
        async with Client.connect(f"127.0.0.1:{servers.port}", timeout=10) as client:
            await effect_agent(client, "effect", "effect", effect_log, 0.02)
            workflow = await client.workflows.create(
                Workflow(
                    steps=[
                        Step(
                            id="each",
                            agent="effect",
                            for_each="${input.items}",
                            max_parallel=50,
                            input_mapping={"n": "${item}"},
                        )
                    ]
                )
            )
            started = await client.executions.start(workflow.name, {"items": list(range(1000))})
            await kill_after_effects(servers.process, effect_log, 300)
        async with Client.connect(f"127.0.0.1:{await servers.start()}", timeout=10) as client:
            done = await client.executions.wait(started.name, timeout=60)
            assert done.state == Execution.STATE_SUCCEEDED, done.error
            each = step(done, "each")
            assert [o["n"] for o in each.output["items"]] == list(range(1000))
            assert each.items_succeeded == 1000
            assert len([i async for i in client.executions.items(done.name, "each")]) == 1000
    keys = effect_log.read_text().split()
    # One key per item; only the items the kill cut short (at most 50) ran again.
    assert len(set(keys)) == 1000 and len(keys) - len(set(keys)) <= 50
