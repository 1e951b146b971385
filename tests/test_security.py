"""Auth (bearer tokens and roles) and TLS / mutual TLS over real gRPC."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import grpc
import pytest
from conftest import StartServer, python_agent, tls
from fake_llm import FakeOpenAI, serve
from grpc_health.v1 import health_pb2, health_pb2_grpc

import baton
from baton import (
    Agent,
    Client,
    Execution,
    OpenAIRuntime,
    PythonRuntime,
    Step,
    WorkerRuntime,
    Workflow,
)
from baton.v1 import worker_pb2, worker_pb2_grpc

TOKENS = "r-token=reader,o-token=operator,w-token=worker,a-token=admin"


async def test_tokens_and_roles(start_server: StartServer) -> None:
    server = await start_server(auth_tokens=TOKENS)
    target = f"127.0.0.1:{server.port}"

    async with Client.connect(target) as anonymous:
        with pytest.raises(baton.UnauthenticatedError) as caught:
            await anonymous.agents.get("x")
        assert caught.value.reason == "UNAUTHENTICATED"
    async with Client.connect(target, token="wrong") as stranger:
        with pytest.raises(baton.UnauthenticatedError):
            [a async for a in stranger.agents.list()]

    async with Client.connect(target, token="o-token") as operator:
        created = await operator.agents.create(python_agent(), agent_id="guarded")
        await operator.agents.create(baton.Agent(worker=WorkerRuntime()), agent_id="remote")
    async with Client.connect(target, token="r-token") as reader:
        assert (await reader.agents.get("guarded")) == created
        with pytest.raises(baton.PermissionDeniedError) as denied:
            await reader.agents.delete("guarded")
        assert denied.value.metadata["role"] == "reader"
    async with Client.connect(target, token="w-token") as worker:
        with pytest.raises(baton.PermissionDeniedError):
            await worker.agents.get("guarded")  # workers only talk to WorkerService
        stub = worker_pb2_grpc.WorkerServiceStub(worker._channel)
        answer = await stub.FailTask(
            worker_pb2.FailTaskRequest(task_token="none"), metadata=worker._metadata
        )
        assert not answer.accepted
        stream = stub.PollTasks(
            worker_pb2.PollTasksRequest(agents=["agents/remote"]),
            metadata=[("authorization", "Bearer r-token")],
        )
        with pytest.raises(grpc.aio.AioRpcError) as raw:
            await stream.read()
        assert raw.value.code() is grpc.StatusCode.PERMISSION_DENIED  # streams are checked too
    async with Client.connect(target, token="a-token") as admin:
        await admin.agents.delete("guarded")

    # Health needs no token, so that Kubernetes probes work.
    async with grpc.aio.insecure_channel(target) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_tls_and_mutual_tls(start_server: StartServer, certificates: Path) -> None:
    server = await start_server(
        tls_cert=str(certificates / "server.pem"), tls_key=str(certificates / "server.key")
    )
    target = f"127.0.0.1:{server.port}"
    async with Client.connect(target, credentials=tls(certificates)) as client:
        created = await client.agents.create(python_agent(), agent_id="secure")
        assert created.name == "agents/secure"
    async with Client.connect(target, timeout=2) as plaintext:
        with pytest.raises(baton.UnavailableError):
            await plaintext.agents.get("secure")
    cli = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "baton.cli",
        "--server",
        target,
        "--tls-ca",
        str(certificates / "ca.pem"),
        "get",
        "agent",
        "secure",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await cli.communicate()
    assert cli.returncode == 0 and b"agents/secure" in out
    await server.stop(0)  # the next server on this database runs the executions

    mutual = await start_server(
        tls_cert=str(certificates / "server.pem"),
        tls_key=str(certificates / "server.key"),
        tls_client_ca=str(certificates / "ca.pem"),
    )
    target = f"127.0.0.1:{mutual.port}"
    async with Client.connect(target, credentials=tls(certificates, client=True)) as client:
        assert (await client.agents.get("secure")).name == "agents/secure"
    async with Client.connect(target, credentials=tls(certificates), timeout=2) as anonymous:
        with pytest.raises(baton.UnavailableError):
            await anonymous.agents.get("secure")

    # Under mutual TLS, whoever approves a step is named by its certificate's subject.
    async with Client.connect(target, credentials=tls(certificates, client=True)) as client:
        await client.agents.create(
            Agent(python=PythonRuntime(entry_point="baton_server.agents.builtin:echo")),
            agent_id="echo",
        )
        workflow = await client.workflows.create(
            Workflow(steps=[Step(id="ok", approval=baton.Approval())])
        )
        started = await client.executions.start(workflow.name, {})
        for _ in range(100):
            waiting = await client.executions.get(started.name)
            if waiting.steps[0].state == baton.StepRun.STATE_WAITING:
                break
            await asyncio.sleep(0.02)
        await client.executions.approve(started.name, "ok", reason="signed")
        done = await client.executions.wait(started.name, timeout=10)
        assert done.steps[0].output == {
            "approved": True,
            "decided_by": "client",  # the CN of the client certificate
            "role": "admin",  # auth is off: every caller is an admin
            "reason": "signed",
        }


# What an agent definition may reach: secrets and modules an administrator allowed -------


class Collector(FakeOpenAI):
    """Another endpoint, the one an operator would like the keys sent to."""

    seen: ClassVar[list[str | None]] = []

    def do_POST(self) -> None:
        Collector.seen.append(self.headers.get("Authorization"))
        super().do_POST()


@pytest.fixture
def collector() -> Iterator[str]:
    Collector.seen = []
    yield from serve(Collector)


def llm_agent(base_url: str, key_env: str) -> Agent:
    return Agent(openai=OpenAIRuntime(base_url=base_url, model="json", api_key_env=key_env))


async def test_an_operator_cannot_reach_the_servers_secrets(
    start_server: StartServer,
    fake_openai: str,
    collector: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLM_KEY", "sk-llm")
    monkeypatch.setenv("HOME_SECRET", "do-not-send")
    tokens = "o-token=operator,a-token=admin"
    server = await start_server(
        auth_tokens=tokens,
        agent_secret_env=f"LLM_KEY={fake_openai}",
        agent_urls=f"{fake_openai},{collector}",
    )
    target = f"127.0.0.1:{server.port}"
    async with Client.connect(target, token="o-token") as operator:
        # The reported attack: an agent whose "API key" is Baton's own token list.
        for key_env in ("BATON_AUTH_TOKENS", "HOME_SECRET", "PATH"):
            with pytest.raises(baton.InvalidArgumentError) as refused:
                await operator.agents.create(llm_agent(collector, key_env))
            assert (refused.value.field, refused.value.reason) == (
                "agent.openai.api_key_env",
                "SECRET_NOT_ALLOWED",
            )
        # An allowed key, but bound to another endpoint than the one asked for.
        with pytest.raises(baton.InvalidArgumentError) as elsewhere:
            await operator.agents.create(llm_agent(collector, "LLM_KEY"))
        assert elsewhere.value.reason == "SECRET_NOT_ALLOWED"
        with pytest.raises(baton.InvalidArgumentError):
            await operator.agents.create(llm_agent(fake_openai + ".evil.example", "LLM_KEY"))
        # Endpoints outside the allowed URLs cannot be called at all (the server's network).
        with pytest.raises(baton.InvalidArgumentError) as probe:
            await operator.agents.create(llm_agent("http://127.0.0.1:9464/metrics", ""))
        assert (probe.value.field, probe.value.reason) == (
            "agent.openai.base_url",
            "ENDPOINT_NOT_ALLOWED",
        )
        # Python agents may only name functions of allowed modules, and nothing private.
        for entry_point in ("os:system", "subprocess:run", "baton_server.config:Settings.load"):
            with pytest.raises(baton.InvalidArgumentError) as module:
                await operator.agents.create(Agent(python=PythonRuntime(entry_point=entry_point)))
            assert module.value.reason == "ENTRY_POINT_NOT_ALLOWED"
        with pytest.raises(baton.InvalidArgumentError):
            await operator.agents.create(
                Agent(python=PythonRuntime(entry_point="baton_server.agents.builtin:__dict__"))
            )
        # What is allowed works: the key goes to its endpoint only.
        await operator.agents.create(llm_agent(fake_openai, "LLM_KEY"), agent_id="llm")
        await operator.agents.create(
            Agent(python=PythonRuntime(entry_point="test_agents_lib:relay")), agent_id="local"
        )
        flow = await operator.workflows.create(
            Workflow(steps=[Step(id="ask", agent="agents/llm")]), workflow_id="ask"
        )
        done = await operator.executions.wait(
            (await operator.executions.start(flow.name, {"request": "x"})).name, timeout=20
        )
        assert done.state == Execution.STATE_SUCCEEDED
        assert FakeOpenAI.requests[-1]["auth"] == "Bearer sk-llm"
        assert Collector.seen == []
        # The http_request built-in goes through the same client: the server's network
        # (here a cloud metadata address) is out of reach, whatever the input says.
        fetch = PythonRuntime(entry_point="baton_server.agents.builtin:http_request")
        await operator.agents.create(Agent(python=fetch), agent_id="fetch")
        flow = await operator.workflows.create(
            Workflow(steps=[Step(id="get", agent="agents/fetch")]), workflow_id="fetch"
        )
        metadata = {"url": "http://169.254.169.254/latest/meta-data/iam/"}
        done = await operator.executions.wait(
            (await operator.executions.start(flow.name, metadata)).name, timeout=20
        )
        assert done.state == Execution.STATE_FAILED
        assert (done.steps[0].error.type, done.steps[0].attempt) == ("ENDPOINT_NOT_ALLOWED", 1)
    await server.stop(0)

    # The administrator narrows the policy: agents already stored cannot use what it took away.
    narrowed = await start_server(
        auth_tokens=tokens,
        agent_secret_env="",
        python_agent_modules="baton_server.agents",
    )  # on the same database
    calls_before = len(FakeOpenAI.requests)
    async with Client.connect(f"127.0.0.1:{narrowed.port}", token="o-token") as operator:
        for agent, reason in (
            ("agents/llm", "SECRET_NOT_ALLOWED"),
            ("agents/local", "ENTRY_POINT_NOT_ALLOWED"),
        ):
            flow = await operator.workflows.create(Workflow(steps=[Step(id="s", agent=agent)]))
            done = await operator.executions.wait(
                (await operator.executions.start(flow.name, {"request": "x"})).name, timeout=20
            )
            assert done.state == Execution.STATE_FAILED
            assert done.steps[0].error.type == reason
            assert done.steps[0].attempt == 1  # not retried: it cannot succeed
    assert len(FakeOpenAI.requests) == calls_before
