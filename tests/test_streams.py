"""StreamExecutionEvents over real gRPC: complete, gapless, resumable, bounded."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import (
    StartServer,
    database_for_test,
    free_port,
    query_database,
    start_process,
    stop_processes,
)
from google.protobuf import duration_pb2

import baton
from baton import Agent, Client, EventType, PythonRuntime, RetryPolicy, Step, Workflow


def seconds(value: float) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromNanoseconds(round(value * 1e9))
    return message


async def busy_workflow(client: Client, pause: float = 0.05, steps: int = 6) -> str:
    """Steps that sleep, log and retry once, so a run has many events over some time."""
    await client.agents.create(
        Agent(python=PythonRuntime(entry_point="test_agents_lib:slow")), agent_id="slow"
    )
    await client.agents.create(
        Agent(python=PythonRuntime(entry_point="test_agents_lib:chatty")), agent_id="chatty"
    )
    await client.agents.create(
        Agent(python=PythonRuntime(entry_point="test_agents_lib:flaky")), agent_id="flaky"
    )
    chain: list[Step] = []
    for i in range(steps):
        previous = [chain[-1].id] if chain else []
        chain.append(
            Step(id=f"wait{i}", agent="slow", depends_on=previous, input_mapping={"seconds": pause})
        )
        chain.append(Step(id=f"talk{i}", agent="chatty", depends_on=[f"wait{i}"]))
    chain.append(
        Step(
            id="retry",
            agent="flaky",
            depends_on=[chain[-1].id],
            input_mapping={"succeed_on": 2},
            retry_policy=RetryPolicy(initial_interval=seconds(0.02)),
        )
    )
    workflow = await client.workflows.create(Workflow(steps=chain))
    return workflow.name


def summary(events: list[baton.ExecutionEvent]) -> list[tuple[int, int, str]]:
    return [(e.sequence, e.type, e.step_id) for e in events]


async def collect(client: Client, name: str, **options: Any) -> list[baton.ExecutionEvent]:
    return [e async for e in client.executions.stream(name, **options)]


async def test_before_during_and_after_give_the_same_complete_log(client: Client) -> None:
    workflow = await busy_workflow(client)
    execution = await client.executions.start(workflow, {})
    before = asyncio.create_task(collect(client, execution.name))
    await asyncio.sleep(0.15)
    during = asyncio.create_task(collect(client, execution.name))
    first, second = await asyncio.gather(before, during)
    after = await collect(client, execution.name)

    stored = [e async for e in client.executions.events(execution.name)]
    assert summary(first) == summary(second) == summary(after) == summary(stored)
    assert [e.sequence for e in first] == list(range(1, len(first) + 1))
    assert first[-1].type == EventType.EVENT_TYPE_EXECUTION_SUCCEEDED
    assert any(e.type == EventType.EVENT_TYPE_LOG for e in first)
    assert any(e.type == EventType.EVENT_TYPE_STEP_RETRYING for e in first)
    assert len(first) > 40


async def test_dropped_stream_resumes_with_exactly_the_rest(client: Client) -> None:
    workflow = await busy_workflow(client)
    for _ in range(3):
        execution = await client.executions.start(workflow, {})
        seen: list[baton.ExecutionEvent] = []
        cut = random.randint(1, 30)
        async for event in client.executions.stream(execution.name):
            seen.append(event)
            if len(seen) == cut:
                break  # the client goes away mid-stream
        await asyncio.sleep(random.uniform(0, 0.2))
        rest = await collect(client, execution.name, after_sequence=seen[-1].sequence)
        whole = [*seen, *rest]
        assert [e.sequence for e in whole] == list(range(1, len(whole) + 1))
        assert whole[-1].type == EventType.EVENT_TYPE_EXECUTION_SUCCEEDED


async def test_filters_unknown_executions_and_bad_requests(client: Client) -> None:
    workflow = await busy_workflow(client, steps=2)
    execution = await client.executions.start(workflow, {})
    logs = await collect(client, execution.name, event_types=[EventType.EVENT_TYPE_LOG])
    assert logs and all(e.type == EventType.EVENT_TYPE_LOG for e in logs)
    assert [e.sequence for e in logs] == sorted(e.sequence for e in logs)
    # The stream ends after the terminal event even when the filter hides it.
    everything = await collect(client, execution.name)
    assert [e for e in everything if e.type == EventType.EVENT_TYPE_LOG] == logs

    with pytest.raises(baton.NotFoundError):
        await collect(client, "executions/nope")
    with pytest.raises(baton.InvalidArgumentError) as caught:
        await collect(client, execution.name, after_sequence=-1)
    assert caught.value.field == "after_sequence"
    with pytest.raises(baton.InvalidArgumentError) as caught:
        await collect(client, execution.name, event_types=[99])  # type: ignore[list-item]
    assert caught.value.field == "event_types[0]"


async def test_slow_consumers_catch_up_from_storage(start_server: StartServer) -> None:
    server = await start_server(stream_buffer=3, stream_poll=0.2)
    async with Client.connect(f"127.0.0.1:{server.port}") as client:
        workflow = await busy_workflow(client, pause=0.01, steps=8)
        execution = await client.executions.start(workflow, {})
        seen = []
        async for event in client.executions.stream(execution.name):
            seen.append(event)
            await asyncio.sleep(0.01)  # slower than the engine writes
        assert [e.sequence for e in seen] == list(range(1, len(seen) + 1))
        assert seen[-1].type == EventType.EVENT_TYPE_EXECUTION_SUCCEEDED
        assert server.executions.hub.streams == 0  # subscriptions are released


@pytest.mark.timeout(90)
async def test_stream_survives_a_server_killed_and_restarted(database: str) -> None:
    port = free_port()
    process, _ = await start_process(database, listen=f"127.0.0.1:{port}")
    processes = [process]
    try:
        async with Client.connect(f"127.0.0.1:{port}", timeout=30) as client:
            workflow = await busy_workflow(client, pause=0.15, steps=8)
            execution = await client.executions.start(workflow, {})
            seen: list[baton.ExecutionEvent] = []
            midway = asyncio.Event()

            async def restart_midway() -> None:
                await midway.wait()
                process.send_signal(signal.SIGKILL)
                await asyncio.to_thread(process.wait)
                await asyncio.sleep(0.3)
                replacement, _ = await start_process(database, listen=f"127.0.0.1:{port}")
                processes.append(replacement)

            restarter = asyncio.create_task(restart_midway())
            async for event in client.executions.stream(execution.name):
                seen.append(event)
                if len(seen) == 15:
                    midway.set()
            await restarter
        assert len(processes) == 2, "the server was restarted mid-stream"
        assert [e.sequence for e in seen] == list(range(1, len(seen) + 1))
        assert seen[-1].type == EventType.EVENT_TYPE_EXECUTION_SUCCEEDED
    finally:
        stop_processes(processes)


async def test_output_deltas_stream_live_and_are_bounded(start_server: StartServer) -> None:
    server = await start_server(max_deltas=5)
    async with Client.connect(f"127.0.0.1:{server.port}") as client:
        await client.agents.create(
            Agent(python=PythonRuntime(entry_point="test_agents_lib:typist")), agent_id="typist"
        )
        workflow = await client.workflows.create(Workflow(steps=[Step(id="say", agent="typist")]))
        short = await client.executions.start(
            workflow.name, {"text": "one two three", "with_data": True}
        )
        deltas = [
            e
            for e in await collect(client, short.name)
            if e.type == EventType.EVENT_TYPE_STEP_OUTPUT_DELTA
        ]
        assert [d.step_output_delta.text for d in deltas] == ["one ", "two ", "three "]
        assert [d.step_output_delta.data["index"] for d in deltas] == [0, 1, 2]
        assert all(d.step_id == "say" and d.attempt == 1 for d in deltas)

        long = await client.executions.start(workflow.name, {"text": "a b c d e f g h"})
        events = await collect(client, long.name)
        texts = [
            e.step_output_delta.text
            for e in events
            if e.type == EventType.EVENT_TYPE_STEP_OUTPUT_DELTA
        ]
        assert texts == ["a ", "b ", "c ", "d ", "e "]  # the bound
        warnings = [e.log.message for e in events if e.type == EventType.EVENT_TYPE_LOG]
        assert warnings == ["more than 5 output deltas: the rest are dropped"]
        done = await client.executions.get(long.name)
        assert done.steps[0].output["text"] == "a b c d e f g h"  # the output is whole


async def test_resuming_after_the_end_ends_at_once(client: Client) -> None:
    workflow = await busy_workflow(client, steps=1)
    execution = await client.executions.start(workflow, {})
    events = await collect(client, execution.name)
    last = events[-1].sequence
    assert await asyncio.wait_for(collect(client, execution.name, after_sequence=last), 5) == []
    beyond = collect(client, execution.name, after_sequence=last + 100)
    assert await asyncio.wait_for(beyond, 5) == []
    tail = await asyncio.wait_for(collect(client, execution.name, after_sequence=last - 1), 5)
    assert [e.sequence for e in tail] == [last]


@pytest.mark.timeout(60)
async def test_a_standby_streams_live_through_postgresql_notify(tmp_path: Path) -> None:
    """Two replicas on one PostgreSQL database and no Redis: the one that does not run the
    execution still streams its events as they happen (LISTEN/NOTIFY), not at its next
    poll of the database 30 s later."""
    env = {"BATON_STREAM_POLL": "30"}
    metrics = [free_port(), free_port()]
    async with database_for_test(tmp_path, "postgresql") as url:
        # Both start at once, and each counts both among the replicas.
        (first, first_port), (second, second_port) = await asyncio.gather(
            *(
                start_process(url, extra_env={**env, "BATON_METRICS_LISTEN": f"127.0.0.1:{m}"})
                for m in metrics
            )
        )
        try:
            deadline = time.monotonic() + 10
            async with httpx.AsyncClient() as http:
                while True:
                    pages = [
                        (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                        for port in metrics
                    ]
                    if all("baton_replicas_live 2.0" in page for page in pages):
                        break
                    assert time.monotonic() < deadline, pages
                    await asyncio.sleep(0.2)
            async with Client.connect(f"127.0.0.1:{first_port}") as client:
                await client.agents.create(
                    Agent(python=PythonRuntime(entry_point="test_agents_lib:slow")),
                    agent_id="slow",
                )
                workflow = await client.workflows.create(
                    Workflow(
                        steps=[
                            Step(id=f"s{i}", agent="slow", input_mapping={"seconds": 0.3})
                            for i in range(3)
                        ]
                    )
                )
                # Started on an idle replica, it runs there.
                started = await client.executions.start(workflow.name, {})
            async with Client.connect(f"127.0.0.1:{second_port}") as far:
                begun = time.monotonic()
                seen = [event async for event in far.executions.stream(started.name)]
                elapsed = time.monotonic() - begun
            ran_at = await query_database(
                url,
                "SELECT r.address FROM executions e JOIN replicas r ON r.id = e.owner "
                f"WHERE e.id = '{started.name.split('/')[1]}'",
            )
        finally:
            stop_processes([first, second])
    assert [a.rsplit(":", 1)[1] for (a,) in ran_at] == [str(first_port)]
    assert seen[-1].type == EventType.EVENT_TYPE_EXECUTION_SUCCEEDED
    assert [e.sequence for e in seen] == list(range(1, len(seen) + 1))
    assert elapsed < 10, elapsed
