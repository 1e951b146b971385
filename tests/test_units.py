"""Unit tests of the pure parts: expressions, conditions, payload codec, settings."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from conftest import python_agent
from google.protobuf import struct_pb2

from baton import Client
from baton_server.app import Baton
from baton_server.config import Settings
from baton_server.domain import events, failures
from baton_server.domain.attempts import Cancellation
from baton_server.domain.executions import EventType, Failure
from baton_server.language.conditions import free_variables, referenced_steps
from baton_server.language.expressions import ExpressionError, parse_path, parse_template
from baton_server.runtimes.http_answers import read_lines
from baton_server.storage.codec import Codec


def test_templates_keep_literals_and_expressions_in_order() -> None:
    template = parse_template("plan for ${input.request} by ${ steps.a.output.owner[0] }!")
    assert template.parts[0] == "plan for "
    assert [e.path for e in template.expressions] == [
        ("input", "request"),
        ("steps", "a", "output", "owner", 0),
    ]
    assert template.parts[-1] == "!"
    assert template.single is None
    single = parse_template("${steps.a.output['odd key']}")
    assert single.single is not None and single.single.step_id == "a"
    assert single.single.path[-1] == "odd key"
    assert parse_template("cost: $${not.an.expression}").parts == ("cost: ${not.an.expression}",)


@pytest.mark.parametrize(
    "source",
    [
        "",
        "input..a",
        ".input",
        "input.",
        "input[x]",
        "steps.a",
        "steps.a.input",
        "execution.secret",
        "env.HOME",
        "input.a b",
    ],
)
def test_malformed_paths_are_refused(source: str) -> None:
    with pytest.raises(ExpressionError):
        parse_path(source)


def test_condition_analysis() -> None:
    source = "steps.plan.output.ok && steps['fan-out'].output.n > 2 && [1].all(v, v > 0)"
    assert referenced_steps(source) == {"plan", "fan-out"}
    assert free_variables(source) == {"steps"}


def test_codec_compresses_only_large_documents() -> None:
    codec = Codec(compress_threshold=64)
    small, large = {"a": 1}, {"text": "word " * 1000}
    assert codec.encode(small).startswith(b"{")
    blob = codec.encode(large)
    assert blob[:4] == b"\x28\xb5\x2f\xfd" and len(blob) < 200
    assert codec.decode(blob) == large and codec.decode(codec.encode(small)) == small


@pytest.mark.sqlite_only
async def test_large_definitions_are_stored_compressed(client: Client, server: Baton) -> None:
    config = struct_pb2.Struct()
    config.update({"instructions": "Design well-structured projects. " * 200})
    await client.agents.create(python_agent(config=config), agent_id="verbose")
    await client.agents.create(python_agent(), agent_id="terse")
    with sqlite3.connect(server.db.path) as conn:
        docs = dict(conn.execute("SELECT id, doc FROM agents").fetchall())
    assert docs["verbose"][:4] == b"\x28\xb5\x2f\xfd"
    assert docs["terse"][:1] == b"{"
    assert (await client.agents.get("verbose")).config == config


def test_settings_from_environment_then_flags() -> None:
    env = {"BATON_LISTEN": "127.0.0.1:7000", "BATON_CACHE_TTL": "12.5", "BATON_REDIS_URL": "x"}
    settings = Settings.load(["--listen", "127.0.0.1:8000", "--max-message-bytes", "100000"], env)
    assert settings.listen == "127.0.0.1:8000"  # flags win over the environment
    assert settings.cache_ttl == 12.5
    assert settings.redis_url == "x"
    assert settings.max_message_bytes == 100000
    assert Settings.load([], {}) == Settings()
    with pytest.raises(SystemExit):
        Settings.load([], {"BATON_CACHE_TTL": "soon"})


def test_the_readme_lists_every_failure_type() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### Failure types", 1)[1].split("\n### ", 1)[0]
    catalogued = {
        value
        for name, value in vars(failures).items()
        if name.isupper() and isinstance(value, str) and name != "HTTP_STATUS_PREFIX"
    }
    assert catalogued, "the catalogue is empty"
    for value in catalogued:
        assert f"`{value}`" in section, value
        assert value == value.upper() and " " not in value, value


def test_every_event_payload_round_trips_through_its_document() -> None:
    failure = Failure("STEP_TIMEOUT", "too slow", step_id="a", cause=Failure("X", "inner"))
    samples = [
        events.ExecutionQueued(3, 7),
        events.ExecutionStarted(),
        events.ExecutionSucceeded({"a": [1, {"b": None}]}),
        events.ExecutionFailed(failure),
        events.ExecutionCancelled("no longer needed"),
        events.ExecutionTimedOut(2.5),
        events.StepScheduled("echo"),
        events.StepStarted("echo", "e/a/1", {"x": 1}),
        events.StepSucceeded({"y": 2}),
        events.StepFailed(failure),
        events.StepRetrying(failure, 0.25, 2),
        events.StepSkipped("condition is false"),
        events.StepTimedOut(1.0),
        events.FallbackActivated(failure, "echo", "backup"),
        events.HandoffRecord("handoffs/h", "a", "b", "SEQUENTIAL", True, 12.5),
        events.OutputDelta("tok", {"n": 1}),
        events.Log("WARNING", "careful", {"k": "v"}),
        events.StepInterrupted("echo", "the server stopped"),
        events.SignalReceived("approved", {"by": "ana"}, "review"),
        events.ExecutionPaused("lunch"),
        events.ExecutionResumed(),
        events.ExecutionRetried(["b", "c"], 1),
        events.ApprovalDecided(True, "vic", "reviewer", "looks right"),
        events.LoopIterationStarted(2, ["write", "review"]),
        events.AgentTurn(
            2,
            "",
            [{"id": "c1", "name": "add", "arguments": '{"a": 1}'}],
            {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            "tool_calls",
            4,
            "",
            "planner",
        ),
        events.ToolCallStarted("c1", "add", {"a": 1}, 1, 2, -1),
        events.ToolCallSucceeded("c1", "add", {"sum": 3}, 2, 2, -1),
        events.ToolCallFailed(failure, "c1", "add", 1, True, 2, -1),
    ]
    assert {type(p).kind for p in samples} == set(EventType)  # one payload per kind
    for payload in samples:
        event = events.new_event(payload, "a", 1)
        assert event.type is type(payload).kind
        stored = json.loads(json.dumps(event.payload))  # as storage keeps it
        assert events.payload_of(replace(event, payload=stored)) == payload


async def test_answer_lines_are_read_across_chunks() -> None:
    """Lines split over chunks, CRLF endings and a last line without one come out whole."""

    async def chunks() -> AsyncIterator[bytes]:
        for chunk in (b"data: a", b"b\r\n\r\nda", b"ta: c\n", b"", b"tail"):
            yield chunk

    response = httpx.Response(200, stream=_ByteStream(chunks()))
    assert [line async for line in read_lines(response)] == ["data: ab", "", "data: c", "tail"]


class _ByteStream(httpx.AsyncByteStream):
    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            yield chunk


def test_an_attempts_cancellation_wakes_a_thread_waiting_on_it() -> None:
    """`ctx.cancelled` behaves as the threading.Event it is, whether the thread waits on it
    before or after it is set (its condition is made on the first wait)."""
    already = Cancellation()
    already.set()
    assert already.is_set() and already.wait(0) and already.wait()
    already.clear()
    assert not already.is_set() and not already.wait(0.01)

    cancelled = Cancellation()
    assert isinstance(cancelled, threading.Event)
    woken: list[bool] = []
    waiter = threading.Thread(target=lambda: woken.append(cancelled.wait(10)))
    waiter.start()
    time.sleep(0.05)  # the thread waits on the condition by now
    begun = time.monotonic()
    cancelled.set()
    waiter.join(5)
    assert woken == [True] and time.monotonic() - begun < 1
    assert cancelled.is_set() and cancelled.wait(0)
