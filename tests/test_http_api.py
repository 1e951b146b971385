"""The HTTP/JSON API, with a plain HTTP client: the gRPC API through its google.api.http
annotations, the same errors as JSON, auth, pagination, and events as Server-Sent Events
that resume with Last-Event-ID."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import StartServer

from baton_server.app import Baton

README = Path(__file__).resolve().parent.parent / "README.md"
ECHO = {"python": {"entry_point": "baton_server.agents.builtin:echo"}}
SLOW = {"python": {"entry_point": "test_agents_lib:slow"}}


@pytest.fixture
async def api(start_server: StartServer) -> AsyncIterator[httpx.AsyncClient]:
    server = await start_server(http_listen="127.0.0.1:0")
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.http_port}", timeout=30
    ) as http:
        yield http


async def sse(http: httpx.AsyncClient, path: str, **headers: str) -> list[dict[str, Any]]:
    """The events of an SSE stream, read to its end: [{"id", "event", "data"}]."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async with http.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if not line:
                if current:
                    events.append(current)
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                current[key] = json.loads(value) if key == "data" else value
    return events


async def test_create_start_wait_and_follow_over_http(api: httpx.AsyncClient) -> None:
    created = await api.post("/v1/agents", params={"agent_id": "echo"}, json=ECHO)
    assert created.status_code == 200, created.text
    assert created.json()["name"] == "agents/echo"
    workflow = {
        "steps": [
            {"id": "first", "agent": "agents/echo"},
            {"id": "second", "agent": "agents/echo", "depends_on": ["first"]},
        ]
    }
    made = await api.post("/v1/workflows", params={"workflow_id": "pair"}, json=workflow)
    assert made.status_code == 200, made.text
    started = await api.post(
        "/v1/executions",
        json={"workflow": "workflows/pair", "input": {"x": 1}, "labels": {"team": "ml"}},
    )
    assert started.status_code == 200, started.text
    name = started.json()["name"]
    done = (await api.get(f"/v1/{name}:wait", params={"timeout": "30s"})).json()
    assert done["state"] == "STATE_SUCCEEDED"
    assert [s["step_id"] for s in done["steps"]] == ["first", "second"]
    assert done["steps"][1]["output"] == {"x": 1}

    got = (await api.get(f"/v1/{name}")).json()
    assert got["name"] == name and got["labels"] == {"team": "ml"}
    listed = (await api.get("/v1/executions", params={"labels.team": "ml"})).json()
    assert [e["name"] for e in listed["executions"]] == [name]
    events = await sse(api, f"/v1/{name}/events:stream")
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
    assert events[0]["event"] == "EXECUTION_QUEUED"
    assert events[-1]["event"] == "EXECUTION_SUCCEEDED"
    assert events[-1]["data"]["execution_succeeded"]["output"] == {"second": {"x": 1}}
    # A reconnect with Last-Event-ID resumes after that event.
    again = await sse(api, f"/v1/{name}/events:stream", **{"Last-Event-ID": "3"})
    assert [e["id"] for e in again] == [e["id"] for e in events[3:]]
    only = (
        await api.get(f"/v1/{name}/events", params={"event_types": "EVENT_TYPE_STEP_SUCCEEDED"})
    ).json()
    assert [e["step_id"] for e in only["events"]] == ["first", "second"]
    health = (await api.get("/v1/health")).json()
    assert health["status"] == "HEALTH_STATUS_HEALTHY"


async def test_a_dropped_stream_resumes_with_nothing_lost(api: httpx.AsyncClient) -> None:
    await api.post("/v1/agents", params={"agent_id": "slow"}, json=SLOW)
    steps = [
        {"id": f"s{i}", "agent": "agents/slow", "input_mapping": {"seconds": 0.2}} for i in range(4)
    ]
    for i in range(1, 4):
        steps[i]["depends_on"] = [f"s{i - 1}"]
    await api.post("/v1/workflows", params={"workflow_id": "slow4"}, json={"steps": steps})
    name = (await api.post("/v1/executions", json={"workflow": "workflows/slow4"})).json()["name"]
    seen: list[int] = []
    async with api.stream("GET", f"/v1/{name}/events:stream") as response:
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                seen.append(int(line[4:]))
            if len(seen) == 5:
                break  # the connection drops mid-execution
    rest = await sse(api, f"/v1/{name}/events:stream", **{"Last-Event-ID": str(seen[-1])})
    seen += [int(e["id"]) for e in rest]
    assert seen == list(range(1, len(seen) + 1))
    assert rest[-1]["event"] == "EXECUTION_SUCCEEDED"


async def test_pages_and_updates_over_http(api: httpx.AsyncClient) -> None:
    for i in range(5):
        await api.post("/v1/agents", params={"agent_id": f"a{i}"}, json=ECHO)
    names, token = [], ""
    while True:
        page = (await api.get("/v1/agents", params={"page_size": 2, "page_token": token})).json()
        names += [a["name"] for a in page["agents"]]
        token = page.get("next_page_token", "")
        if not token:
            break
    assert names == [f"agents/a{i}" for i in range(5)]
    updated = await api.patch(
        "/v1/agents/a0",
        params={"update_mask": "description"},
        json={"description": "the first"},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["description"] == "the first"
    deleted = await api.delete("/v1/agents/a4")
    assert deleted.status_code == 200 and deleted.json() == {}
    assert (await api.get("/v1/agents/a4")).status_code == 404


async def test_bad_requests_get_clear_json_errors(api: httpx.AsyncClient) -> None:
    missing = await api.get("/v1/agents/ghost")
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert error["status"] == "NOT_FOUND"
    info = next(d for d in error["details"] if d["@type"].endswith("ErrorInfo"))
    assert info["reason"] == "AGENT_NOT_FOUND"

    invalid = await api.post("/v1/workflows", json={"steps": []})
    assert invalid.status_code == 400
    details = invalid.json()["error"]["details"]
    bad = next(d for d in details if d["@type"].endswith("BadRequest"))
    assert bad["field_violations"][0]["field"] == "workflow.steps"

    for response, words in (
        (await api.post("/v1/agents", content=b"{not json"), "not JSON"),
        (await api.post("/v1/agents", json=[1, 2]), "JSON object"),
        (await api.post("/v1/agents", json={"no_such_field": 1}), "no_such_field"),
        (await api.get("/v1/agents", params={"colour": "red"}), "colour"),
        (await api.get("/v1/agents", params={"page_size": "many"}), "page_size"),
    ):
        assert response.status_code == 400, response.text
        assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
        assert words in response.json()["error"]["message"], response.text
    nowhere = await api.get("/v2/agents")
    assert nowhere.status_code == 404 and nowhere.json()["error"]["status"] == "NOT_FOUND"
    wrong = await api.put("/v1/agents")
    assert wrong.status_code == 405 and "GET" in wrong.headers["allow"]
    ghost_stream = await api.get("/v1/executions/ghost/events:stream")
    assert ghost_stream.status_code == 404


async def test_http_calls_take_the_same_auth_and_roles(start_server: StartServer) -> None:
    server: Baton = await start_server(
        http_listen="127.0.0.1:0", auth_tokens="op-token=operator,read-token=reader"
    )
    base = f"http://127.0.0.1:{server.http_port}"
    async with httpx.AsyncClient(base_url=base) as http:
        anonymous = await http.get("/v1/agents")
        assert anonymous.status_code == 401
        reader = {"Authorization": "Bearer read-token"}
        assert (await http.get("/v1/agents", headers=reader)).status_code == 200
        refused = await http.post("/v1/agents", headers=reader, json=ECHO)
        assert refused.status_code == 403
        operator = {"Authorization": "Bearer op-token"}
        assert (await http.post("/v1/agents", headers=operator, json=ECHO)).status_code == 200


async def test_the_readme_curl_commands_run(start_server: StartServer) -> None:
    """The README's curl lines, as written (ID replaced by the started execution's id)."""
    server = await start_server(http_listen="127.0.0.1:0")
    readme = README.read_text()
    block = readme.split("### HTTP/JSON API", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = block.replace("\\\n", " ").replace("localhost:8080", f"127.0.0.1:{server.http_port}")
    outputs = []
    execution_id = ""
    for line in commands.splitlines():
        command = line.split("  #", 1)[0].replace("ID", execution_id)
        process = await asyncio.create_subprocess_shell(
            command + " --silent --show-error --max-time 30",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        assert process.returncode == 0, (command, err.decode())
        outputs.append(out.decode())
        if '"workflows/hello"' in command:
            execution_id = json.loads(out)["name"].removeprefix("executions/")
    assert json.loads(outputs[3])["state"] == "STATE_SUCCEEDED"
    assert json.loads(outputs[3])["steps"][0]["output"] == {"name": "Ada"}
    assert "event: EXECUTION_SUCCEEDED" in outputs[4]
