"""The `baton` command line against a real server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from conftest import worker_agent

import baton
from baton import Client
from baton_server.app import Baton

DEFINITIONS = """
kind: Agent
id: architect
display_name: Architect
python: {entry_point: "baton_server.agents.builtin:template"}
config:
  template: {plan: "Plan for ${input.feature_request}"}
---
kind: Agent
id: napper
python: {entry_point: "baton_server.agents.builtin:sleep"}
---
kind: Agent
id: detail
python: {entry_point: "baton_server.agents.builtin:echo"}
---
kind: Workflow
id: feature
display_name: Feature Implementation Workflow
tags: [feature]
steps:
  - id: architecture
    agent: architect
    input_mapping: {feature_request: "${input.feature_request}"}
  - id: detail
    agent: agents/detail
    depends_on: [architecture]
    input_mapping: {specs: "${steps.architecture.output.plan}"}
output_mapping: {specs: "${steps.detail.output.specs}"}
---
kind: Workflow
id: nap
steps:
  - {id: nap, agent: napper, input_mapping: {seconds: 30}}
---
kind: Handoff
id: plan-to-detail
source_agent: architect
target_agent: detail
type: TYPE_SEQUENTIAL
trigger_conditions: [completion]
"""


async def baton_cli(server: Baton, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "baton.cli",
        "--server",
        f"127.0.0.1:{server.port}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_apply_run_watch_get_list_events(
    server: Baton, client: Client, tmp_path: Path
) -> None:
    definitions = tmp_path / "feature.yaml"
    definitions.write_text(DEFINITIONS)
    code, out, err = await baton_cli(server, "apply", "-f", str(definitions))
    assert code == 0, err
    assert out.count("created") == 6
    code, out, _ = await baton_cli(server, "apply", "-f", str(definitions))
    assert out.count("unchanged") == 6, out
    definitions.write_text(DEFINITIONS.replace("display_name: Feature", "display_name: New"))
    code, out, _ = await baton_cli(server, "-o", "json", "apply", "-f", str(definitions))
    actions = {row["name"]: row["action"] for row in json.loads(out)}
    assert actions["workflows/feature"] == "updated"
    assert actions["agents/architect"] == "unchanged"
    assert (await client.workflows.get("feature")).revision == 2

    code, out, err = await baton_cli(
        server, "run", "feature", "--input", '{"feature_request": "OAuth"}', "--watch"
    )
    assert code == 0, err
    assert "[##########..........] 1/2 architecture: succeeded" in out
    assert "[####################] 2/2 detail: succeeded" in out
    assert "SUCCEEDED" in out and '"specs": "Plan for OAuth"' in out

    code, out, _ = await baton_cli(
        server, "-o", "json", "run", "feature", "--input", '{"feature_request": "SSO"}'
    )
    name = json.loads(out)["name"]
    await client.executions.wait(name, timeout=10)
    code, out, _ = await baton_cli(server, "-o", "json", "get", "execution", name)
    assert json.loads(out)["state"] == "STATE_SUCCEEDED"
    code, out, _ = await baton_cli(
        server, "-o", "json", "list", "execution", "--workflow", "feature"
    )
    assert json.loads(out)[0]["name"] == name
    code, out, _ = await baton_cli(server, "list", "workflow")
    assert "workflows/feature" in out and "workflows/nap" in out
    code, out, _ = await baton_cli(server, "events", name)
    lines = out.strip().splitlines()
    assert "EXECUTION_QUEUED" in lines[0] and "EXECUTION_SUCCEEDED" in lines[-1]
    code, out, _ = await baton_cli(server, "get", "agent", "architect")
    assert "Architect" in out


async def test_cancel_and_errors(server: Baton, client: Client, tmp_path: Path) -> None:
    definitions = tmp_path / "defs.json"
    documents = [
        {
            "kind": "Agent",
            "id": "napper",
            "python": {"entry_point": "baton_server.agents.builtin:sleep"},
        },
        {
            "kind": "Workflow",
            "id": "nap",
            "steps": [{"id": "nap", "agent": "napper", "input_mapping": {"seconds": 30}}],
        },
    ]
    definitions.write_text(json.dumps(documents))
    code, _, err = await baton_cli(server, "apply", "-f", str(definitions))
    assert code == 0, err
    execution = await client.executions.start("nap")
    watcher = asyncio.create_task(baton_cli(server, "watch", execution.name))
    await asyncio.sleep(0.3)
    code, out, err = await baton_cli(server, "cancel", execution.name, "--reason", "enough")
    assert code == 0, err
    assert "CANCELLED" in out
    code, out, _ = await watcher
    assert code == 1  # the watched execution did not succeed
    assert "CANCELLED" in out and "enough" in out

    # The ended execution is found by label, then deleted with its log.
    labelled = await client.executions.start("nap", labels={"batch": "b7"})
    await client.executions.cancel(labelled.name)
    code, out, err = await baton_cli(server, "list", "execution", "--label", "batch=b7")
    assert code == 0, err
    assert labelled.name in out and execution.name not in out
    code, out, err = await baton_cli(server, "delete", "execution", labelled.name)
    assert code == 0 and f"deleted {labelled.name}" in out, err
    code, _, err = await baton_cli(server, "get", "execution", labelled.name)
    assert code == 2 and "EXECUTION_NOT_FOUND" in err
    code, _, err = await baton_cli(server, "list", "execution", "--label", "no-equals")
    assert code == 2 and "key=value" in err

    code, _, err = await baton_cli(server, "get", "agent", "nobody")
    assert code == 2 and "AGENT_NOT_FOUND" in err
    code, _, err = await baton_cli(server, "run", "nap", "--input", "not json")
    assert code == 2 and "--input is not valid JSON" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Gadget\nid: x\n")
    code, _, err = await baton_cli(server, "apply", "-f", str(bad))
    assert code == 2 and "'kind' must be" in err
    bad.write_text("kind: Workflow\nid: broken\nsteps: [{id: a, agent: napper, depends_on: [a]}]\n")
    code, _, err = await baton_cli(server, "apply", "-f", str(bad))
    assert code == 2 and "WORKFLOW_CYCLE" in err


def test_baton_server_in_a_client_only_install_names_the_extra() -> None:
    # The server's dependencies are absent (blocked), as after `pip install baton-workflows`.
    blocked = "import sys; sys.modules['httpx'] = None; sys.modules['aiosqlite'] = None\n"
    run = subprocess.run(
        [sys.executable, "-c", blocked + "from baton._server_command import main; main()"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "pip install 'baton-workflows[server]'" in run.stderr
    assert "Traceback" not in run.stderr


async def test_options_after_the_command_input_files_validate_and_partial_apply(
    server: Baton, client: Client, tmp_path: Path
) -> None:
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(
        "kind: Agent\nid: echoer\npython: {entry_point: 'baton_server.agents.builtin:echo'}\n"
        "---\nkind: Workflow\nid: loop\nsteps: [{id: a, agent: echoer, depends_on: [a]}]\n"
        "---\nkind: Workflow\nid: echo\nsteps: [{id: a, agent: echoer}]\n"
    )
    code, out, err = await baton_cli(server, "apply", "-f", str(mixed), "-o", "json")
    assert code == 2  # one document failed ...
    rows = json.loads(out)  # ... and -o after the command was taken
    assert [(r["name"], r["action"].split(" ")[0]) for r in rows] == [
        ("agents/echoer", "created"),
        ("loop", "failed"),
        ("workflows/echo", "created"),  # the one after the failure still went through
    ]
    assert "document 2" in err and "WORKFLOW_CYCLE" in err

    code, out, err = await baton_cli(server, "validate", "-f", str(mixed))
    assert code == 2, err
    assert "workflows/loop" in out and "invalid" in out and "workflows/echo" in out
    assert [w.name async for w in client.workflows.list()] == ["workflows/echo"]  # unchanged

    big = {"blob": "x" * 300_000}  # too long for a comfortable command line
    (tmp_path / "input.json").write_text(json.dumps(big))
    code, out, err = await baton_cli(
        server, "run", "echo", "--input-file", str(tmp_path / "input.json"), "--watch"
    )
    assert code == 0, err
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "baton.cli",
        "run",
        "echo",
        "--input-file",
        "-",
        "--server",
        f"127.0.0.1:{server.port}",
        "-o",
        "json",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out_bytes, err_bytes = await asyncio.wait_for(process.communicate(b'{"from": "stdin"}'), 60)
    assert process.returncode == 0, err_bytes.decode()
    started = json.loads(out_bytes)
    done = await client.executions.wait(started["name"], timeout=20)
    assert dict(done.input) == {"from": "stdin"}


async def test_watch_shows_workers_awaited_durations_and_cancellation(
    server: Baton, client: Client
) -> None:
    await worker_agent(client, "remote")
    await client.workflows.create(
        baton.Workflow(steps=[baton.Step(id="far", agent="remote")]), workflow_id="far"
    )
    execution = await client.executions.start("far")
    watcher = asyncio.create_task(baton_cli(server, "watch", execution.name))
    await asyncio.sleep(1.0)
    await client.executions.cancel(execution.name, reason="no worker today")
    code, out, err = await watcher
    assert code == 1, err
    assert "far: started (attempt 1, agents/remote): waiting for a worker to take it" in out
    assert "execution cancelled: no worker today" in out
    assert "CANCELLED" in out

    code, out, err = await baton_cli(server, "list", "execution")
    assert code == 0, err
    assert "T" not in out.splitlines()[1].split()[-1]  # a time for people, not RFC 3339


async def test_list_waiting_and_approve(server: Baton, client: Client, tmp_path: Path) -> None:
    definitions = tmp_path / "review.yaml"
    definitions.write_text(
        "kind: Agent\nid: detail\npython: {entry_point: 'baton_server.agents.builtin:echo'}\n"
        "---\nkind: Workflow\nid: reviewed\nsteps:\n"
        "  - {id: draft, agent: detail}\n"
        "  - {id: review, approval: {roles: [editor], prompt: 'Ship it?'}, depends_on: [draft]}\n"
        "  - {id: ask, wait_for: {signal: go}}\n"
    )
    code, _, err = await baton_cli(server, "apply", "-f", str(definitions))
    assert code == 0, err
    execution = await client.executions.start("reviewed", {"x": 1})
    for _ in range(100):
        listed = [e.name async for e in client.executions.list(waiting=True)]
        now = await client.executions.get(execution.name)
        if execution.name in listed and all(s.state == s.STATE_WAITING for s in now.steps[1:]):
            break
        await asyncio.sleep(0.05)
    code, out, err = await baton_cli(server, "list", "execution", "--waiting")
    assert code == 0, err
    assert "review: approval by operator, admin, editor" in out and "ask: signal go" in out
    code, out, err = await baton_cli(
        server, "approve", execution.name, "review", "--reason", "fine by me"
    )
    assert code == 0, err
    code, out, err = await baton_cli(server, "events", execution.name)
    assert code == 0, err
    assert "APPROVAL_DECIDED review: approved by anonymous (admin): fine by me" in out
    code, _, err = await baton_cli(server, "approve", execution.name, "review")
    assert code == 2 and "STEP_NOT_WAITING" in err


async def test_schedules_from_the_command_line(server: Baton, tmp_path: Path) -> None:
    definitions = tmp_path / "nightly.yaml"
    definitions.write_text(
        "kind: Agent\nid: detail\npython: {entry_point: 'baton_server.agents.builtin:echo'}\n"
        "---\nkind: Workflow\nid: report\nsteps: [{id: a, agent: detail}]\n"
        "---\nkind: Schedule\nid: nightly\nworkflow: report\ncron: '0 3 * * *'\n"
        "time_zone: Europe/Paris\ninput: {day: yesterday}\n"
    )
    code, out, err = await baton_cli(server, "apply", "-f", str(definitions))
    assert code == 0, err
    assert "schedules/nightly" in out and "created" in out
    code, out, err = await baton_cli(server, "apply", "-f", str(definitions))
    assert code == 0, err
    assert out.count("unchanged") == 3, out
    code, out, err = await baton_cli(server, "list", "schedule")
    assert code == 0 and "schedules/nightly" in out and "0 3 * * *" in out, err
    code, out, err = await baton_cli(server, "pause", "schedules/nightly", "--reason", "audit")
    assert code == 0 and "STATE_PAUSED" in out and "audit" in out, err
    code, out, err = await baton_cli(server, "resume", "schedules/nightly")
    assert code == 0 and "STATE_ACTIVE" in out, err
    code, out, err = await baton_cli(server, "get", "schedule", "nightly", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["input"] == {"day": "yesterday"}
    code, out, err = await baton_cli(server, "delete", "schedule", "nightly")
    assert code == 0 and "deleted schedules/nightly" in out, err


async def test_watch_shows_sleeps_and_loop_iterations(server: Baton, tmp_path: Path) -> None:
    definitions = tmp_path / "paced.yaml"
    definitions.write_text(
        "kind: Agent\nid: detail\npython: {entry_point: 'baton_server.agents.builtin:echo'}\n"
        "---\nkind: Workflow\nid: paced\nsteps:\n"
        "  - {id: nap, sleep: 0.5s}\n"
        "  - id: again\n    agent: detail\n    depends_on: [nap]\n"
        "    loop: {until: 'iteration >= 1', max_iterations: 3}\n"
    )
    code, _, err = await baton_cli(server, "apply", "-f", str(definitions))
    assert code == 0, err
    code, out, err = await baton_cli(server, "run", "paced", "--watch")
    assert code == 0, err + out
    assert "nap: sleeping until" in out
    assert "again: loop iteration 1 (again again)" in out
    assert "(iteration 1)" in out
