"""Regression tests for the hardening issue, each at its bound, over the real server: inputs
that crashed, stalled or confused the server, and the fixes' limits."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import StartServer, python_agent
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2
from google.protobuf.message import Message
from wire import field_bytes, nested_struct_bytes

import baton
from baton import Agent, Client, Handoff, Step, WorkerRuntime, Workflow
from baton.v1 import agent_pb2, execution_pb2, monitoring_pb2, worker_pb2, worker_pb2_grpc
from baton_server.app import Baton
from baton_server.limits import (
    MAX_CONDITION_CHARS,
    MAX_CONDITION_NESTING,
    MAX_CONDITION_OPERATORS,
    MAX_PAYLOAD_DEPTH,
    MAX_STEPS,
)

ECHO = "agents/echo"


async def with_echo(server: Baton) -> Client:
    client = Client(grpc.aio.insecure_channel(f"127.0.0.1:{server.port}"), timeout=30)
    await client.agents.create(python_agent(), agent_id="echo")
    return client


def one_step(**fields: Any) -> Workflow:
    return Workflow(steps=[Step(id="a", agent=ECHO, **fields)])


async def refused(call: Awaitable[Any], field: str, reason: str | None = None) -> baton.BatonError:
    with pytest.raises(baton.InvalidArgumentError) as caught:
        await call
    assert caught.value.field == field, caught.value
    if reason is not None:
        assert caught.value.reason == reason, caught.value
    return caught.value


async def responsive_while(
    client: Client, work: Callable[[], Awaitable[Any]], *, limit: float = 1.0
) -> float:
    """Runs `work` while checking that other calls still get answers; returns the slowest."""
    task = asyncio.ensure_future(work())
    slowest = 0.0
    while not task.done():
        started = time.perf_counter()
        await client.system_health()
        slowest = max(slowest, time.perf_counter() - started)
        await asyncio.sleep(0.01)
    task.exception()  # the work's outcome is the caller's to check
    assert slowest < limit, f"a health check waited {slowest:.2f}s"
    return slowest


# 1 + 2: conditions ------------------------------------------------------------------------


async def test_condition_bombs_are_refused_before_the_parser(start_server: StartServer) -> None:
    server = await start_server(auth_tokens="r=reader,o=operator")
    async with Client.connect(f"127.0.0.1:{server.port}", token="o", timeout=30) as operator:
        await operator.agents.create(python_agent(), agent_id="echo")
        await operator.agents.create(python_agent(), agent_id="other")
    async with Client.connect(f"127.0.0.1:{server.port}", token="r", timeout=30) as reader:
        # 30,001 terms used to overflow the Rust parser's stack (SIGSEGV).
        bomb = "-".join(["a"] * 30_001)
        error = await refused(
            reader.workflows.validate(one_step(when=bomb)),
            "workflow.steps[0].when",
            "INVALID_CONDITION",
        )
        assert len(error.message) < 2000
        # "é" x 24,000 used to stall every call for seconds and answer RESOURCE_EXHAUSTED.
        for text in ("é" * 24_000, "😀" * 24_000, "é" * 100, "#" * 4000, '"' + "\\q" * 2000 + '"'):
            started = time.perf_counter()
            error = await refused(
                reader.workflows.validate(one_step(when=text)), "workflow.steps[0].when"
            )
            assert time.perf_counter() - started < 1.0
            assert len(error.message) < 2000
        # At the bounds: the largest allowed condition compiles; one more is refused.
        at_bound = "-".join(["1"] * (MAX_CONDITION_OPERATORS + 1))  # 512 operators
        await reader.workflows.validate(one_step(when=at_bound))
        await refused(
            reader.workflows.validate(one_step(when=f"{at_bound}-1")),
            "workflow.steps[0].when",
        )
        deepest = "(" * MAX_CONDITION_NESTING + "true" + ")" * MAX_CONDITION_NESTING
        await reader.workflows.validate(one_step(when=deepest))
        await refused(
            reader.workflows.validate(one_step(when=f"({deepest})")), "workflow.steps[0].when"
        )
        longest = "true" + " " * (MAX_CONDITION_CHARS - 4)
        await reader.workflows.validate(one_step(when=longest))
        await refused(
            reader.workflows.validate(one_step(when=longest + " ")), "workflow.steps[0].when"
        )
        # Unicode inside string literals stays fine.
        await reader.workflows.validate(one_step(when='input.name != "é😀"'))
    async with Client.connect(f"127.0.0.1:{server.port}", token="o", timeout=30) as operator:
        # CreateHandoff with `1+1+...` used to crash the server the same way.
        await refused(
            operator.handoffs.create(
                Handoff(
                    source_agent=ECHO,
                    target_agent="agents/other",
                    type=Handoff.TYPE_SEQUENTIAL,
                    trigger_conditions=["+".join(["1"] * 30_001)],
                )
            ),
            "handoff.trigger_conditions[0]",
            "INVALID_CONDITION",
        )
        assert (await operator.system_health()).status == monitoring_pb2.HEALTH_STATUS_HEALTHY


# 3: workflow size and the DAG checks -------------------------------------------------------


def chain(length: int, *, read_back: int = 0) -> Workflow:
    """Steps s0 -> s1 -> ...; each reads the output of the step `read_back` before it."""
    steps = []
    for i in range(length):
        mapping = None
        if read_back and i >= read_back:
            mapping = {"x": f"${{steps.s{i - read_back}.output.x}}"}
        steps.append(
            Step(
                id=f"s{i}",
                agent=ECHO,
                depends_on=[f"s{i - 1}"] if i else [],
                input_mapping=mapping,
            )
        )
    return Workflow(steps=steps)


async def test_large_workflows_are_bounded_and_checked_in_near_linear_time(
    server: Baton,
) -> None:
    client = await with_echo(server)
    # 10,000 steps (288 KB) used to take 4 s and 2.4 GB: now refused at once.
    started = time.perf_counter()
    await refused(client.workflows.validate(chain(10_000)), "workflow.steps", "TOO_MANY")
    await refused(client.workflows.create(chain(10_000)), "workflow.steps", "TOO_MANY")
    assert time.perf_counter() - started < 2.0
    # At the limit, every step reading a far ancestor, is checked while others are served.
    biggest = chain(MAX_STEPS, read_back=MAX_STEPS // 2)
    order: list[str] = []

    async def validate() -> None:
        order.extend((await client.workflows.validate(biggest)).topological_order)

    await responsive_while(client, validate)
    assert order[0] == "s0" and order[-1] == f"s{MAX_STEPS - 1}"
    created = await client.workflows.create(biggest, workflow_id="biggest")
    assert len(created.steps) == MAX_STEPS
    # A read of a step that is not an ancestor is still found.
    steps = list(chain(MAX_STEPS).steps)
    steps[0] = Step(id="s0", agent=ECHO, input_mapping={"x": "${steps.s999.output.x}"})
    error = await refused(
        client.workflows.validate(Workflow(steps=steps)),
        "workflow.steps[0].input_mapping.x",
        "STEP_NOT_ANCESTOR",
    )
    assert "s999" in error.message
    await client.close()


# 4: input schemas --------------------------------------------------------------------------


def schema_workflow(schema: dict[str, Any]) -> Workflow:
    message = one_step()
    message.input_schema.update(schema)
    return message


async def test_input_schema_patterns_never_backtrack(server: Baton) -> None:
    client = await with_echo(server)
    catastrophic = {
        "type": "object",
        "properties": {"name": {"type": "string", "pattern": "^(a+)+$"}},
    }
    flow = await client.workflows.create(schema_workflow(catastrophic), workflow_id="names")
    for size in (26, 100_000):  # each extra character used to double the time
        started = time.perf_counter()
        with pytest.raises(baton.InvalidArgumentError) as caught:
            await client.executions.start(flow.name, {"name": "a" * size + "!"})
        assert caught.value.reason == "INPUT_SCHEMA_MISMATCH"
        assert time.perf_counter() - started < 1.0
        assert len(caught.value.message) < 2000
    await client.executions.start(flow.name, {"name": "aaa"})
    # Patterns RE2 cannot run are refused when the workflow is written, naming where.
    await refused(
        client.workflows.create(schema_workflow({"pattern": "(?=a)b"})),
        "workflow.input_schema.pattern",
    )
    await refused(
        client.workflows.create(schema_workflow({"patternProperties": {"(a)\\1": {}}})),
        "workflow.input_schema.patternProperties['(a)\\\\1']",
    )
    await client.close()


async def test_input_schemas_cannot_fetch_or_run_away(server: Baton, tmp_path: Path) -> None:
    client = await with_echo(server)
    secret = tmp_path / "secret.json"
    secret.write_text('{"password": "hunter2"}')
    for ref in (f"file://{secret}#/password", "http://127.0.0.1:9/x.json"):
        await refused(
            client.workflows.create(schema_workflow({"$ref": ref})), "workflow.input_schema.$ref"
        )
    # References that fan out exponentially hit the time budget, and others are served.
    definitions = {
        f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(40)
    }
    definitions["d40"] = {"type": "object"}  # every branch passes: all 2^40 are walked
    flow = await client.workflows.create(
        schema_workflow({"$defs": definitions, "$ref": "#/$defs/d0"}), workflow_id="laughs"
    )
    outcome: list[BaseException] = []

    async def start() -> None:
        try:
            await client.executions.start(flow.name, {})
        except baton.BatonError as exc:
            outcome.append(exc)

    await responsive_while(client, start, limit=1.5)
    assert isinstance(outcome[0], baton.InvalidArgumentError)
    assert "took longer" in outcome[0].message
    # A schema that refers to itself without end, and uniqueItems over many objects.
    looping = await client.workflows.create(schema_workflow({"$ref": "#"}), workflow_id="loop")
    with pytest.raises(baton.InvalidArgumentError):
        await client.executions.start(looping.name, {})
    unique = await client.workflows.create(
        schema_workflow({"properties": {"xs": {"uniqueItems": True}}}), workflow_id="unique"
    )
    started = time.perf_counter()
    await client.executions.start(unique.name, {"xs": [{"a": i} for i in range(20_000)]})
    assert time.perf_counter() - started < 2.0  # jsonschema's own check took minutes
    with pytest.raises(baton.InvalidArgumentError):
        await client.executions.start(unique.name, {"xs": [{"a": 1}, {"a": 1}]})
    await client.close()


# 7 + 8 + 9: values that do not decode or do not fit -------------------------------------


async def raw_call(
    server: Baton, path: str, payload: bytes | Message, token: str = ""
) -> grpc.aio.AioRpcError:
    data = payload if isinstance(payload, bytes) else payload.SerializeToString()
    metadata = [("authorization", f"Bearer {token}")] if token else []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = channel.unary_unary(path, lambda b: b, lambda b: b)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(data, timeout=10, metadata=metadata)
    return caught.value


async def test_non_finite_and_deep_payloads_are_invalid_arguments(server: Baton) -> None:
    client = await with_echo(server)
    flow = await client.workflows.create(one_step(), workflow_id="flow")
    for bad, field in (
        ({"a": float("nan")}, "input.a"),
        ({"a": [1, {"b": float("inf")}]}, "input.a[1].b"),
        ({"a": float("-inf")}, "input.a"),
    ):
        await refused(client.executions.start(flow.name, bad), field, "NOT_FINITE")
    nested: dict[str, Any] = {}
    for _ in range(MAX_PAYLOAD_DEPTH - 1):
        nested = {"a": nested}
    await client.executions.start(flow.name, nested)  # at the bound
    with pytest.raises(baton.InvalidArgumentError) as deep:
        await client.executions.start(flow.name, {"a": nested})
    assert deep.value.reason == "TOO_DEEP" and deep.value.field.startswith("input.a.a")
    # CompleteTask{output{d{k: nan}}} was INTERNAL too.
    output = struct_pb2.Struct()
    output.update({"d": {"k": float("nan")}})
    status = await raw_call(
        server,
        "/baton.v1.WorkerService/CompleteTask",
        worker_pb2.CompleteTaskRequest(task_token="t", output=output),
    )
    assert status.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "output.d.k" in (status.details() or "")
    await client.close()


async def test_out_of_range_times_and_durations(server: Baton) -> None:
    client = await with_echo(server)
    for path, request, field in (
        (
            "/baton.v1.ExecutionService/ListExecutions",
            execution_pb2.ListExecutionsRequest(
                end_time=timestamp_pb2.Timestamp(nanos=2_147_483_647)
            ),
            "end_time",
        ),
        (
            "/baton.v1.MonitoringService/GetWorkflowMetrics",
            monitoring_pb2.GetWorkflowMetricsRequest(
                workflow="workflows/x",
                end_time=timestamp_pb2.Timestamp(seconds=-315_576_000_001),
            ),
            "end_time",
        ),
        (
            "/baton.v1.MonitoringService/GetAgentPerformance",
            monitoring_pb2.GetAgentPerformanceRequest(
                agent=ECHO, start_time=timestamp_pb2.Timestamp(seconds=253_402_300_800)
            ),
            "start_time",
        ),
    ):
        status = await raw_call(server, path, request)
        assert status.code() is grpc.StatusCode.INVALID_ARGUMENT, status
        assert field in (status.details() or "")
    for seconds, nanos in ((9_223_372_036_854_775_807, 0), (315_576_000_001, 0), (1, -5)):
        interval = duration_pb2.Duration(seconds=seconds, nanos=nanos)
        await refused(
            client.workflows.create(
                one_step(retry_policy=baton.RetryPolicy(initial_interval=interval))
            ),
            "workflow.steps[0].retry_policy.initial_interval",
        )
    # Within Duration's range but beyond what a step may wait.
    await refused(
        client.workflows.create(one_step(timeout=duration_pb2.Duration(seconds=2 * 366 * 86400))),
        "workflow.steps[0].timeout",
    )
    status = await raw_call(
        server,
        "/baton.v1.WorkerService/FailTask",
        worker_pb2.FailTaskRequest(
            task_token="t", retry_after=duration_pb2.Duration(seconds=-315_576_000_001)
        ),
    )
    assert status.code() is grpc.StatusCode.INVALID_ARGUMENT
    await client.close()


async def test_undecodable_requests_are_invalid_arguments(start_server: StartServer) -> None:
    server = await start_server(auth_tokens="a=admin")
    bad_utf8 = b"\x0a\x03\xff\xfe\xfd"  # field 1 (a string) holding invalid UTF-8
    deep = field_bytes(3, nested_struct_bytes(200))  # StartExecutionRequest.input = 3
    for path, payload in (
        ("/baton.v1.AgentService/CreateAgent", b"\x09"),
        ("/baton.v1.AgentService/GetAgent", bad_utf8),
        ("/baton.v1.ExecutionService/StartExecution", deep),
        ("/baton.v1.ExecutionService/StreamExecutionEvents", b"\x09"),
    ):
        status = await raw_call(server, path, payload, token="a")
        assert status.code() is grpc.StatusCode.INVALID_ARGUMENT, (path, status)
        assert "MALFORMED_REQUEST" not in (status.details() or "")  # the reason is metadata
        assert "DecodeError" not in (status.details() or "")
        # Without a token the same bytes get UNAUTHENTICATED: auth answers first.
        status = await raw_call(server, path, payload)
        assert status.code() is grpc.StatusCode.UNAUTHENTICATED, (path, status)


# 10 + 11: what is stored fits, and errors stay small -------------------------------------


async def test_definitions_are_bounded_so_every_answer_fits(start_server: StartServer) -> None:
    limit = 1024 * 1024
    server = await start_server(max_message_bytes=limit)
    client = Client(grpc.aio.insecure_channel(f"127.0.0.1:{server.port}"), timeout=30)
    # A request just under the message limit used to be stored and then never read back.
    config = struct_pb2.Struct()
    config.update({"blob": "x" * 1_048_460})
    request = agent_pb2.CreateAgentRequest(agent=python_agent(config=config), agent_id="huge")
    assert limit - 100 < request.ByteSize() < limit
    error = await refused(
        client.agents.create(python_agent(config=config), agent_id="huge"),
        "agent",
        "RESOURCE_TOO_LARGE",
    )
    assert str(limit // 4) in error.message
    assert [a async for a in client.agents.list()] == []
    # Eight agents just under the bound (a quarter of the limit each): every one is
    # readable, and a list page stops early, with a token, rather than exceed the limit.
    config.update({"blob": "y" * (limit // 4 - 200)})
    for i in range(8):
        await client.agents.create(python_agent(config=config), agent_id=f"big-{i}")
    assert (await client.agents.get("big-7")).config == config
    pages = []
    token = ""
    while True:
        page = await client.agents._stub.ListAgents(
            agent_pb2.ListAgentsRequest(page_size=1000, page_token=token)
        )
        pages.append(len(page.agents))
        assert page.ByteSize() <= limit
        token = page.next_page_token
        if not token:
            break
    assert sum(pages) == 8 and len(pages) > 1, pages
    await client.close()


async def test_echoed_values_are_cut(server: Baton) -> None:
    client = await with_echo(server)
    with pytest.raises(baton.InvalidArgumentError) as caught:
        await client.agents.get("agents/" + "x" * 4000)  # was RESOURCE_EXHAUSTED
    assert len(caught.value.message) < 400
    with pytest.raises(baton.NotFoundError) as missing:
        await client.workflows.get("workflows/" + "a" * 63)
    assert len(missing.value.message) < 400
    # Hundreds of violations: the status lists the first ones and says how many more.
    steps = [Step(id=f"s{i}", agent=ECHO, depends_on=[f"nope{i}"]) for i in range(900)]
    caught_many = await refused(
        client.workflows.validate(Workflow(steps=steps)), "workflow.steps[0].depends_on[0]"
    )
    assert len(caught_many.violations) <= 21
    assert caught_many.violations[-1].reason == "MORE_VIOLATIONS"
    await client.close()


# 12: full-match ids --------------------------------------------------------------------------


async def test_trailing_newlines_are_not_ids(server: Baton) -> None:
    client = await with_echo(server)
    await refused(client.agents.create(python_agent(), agent_id="abc\n"), "agent_id", "INVALID_ID")
    await refused(client.agents.get("agents/echo\n"), "name")
    await refused(
        client.workflows.create(Workflow(steps=[Step(id="a\n", agent=ECHO)])),
        "workflow.steps[0].id",
        "INVALID_STEP_ID",
    )
    await refused(client.agents.create(python_agent(labels={"team\n": "x"})), "agent.labels.team\n")
    await refused(
        client.agents.create(
            Agent(python=baton.PythonRuntime(entry_point="baton_server.agents.builtin:echo\n"))
        ),
        "agent.python.entry_point",
    )
    await client.close()


# 13: incomplete TLS settings ---------------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [
        {"BATON_TLS_CLIENT_CA": "ca.pem"},
        {"BATON_TLS_CERT": "cert.pem"},
        {"BATON_TLS_KEY": "key.pem"},
        {"BATON_TLS_CERT": "missing.pem", "BATON_TLS_KEY": "missing.pem"},
        {"BATON_AGENT_SECRET_ENV": "BATON_AUTH_TOKENS"},
    ],
)
def test_incomplete_settings_exit_2_at_start(tmp_path: Path, env: dict[str, str]) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("not used")
    process = subprocess.run(
        [sys.executable, "-m", "baton_server", "--listen", "127.0.0.1:0"],
        env={**os.environ, "BATON_DATABASE": str(tmp_path / "b.db"), **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,  # it used to hang forever with the database open
    )
    assert process.returncode == 2, process.stderr
    assert process.stderr.startswith("baton: "), process.stderr
    assert not (tmp_path / "b.db").exists()  # refused before anything was opened


async def test_worker_calls_with_bad_values(server: Baton) -> None:
    client = await with_echo(server)
    await client.agents.create(Agent(worker=WorkerRuntime()), agent_id="remote")
    for request, field in (
        (worker_pb2.FailTaskRequest(task_token="t", error={"type": "x" * 300}), "error.type"),
        (worker_pb2.PollTasksRequest(agents=["agents/remote"] * 101), "agents"),
        (worker_pb2.CompleteTaskRequest(task_token="t", handoff_to="not an agent"), "handoff_to"),
    ):
        path = {
            worker_pb2.FailTaskRequest: "/baton.v1.WorkerService/FailTask",
            worker_pb2.PollTasksRequest: "/baton.v1.WorkerService/PollTasks",
            worker_pb2.CompleteTaskRequest: "/baton.v1.WorkerService/CompleteTask",
        }[type(request)]
        if path.endswith("PollTasks"):
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                stream = channel.unary_stream(path, lambda m: m.SerializeToString(), bytes)(
                    request, timeout=5
                )
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stream.read()
                status: grpc.aio.AioRpcError = caught.value
        else:
            status = await raw_call(server, path, request)
        assert status.code() is grpc.StatusCode.INVALID_ARGUMENT, (field, status)
        assert field in (status.details() or ""), status.details()
    # Log fields named like the logger's own parameters used to raise TypeError.
    heartbeat = worker_pb2.HeartbeatTaskRequest(task_token="unknown")
    entry = heartbeat.logs.add(message="m")
    entry.fields.update({"message": "x", "self": 1})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = worker_pb2_grpc.WorkerServiceStub(channel)
        answer = await stub.HeartbeatTask(heartbeat, timeout=5)
        assert answer.cancel_requested  # an unknown task: the worker should stop
    await client.close()


async def test_executions_stay_small_enough_to_read(start_server: StartServer) -> None:
    limit = 256 * 1024  # an execution may hold three quarters of it: 196,608 bytes
    server = await start_server(max_message_bytes=limit, max_output_bytes=150_000)
    client = Client(grpc.aio.insecure_channel(f"127.0.0.1:{server.port}"), timeout=30)
    await client.agents.create(
        Agent(python=baton.PythonRuntime(entry_point="test_agents_lib:big")), agent_id="big"
    )
    await client.agents.create(python_agent(), agent_id="echo")
    size = {"size": "${input.size}"}
    flow = await client.workflows.create(
        Workflow(
            steps=[
                Step(id="a", agent="agents/big", input_mapping=size),
                Step(id="b", agent="agents/big", input_mapping=size, depends_on=["a"]),
                Step(id="c", agent="agents/big", input_mapping=size, depends_on=["b"]),
            ]
        )
    )
    started = await client.executions.start(flow.name, {"size": 80_000})
    done = await client.executions.wait(started.name, timeout=20)
    assert done.state == baton.Execution.STATE_FAILED
    assert [s.state for s in done.steps][:2] == [baton.StepRun.STATE_SUCCEEDED] * 2
    assert done.steps[2].error.type == "OUTPUT_TOO_LARGE"
    assert (await client.executions.get(started.name)).ByteSize() < limit
    # An input over the output bound is refused; a mapping that copies it twice fails.
    await refused(
        client.executions.start(flow.name, {"blob": "x" * 150_001}), "input", "PAYLOAD_TOO_LARGE"
    )
    twice = await client.workflows.create(
        Workflow(
            steps=[Step(id="a", agent=ECHO, input_mapping={"x": "${input.b}", "y": "${input.b}"})]
        )
    )
    started = await client.executions.start(twice.name, {"b": "x" * 100_000})
    done = await client.executions.wait(started.name, timeout=20)
    assert done.steps[0].error.type == "INPUT_TOO_LARGE"
    await client.close()


async def test_list_filters_are_bounded(server: Baton) -> None:
    client = await with_echo(server)
    with pytest.raises(baton.InvalidArgumentError) as caught:
        [a async for a in client.agents.list(capabilities=[f"c{i}" for i in range(101)])]
    assert (caught.value.field, caught.value.reason) == ("capabilities", "TOO_MANY")
    with pytest.raises(baton.InvalidArgumentError):
        [w async for w in client.workflows.list(tags=["x" * 64])]
    assert [a.name async for a in client.agents.list(capabilities=[])] == [ECHO]
    await client.close()


async def test_log_lines_per_attempt_are_bounded(start_server: StartServer) -> None:
    server = await start_server(max_deltas=5)
    client = Client(grpc.aio.insecure_channel(f"127.0.0.1:{server.port}"), timeout=30)
    await client.agents.create(
        Agent(python=baton.PythonRuntime(entry_point="test_agents_lib:noisy")), agent_id="noisy"
    )
    flow = await client.workflows.create(Workflow(steps=[Step(id="a", agent="agents/noisy")]))
    done = await client.executions.wait(
        (await client.executions.start(flow.name, {"lines": 50})).name, timeout=20
    )
    assert done.state == baton.Execution.STATE_SUCCEEDED
    logs = [
        e.log.message
        async for e in client.executions.events(
            done.name, event_types=[baton.EventType.EVENT_TYPE_LOG]
        )
    ]
    assert logs == ["line"] * 5 + ["more than 5 log lines: the rest are dropped"]
    await client.close()
