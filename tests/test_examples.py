"""The examples of the README run, one command each, against a real server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import start_process, stop_processes
from fake_llm import ScriptedLLM, tool_results, turn_of

from baton import Client, Execution, StepRun
from baton_server.app import Baton

ROOT = Path(__file__).resolve().parent.parent


async def run_example(server: Baton | int, name: str, cwd: Path | None = None) -> tuple[int, str]:
    port = server if isinstance(server, int) else server.port
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples" / "run.py"),
        name,
        "--server",
        f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=cwd,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def latest(client: Client, workflow: str) -> Execution:
    async for execution in client.executions.list(workflow=workflow):
        return await client.executions.get(execution.name)
    raise AssertionError(f"no execution of {workflow}")


@pytest.mark.timeout(90)
async def test_feature_implementation_example(server: Baton, client: Client) -> None:
    code, out = await run_example(server, "feature")
    assert code == 0, out
    assert "SUCCEEDED" in out
    done = await latest(client, "feature-implementation")
    specs = list(done.output["detailed_specs"])
    assert specs[0].startswith("api:") and len(specs) == 5  # OAuth adds two components
    assert len(done.output["relationships"]) == 4
    architecture = done.steps[0]
    assert architecture.agent == "agents/agent-detail"  # continued through the handoff
    assert architecture.handoffs[0].handoff == "handoffs/architect-to-detail"


@pytest.mark.timeout(90)
async def test_math_example_branches(server: Baton, client: Client) -> None:
    code, out = await run_example(server, "math")
    assert code == 0, out
    done = await latest(client, "math-processing")
    states = {s.step_id: s.state for s in done.steps}
    assert states["double_large"] == StepRun.STATE_SUCCEEDED  # 107.5 > 100
    assert states["square_small"] == StepRun.STATE_SKIPPED
    assert done.output["double_large"]["result"] == 215.0


@pytest.mark.timeout(90)
async def test_loop_examples_converge_and_revise_until_approved(
    server: Baton, client: Client
) -> None:
    code, out = await run_example(server, "converge")
    assert code == 0, out
    done = await latest(client, "math-convergence")
    assert abs(done.output["root"] - 2**0.5) < 1e-9
    assert 3 <= len(done.output["iterations"]) < 10
    code, out = await run_example(server, "review-loop")
    assert code == 0, out
    done = await latest(client, "review-until-approved")
    rounds = list(done.output["rounds"])
    assert [r["approved"] for r in rounds] == [False, False, False, True]
    assert done.output["text"] == "Durable agents: retries; signals; loops"


@pytest.mark.timeout(90)
async def test_code_review_example(server: Baton, client: Client) -> None:
    code, out = await run_example(server, "code-review")
    assert code == 0, out
    done = await latest(client, "code-review")
    report = done.output["report"]
    assert report["verdict"] == "request changes"
    suggestions = list(done.output["fixes"]["suggestions"])
    assert any("bare except" in s for s in suggestions)
    assert any("TODO" in s for s in suggestions)


@pytest.mark.timeout(90)
async def test_code_review_over_many_files_maps_them(server: Baton, client: Client) -> None:
    code, out = await run_example(server, "code-review-files")
    assert code == 0, out
    done = await latest(client, "code-review-files")
    summary = done.output["summary"]
    assert [f["path"] for f in summary["files_with_issues"]] == ["cart.py", "todo.py"]
    assert summary["total_issues"] >= 5


@pytest.mark.timeout(90)
@pytest.mark.sqlite_only
async def test_examples_run_from_any_working_directory(tmp_path: Path) -> None:
    # The server and the example script both start outside the repository.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    processes: list[subprocess.Popen[str]] = []
    try:
        process, port = await start_process(
            tmp_path / "baton.db",
            cwd=elsewhere,
            extra_env={
                "BATON_PYTHON_PATH": str(ROOT),
                "BATON_PYTHON_AGENT_MODULES": "baton_server.agents,examples",
            },
        )
        processes.append(process)
        code, out = await run_example(port, "math", cwd=elsewhere)
        assert code == 0, out
        assert "SUCCEEDED" in out
    finally:
        stop_processes(processes)


def _researcher(body: dict[str, Any]) -> dict[str, Any]:
    """The research example's model: searches and looks up a term at once, reads the note
    it found, then answers in the step's schema."""
    turn, results = turn_of(body), tool_results(body)
    if turn == 0:
        return {
            "tool_calls": [
                ("s", "search-notes", {"query": "tool calls"}),
                ("g", "glossary", {"term": "idempotency"}),
            ]
        }
    if turn == 1:
        return {"tool_calls": [("r", "read-note", {"id": results["s"]["notes"][0]})]}
    answer = f"{results['r']['text']} ({results['g']['definition']})"
    return {"content": json.dumps({"answer": answer, "sources": [results["r"]["id"]]})}


@pytest.mark.timeout(90)
async def test_research_example_runs_its_agent_loop(
    server: Baton, client: Client, scripted_llm: str
) -> None:
    ScriptedLLM.scripts["research-model"] = _researcher
    for _ in range(2):  # a second run replaces the definitions the first one made
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "examples" / "research.py"),
            "How do engines keep tool calls from running twice?",
            "--server",
            f"127.0.0.1:{server.port}",
            "--llm-url",
            scripted_llm,
            "--model",
            "research-model",
            "--api-key-env",
            "",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        text = out.decode()
        assert process.returncode == 0, text
        assert "turn 1: tools/search-notes" in text and "tools/glossary" in text
        assert "SUCCEEDED" in text
    done = await latest(client, "research")
    output = dict(done.steps[0].output)
    assert output["sources"] == ["baton"]
    assert "never run twice" in output["answer"] and "once" in output["answer"]
    assert ScriptedLLM.requests[0]["response_format"]["json_schema"]["schema"]["required"] == [
        "answer",
        "sources",
    ]
