"""RetryExecution over the real server, counted by side effects: the upstream steps keep
their outputs and are not run again, exactly the reset steps run again, under new
idempotency keys; and a SIGKILL in the middle of the re-run loses nothing."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from conftest import start_process, stop_processes
from test_recovery import effect_agent, effects

import baton
from baton import Client, EventType, Execution, Step, Workflow

ONE_TRY = baton.RetryPolicy(max_attempts=1)


async def failing_workflow(client: Client, effect_log: Path) -> str:
    await effect_agent(client, "effect", "effect", effect_log, 0.0)
    await effect_agent(client, "flaky", "effect_flaky", effect_log, 0.0)  # attempt 1 fails
    workflow = await client.workflows.create(
        Workflow(
            steps=[
                Step(id="a", agent="effect"),
                Step(id="b", agent="flaky", depends_on=["a"], retry_policy=ONE_TRY),
                Step(id="c", agent="effect", depends_on=["b"]),
            ]
        )
    )
    return workflow.name


@pytest.mark.timeout(90)
async def test_retry_from_the_failed_step_reruns_exactly_the_reset_steps(
    tmp_path: Path, database: str
) -> None:
    effect_log = tmp_path / "effects.log"
    processes: list[subprocess.Popen[str]] = []
    try:
        process, port = await start_process(database)
        processes.append(process)
        async with Client.connect(f"127.0.0.1:{port}", timeout=10) as client:
            workflow = await failing_workflow(client, effect_log)
            started = await client.executions.start(workflow, {})
            failed = await client.executions.wait(started.name, timeout=20)
            assert failed.state == Execution.STATE_FAILED
            with pytest.raises(baton.InvalidArgumentError) as unknown:
                await client.executions.retry(failed.name, ["nope"])
            assert "from_steps[0]" in str(unknown.value)
            retried = await client.executions.retry(failed.name, request_id="again")
            assert retried.run == 1
            assert (await client.executions.retry(failed.name, request_id="again")).run == 1
            done = await client.executions.wait(started.name, timeout=20)
            assert done.state == Execution.STATE_SUCCEEDED, done.error
            with pytest.raises(baton.FailedPreconditionError) as succeeded:
                await client.executions.retry(done.name)
            assert succeeded.value.reason == "EXECUTION_NOT_ENDED_BADLY"
            retried_events = [
                e.execution_retried
                async for e in client.executions.events(
                    done.name, event_types=[EventType.EVENT_TYPE_EXECUTION_RETRIED]
                )
            ]
            assert [list(e.reset_steps) for e in retried_events] == [["b", "c"]]
        execution_id = started.name.removeprefix("executions/")
        assert effects(effect_log) == {
            (execution_id, "a"): 1,  # upstream: not run again
            (execution_id, "b"): 2,  # the failed attempt 1, then attempt 2 of the retry
            (execution_id, "c"): 1,
        }

    finally:
        stop_processes(processes)


@pytest.mark.timeout(90)
async def test_a_sigkill_during_a_retried_run_loses_nothing(tmp_path: Path, database: str) -> None:
    effect_log = tmp_path / "effects.log"
    processes: list[subprocess.Popen[str]] = []
    try:
        process, port = await start_process(database)
        processes.append(process)
        async with Client.connect(f"127.0.0.1:{port}", timeout=10) as client:
            await effect_agent(client, "effect", "effect", effect_log, 0.0)
            await baton_sleeper(client)
            workflow = await client.workflows.create(
                Workflow(
                    steps=[
                        Step(id="a", agent="effect"),
                        Step(
                            id="nap",
                            agent="sleeper",
                            depends_on=["a"],
                            input_mapping={"seconds": 30},
                        ),
                        Step(id="c", agent="effect", depends_on=["nap"]),
                    ]
                )
            )
            started = await client.executions.start(workflow.name, {})
            await asyncio.sleep(0.3)
            await client.executions.cancel(started.name)
            await client.executions.retry(started.name, ["nap"])
            await asyncio.sleep(0.3)
        process.kill()
        await asyncio.to_thread(process.wait)
        process, port = await start_process(database)
        processes.append(process)
        async with Client.connect(f"127.0.0.1:{port}", timeout=10) as client:
            after = await client.executions.get(started.name)
            assert after.state == Execution.STATE_RUNNING and after.run == 1
            assert after.steps[0].output["done"] == "a"  # kept
            await client.executions.cancel(started.name)
            done = await client.executions.get(started.name)
        assert done.state == Execution.STATE_CANCELLED
        execution_id = started.name.removeprefix("executions/")
        assert effects(effect_log) == {(execution_id, "a"): 1}  # a ran once in all
    finally:
        stop_processes(processes)


async def baton_sleeper(client: Client) -> None:
    await client.agents.create(
        baton.Agent(python=baton.PythonRuntime(entry_point="baton_server.agents.builtin:sleep")),
        agent_id="sleeper",
    )
