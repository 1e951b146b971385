"""The execution engine over real gRPC: DAGs, conditions, retries, timeouts, fallbacks,
cancellation, priority, limits, and bad input."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from conftest import StartServer
from google.protobuf import duration_pb2, struct_pb2

import baton
from baton import Agent, Client, EventType, Execution, PythonRuntime, RetryPolicy, Step, StepRun
from baton import Workflow as WorkflowMessage


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


def seconds(value: float) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromNanoseconds(round(value * 1e9))
    return message


async def agent(client: Client, agent_id: str, entry_point: str, **fields: Any) -> Agent:
    return await client.agents.create(
        Agent(display_name=agent_id, python=PythonRuntime(entry_point=entry_point), **fields),
        agent_id=agent_id,
    )


def fast_retries(max_attempts: int = 3, **fields: Any) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=max_attempts, initial_interval=seconds(0.05), backoff_coefficient=2, **fields
    )


async def events_of(client: Client, name: str) -> list[baton.ExecutionEvent]:
    return [e async for e in client.executions.events(name)]


def step(execution: Execution, step_id: str) -> StepRun:
    return next(s for s in execution.steps if s.step_id == step_id)


async def test_ten_step_dag_with_fan_out_fan_in_and_a_false_condition(client: Client) -> None:
    await agent(client, "adder", "test_agents_lib:add")
    await agent(client, "echo", "baton_server.agents.builtin:echo")

    def plus(step_id: str, deps: list[str], *values: Any, **extra: Any) -> Step:
        return Step(
            id=step_id,
            agent="adder",
            depends_on=deps,
            input_mapping=struct({"values": list(values)}),
            **extra,
        )

    workflow = await client.workflows.create(
        WorkflowMessage(
            display_name="ten steps",
            steps=[
                Step(id="start", agent="echo", input_mapping=struct({"n": "${input.n}"})),
                plus("a", ["start"], "${steps.start.output.n}", 1),
                plus("b", ["start"], "${steps.start.output.n}", 2),
                plus("c", ["start"], "${steps.start.output.n}", 3),
                plus("big_only", ["start"], 1000, when="steps.start.output.n > 100"),
                plus("after_big", ["big_only"], "${steps.big_only.output.value}"),
                plus(
                    "join",
                    ["a", "b", "c"],
                    "${steps.a.output.value}",
                    "${steps.b.output.value}",
                    "${steps.c.output.value}",
                ),
                plus(
                    "double", ["join"], "${steps.join.output.value}", "${steps.join.output.value}"
                ),
                plus(
                    "plus_ten",
                    ["join"],
                    "${steps.join.output.value}",
                    10,
                    when="steps.join.output.value == 3 * input.n + 6",
                ),
                plus(
                    "final",
                    ["double", "plus_ten"],
                    "${steps.double.output.value}",
                    "${steps.plus_ten.output.value}",
                ),
            ],
            output_mapping=struct(
                {
                    "total": "${steps.final.output.value}",
                    "summary": "n=${input.n} total=${steps.final.output.value}",
                }
            ),
        )
    )
    started = await client.executions.start(workflow.name, {"n": 5}, labels={"case": "dag"})
    assert started.state in (Execution.STATE_QUEUED, Execution.STATE_RUNNING)
    done = await client.executions.wait(started.name, timeout=20)

    assert done.state == Execution.STATE_SUCCEEDED, done.error
    # join = (5+1)+(5+2)+(5+3) = 21; double = 42; plus_ten = 31; final = 73
    assert dict(done.output) == {"total": 73, "summary": "n=5 total=73"}
    states = {s.step_id: s.state for s in done.steps}
    assert states["big_only"] == StepRun.STATE_SKIPPED
    assert states["after_big"] == StepRun.STATE_SKIPPED
    assert all(
        state == StepRun.STATE_SUCCEEDED
        for sid, state in states.items()
        if sid not in ("big_only", "after_big")
    )
    assert [s.step_id for s in done.steps][:3] == ["start", "a", "b"]  # workflow order
    assert step(done, "join").start_time.ToNanoseconds() >= max(
        step(done, x).end_time.ToNanoseconds() for x in ("a", "b", "c")
    )

    events = await events_of(client, done.name)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    times = [e.time.ToNanoseconds() for e in events]
    assert times[0] == done.create_time.ToNanoseconds() and times == sorted(times)
    assert events[0].type == EventType.EVENT_TYPE_EXECUTION_QUEUED
    assert events[-1].type == EventType.EVENT_TYPE_EXECUTION_SUCCEEDED
    skipped = {
        e.step_id: e.step_skipped.reason
        for e in events
        if e.type == EventType.EVENT_TYPE_STEP_SKIPPED
    }
    assert skipped == {
        "big_only": "condition is false",
        "after_big": "dependency 'big_only' was skipped",
    }
    assert done.last_event_sequence == events[-1].sequence


async def test_retries_with_backoff_then_success(client: Client) -> None:
    await agent(client, "flaky", "test_agents_lib:flaky")
    workflow = await client.workflows.create(
        WorkflowMessage(
            steps=[
                Step(
                    id="try",
                    agent="flaky",
                    retry_policy=RetryPolicy(
                        max_attempts=5, initial_interval=seconds(0.1), backoff_coefficient=2
                    ),
                ),
            ]
        )
    )
    done = await client.executions.wait(
        (await client.executions.start(workflow.name, {"succeed_on": 3})).name, timeout=20
    )

    assert done.state == Execution.STATE_SUCCEEDED, done.error
    run = step(done, "try")
    assert run.attempt == 3
    assert [a.attempt for a in run.attempts] == [1, 2, 3]
    assert [a.error.type for a in run.attempts] == ["Flaky", "Flaky", ""]
    assert dict(run.output)["key"] == f"{done.name.split('/')[1]}/try/3"

    events = await events_of(client, done.name)
    retrying = [e.step_retrying for e in events if e.type == EventType.EVENT_TYPE_STEP_RETRYING]
    assert [r.next_attempt for r in retrying] == [2, 3]
    delays = [r.delay.ToNanoseconds() / 1e9 for r in retrying]
    assert delays == pytest.approx([0.1, 0.2])
    starts = [a.start_time.ToNanoseconds() / 1e9 for a in run.attempts]
    ends = [a.end_time.ToNanoseconds() / 1e9 for a in run.attempts]
    assert starts[1] - ends[0] >= 0.1 - 0.01
    assert starts[2] - ends[1] >= 0.2 - 0.01


async def test_timeouts_then_retries_then_fallback_agent(client: Client) -> None:
    await agent(client, "sleepy", "test_agents_lib:slow")
    await agent(client, "backup", "baton_server.agents.builtin:echo")
    workflow = await client.workflows.create(
        WorkflowMessage(
            steps=[
                Step(
                    id="work",
                    agent="sleepy",
                    timeout=seconds(0.2),
                    retry_policy=fast_retries(2),
                    fallback_agents=["agents/backup"],
                ),
            ]
        )
    )
    begun = time.monotonic()
    done = await client.executions.wait(
        (await client.executions.start(workflow.name, {"seconds": 30})).name, timeout=20
    )
    assert time.monotonic() - begun < 5

    assert done.state == Execution.STATE_SUCCEEDED, done.error
    run = step(done, "work")
    assert run.agent == "agents/backup"
    assert [(a.agent, a.fallback, a.error.type) for a in run.attempts] == [
        ("agents/sleepy", False, "STEP_TIMEOUT"),
        ("agents/sleepy", False, "STEP_TIMEOUT"),
        ("agents/backup", True, ""),
    ]
    assert dict(run.output) == {"seconds": 30}
    kinds = [e.type for e in await events_of(client, done.name) if e.step_id == "work"]
    assert kinds.count(EventType.EVENT_TYPE_STEP_TIMED_OUT) == 2
    assert kinds.count(EventType.EVENT_TYPE_STEP_RETRYING) == 1
    assert kinds.count(EventType.EVENT_TYPE_FALLBACK_ACTIVATED) == 1
    assert kinds.count(EventType.EVENT_TYPE_STEP_STARTED) == 3


async def test_step_that_keeps_timing_out_fails_the_execution(client: Client) -> None:
    await agent(client, "sleepy", "test_agents_lib:slow")
    workflow = await client.workflows.create(
        WorkflowMessage(
            steps=[
                Step(id="work", agent="sleepy", timeout=seconds(0.1), retry_policy=fast_retries(2)),
                Step(id="never", agent="sleepy", depends_on=["work"]),
            ]
        )
    )
    done = await client.executions.wait(
        (await client.executions.start(workflow.name, {"seconds": 30})).name, timeout=20
    )
    assert done.state == Execution.STATE_FAILED
    assert step(done, "work").state == StepRun.STATE_TIMED_OUT
    assert step(done, "never").state == StepRun.STATE_CANCELLED
    assert done.error.step_id == "work"
    assert done.error.cause.type == "STEP_TIMEOUT"


@pytest.mark.parametrize("how", ["flag", "policy"])
async def test_non_retryable_errors_fail_at_once(client: Client, how: str) -> None:
    await agent(client, "failing", "test_agents_lib:fail")
    policy = fast_retries(5, non_retryable_error_types=["Fatal"])
    workflow = await client.workflows.create(
        WorkflowMessage(
            steps=[
                Step(id="doomed", agent="failing", retry_policy=policy),
            ]
        )
    )
    value = {"type": "Fatal"} if how == "policy" else {"type": "Other", "non_retryable": True}
    done = await client.executions.wait(
        (await client.executions.start(workflow.name, value)).name, timeout=20
    )
    assert done.state == Execution.STATE_FAILED
    run = step(done, "doomed")
    assert run.state == StepRun.STATE_FAILED
    assert len(run.attempts) == 1
    assert done.error.type == value["type"]
    assert "doomed" in done.error.message and done.error.cause.message == "boom"


async def test_plain_exceptions_and_missing_paths_are_clear_failures(client: Client) -> None:
    await agent(client, "crasher", "test_agents_lib:crash")
    await agent(client, "echo", "baton_server.agents.builtin:echo")
    crash = await client.workflows.create(
        WorkflowMessage(steps=[Step(id="c", agent="crasher", retry_policy=fast_retries(1))])
    )
    done = await client.executions.wait(
        (await client.executions.start(crash.name, {"x": "y"})).name, timeout=20
    )
    assert (done.error.type, done.error.cause.message) == ("ValueError", "not a number: y")

    missing = await client.workflows.create(
        WorkflowMessage(
            steps=[
                Step(id="a", agent="echo"),
                Step(
                    id="b",
                    agent="echo",
                    depends_on=["a"],
                    input_mapping=struct({"v": "${steps.a.output.nothing.here}"}),
                ),
            ]
        )
    )
    done = await client.executions.wait(
        (await client.executions.start(missing.name, {"x": 1})).name, timeout=20
    )
    assert done.state == Execution.STATE_FAILED
    assert step(done, "b").state == StepRun.STATE_FAILED
    assert done.error.cause.type == "MAPPING_ERROR"
    assert "has no key 'nothing'" in done.error.cause.message
    assert not step(done, "b").attempts  # no agent was called


async def test_cancel_during_a_long_step(client: Client) -> None:
    await agent(client, "sleepy", "test_agents_lib:slow")
    await agent(client, "blocker", "test_agents_lib:blocking")
    workflow = await client.workflows.create(
        WorkflowMessage(
            steps=[
                Step(id="long", agent="sleepy", input_mapping=struct({"seconds": 60})),
                Step(id="long_thread", agent="blocker", input_mapping=struct({"seconds": 60})),
                Step(id="next", agent="sleepy", depends_on=["long", "long_thread"]),
            ]
        )
    )
    execution = await client.executions.start(workflow.name, {})

    async def running() -> bool:
        current = await client.executions.get(execution.name)
        return all(step(current, s).state == StepRun.STATE_RUNNING for s in ("long", "long_thread"))

    deadline = time.monotonic() + 5
    while not await running():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)

    begun = time.monotonic()
    cancelled = await client.executions.cancel(execution.name, reason="user asked")
    done = await client.executions.wait(execution.name, timeout=5)
    assert time.monotonic() - begun < 1.0
    assert cancelled.state == done.state == Execution.STATE_CANCELLED
    assert done.error.message == "user asked"
    assert {s.step_id: s.state for s in done.steps} == {
        "long": StepRun.STATE_CANCELLED,
        "long_thread": StepRun.STATE_CANCELLED,
        "next": StepRun.STATE_CANCELLED,
    }
    events = await events_of(client, execution.name)
    assert not [
        e for e in events if e.step_id == "next" and e.type == EventType.EVENT_TYPE_STEP_STARTED
    ]
    assert events[-1].type == EventType.EVENT_TYPE_EXECUTION_CANCELLED
    assert events[-1].execution_cancelled.reason == "user asked"

    with pytest.raises(baton.FailedPreconditionError) as caught:
        await client.executions.cancel(execution.name)
    assert caught.value.reason == "EXECUTION_ALREADY_TERMINAL"
    await asyncio.sleep(0.2)
    assert (await events_of(client, execution.name)) == events  # nothing after the end


async def test_priority_decides_who_runs_next_at_the_limit(start_server: StartServer) -> None:
    server = await start_server(max_running=1)
    async with Client.connect(f"127.0.0.1:{server.port}") as client:
        await agent(client, "sleepy", "test_agents_lib:slow")
        workflow = await client.workflows.create(
            WorkflowMessage(steps=[Step(id="s", agent="sleepy")])
        )
        first = await client.executions.start(workflow.name, {"seconds": 0.3})
        low = await client.executions.start(workflow.name, {"seconds": 0.05}, priority=1)
        high = await client.executions.start(workflow.name, {"seconds": 0.05}, priority=5)
        assert (await client.executions.get(low.name)).state == Execution.STATE_QUEUED
        results = [await client.executions.wait(e.name, timeout=10) for e in (first, low, high)]
        assert all(r.state == Execution.STATE_SUCCEEDED for r in results)
        first_done, low_done, high_done = results
        assert high_done.start_time.ToNanoseconds() >= first_done.end_time.ToNanoseconds()
        assert low_done.start_time.ToNanoseconds() >= high_done.end_time.ToNanoseconds()


async def test_agent_max_concurrency_holds(client: Client) -> None:
    await agent(client, "single", "test_agents_lib:slow", max_concurrency=1)
    workflow = await client.workflows.create(
        WorkflowMessage(
            steps=[
                Step(id=f"s{i}", agent="single", input_mapping=struct({"seconds": 0.15}))
                for i in range(3)
            ]
        )
    )
    done = await client.executions.wait(
        (await client.executions.start(workflow.name, {})).name, timeout=20
    )
    assert done.state == Execution.STATE_SUCCEEDED
    spans = sorted(
        (s.attempts[0].start_time.ToNanoseconds(), s.attempts[0].end_time.ToNanoseconds())
        for s in done.steps
    )
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end  # one at a time


async def test_execution_timeout(client: Client) -> None:
    await agent(client, "sleepy", "test_agents_lib:slow")
    workflow = await client.workflows.create(WorkflowMessage(steps=[Step(id="s", agent="sleepy")]))
    done = await client.executions.wait(
        (await client.executions.start(workflow.name, {"seconds": 30}, timeout=0.3)).name,
        timeout=10,
    )
    assert done.state == Execution.STATE_TIMED_OUT
    assert done.error.type == "EXECUTION_TIMED_OUT"
    assert step(done, "s").state == StepRun.STATE_CANCELLED
    events = await events_of(client, done.name)
    assert events[-1].type == EventType.EVENT_TYPE_EXECUTION_TIMED_OUT


async def test_threads_processes_and_logs(client: Client) -> None:
    await agent(client, "blocker", "test_agents_lib:blocking")
    await client.agents.create(
        Agent(
            python=PythonRuntime(entry_point="test_agents_lib:square_in_process", cpu_bound=True)
        ),
        agent_id="cpu",
    )
    await agent(client, "chatty", "test_agents_lib:chatty")
    workflow = await client.workflows.create(
        WorkflowMessage(
            steps=[
                Step(id="t", agent="blocker"),
                Step(id="p", agent="cpu", input_mapping=struct({"n": "${input.n}"})),
                Step(id="l", agent="chatty"),
            ]
        )
    )
    done = await client.executions.wait(
        (await client.executions.start(workflow.name, {"n": 12})).name, timeout=60
    )
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    assert step(done, "p").output["square"] == 144
    assert step(done, "p").output["pid"] != step(done, "t").output["pid"]  # another process
    logs = [e for e in await events_of(client, done.name) if e.type == EventType.EVENT_TYPE_LOG]
    assert {(e.step_id, e.log.message) for e in logs} >= {
        ("l", "starting"),
        ("l", "almost done"),
        ("t", "blocked"),
    }
    only_logs = [
        e async for e in client.executions.events(done.name, event_types=[EventType.EVENT_TYPE_LOG])
    ]
    assert [e.sequence for e in only_logs] == [e.sequence for e in logs]


async def test_request_id_starts_one_execution(client: Client) -> None:
    await agent(client, "echo", "baton_server.agents.builtin:echo")
    workflow = await client.workflows.create(WorkflowMessage(steps=[Step(id="s", agent="echo")]))
    first, second = await asyncio.gather(
        client.executions.start(workflow.name, {"a": 1}, request_id="once"),
        client.executions.start(workflow.name, {"a": 1}, request_id="once"),
    )
    assert first.name == second.name
    assert len([e async for e in client.executions.list(workflow=workflow.name)]) == 1
    with pytest.raises(baton.InvalidArgumentError) as caught:
        await client.executions.start(workflow.name, {"a": 2}, request_id="once")
    assert caught.value.reason == "REQUEST_ID_REUSED"

    named = await client.executions.start(workflow.name, {}, execution_id="mine")
    assert named.name == "executions/mine"
    with pytest.raises(baton.AlreadyExistsError) as caught:
        await client.executions.start(workflow.name, {}, execution_id="mine")
    assert caught.value.reason == "EXECUTION_ALREADY_EXISTS"
    with pytest.raises(baton.InvalidArgumentError) as caught:
        await client.executions.start(workflow.name, {}, execution_id="Not Valid")
    assert caught.value.field == "execution_id"
    assert len([e async for e in client.executions.list(workflow=workflow.name)]) == 2


async def test_wait_returns_at_its_deadline(client: Client) -> None:
    await agent(client, "sleepy", "test_agents_lib:slow")
    workflow = await client.workflows.create(WorkflowMessage(steps=[Step(id="s", agent="sleepy")]))
    execution = await client.executions.start(workflow.name, {"seconds": 30})
    begun = time.monotonic()
    current = await client.executions.wait(execution.name, timeout=0.3)
    assert 0.25 < time.monotonic() - begun < 2
    assert current.state == Execution.STATE_RUNNING
    await client.executions.cancel(execution.name)


async def test_list_executions_with_filters_and_pages(client: Client) -> None:
    await agent(client, "echo", "baton_server.agents.builtin:echo")
    await agent(client, "failing", "test_agents_lib:fail")
    good = await client.workflows.create(WorkflowMessage(steps=[Step(id="s", agent="echo")]))
    bad = await client.workflows.create(
        WorkflowMessage(steps=[Step(id="s", agent="failing", retry_policy=fast_retries(1))])
    )
    names = []
    for i in range(7):
        names.append((await client.executions.start(good.name, {"i": i})).name)
    failed = await client.executions.start(bad.name, {})
    for name in [*names, failed.name]:
        await client.executions.wait(name, timeout=20)

    listed = [e.name async for e in client.executions.list(page_size=3)]
    assert listed == [failed.name, *reversed(names)]  # newest first, across pages
    assert [e.name async for e in client.executions.list(workflow=bad.name)] == [failed.name]
    assert [e.name async for e in client.executions.list(state=Execution.STATE_FAILED)] == [
        failed.name
    ]
    middle = await client.executions.get(names[3])
    in_window = [
        e.name
        async for e in client.executions.list(workflow=good.name, start_time=middle.create_time)
    ]
    assert in_window == list(reversed(names[3:]))
    before = [e.name async for e in client.executions.list(end_time=middle.create_time)]
    assert before == list(reversed(names[:3]))


async def set_state(client: Client, workflow: str, state: WorkflowMessage.State) -> None:
    """Archives or reactivates a workflow."""
    await client.workflows.update(
        WorkflowMessage(name=workflow, state=state), update_mask=["state"]
    )


async def test_bad_requests(client: Client) -> None:
    await agent(client, "echo", "baton_server.agents.builtin:echo")
    schema = struct({"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}})
    workflow = await client.workflows.create(
        WorkflowMessage(steps=[Step(id="s", agent="echo")], input_schema=schema),
        workflow_id="strict",
    )

    with pytest.raises(baton.NotFoundError) as caught:
        await client.executions.start("workflows/ghost")
    assert caught.value.reason == "WORKFLOW_NOT_FOUND"
    with pytest.raises(baton.InvalidArgumentError) as caught:
        await client.executions.start(workflow.name, {"n": "five"})
    assert (caught.value.field, caught.value.reason) == ("input", "INPUT_SCHEMA_MISMATCH")
    with pytest.raises(baton.InvalidArgumentError) as caught:
        await client.executions.start(workflow.name, {"n": 1}, timeout=-1)
    assert caught.value.field == "timeout"
    with pytest.raises(baton.NotFoundError) as caught:
        await client.executions.start(workflow.name, {"n": 1}, revision=9)
    assert caught.value.reason == "WORKFLOW_REVISION_NOT_FOUND"
    with pytest.raises(baton.NotFoundError) as caught:
        await client.executions.get("executions/nope")
    assert caught.value.reason == "EXECUTION_NOT_FOUND"
    with pytest.raises(baton.InvalidArgumentError):
        await client.executions.get("workflows/strict")
    with pytest.raises(baton.NotFoundError):
        await client.executions.cancel("executions/nope")
    assert [e async for e in client.executions.list()] == []  # nothing was started

    await set_state(client, workflow.name, WorkflowMessage.STATE_ARCHIVED)
    with pytest.raises(baton.FailedPreconditionError) as caught:
        await client.executions.start(workflow.name, {"n": 1})
    assert caught.value.reason == "WORKFLOW_ARCHIVED"


async def test_a_start_sees_the_workflow_as_another_server_left_it(
    start_server: StartServer,
) -> None:
    """A server keeps the workflow it last started executions from, unread, and checks it
    in the transaction that stores the next execution: what another server (a replica on
    the same database) changed since is what that execution runs, or what refuses it."""
    first, second = await start_server(), await start_server()
    async with (
        Client.connect(f"127.0.0.1:{first.port}", timeout=10) as one,
        Client.connect(f"127.0.0.1:{second.port}", timeout=10) as two,
    ):
        await agent(one, "echo", "baton_server.agents.builtin:echo")
        schema = struct({"type": "object", "properties": {"n": {"type": "integer"}}})
        workflow = await one.workflows.create(
            WorkflowMessage(steps=[Step(id="a", agent="echo")], input_schema=schema)
        )
        started = await one.executions.start(workflow.name, {"n": 1})
        assert (await one.executions.wait(started.name, timeout=10)).workflow_revision == 1

        await two.workflows.update(
            WorkflowMessage(name=workflow.name, steps=[Step(id="b", agent="echo")]),
            update_mask=["steps"],
        )
        started = await one.executions.start(workflow.name, {"n": 1})
        assert started.workflow_revision == 2
        assert [s.step_id for s in started.steps] == ["b"]

        await set_state(two, workflow.name, WorkflowMessage.STATE_ARCHIVED)
        with pytest.raises(baton.FailedPreconditionError) as caught:
            await one.executions.start(workflow.name, {"n": 1})
        assert caught.value.reason == "WORKFLOW_ARCHIVED"
        await set_state(two, workflow.name, WorkflowMessage.STATE_ACTIVE)
        latest = await two.workflows.get(workflow.name)
        started = await one.executions.start(workflow.name, {"n": 1})
        assert started.workflow_revision == latest.revision

        # A refusal by the schema `one` knows is checked against the workflow as it is.
        await two.workflows.update(
            WorkflowMessage(name=workflow.name, input_schema=struct({"type": "object"})),
            update_mask=["input_schema"],
        )
        started = await one.executions.start(workflow.name, {"n": "five"})
        assert started.workflow_revision == latest.revision + 1
        done = await one.executions.wait(started.name, timeout=10)
        assert done.state == Execution.STATE_SUCCEEDED


async def test_pinned_revision_and_delete_while_running(client: Client) -> None:
    await agent(client, "sleepy", "test_agents_lib:slow")
    await agent(client, "echo", "baton_server.agents.builtin:echo")
    workflow = await client.workflows.create(WorkflowMessage(steps=[Step(id="s", agent="sleepy")]))
    execution = await client.executions.start(workflow.name, {"seconds": 0.3})
    await client.workflows.update(
        WorkflowMessage(name=workflow.name, steps=[Step(id="other", agent="echo")]),
        update_mask=["steps"],
    )
    with pytest.raises(baton.FailedPreconditionError) as caught:
        await client.workflows.delete(workflow.name)
    assert caught.value.reason == "WORKFLOW_IN_USE"
    done = await client.executions.wait(execution.name, timeout=10)
    assert done.workflow_revision == 1
    assert [s.step_id for s in done.steps] == ["s"]  # ran the revision it started on
    await client.workflows.delete(workflow.name)


async def test_cancelling_a_queued_execution(start_server: StartServer) -> None:
    server = await start_server(max_running=1)
    async with Client.connect(f"127.0.0.1:{server.port}") as client:
        await agent(client, "sleepy", "test_agents_lib:slow")
        workflow = await client.workflows.create(
            WorkflowMessage(steps=[Step(id="s", agent="sleepy")])
        )
        running = await client.executions.start(workflow.name, {"seconds": 0.3})
        queued = await client.executions.start(workflow.name, {"seconds": 0.01})
        cancelled = await client.executions.cancel(queued.name, reason="not needed")
        assert cancelled.state == Execution.STATE_CANCELLED
        assert all(s.state == StepRun.STATE_CANCELLED for s in cancelled.steps)
        assert (await client.executions.wait(running.name, timeout=10)).state == (
            Execution.STATE_SUCCEEDED
        )
        after = await client.executions.get(queued.name)
        assert after.state == Execution.STATE_CANCELLED and not after.start_time.seconds
        events = await events_of(client, queued.name)
        assert [e.type for e in events] == [
            EventType.EVENT_TYPE_EXECUTION_QUEUED,
            EventType.EVENT_TYPE_EXECUTION_CANCELLED,
        ]


async def test_outputs_over_the_limit_fail_the_step(start_server: StartServer) -> None:
    server = await start_server(max_output_bytes=10_000)
    async with Client.connect(f"127.0.0.1:{server.port}") as client:
        await agent(client, "big", "test_agents_lib:big")
        await agent(client, "echo", "baton_server.agents.builtin:echo")
        workflow = await client.workflows.create(
            WorkflowMessage(steps=[Step(id="s", agent="big", fallback_agents=["agents/echo"])])
        )
        small = await client.executions.wait(
            (await client.executions.start(workflow.name, {"size": 100})).name, timeout=10
        )
        assert small.steps[0].output["text"] == "x" * 100
        large = await client.executions.wait(
            (await client.executions.start(workflow.name, {"size": 50_000})).name, timeout=10
        )
        assert large.state == Execution.STATE_SUCCEEDED  # the fallback took over
        assert large.steps[0].attempts[0].error.type == "OUTPUT_TOO_LARGE"
        assert len(large.steps[0].attempts) == 2  # not retried: straight to the fallback


async def test_payloads_come_back_as_plain_values(client: Client) -> None:
    await agent(client, "echo", "baton_server.agents.builtin:echo")
    workflow = await client.workflows.create(WorkflowMessage(steps=[Step(id="s", agent="echo")]))
    value = {"n": 4, "ratio": 0.5, "nested": {"items": [1, "two", None, True]}, "big": 2**40}
    started = await client.executions.start(workflow.name, value)
    done = await client.executions.wait(started.name, timeout=20)
    assert done.input == value and type(done.input["n"]) is int  # not 4.0
    assert done.output == {"s": value}
    assert done.steps[0].output == value
    assert str(done.output["s"]["nested"]) == "{'items': [1, 'two', None, True]}"
    assert done.proto.output.fields["s"].struct_value.fields["n"].number_value == 4.0  # the message
    succeeded = [
        e
        async for e in client.executions.events(done.name)
        if e.type == EventType.EVENT_TYPE_STEP_SUCCEEDED
    ]
    assert succeeded[0].step_succeeded.output == value
    listed = [e async for e in client.executions.list(workflow=workflow.name)]
    assert listed[0].input == value
