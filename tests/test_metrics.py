"""MonitoringService: workflow metrics and agent performance over real executions."""

from __future__ import annotations

import pytest
from google.protobuf import duration_pb2, timestamp_pb2

import baton
from baton import Agent, Client, PythonRuntime, RetryPolicy, Step, Workflow


def fast() -> RetryPolicy:
    return RetryPolicy(max_attempts=2, initial_interval=duration_pb2.Duration(nanos=10_000_000))


async def test_workflow_metrics_and_agent_performance(client: Client) -> None:
    await client.agents.create(
        Agent(python=PythonRuntime(entry_point="test_agents_lib:flaky")), agent_id="flaky"
    )
    await client.agents.create(
        Agent(python=PythonRuntime(entry_point="test_agents_lib:slow")), agent_id="slow"
    )
    workflow = await client.workflows.create(
        Workflow(steps=[Step(id="try", agent="flaky", retry_policy=fast())]), workflow_id="measured"
    )
    # succeed_on 2: one failed attempt, then success. succeed_on 5: two failures, FAILED.
    for value in ({"succeed_on": 2}, {"succeed_on": 2}, {"succeed_on": 5}):
        execution = await client.executions.start(workflow.name, value)
        await client.executions.wait(execution.name, timeout=10)
    sleeper = await client.workflows.create(Workflow(steps=[Step(id="nap", agent="slow")]))
    running = await client.executions.start(sleeper.name, {"seconds": 30})
    await client.executions.cancel(running.name)

    metrics = await client.workflow_metrics("workflows/measured")
    assert metrics.execution_count == 3
    assert (metrics.succeeded_count, metrics.failed_count, metrics.active_count) == (2, 1, 0)
    assert metrics.success_rate == pytest.approx(2 / 3)
    assert metrics.p50_duration.ToNanoseconds() > 0
    assert metrics.p99_duration.ToNanoseconds() >= metrics.p50_duration.ToNanoseconds()

    performance = await client.agent_performance("flaky")
    # 2 x (fail, succeed) + (fail, fail)
    counts = (performance.attempt_count, performance.success_count, performance.error_count)
    assert counts == (6, 2, 4)
    assert dict(performance.errors_by_type) == {"Flaky": 4}
    assert performance.success_rate == pytest.approx(2 / 6)

    # An empty window, and bad requests.
    past = timestamp_pb2.Timestamp(seconds=1_000_000)
    older = timestamp_pb2.Timestamp(seconds=999_000)
    empty = await client.workflow_metrics("measured", start_time=older, end_time=past)
    assert empty.execution_count == 0 and empty.success_rate == 0
    with pytest.raises(baton.InvalidArgumentError) as caught:
        await client.agent_performance("flaky", start_time=past, end_time=older)
    assert caught.value.field == "start_time"
    with pytest.raises(baton.NotFoundError):
        await client.workflow_metrics("nope")
    with pytest.raises(baton.NotFoundError):
        await client.agent_performance("nope")
