"""Property test: requests generated from the message descriptors of every RPC (unicode, NUL
and very long strings, extreme integers, deep and non-finite Structs, unknown enum values,
times and durations out of range, garbage bytes) never get INTERNAL or UNKNOWN, never hang
and never crash the server.

The server is a real `python -m baton_server` process with auth on, so that a crash shows
as the process dying. CI runs a bounded number of examples; `make fuzz` runs many more
(BATON_FUZZ_EXAMPLES)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import free_port, stop_processes
from google.protobuf import descriptor as _descriptor
from google.protobuf import json_format, message_factory, struct_pb2
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire import field_bytes, nested_struct_bytes

from baton import (
    Agent,
    Handoff,
    PythonRuntime,
    Schedule,
    Step,
    SyncClient,
    Tool,
    WorkerRuntime,
    Workflow,
)
from baton_server.app import SERVICES

EXAMPLES = int(os.environ.get("BATON_FUZZ_EXAMPLES", "600"))
TOKEN = "fuzz-admin"
ANONYMOUS_SHARE = 8  # one call in this many is sent without a token
FD = _descriptor.FieldDescriptor

METHODS = [
    (f"/{service.full_name}/{method.name}", method)
    for service in SERVICES
    for method in service.methods
]
# Streams and waits may legitimately outlive a short deadline; unary calls may not.
WAITING = {"WaitExecution", "PollTasks", "StreamExecutionEvents"}
NAMES = [
    "agents/echo",
    "agents/remote",
    "workflows/flow",
    "executions/known",
    "handoffs/known",
    "schedules/known",
    "tools/known",
    "echo",
    "agents/",
    "agents/UPPER",
    "executions/" + "z" * 80,
    "workflows/a\n",
]

_bombs = st.builds(
    lambda piece, count: piece * count,
    st.sampled_from(["x", "é", "😀", "\x00", "a\n", "a-", "(", "1+", "${", "[0]", "\\q"]),
    st.sampled_from([1, 63, 64, 1000, 4097, 30_001, 200_000]),
)
_chains = st.builds(
    lambda operator, count: operator.join(["a"] * count),
    st.sampled_from(["-", "+", ".", " && ", " in "]),
    st.sampled_from([512, 513, 2049, 30_001]),
)
_texts = st.one_of(
    st.text(max_size=20),
    st.sampled_from(NAMES),
    _bombs,
    _bombs,
    _chains,
    _chains,
    st.sampled_from(
        [
            "steps.a.output.x == 1",
            "${input.a}",
            "${steps.a.output.b[999999999999]}",
            "^(a+)+$",
            "(?=a)",
        ]
    ),
)
_ints = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([2**31 - 1, -(2**31), 2**63 - 1, -(2**63), 10**6, 1000, 1001]),
)
_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e308, -0.0]),
)
_json: st.SearchStrategy[Any] = st.recursive(
    st.one_of(st.none(), st.booleans(), _floats, _ints.map(float), _texts),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_texts, inner, max_size=3)
    ),
    max_leaves=12,
)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def _message(descriptor: _descriptor.Descriptor, depth: int) -> st.SearchStrategy[Message]:
    cls = message_factory.GetMessageClass(descriptor)
    name = descriptor.full_name
    if name == "google.protobuf.Struct":
        return st.one_of(
            st.dictionaries(_texts, _json, max_size=4),
            st.sampled_from([_nested(31), _nested(33), _nested(60)]),
        ).map(_struct)
    if name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        return st.builds(
            lambda seconds, nanos: cls(seconds=seconds, nanos=nanos),
            st.one_of(
                st.integers(-3, 3),
                st.sampled_from(
                    [
                        2**63 - 1,
                        -(2**63),
                        315_576_000_001,
                        -315_576_000_001,
                        253_402_300_800,
                        -62_135_596_801,
                        10**9,
                    ]
                ),
            ),
            st.one_of(st.integers(-3, 3), st.sampled_from([2**31 - 1, -(2**31), 999_999_999])),
        )
    if depth > 4:
        return st.just(cls())
    fields = {
        field.name: _field(field, depth)
        for field in descriptor.fields
        if not (field.message_type and field.message_type.full_name == "google.protobuf.Value")
    }
    return st.fixed_dictionaries({}, optional=fields).map(lambda values: _build(cls, values))


def _struct(value: dict[str, Any]) -> Message:
    message = struct_pb2.Struct()
    with contextlib.suppress(ValueError, TypeError):
        message.update(value)
    return message


def _build(cls: Any, values: dict[str, Any]) -> Message:
    message = cls()
    _assign(message, values)
    return message


def _assign(message: Message, values: dict[str, Any]) -> None:
    for name, value in values.items():
        field = message.DESCRIPTOR.fields_by_name[name]
        try:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                target = getattr(message, name)
                for k, v in value:
                    if isinstance(v, Message):
                        target[k].CopyFrom(v)
                    else:
                        target[k] = v
            elif field.is_repeated:
                target = getattr(message, name)
                if field.message_type is not None:
                    for item in value:
                        target.add().CopyFrom(item)
                else:
                    target.extend(value)
            elif field.message_type is not None:
                getattr(message, name).CopyFrom(value)
            else:
                setattr(message, name, value)
        except (ValueError, TypeError, OverflowError):
            pass  # a value the field's type cannot hold (e.g. 2**63 in an int32)


def _scalar(field: _descriptor.FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FD.TYPE_STRING:
        return _texts
    if kind == FD.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == FD.TYPE_BOOL:
        return st.booleans()
    if kind in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return _floats
    if kind == FD.TYPE_ENUM:
        return st.integers(-5, 100)  # unknown values included
    return _ints


def _field(field: _descriptor.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key = _scalar(field.message_type.fields_by_name["key"])
        value_field = field.message_type.fields_by_name["value"]
        value = (
            _message(value_field.message_type, depth + 1)
            if value_field.message_type is not None
            else _scalar(value_field)
        )
        return st.lists(st.tuples(key, value), max_size=3)
    single = (
        _message(field.message_type, depth + 1)
        if field.message_type is not None
        else _scalar(field)
    )
    if field.is_repeated:
        return st.one_of(
            st.lists(single, max_size=3),
            st.integers(101, 1200).map(lambda n: [_default(field)] * n),
        )
    return single


def _default(field: _descriptor.FieldDescriptor) -> Any:
    if field.message_type is not None:
        return message_factory.GetMessageClass(field.message_type)()
    return {FD.TYPE_STRING: "x", FD.TYPE_BOOL: True, FD.TYPE_BYTES: b"x"}.get(field.type, 1)


_AGENT = {"displayName": "A", "python": {"entryPoint": "baton_server.agents.builtin:echo"}}
_WORKFLOW = {
    "steps": [
        {"id": "a", "agent": "agents/echo", "inputMapping": {"x": "${input.x}"}},
        {
            "id": "b",
            "agent": "agents/echo",
            "dependsOn": ["a"],
            "when": "steps.a.output.x == 1",
            "forEach": "${input.xs}",
            "maxParallel": 3,
            "timeout": "5s",
            "retryPolicy": {"maxAttempts": 2, "initialInterval": "1s"},
        },
    ],
    "inputSchema": {"type": "object", "properties": {"x": {"type": "integer"}}},
    "outputMapping": {"y": "${steps.b.output.x}"},
}
_HANDOFF = {
    "sourceAgent": "agents/echo",
    "targetAgent": "agents/remote",
    "type": "TYPE_SEQUENTIAL",
    "triggerConditions": ["completion", "source_output.done == true"],
    "dataMapping": {"plan": "plan"},
}
_TOOL = {
    "description": "Searches",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    "http": {"method": "POST", "url": "https://example.com/s", "headers": {"a": "b"}},
    "timeout": "5s",
}
_SCHEDULE = {
    "workflow": "workflows/flow",
    "input": {"x": 1},
    "cron": "*/5 9-17 * * MON-FRI",
    "timeZone": "Europe/Paris",
    "overlapPolicy": "OVERLAP_POLICY_BUFFER_ONE",
    "catchUpPolicy": "CATCH_UP_POLICY_ALL",
    "catchUpLimit": 5,
    "labels": {"team": "a"},
}
# Valid requests, of which the fuzzer changes one field: deep values reach deep code.
SEEDS: dict[str, dict[str, Any]] = {
    "CreateAgent": {"agent": _AGENT},
    "UpdateAgent": {"agent": {**_AGENT, "name": "agents/echo"}, "updateMask": "displayName"},
    "CreateWorkflow": {"workflow": _WORKFLOW},
    "ValidateWorkflow": {"workflow": _WORKFLOW},
    "UpdateWorkflow": {"workflow": {**_WORKFLOW, "name": "workflows/flow"}},
    "CreateHandoff": {"handoff": _HANDOFF},
    "UpdateHandoff": {"handoff": {**_HANDOFF, "name": "handoffs/known"}},
    "StartExecution": {"workflow": "workflows/flow", "input": {"x": 1}},
    "ListExecutions": {
        "workflow": "workflows/flow",
        "startTime": "2020-01-01T00:00:00Z",
        "labels": {"team": "a"},
    },
    "GetWorkflowMetrics": {"workflow": "workflows/flow", "endTime": "2030-01-01T00:00:00Z"},
    "GetAgentPerformance": {"agent": "agents/echo", "startTime": "2020-01-01T00:00:00Z"},
    "CompleteTask": {"taskToken": "t", "output": {"d": {"k": 1}}},
    "FailTask": {"taskToken": "t", "error": {"type": "E", "message": "m"}, "retryAfter": "1s"},
    "HeartbeatTask": {"taskToken": "t", "logs": [{"message": "m", "fields": {"a": 1}}]},
    "PollTasks": {"agents": ["agents/remote"], "identity": "w"},
    "WaitExecution": {"name": "executions/known", "timeout": "0.5s"},
    "CancelExecution": {"name": "executions/known", "reason": "r"},
    "DeleteExecution": {"name": "executions/known", "requestId": "r1"},
    "PauseExecution": {"name": "executions/known", "reason": "r", "requestId": "p1"},
    "ResumeExecution": {"name": "executions/known", "requestId": "p2"},
    "RetryExecution": {"name": "executions/known", "fromSteps": ["s"], "requestId": "t1"},
    "SignalExecution": {
        "name": "executions/known",
        "signal": "approved",
        "payload": {"by": {"k": [1, "x"]}},
        "requestId": "s1",
    },
    "ApproveStep": {
        "name": "executions/known",
        "step": "b",
        "reject": True,
        "reason": "r",
        "requestId": "a1",
    },
    "ListExecutionEvents": {"execution": "executions/known"},
    "ListStepItems": {"execution": "executions/known", "step": "a", "pageSize": 3},
    "CreateTool": {"tool": _TOOL, "toolId": "search"},
    "UpdateTool": {"tool": {**_TOOL, "name": "tools/known"}, "updateMask": "description"},
    "DeleteTool": {"name": "tools/known", "requestId": "u1"},
    "CreateSchedule": {"schedule": _SCHEDULE, "scheduleId": "nightly"},
    "UpdateSchedule": {"schedule": {**_SCHEDULE, "name": "schedules/known"}},
    "ListSchedules": {"workflow": "workflows/flow", "state": "STATE_ACTIVE"},
    "PauseSchedule": {"name": "schedules/known", "reason": "r", "requestId": "q1"},
    "UnpauseSchedule": {"name": "schedules/known", "requestId": "q2"},
    "DeleteSchedule": {"name": "schedules/known", "requestId": "q3"},
}


def _paths(
    descriptor: _descriptor.Descriptor, prefix: tuple[Any, ...], depth: int
) -> Iterator[tuple[Any, ...]]:
    """Every field path into a message, down to a few levels (well-known types as leaves)."""
    for field in descriptor.fields:
        path = (*prefix, field)
        yield path
        message = field.message_type
        if (
            message is not None
            and depth < 4
            and not message.GetOptions().map_entry
            and not message.full_name.startswith("google.protobuf.")
        ):
            yield from _paths(message, path, depth + 1)


def _mutated(seed: Message, path: tuple[Any, ...], value: Any) -> bytes:
    message = type(seed)()
    message.CopyFrom(seed)
    holder = message
    for field in path[:-1]:
        child = getattr(holder, field.name)
        holder = (child[0] if len(child) else child.add()) if field.is_repeated else child
    last = path[-1]
    holder.ClearField(last.name)
    _assign(holder, {last.name: value})
    return bytes(message.SerializeToString())


def _payloads() -> st.SearchStrategy[tuple[str, Any, bytes]]:
    def for_method(index: int) -> st.SearchStrategy[tuple[str, Any, bytes]]:
        path, method = METHODS[index]
        cls = message_factory.GetMessageClass(method.input_type)
        seed = json_format.ParseDict(SEEDS.get(method.name, {}), cls())
        paths = list(_paths(method.input_type, (), 0))
        mutated = (
            st.sampled_from(paths).flatmap(
                lambda fields: _field(fields[-1], 2).map(
                    lambda value: _mutated(seed, fields, value)
                )
            )
            if paths
            else st.just(seed.SerializeToString())
        )
        generated = _message(method.input_type, 0).map(lambda m: m.SerializeToString())
        garbage = st.one_of(
            st.binary(max_size=64),
            st.sampled_from([b"\x09", b"\x0a\x02\xff\xfe", b"\x0a\xff\xff\xff\xff\x0f"]),
        )
        deep = st.just(b"")
        for field in method.input_type.fields:  # a Struct field nested 200 deep
            if field.message_type is not None and (
                field.message_type.full_name == "google.protobuf.Struct"
            ):
                deep = st.just(field_bytes(field.number, nested_struct_bytes(200)))
                break
        # Mostly one hostile value in an otherwise valid request: it reaches the deep code.
        payload = st.one_of(*[mutated] * 6, generated, generated, garbage, deep)
        return st.tuples(st.just(path), st.just(method), payload)

    return st.integers(0, len(METHODS) - 1).flatmap(for_method)


class FuzzTarget:
    """A server process with auth on and a few known resources, and a channel to it."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "BATON_DATABASE": str(tmp / "fuzz.db"),
            "BATON_LISTEN": f"127.0.0.1:{self.port}",
            "BATON_AUTH_TOKENS": f"{TOKEN}=admin",
            "BATON_LOG_LEVEL": "CRITICAL",
            "BATON_SQLITE_SYNCHRONOUS": "NORMAL",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "baton_server"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{self.port}",
            options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
        )
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.calls = 0

    def seed(self) -> None:
        """Known resources, so that some generated names resolve."""
        with SyncClient.connect(f"127.0.0.1:{self.port}", token=TOKEN) as client:
            echo = PythonRuntime(entry_point="baton_server.agents.builtin:echo")
            client.agents.create(Agent(python=echo), agent_id="echo")
            client.agents.create(Agent(worker=WorkerRuntime()), agent_id="remote")
            client.workflows.create(
                Workflow(steps=[Step(id="a", agent="agents/echo")]), workflow_id="flow"
            )
            client.handoffs.create(
                Handoff(
                    source_agent="agents/echo",
                    target_agent="agents/remote",
                    type=Handoff.TYPE_ON_FAILURE,
                ),
                handoff_id="known",
            )
            client.executions.start("workflows/flow", {"x": 1}, execution_id="known")
            client.schedules.create(
                Schedule(workflow="flow", cron="0 3 * * *", input={"x": 1}), schedule_id="known"
            )
            client.tools.create(Tool(python=echo), tool_id="known")

    def call(self, path: str, method: Any, payload: bytes) -> grpc.StatusCode:
        self.calls += 1
        metadata = (
            [] if self.calls % ANONYMOUS_SHARE == 0 else [("authorization", f"Bearer {TOKEN}")]
        )
        name = path.rsplit("/", 1)[-1]
        identity = lambda b: b  # noqa: E731 - raw bytes both ways
        try:
            if method.server_streaming:
                stream = self.channel.unary_stream(path, identity, identity)(
                    payload, timeout=1.5, metadata=metadata
                )
                for _ in stream:
                    pass
            else:
                timeout = 1.5 if name in WAITING else 15
                self.channel.unary_unary(path, identity, identity)(
                    payload, timeout=timeout, metadata=metadata
                )
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code: grpc.StatusCode = exc.code()  # type: ignore[attr-defined]
            if code is grpc.StatusCode.DEADLINE_EXCEEDED and name not in WAITING:
                raise AssertionError(f"{name} hung (no answer within 15 s)") from None
            return code

    def alive(self) -> None:
        assert self.process.poll() is None, (
            f"the server died (exit {self.process.returncode}): "
            f"{self.process.stderr.read()[-2000:] if self.process.stderr else ''}"
        )

    def close(self) -> None:
        self.channel.close()
        stop_processes([self.process])


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    fuzz = FuzzTarget(tmp_path_factory.mktemp("fuzz"))
    try:
        fuzz.seed()
        yield fuzz
    finally:
        fuzz.close()


@pytest.mark.timeout(max(600, EXAMPLES // 2))
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("BATON_FUZZ_RANDOM") is None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
@given(case=_payloads())
def test_fuzzed_requests_get_proper_answers(target: FuzzTarget, case: Any) -> None:
    path, method, payload = case
    code = target.call(path, method, payload)
    target.alive()
    assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (path, payload[:300])
