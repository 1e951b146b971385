"""Pause and resume over the real server, with a SIGKILL while paused: it stays paused, the
steps that finished are not run again, and a resume finishes it."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from conftest import start_process, stop_processes
from test_executions import agent
from test_recovery import effect_agent, effects

import baton
from baton import Client, EventType, Execution, Step, StepRun, Workflow


async def test_pause_and_resume_with_errors(client: Client) -> None:
    await agent(client, "sleeper", "baton_server.agents.builtin:sleep")
    workflow = await client.workflows.create(
        Workflow(
            steps=[
                Step(id="first", agent="sleeper", input_mapping={"seconds": 0.3}),
                Step(id="second", agent="sleeper", depends_on=["first"]),
            ]
        )
    )
    started = await client.executions.start(workflow.name, {"seconds": 0})
    paused = await client.executions.pause(started.name, reason="checking something")
    assert paused.state == Execution.STATE_PAUSED
    with pytest.raises(baton.FailedPreconditionError) as twice:
        await client.executions.pause(started.name)
    assert twice.value.reason == "EXECUTION_NOT_RUNNING"
    await asyncio.sleep(0.6)  # the first step finishes; the second does not start
    held = await client.executions.get(started.name)
    assert [s.state for s in held.steps] == [StepRun.STATE_SUCCEEDED, StepRun.STATE_PENDING]
    resumed = await client.executions.resume(started.name)
    assert resumed.state == Execution.STATE_RUNNING
    done = await client.executions.wait(started.name, timeout=20)
    assert done.state == Execution.STATE_SUCCEEDED
    with pytest.raises(baton.FailedPreconditionError) as ended:
        await client.executions.resume(started.name)
    assert ended.value.reason == "EXECUTION_NOT_PAUSED"
    kinds = [
        e.type
        async for e in client.executions.events(
            done.name,
            event_types=[
                EventType.EVENT_TYPE_EXECUTION_PAUSED,
                EventType.EVENT_TYPE_EXECUTION_RESUMED,
            ],
        )
    ]
    assert kinds == [EventType.EVENT_TYPE_EXECUTION_PAUSED, EventType.EVENT_TYPE_EXECUTION_RESUMED]


@pytest.mark.timeout(90)
async def test_a_paused_execution_stays_paused_across_a_sigkill(
    tmp_path: Path, database: str
) -> None:
    effect_log = tmp_path / "effects.log"
    processes: list[subprocess.Popen[str]] = []
    try:
        process, port = await start_process(database)
        processes.append(process)
        async with Client.connect(f"127.0.0.1:{port}", timeout=10) as client:
            await effect_agent(client, "effect", "effect", effect_log, 0.0)
            await agent(client, "sleeper", "baton_server.agents.builtin:sleep")
            workflow = await client.workflows.create(
                Workflow(
                    steps=[
                        Step(id="a", agent="effect"),
                        Step(
                            id="gate",
                            agent="sleeper",
                            depends_on=["a"],
                            input_mapping={"seconds": 0.5},
                        ),
                        Step(id="b", agent="effect", depends_on=["gate"]),
                    ]
                )
            )
            started = await client.executions.start(workflow.name, {})
            for _ in range(250):  # a is done, the gate's attempt runs
                if effects(effect_log):
                    break
                await asyncio.sleep(0.02)
            await client.executions.pause(started.name)
            await asyncio.sleep(0.8)  # the gate's attempt finishes while paused
        process.kill()
        await asyncio.to_thread(process.wait)
        process, port = await start_process(database)
        processes.append(process)
        async with Client.connect(f"127.0.0.1:{port}", timeout=10) as client:
            await asyncio.sleep(0.3)
            after = await client.executions.get(started.name)
            assert after.state == Execution.STATE_PAUSED
            assert after.steps[1].state == StepRun.STATE_SUCCEEDED
            assert after.steps[2].state == StepRun.STATE_PENDING  # b did not start
            await client.executions.resume(started.name)
            done = await client.executions.wait(started.name, timeout=20)
        assert done.state == Execution.STATE_SUCCEEDED, done.error
        ran = effects(effect_log)
        assert sorted(step for _, step in ran) == ["a", "b"]  # a was not run again
        assert all(count == 1 for count in ran.values())
    finally:
        stop_processes(processes)
