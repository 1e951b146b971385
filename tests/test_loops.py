"""Loops over the real server: a step or a body of steps repeats until its condition holds,
keeping every iteration; validation; and a SIGKILL mid-loop (the loop resumes in the
iteration it was in, and finished iterations do not run again)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import restartable
from test_executions import agent, step
from test_recovery import effect_agent, kill_after_effects

import baton
from baton import Client, EventType, Execution, Loop, Step, Workflow


async def test_write_and_review_until_approved(client: Client) -> None:
    await agent(client, "echo", "baton_server.agents.builtin:echo")
    workflow = await client.workflows.create(
        Workflow(
            steps=[
                Step(
                    id="write",
                    agent="echo",
                    input_mapping={"draft": "${loop.iteration}", "notes": "${loop.last}"},
                ),
                Step(
                    id="review",
                    agent="echo",
                    depends_on=["write"],
                    input_mapping={"score": "${steps.write.output.draft}"},
                    loop=Loop(until="output.score >= 2", max_iterations=5, start="write"),
                ),
                Step(
                    id="publish",
                    agent="echo",
                    depends_on=["review"],
                    input_mapping={"drafts": "${steps.write.iterations}"},
                ),
            ]
        )
    )
    started = await client.executions.start(workflow.name, {})
    done = await client.executions.wait(started.name, timeout=20)
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    write, review = step(done, "write"), step(done, "review")
    assert review.iteration == 2 and review.output == {"score": 2}
    assert list(review.iteration_outputs) == [{"score": 0}, {"score": 1}]
    assert write.output == {"draft": 2, "notes": {"score": 1}}
    assert step(done, "publish").output["drafts"] == [
        {"draft": 0, "notes": None},
        {"draft": 1, "notes": {"score": 0}},
        {"draft": 2, "notes": {"score": 1}},
    ]
    again = [
        e
        async for e in client.executions.events(
            done.name, event_types=[EventType.EVENT_TYPE_LOOP_ITERATION_STARTED]
        )
    ]
    assert [(e.iteration, list(e.loop_iteration_started.reset_steps)) for e in again] == [
        (1, ["write", "review"]),
        (2, ["write", "review"]),
    ]
    listed = [e async for e in client.executions.list(workflow=workflow.name)]
    assert list(step(listed[0], "review").iteration_outputs) == []  # lists stay small


async def test_loops_are_validated(client: Client) -> None:
    await agent(client, "echo", "baton_server.agents.builtin:echo")
    a = Step(id="a", agent="echo")
    bad: list[tuple[list[Step], str]] = [
        (
            [Step(id="a", agent="echo", loop=Loop(until="output.ok", max_iterations=0))],
            "max_iterations",
        ),
        ([Step(id="a", agent="echo", loop=Loop(max_iterations=3))], "loop.until"),
        (
            [Step(id="a", agent="echo", loop=Loop(until="output.ok ==", max_iterations=3))],
            "loop.until",
        ),
        (
            [
                a,
                Step(id="b", agent="echo", loop=Loop(until="true", max_iterations=2, start="c")),
                Step(id="c", agent="echo"),
            ],
            "loop.start",
        ),
        (
            [
                a,
                Step(
                    id="b",
                    agent="echo",
                    depends_on=["a"],
                    loop=Loop(until="true", max_iterations=2, start="a"),
                ),
                Step(id="c", agent="echo", depends_on=["a"]),
            ],
            "depends_on",
        ),
        ([Step(id="a", agent="echo", input_mapping={"x": "${loop.iteration}"})], "input_mapping"),
        (
            [
                a,
                Step(
                    id="b",
                    agent="echo",
                    depends_on=["a"],
                    input_mapping={"x": "${steps.a.iterations}"},
                ),
            ],
            "in no loop",
        ),
    ]
    for steps, field in bad:
        with pytest.raises(baton.InvalidArgumentError) as refused:
            await client.workflows.create(Workflow(steps=steps))
        assert field in str(refused.value), (field, refused.value)


@pytest.mark.timeout(90)
async def test_a_loop_resumes_in_its_iteration_after_a_sigkill(tmp_path: Path) -> None:
    effect_log = tmp_path / "effects.log"
    async with restartable(tmp_path) as servers:
        async with Client.connect(f"127.0.0.1:{servers.port}", timeout=5) as client:
            await effect_agent(client, "effect", "effect", effect_log, 0.3)
            workflow = await client.workflows.create(
                Workflow(
                    steps=[
                        Step(
                            id="count",
                            agent="effect",
                            input_mapping={"n": "${loop.iteration}"},
                            loop=Loop(until="output.n >= 5", max_iterations=10),
                        )
                    ]
                )
            )
            started = await client.executions.start(workflow.name, {})
            await kill_after_effects(servers.process, effect_log, 3)
        async with Client.connect(f"127.0.0.1:{await servers.start()}", timeout=5) as client:
            done = await client.executions.wait(started.name, timeout=30)
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    count = step(done, "count")
    assert count.iteration == 5 and count.output["n"] == 5
    assert [o["n"] for o in count.iteration_outputs] == [0, 1, 2, 3, 4]
    keys = effect_log.read_text().split()
    # One key per iteration; only an attempt the kill cut short may have run twice.
    assert len(set(keys)) == 6 and len(keys) - len(set(keys)) <= 1
