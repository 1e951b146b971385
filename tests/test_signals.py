"""Signals over the real server: a step that waits for one, signals that come early, `when`,
repeats, bad requests, and a SIGKILL while a step waits (a signal sent while the server is
down is refused, not lost, and delivered by the retry after the restart)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import start_process, stop_processes
from test_executions import agent

import baton
from baton import Client, EventType, Execution, Step, StepRun, Workflow


def approval(when: str = "", timeout: dict[str, int] | None = None) -> Workflow:
    wait_for = baton.WaitFor(signal="approved", when=when)
    if timeout:
        wait_for.timeout.FromSeconds(timeout["seconds"])
    return Workflow(
        steps=[
            Step(id="draft", agent="echo"),
            Step(id="approve", wait_for=wait_for, depends_on=["draft"]),
            Step(
                id="publish",
                agent="echo",
                depends_on=["approve"],
                input_mapping={"by": "${steps.approve.output.by}"},
            ),
        ]
    )


async def state_of(client: Client, name: str, step_id: str) -> int:
    execution = await client.executions.get(name)
    return next(s.state for s in execution.steps if s.step_id == step_id)


async def until_waiting(client: Client, name: str) -> None:
    for _ in range(200):
        if await state_of(client, name, "approve") == StepRun.STATE_WAITING:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the step never waited")


async def test_a_step_waits_for_its_signal_and_takes_only_a_matching_one(client: Client) -> None:
    await agent(client, "echo", "baton_server.agents.builtin:echo")
    workflow = await client.workflows.create(approval(when="signal.ok == true"))
    started = await client.executions.start(workflow.name, {"doc": 1})
    await until_waiting(client, started.name)

    await client.executions.signal(started.name, "approved", {"ok": False, "by": "bob"})
    await asyncio.sleep(0.2)
    assert await state_of(client, started.name, "approve") == StepRun.STATE_WAITING
    await client.executions.signal(started.name, "approved", {"ok": True, "by": "ana"})
    done = await client.executions.wait(started.name, timeout=20)
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    assert done.output == {"publish": {"by": "ana"}}
    received = [
        e.signal_received
        async for e in client.executions.events(
            done.name, event_types=[EventType.EVENT_TYPE_SIGNAL_RECEIVED]
        )
    ]
    assert [(r.payload["by"], r.taken_by) for r in received] == [("bob", ""), ("ana", "approve")]


async def test_an_early_signal_waits_and_a_repeated_request_delivers_nothing(
    client: Client,
) -> None:
    await agent(client, "echo", "baton_server.agents.builtin:echo")
    await agent(client, "sleeper", "baton_server.agents.builtin:sleep")
    workflow = await client.workflows.create(
        Workflow(
            steps=[
                Step(id="draft", agent="sleeper", input_mapping={"seconds": 0.5}),
                Step(id="approve", wait_for=baton.WaitFor(signal="approved"), depends_on=["draft"]),
            ]
        )
    )
    started = await client.executions.start(workflow.name, {})
    await client.executions.signal(started.name, "approved", {"by": "early"}, request_id="s-1")
    await client.executions.signal(started.name, "approved", {"by": "again"}, request_id="s-1")
    done = await client.executions.wait(started.name, timeout=20)
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    assert done.output == {"approve": {"by": "early"}}
    received = [
        e
        async for e in client.executions.events(
            done.name, event_types=[EventType.EVENT_TYPE_SIGNAL_RECEIVED]
        )
    ]
    assert len(received) == 1

    with pytest.raises(baton.FailedPreconditionError) as ended:
        await client.executions.signal(done.name, "approved", {})
    assert ended.value.reason == "EXECUTION_ALREADY_TERMINAL"
    with pytest.raises(baton.InvalidArgumentError) as bad:
        await client.executions.signal(done.name, "not a name!", {})
    assert "signal" in str(bad.value)
    with pytest.raises(baton.InvalidArgumentError) as both:
        await client.workflows.create(
            Workflow(
                steps=[Step(id="x", wait_for=baton.WaitFor(signal="s"), fallback_agents=["echo"])]
            )
        )
    assert "fallback_agents" in str(both.value)


async def test_a_signal_that_never_comes_fails_the_step(client: Client) -> None:
    await agent(client, "echo", "baton_server.agents.builtin:echo")
    workflow = await client.workflows.create(approval(timeout={"seconds": 1}))
    started = await client.executions.start(workflow.name, {})
    done = await client.executions.wait(started.name, timeout=20)
    assert done.state == Execution.STATE_FAILED
    assert done.error.type == "SIGNAL_TIMEOUT"


@pytest.mark.timeout(90)
async def test_a_waiting_step_survives_a_sigkill_and_a_signal_sent_meanwhile_is_refused(
    tmp_path: Path, database: str
) -> None:
    processes: list[subprocess.Popen[str]] = []
    try:
        process, port = await start_process(database)
        processes.append(process)
        async with Client.connect(f"127.0.0.1:{port}", timeout=5) as client:
            await agent(client, "echo", "baton_server.agents.builtin:echo")
            workflow = await client.workflows.create(approval())
            started = await client.executions.start(workflow.name, {})
            await until_waiting(client, started.name)
            process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(process.wait)
            with pytest.raises(baton.UnavailableError):  # refused, not lost
                await client.executions.signal(
                    started.name, "approved", {"by": "ana"}, request_id="once"
                )
        process, port = await start_process(database)
        processes.append(process)
        async with Client.connect(f"127.0.0.1:{port}", timeout=5) as client:
            assert await state_of(client, started.name, "approve") == StepRun.STATE_WAITING
            # The client's retry, with the same request id, delivers it.
            await client.executions.signal(
                started.name, "approved", {"by": "ana"}, request_id="once"
            )
            done = await client.executions.wait(started.name, timeout=20)
        assert done.state == Execution.STATE_SUCCEEDED, done.error
        assert done.output == {"publish": {"by": "ana"}}
    finally:
        stop_processes(processes)
