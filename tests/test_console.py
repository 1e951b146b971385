"""The web console in a real browser: headless Debian Chromium, driven by playwright-core
(console/tests/console.mjs), against a real server with auth on. Screenshots are kept in
test-artifacts/console (or $BATON_TEST_ARTIFACTS/console)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import httpx
import pytest
from conftest import StartServer

import baton
from baton import Agent, Client, PythonRuntime, Step, Workflow

ROOT = Path(__file__).resolve().parent.parent
CONSOLE = ROOT / "console"
ARTIFACTS = Path(os.environ.get("BATON_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "console"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def _needs_browser() -> None:
    if shutil.which("node") is None or not (CONSOLE / "node_modules" / "playwright-core").exists():
        pytest.fail("node and console/node_modules are needed: run `make test`")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is needed (Debian's chromium package): run `make test`")


async def _prepare(client: Client) -> dict[str, str]:
    """The definitions and executions the browser test looks at."""
    echo = PythonRuntime(entry_point="baton_server.agents.builtin:echo")
    await client.agents.create(Agent(python=echo), agent_id="echo")
    await client.agents.create(
        Agent(python=PythonRuntime(entry_point="test_agents_lib:slow")), agent_id="slow"
    )
    await client.agents.create(
        Agent(python=PythonRuntime(entry_point="test_agents_lib:add")), agent_id="adder"
    )
    await client.tools.create(baton.Tool(python=echo), tool_id="lookup")
    greet = Workflow(
        steps=[
            Step(id="hello", agent="echo"),
            Step(id="shout", agent="echo", depends_on=["hello"]),
            Step(id="bye", agent="echo", depends_on=["shout"]),
        ]
    )
    greet.input_schema.update(
        {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    )
    await client.workflows.create(greet, workflow_id="greet")
    await client.workflows.create(
        Workflow(steps=[Step(id="wait", agent="slow", input_mapping={"seconds": 60})]),
        workflow_id="slow",
    )
    await client.workflows.create(
        Workflow(
            steps=[
                Step(id="review", approval=baton.Approval(prompt="Ship it?")),
                Step(id="ship", agent="echo", depends_on=["review"]),
            ]
        ),
        workflow_id="gate",
    )
    await client.workflows.create(
        Workflow(
            steps=[
                Step(
                    id="count",
                    agent="adder",
                    loop=baton.Loop(until="iteration >= 2", max_iterations=5),
                ),
                Step(
                    id="each",
                    agent="echo",
                    depends_on=["count"],
                    for_each="${input.items}",
                    input_mapping={"item": "${item}"},
                ),
                Step(
                    id="child",
                    workflow="workflows/greet",
                    depends_on=["each"],
                    input_mapping={"name": "child"},
                ),
            ]
        ),
        workflow_id="shapes",
    )
    await client.workflows.create(
        Workflow(steps=[Step(id="only", agent="echo")]), workflow_id="bulk"
    )
    await client.handoffs.create(
        baton.Handoff(
            source_agent="agents/echo",
            target_agent="agents/adder",
            type=baton.Handoff.TYPE_SEQUENTIAL,
            trigger_conditions=["input.never == true"],
        ),
        handoff_id="echo-to-adder",
    )
    await client.schedules.create(
        baton.Schedule(workflow="workflows/bulk", cron="0 3 * * *"), schedule_id="nightly"
    )
    bulk = [client.executions.start("workflows/bulk", {"n": i}) for i in range(1000)]
    for offset in range(0, 1000, 200):
        await asyncio.gather(*bulk[offset : offset + 200])
    slow = await client.executions.start("workflows/slow", {})
    gate = await client.executions.start("workflows/gate", {})
    gate_for_reader = await client.executions.start("workflows/gate", {})
    shapes = await client.executions.start("workflows/shapes", {"items": [1, 2, 3]})
    return {
        "slow": slow.name,
        "gate": gate.name,
        "gate_for_reader": gate_for_reader.name,
        "shapes": shapes.name,
    }


@pytest.mark.timeout(240)
async def test_the_console_in_a_browser(start_server: StartServer) -> None:
    _needs_browser()
    server = await start_server(
        http_listen="127.0.0.1:0", auth_tokens="op-token=operator:olive,read-token=reader:rita"
    )
    async with Client.connect(f"127.0.0.1:{server.port}", token="op-token") as client:
        case = await _prepare(client)
    base = f"http://127.0.0.1:{server.http_port}"
    case.update(operator="op-token", reader="read-token")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    process = await asyncio.create_subprocess_exec(
        "node",
        str(CONSOLE / "tests" / "console.mjs"),
        cwd=CONSOLE,
        env={
            **os.environ,
            "BATON_HTTP": base,
            "BATON_SCREENSHOTS": str(ARTIFACTS),
            "BATON_CONSOLE_CASE": json.dumps(case),
            "CHROMIUM": CHROMIUM,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 200)
    report = out.decode()
    assert process.returncode == 0, report
    assert "FAIL" not in report, report
    assert (ARTIFACTS / "run-succeeded.png").exists()


async def test_the_console_page_and_its_libraries_are_served(start_server: StartServer) -> None:
    server = await start_server(http_listen="127.0.0.1:0")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}") as http:
        page = await http.get("/")
        assert page.status_code == 200 and "<title>Baton</title>" in page.text
        for path in (
            "/static/console.js",
            "/static/vendor/dagre.min.js",
            "/static/vendor/chart.umd.min.js",
        ):
            response = await http.get(path)
            assert response.status_code == 200, path
        assert (await http.get("/static/../app.py")).status_code == 404
        assert (await http.get("/console/session")).json()["role"] == "admin"
