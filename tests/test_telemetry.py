"""Prometheus metrics over HTTP, after real RPCs and executions."""

from __future__ import annotations

import httpx
import pytest
from conftest import StartServer, free_port, python_agent

import baton
from baton import Client, Step, Workflow


async def test_metrics_endpoint(start_server: StartServer) -> None:
    server = await start_server(
        metrics_listen=f"127.0.0.1:{free_port()}", auth_tokens="op=operator"
    )
    assert server.metrics_port
    async with Client.connect(f"127.0.0.1:{server.port}", token="op") as client:
        await client.agents.create(python_agent(), agent_id="echo")
        await client.agents.create(
            baton.Agent(python=baton.PythonRuntime(entry_point="baton_server.agents.builtin:echo")),
            agent_id="real-echo",
        )
        workflow = await client.workflows.create(Workflow(steps=[Step(id="s", agent="real-echo")]))
        execution = await client.executions.start(workflow.name, {"a": 1})
        [e async for e in client.executions.stream(execution.name)]
        with pytest.raises(baton.NotFoundError):
            await client.agents.get("missing")
    async with Client.connect(f"127.0.0.1:{server.port}") as anonymous:
        with pytest.raises(baton.UnauthenticatedError):
            await anonymous.agents.get("echo")

    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{server.metrics_port}/metrics")).text
    assert (
        'baton_rpc_requests_total{code="OK",method="/baton.v1.AgentService/CreateAgent"} 2.0'
        in text
    )
    assert 'code="NOT_FOUND",method="/baton.v1.AgentService/GetAgent"} 1.0' in text
    assert 'code="UNAUTHENTICATED",method="/baton.v1.AgentService/GetAgent"} 1.0' in text
    assert 'method="/baton.v1.ExecutionService/StreamExecutionEvents"' in text
    assert 'baton_events_total{type="EXECUTION_SUCCEEDED"} 1.0' in text
    assert "baton_executions_running 0.0" in text
    assert "baton_replicas_live 1.0" in text
    assert "baton_rpc_duration_seconds_bucket" in text


async def test_llm_tokens_are_counted_by_agent(start_server: StartServer, fake_openai: str) -> None:
    server = await start_server(
        metrics_listen=f"127.0.0.1:{free_port()}", agent_secret_env="FAKE_LLM_KEY"
    )
    async with Client.connect(f"127.0.0.1:{server.port}") as client:
        await client.agents.create(
            baton.Agent(openai=baton.OpenAIRuntime(base_url=fake_openai, model="text")),
            agent_id="writer",
        )
        workflow = await client.workflows.create(Workflow(steps=[Step(id="s", agent="writer")]))
        for _ in range(2):
            execution = await client.executions.start(workflow.name, {"request": "x"})
            done = await client.executions.wait(execution.name, timeout=30)
            assert done.state == baton.Execution.STATE_SUCCEEDED, done.error
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{server.metrics_port}/metrics")).text
    # The fake counts 5 prompt and 2 completion tokens a call.
    assert 'baton_llm_tokens_total{agent="writer",kind="prompt"} 10.0' in text
    assert 'baton_llm_tokens_total{agent="writer",kind="completion"} 4.0' in text
    assert 'baton_events_total{type="AGENT_TURN"} 2.0' in text
