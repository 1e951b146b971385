"""The polyglot proof: a workflow served by two Python worker processes and a Node.js worker
built from proto/ alone (examples/node-worker)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from fake_llm import ScriptedLLM, tool_results, turn_of
from test_workers import connected

from baton import Agent, Client, Execution, OpenAIRuntime, Step, Tool, WorkerRuntime, Workflow
from baton_server.app import Baton

ROOT = Path(__file__).resolve().parent.parent
NODE_WORKER = ROOT / "examples" / "node-worker"


@pytest.mark.timeout(60)
async def test_python_and_node_workers_serve_one_workflow(server: Baton, client: Client) -> None:
    node = shutil.which("node")
    if node is None or not (NODE_WORKER / "node_modules" / "@grpc" / "grpc-js").exists():
        pytest.fail("node and examples/node-worker/node_modules are needed: run `make test`")
    for agent_id in ("shout", "node-reverser"):
        await client.agents.create(Agent(worker=WorkerRuntime()), agent_id=agent_id)
    workflow = await client.workflows.create(
        Workflow(
            steps=[
                Step(id="loud", agent="shout", input_mapping={"text": "${input.text}"}),
                Step(
                    id="backwards",
                    agent="node-reverser",
                    depends_on=["loud"],
                    input_mapping={"text": "${steps.loud.output.text}"},
                ),
                Step(
                    id="again",
                    agent="shout",
                    depends_on=["backwards"],
                    input_mapping={
                        "text": "${steps.backwards.output.reversed} "
                        "(${steps.backwards.output.words} words)"
                    },
                ),
            ]
        )
    )
    address = f"127.0.0.1:{server.port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    worker_script = str(ROOT / "tests" / "worker_process.py")
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, worker_script, address, "shout", env=env
        ),
        await asyncio.create_subprocess_exec(
            sys.executable, worker_script, address, "shout", env=env
        ),
        await asyncio.create_subprocess_exec(
            node,
            str(NODE_WORKER / "worker.js"),
            address,
            "agents/node-reverser",
            stdout=asyncio.subprocess.DEVNULL,
        ),
    ]
    try:
        await connected(server, 3)
        executions = [
            await client.executions.start(workflow.name, {"text": f"hello node {i}"})
            for i in range(4)
        ]
        for execution in executions:
            done = await client.executions.wait(execution.name, timeout=30)
            assert done.state == Execution.STATE_SUCCEEDED, done.error
            steps = {s.step_id: s for s in done.steps}
            assert steps["backwards"].output["runtime"] == "node"
            assert int(steps["backwards"].output["pid"]) == processes[2].pid
            assert int(steps["loud"].output["pid"]) in {processes[0].pid, processes[1].pid}
            assert int(steps["again"].output["pid"]) in {processes[0].pid, processes[1].pid}
        texts = sorted(
            [(await client.executions.get(e.name)).steps[2].output["text"] for e in executions]
        )
        assert texts == [f"{i} EDON OLLEH (3 WORDS)" for i in range(4)]
    finally:
        for process in processes:
            process.kill()
            await process.wait()


@pytest.mark.timeout(60)
async def test_a_node_worker_serves_a_tool_to_an_llm_agent(
    server: Baton, client: Client, scripted_llm: str
) -> None:
    node = shutil.which("node")
    if node is None or not (NODE_WORKER / "node_modules" / "@grpc" / "grpc-js").exists():
        pytest.fail("node and examples/node-worker/node_modules are needed: run `make test`")
    await client.tools.create(
        Tool(
            description="Counts the words of a text.",
            parameters={"type": "object", "properties": {"text": {"type": "string"}}},  # type: ignore[arg-type]
            worker=WorkerRuntime(),
        ),
        tool_id="text-stats",
    )

    def script(body: dict[str, Any]) -> dict[str, Any]:
        if turn_of(body) == 0:
            return {"tool_calls": [("n", "text-stats", {"text": "one two three"})]}
        return {"content": json.dumps(tool_results(body)["n"])}

    ScriptedLLM.scripts["counter"] = script
    await client.agents.create(
        Agent(tools=["text-stats"], openai=OpenAIRuntime(base_url=scripted_llm, model="counter")),
        agent_id="counter",
    )
    workflow = await client.workflows.create(Workflow(steps=[Step(id="count", agent="counter")]))
    process = await asyncio.create_subprocess_exec(
        node,
        str(NODE_WORKER / "worker.js"),
        f"127.0.0.1:{server.port}",
        "tools/text-stats",
        stdout=asyncio.subprocess.DEVNULL,
    )
    try:
        await connected(server, 1)
        execution = await client.executions.start(workflow.name, {})
        done = await client.executions.wait(execution.name, timeout=30)
        assert done.state == Execution.STATE_SUCCEEDED, done.error
        output = done.steps[0].output
        assert (output["words"], output["runtime"]) == (3, "node")
        assert int(output["pid"]) == process.pid
    finally:
        process.kill()
        await process.wait()
