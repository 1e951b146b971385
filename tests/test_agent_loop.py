"""LLM agents that call tools, over the real server and a local endpoint that speaks the
chat-completions protocol with scripted answers: multi-turn loops with parallel calls,
streamed tool-call deltas, tools retried, max_turns, transfer_to_ handoffs, structured
output, usage, and a SIGKILL in the middle of a loop."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from conftest import restartable
from fake_llm import ScriptedLLM, serve, tool_results, turn_of
from google.protobuf import duration_pb2
from test_cli import baton_cli

import baton
from baton import (
    Agent,
    Client,
    EventType,
    Execution,
    Handoff,
    HttpTool,
    OpenAIRuntime,
    PythonRuntime,
    RetryPolicy,
    Step,
    Tool,
    WorkerRuntime,
    Workflow,
)

ADD = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
}
ET = EventType


async def add_tools(client: Client) -> None:
    await client.tools.create(
        Tool(
            description="Adds two integers.",
            parameters=ADD,  # type: ignore[arg-type]
            python=PythonRuntime(entry_point="test_agents_lib:add_tool"),
        ),
        tool_id="add",
    )
    await client.tools.create(
        Tool(
            description="Sometimes fails.",
            python=PythonRuntime(entry_point="test_agents_lib:flaky_tool"),
            retry_policy=RetryPolicy(
                max_attempts=3, initial_interval=duration_pb2.Duration(nanos=50_000_000)
            ),
        ),
        tool_id="flaky",
    )
    await client.tools.create(
        Tool(
            description="Always fails.",
            python=PythonRuntime(entry_point="test_agents_lib:broken_tool"),
        ),
        tool_id="broken",
    )


async def llm_agent(
    client: Client,
    agent_id: str,
    base_url: str,
    *,
    tools: list[str],
    config: dict[str, Any] | None = None,
    stream: bool = False,
    max_turns: int = 0,
) -> None:
    await client.agents.create(
        Agent(
            tools=tools,
            config=config or {},  # type: ignore[arg-type]
            openai=OpenAIRuntime(
                base_url=base_url,
                model=agent_id,
                instructions="Use the tools.",
                stream=stream,
                max_turns=max_turns,
            ),
        ),
        agent_id=agent_id,
    )


async def run_step(
    client: Client, agent_id: str, *, output_schema: dict[str, Any] | None = None
) -> Execution:
    step = Step(id="work", agent=agent_id)
    if output_schema is not None:
        step.output_schema.update(output_schema)
    workflow = await client.workflows.create(Workflow(steps=[step]))
    execution = await client.executions.start(workflow.name, {"task": "sum"})
    return await client.executions.wait(execution.name, timeout=60)


async def events(client: Client, name: str, *types: Any) -> list[Any]:
    return [e async for e in client.executions.events(name, event_types=list(types))]


def adder(body: dict[str, Any]) -> dict[str, Any]:
    """Turn 1: two add calls at once; turn 2: adds their sums; turn 3: the answer."""
    turn, results = turn_of(body), tool_results(body)
    if turn == 0:
        return {"tool_calls": [("c1", "add", {"a": 1, "b": 2}), ("c2", "add", {"a": 3, "b": 4})]}
    if turn == 1:
        a, b = results["c1"]["sum"], results["c2"]["sum"]
        return {"tool_calls": [("c3", "add", {"a": a, "b": b})], "usage": (20, 7)}
    return {"content": json.dumps({"total": results["c3"]["sum"]}), "usage": (30, 9)}


@pytest.mark.parametrize("stream", [False, True])
async def test_multi_turn_loop_with_parallel_tool_calls(
    client: Client, scripted_llm: str, tmp_path: Path, stream: bool
) -> None:
    await add_tools(client)
    ScriptedLLM.scripts["adder"] = adder
    config = {"effects": str(tmp_path / "effects"), "pause": 0.3}
    await llm_agent(client, "adder", scripted_llm, tools=["add"], config=config, stream=stream)
    done = await run_step(client, "adder")
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    assert dict(done.steps[0].output) == {"total": 10}

    first = ScriptedLLM.requests[0]
    assert [t["function"]["name"] for t in first["tools"]] == ["add"]
    assert first["tools"][0]["function"]["parameters"] == ADD
    assert first["messages"][0] == {"role": "system", "content": "Use the tools."}
    # Turn 2 carries turn 1's calls and both results, in the order the model asked.
    second = ScriptedLLM.requests[1]["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "tool", "tool"]
    assert [c["id"] for c in second[2]["tool_calls"]] == ["c1", "c2"]
    assert [m["tool_call_id"] for m in second[3:]] == ["c1", "c2"]

    log = await events(
        client,
        done.name,
        ET.EVENT_TYPE_AGENT_TURN,
        ET.EVENT_TYPE_TOOL_CALL_STARTED,
        ET.EVENT_TYPE_TOOL_CALL_SUCCEEDED,
    )
    kinds = [(e.type, e.tool_call_started.call_id or e.tool_call_succeeded.call_id) for e in log]
    started, succeeded = ET.EVENT_TYPE_TOOL_CALL_STARTED, ET.EVENT_TYPE_TOOL_CALL_SUCCEEDED
    # The two calls of turn 1 ran at once: both started before either ended.
    assert kinds[1:3] == [(started, "c1"), (started, "c2")]
    assert {k for k in kinds[3:5]} == {(succeeded, "c1"), (succeeded, "c2")}
    turns = [e.agent_turn for e in log if e.type == ET.EVENT_TYPE_AGENT_TURN]
    assert [t.turn for t in turns] == [1, 2, 3]
    assert [c.tool for c in turns[0].tool_calls] == ["tools/add", "tools/add"]
    assert json.loads(turns[0].tool_calls[0].arguments) == {"a": 1, "b": 2}
    assert [t.usage.total_tokens for t in turns] == [15, 27, 39]
    assert turns[0].agent == "agents/adder"
    results = [e.tool_call_succeeded for e in log if e.type == succeeded]
    assert sorted(dict(r.result)["sum"] for r in results) == [3, 7, 10]

    usage = done.steps[0].usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (60, 21, 81)
    assert done.steps[0].attempts[0].usage.total_tokens == 81
    performance = await client.agent_performance("adder")
    assert performance.usage.total_tokens == 81
    # Each call had its effect once, under a key of its own.
    lines = (tmp_path / "effects").read_text().split("\n")
    keys = sorted(line.split()[1].rsplit("/", 1)[1] for line in lines if line)
    assert keys == ["c1", "c2", "c3"]


async def test_a_failing_tool_is_retried_and_a_broken_one_told_to_the_model(
    client: Client, scripted_llm: str, tmp_path: Path
) -> None:
    await add_tools(client)

    def script(body: dict[str, Any]) -> dict[str, Any]:
        if turn_of(body) == 0:
            return {"tool_calls": [("f", "flaky", {"fail_times": 2}), ("b", "broken", {})]}
        return {"content": json.dumps({"seen": tool_results(body)})}

    ScriptedLLM.scripts["retrier"] = script
    config = {"effects": str(tmp_path / "effects")}
    await llm_agent(client, "retrier", scripted_llm, tools=["flaky", "broken"], config=config)
    done = await run_step(client, "retrier")
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    seen = dict(done.steps[0].output)["seen"]
    assert seen["f"] == {"tries": 3}
    assert seen["b"] == {"error": {"type": "IndexDown", "message": "the index is down"}}
    failed = [
        e.tool_call_failed for e in await events(client, done.name, ET.EVENT_TYPE_TOOL_CALL_FAILED)
    ]
    flaky = [(f.try_number, f.will_retry) for f in failed if f.call_id == "f"]
    assert flaky == [(1, True), (2, True)]
    broken = [f for f in failed if f.call_id == "b"]
    assert [(f.try_number, f.will_retry, f.error.type) for f in broken] == [(1, False, "IndexDown")]
    # The three tries of the flaky call shared one idempotency key.
    lines = [line.split() for line in (tmp_path / "effects").read_text().splitlines()]
    assert [what for what, _ in lines] == ["flaky"] * 3 and len({key for _, key in lines}) == 1


async def test_unknown_tools_and_bad_arguments_are_told_to_the_model(
    client: Client, scripted_llm: str
) -> None:
    await add_tools(client)

    def script(body: dict[str, Any]) -> dict[str, Any]:
        if turn_of(body) == 0:
            return {"tool_calls": [("x", "nope", {}), ("y", "add", {"a": "one"})]}
        return {"content": json.dumps({"seen": tool_results(body)})}

    ScriptedLLM.scripts["guesser"] = script
    await llm_agent(client, "guesser", scripted_llm, tools=["add"])
    done = await run_step(client, "guesser")
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    seen = dict(done.steps[0].output)["seen"]
    assert seen["x"]["error"]["type"] == "TOOL_NOT_FOUND"
    assert seen["y"]["error"]["type"] == "TOOL_ARGUMENTS_INVALID"
    assert "b" in seen["y"]["error"]["message"]  # the missing required argument is named


async def test_max_turns_fails_the_step(client: Client, scripted_llm: str) -> None:
    await add_tools(client)
    ScriptedLLM.scripts["looper"] = lambda body: {
        "tool_calls": [(f"c{turn_of(body)}", "add", {"a": 1, "b": 1})]
    }
    await llm_agent(client, "looper", scripted_llm, tools=["add"], max_turns=3)
    done = await run_step(client, "looper")
    assert done.state == Execution.STATE_FAILED
    assert done.error.type == "MAX_TURNS_EXCEEDED"
    assert len(ScriptedLLM.requests) == 3
    assert len(done.steps[0].attempts) == 1  # not retried: another attempt would loop too
    assert done.steps[0].usage.total_tokens == 45  # the failed attempt's turns still count


async def test_handoff_through_a_transfer_tool(client: Client, scripted_llm: str) -> None:
    await client.agents.create(
        Agent(python=PythonRuntime(entry_point="test_agents_lib:echo")), agent_id="billing"
    )
    ScriptedLLM.scripts["triage"] = lambda body: {
        "tool_calls": [("t", "transfer_to_billing", {"transfer_reason": "an invoice question"})]
    }
    await llm_agent(client, "triage", scripted_llm, tools=[])
    await client.handoffs.create(
        Handoff(
            source_agent="agents/triage",
            target_agent="agents/billing",
            type=Handoff.TYPE_SEQUENTIAL,
            description="Billing questions.",
            trigger_conditions=["input.never == true"],  # only when the model asks
        ),
        handoff_id="triage-to-billing",
    )
    done = await run_step(client, "triage")
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    tools = ScriptedLLM.requests[0]["tools"]
    assert [t["function"]["name"] for t in tools] == ["transfer_to_billing"]
    assert tools[0]["function"]["description"] == "Billing questions."
    # billing (an echo) got the step's input and the reason the model gave.
    assert dict(done.steps[0].output) == {"task": "sum", "transfer_reason": "an invoice question"}
    handoffs = await events(client, done.name, ET.EVENT_TYPE_HANDOFF)
    assert handoffs[0].handoff.requested_by_agent
    assert handoffs[0].handoff.target_agent == "agents/billing"


async def test_structured_output_is_asked_for_again_when_it_does_not_match(
    client: Client, scripted_llm: str
) -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    replies = iter(["not json", json.dumps({"x": "one"}), json.dumps({"x": 1})])
    ScriptedLLM.scripts["sloppy"] = lambda body: {"content": next(replies)}
    await llm_agent(client, "sloppy", scripted_llm, tools=[])
    done = await run_step(client, "sloppy", output_schema=schema)
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    assert dict(done.steps[0].output) == {"x": 1}
    first = ScriptedLLM.requests[0]
    assert first["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }
    third = ScriptedLLM.requests[2]["messages"]
    assert "not JSON" in third[3]["content"] and "x" in third[5]["content"]
    turns = [e.agent_turn for e in await events(client, done.name, ET.EVENT_TYPE_AGENT_TURN)]
    assert [bool(t.rejected) for t in turns] == [True, True, False]

    ScriptedLLM.scripts["stubborn"] = lambda body: {"content": "never JSON"}
    await llm_agent(client, "stubborn", scripted_llm, tools=[])
    done = await run_step(client, "stubborn", output_schema=schema)
    assert done.error.type == "OUTPUT_SCHEMA_MISMATCH"
    stubborn = [r for r in ScriptedLLM.requests if r["model"] == "stubborn"]
    assert len(stubborn) == 3 * 3  # three replies per attempt, three attempts


async def test_a_python_agent_output_is_checked_against_the_schema(client: Client) -> None:
    await client.agents.create(
        Agent(python=PythonRuntime(entry_point="test_agents_lib:echo")), agent_id="echo"
    )
    schema = {"type": "object", "required": ["answer"]}
    done = await run_step(client, "echo", output_schema=schema)
    assert done.error.type == "OUTPUT_SCHEMA_MISMATCH"
    assert "answer" in done.error.message


@pytest.mark.timeout(120)
async def test_a_sigkill_mid_loop_repeats_no_finished_turn_or_tool_call(
    scripted_llm: str, tmp_path: Path
) -> None:
    """Turn 1 calls c1, turn 2 calls c2; the server is killed while turn 3 is being
    answered. After the restart, neither turn is paid again and neither call runs again."""

    held: list[int] = []

    def script(body: dict[str, Any]) -> dict[str, Any]:
        turn = turn_of(body)
        if turn < 2:
            return {"tool_calls": [(f"c{turn + 1}", "add", {"a": turn, "b": 1})]}
        if not held:  # the first time turn 3 is asked for, it hangs until the server dies
            held.append(turn)
            ScriptedLLM.hold.set()
        return {"content": json.dumps({"results": tool_results(body)})}

    ScriptedLLM.scripts["durable"] = script
    effects = tmp_path / "effects"
    async with restartable(tmp_path) as servers:
        async with Client.connect(f"127.0.0.1:{servers.port}") as client:
            await add_tools(client)
            await llm_agent(
                client, "durable", scripted_llm, tools=["add"], config={"effects": str(effects)}
            )
            workflow = await client.workflows.create(
                Workflow(steps=[Step(id="work", agent="durable")])
            )
            execution = await client.executions.start(workflow.name, {})

            async def succeeded() -> int:
                found = await events(client, execution.name, ET.EVENT_TYPE_TOOL_CALL_SUCCEEDED)
                return len(found)

            while not ScriptedLLM.hold.is_set() or await succeeded() < 2:  # noqa: ASYNC110 - the fake runs in a thread
                await asyncio.sleep(0.02)
        await servers.kill()
        ScriptedLLM.hold.clear()
        await servers.start()
        async with Client.connect(f"127.0.0.1:{servers.port}") as client:
            done = await client.executions.wait(execution.name, timeout=60)
            assert done.state == Execution.STATE_SUCCEEDED, done.error
            assert dict(done.steps[0].output)["results"] == {"c1": {"sum": 1}, "c2": {"sum": 2}}
            interrupted = await events(client, execution.name, ET.EVENT_TYPE_STEP_INTERRUPTED)
            assert len(interrupted) == 1
            turns = await events(client, execution.name, ET.EVENT_TYPE_AGENT_TURN)
            assert [e.agent_turn.turn for e in turns] == [1, 2, 3]
            assert {e.attempt for e in turns} == {1}
    by_turn = [turn_of(r) for r in ScriptedLLM.requests]
    assert by_turn.count(0) == 1 and by_turn.count(1) == 1  # turns 1 and 2 paid once
    assert by_turn.count(2) == 2  # turn 3 was in flight when the server died
    calls = [line.split()[1].rsplit("/", 1)[1] for line in effects.read_text().splitlines()]
    assert calls == ["c1", "c2"]


class _Weather(BaseHTTPRequestHandler):
    """An HTTP API a tool calls: GET /weather/{city}?units=... ."""

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        body = json.dumps(
            {
                "city": urllib.parse.unquote(url.path.rsplit("/", 1)[1]),
                "units": urllib.parse.parse_qs(url.query)["units"][0],
                "key": self.headers.get("x-key"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


async def test_worker_http_and_agent_tools(client: Client, scripted_llm: str) -> None:
    weather_api = serve(_Weather)
    weather_url = next(weather_api)
    try:
        await client.tools.create(Tool(worker=WorkerRuntime()), tool_id="lookup")
        await client.tools.create(
            Tool(
                http=HttpTool(
                    method="GET",
                    url=f"{weather_url}/weather/{{city}}",
                    headers={"x-key": "k-{city}"},
                )
            ),
            tool_id="weather",
        )
        await client.agents.create(
            Agent(python=PythonRuntime(entry_point="test_agents_lib:shout")), agent_id="loud"
        )
        await client.tools.create(Tool(agent="agents/loud"), tool_id="shout")

        def script(body: dict[str, Any]) -> dict[str, Any]:
            if turn_of(body) == 0:
                return {
                    "tool_calls": [
                        ("w", "lookup", {"term": "baton"}),
                        ("h", "weather", {"city": "New York", "units": "metric"}),
                        ("a", "shout", {"text": "hi"}),
                    ]
                }
            return {"content": json.dumps(tool_results(body))}

        ScriptedLLM.scripts["mixer"] = script
        await llm_agent(client, "mixer", scripted_llm, tools=["lookup", "weather", "shout"])
        seen: list[tuple[str, str, str]] = []

        def lookup(arguments: dict[str, Any], ctx: baton.StepContext) -> dict[str, Any]:
            seen.append((ctx.agent, ctx.step_id, ctx.idempotency_key))
            return {"found": arguments["term"].upper()}

        worker = baton.Worker(client, {"tools/lookup": lookup})
        serving = asyncio.ensure_future(worker.run())
        try:
            done = await run_step(client, "mixer")
        finally:
            await worker.stop()
            serving.cancel()
        assert done.state == Execution.STATE_SUCCEEDED, done.error
        output = json.loads(json.dumps(dict(done.steps[0].output), default=dict))
        assert output["w"] == {"found": "BATON"}
        assert output["h"] == {"city": "New York", "units": "metric", "key": "k-New York"}
        assert output["a"]["text"] == "HI"
        assert seen == [("", "work", f"{done.name.removeprefix('executions/')}/work/1/w")]
    finally:
        next(weather_api, None)


async def test_watch_shows_turns_and_failed_tool_calls(
    server: Any, client: Client, scripted_llm: str, tmp_path: Path
) -> None:
    await add_tools(client)

    def script(body: dict[str, Any]) -> dict[str, Any]:
        if turn_of(body) == 0:
            return {"tool_calls": [("a", "add", {"a": 1, "b": 1}), ("b", "broken", {})]}
        return {"content": "done"}

    ScriptedLLM.scripts["watched"] = script
    await llm_agent(client, "watched", scripted_llm, tools=["add", "broken"])
    await client.workflows.create(
        Workflow(steps=[Step(id="work", agent="watched")]), workflow_id="watched"
    )
    code, out, err = await baton_cli(server, "run", "watched", "--input", "{}", "--watch")
    assert code == 0, err
    assert "work: turn 1: tools/add, tools/broken (15 tokens)" in out
    assert "work: tools/broken failed: IndexDown" in out
    assert "work: turn 2: answered (15 tokens)" in out


async def test_a_workflow_tool_runs_a_child_execution(client: Client, scripted_llm: str) -> None:
    await client.agents.create(
        Agent(python=PythonRuntime(entry_point="test_agents_lib:add")), agent_id="summer"
    )
    await client.workflows.create(
        Workflow(
            steps=[Step(id="sum", agent="summer", input_mapping={"values": "${input.values}"})]
        ),
        workflow_id="summing",
    )
    await client.tools.create(
        Tool(description="Sums numbers.", workflow="workflows/summing"), tool_id="sum-flow"
    )

    def script(body: dict[str, Any]) -> dict[str, Any]:
        if turn_of(body) == 0:
            return {"tool_calls": [("s", "sum-flow", {"values": [1, 2, 3]})]}
        return {"content": json.dumps(tool_results(body)["s"])}

    ScriptedLLM.scripts["delegator"] = script
    await llm_agent(client, "delegator", scripted_llm, tools=["sum-flow"])
    done = await run_step(client, "delegator")
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    assert dict(done.steps[0].output) == {"sum": {"value": 6}}
    children = [c async for c in client.executions.list(parent=done.name)]
    assert len(children) == 1 and children[0].workflow == "workflows/summing"


async def test_map_items_run_their_own_loops(client: Client, scripted_llm: str) -> None:
    await add_tools(client)

    def script(body: dict[str, Any]) -> dict[str, Any]:
        item = json.loads(body["messages"][1]["content"])["n"]
        if turn_of(body) == 0:
            return {"tool_calls": [(f"i{item}", "add", {"a": item, "b": 100})]}
        return {"content": json.dumps(tool_results(body)[f"i{item}"])}

    ScriptedLLM.scripts["mapper"] = script
    await llm_agent(client, "mapper", scripted_llm, tools=["add"])
    workflow = await client.workflows.create(
        Workflow(
            steps=[
                Step(
                    id="each",
                    agent="mapper",
                    for_each="${input.numbers}",
                    input_mapping={"n": "${item}"},
                    max_parallel=3,
                )
            ]
        )
    )
    execution = await client.executions.start(workflow.name, {"numbers": [1, 2, 3]})
    done = await client.executions.wait(execution.name, timeout=60)
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    items = [dict(i) for i in done.steps[0].output["items"]]
    assert items == [{"sum": 101}, {"sum": 102}, {"sum": 103}]
    assert done.steps[0].usage.total_tokens == 3 * 2 * 15  # three items, two turns each
    turns = await events(client, done.name, ET.EVENT_TYPE_AGENT_TURN)
    assert sorted(e.agent_turn.item for e in turns) == [0, 0, 1, 1, 2, 2]


async def test_a_429_mid_loop_keeps_the_turns_and_tool_calls_made(
    client: Client, scripted_llm: str, tmp_path: Path
) -> None:
    await add_tools(client)
    limited: list[int] = []

    def script(body: dict[str, Any]) -> dict[str, Any]:
        turn = turn_of(body)
        if turn == 0:
            return {"tool_calls": [("c1", "add", {"a": 2, "b": 2})]}
        if not limited:
            limited.append(turn)
            return {"status": 429, "retry_after": "1"}
        return {"content": json.dumps(tool_results(body)["c1"])}

    ScriptedLLM.scripts["throttled"] = script
    config = {"effects": str(tmp_path / "effects")}
    await llm_agent(client, "throttled", scripted_llm, tools=["add"], config=config)
    done = await run_step(client, "throttled")
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    assert dict(done.steps[0].output) == {"sum": 4}
    assert len(done.steps[0].attempts) == 1
    assert [turn_of(r) for r in ScriptedLLM.requests] == [0, 1, 1]
    assert len((tmp_path / "effects").read_text().splitlines()) == 1  # the tool ran once
    logs = [e.log.message for e in await events(client, done.name, ET.EVENT_TYPE_LOG)]
    assert any("HTTP_429" in line and "1s" in line for line in logs), logs
