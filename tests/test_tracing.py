"""OpenTelemetry tracing over the real server, client and worker: one trace from the caller
through the RPC, the execution, its steps and attempts, to a worker and its handler; and
export over OTLP to a local collector when the OTEL_* variables say so."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
from conftest import AGENT_MODULES, start_process, stop_processes, worker_agent
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import baton
from baton import Client, Execution, Step, StepContext, Workflow
from baton_server.app import create_server
from baton_server.config import Settings
from baton_server.tracing import provider_from_environment


def in_memory() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def named(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def parent_of(span: ReadableSpan) -> int:
    assert span.parent is not None, span.name
    return span.parent.span_id


async def test_one_trace_from_the_caller_through_the_server_to_the_worker(
    tmp_path: Path,
) -> None:
    provider, exporter = in_memory()
    settings = replace(
        Settings(),
        listen="127.0.0.1:0",
        database=str(tmp_path / "baton.db"),
        sqlite_synchronous="NORMAL",
        python_agent_modules=AGENT_MODULES,
    )
    server = await create_server(settings, tracer_provider=provider)
    tracer = trace.get_tracer("the-caller", tracer_provider=provider)

    async def remote(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
        with tracer.start_as_current_span("handler work"):
            return {"seen": value["n"] + 1}  # a plain int comes in, not 41.0

    try:
        async with Client.connect(f"127.0.0.1:{server.port}") as client:
            await client.agents.create(
                baton.Agent(python=baton.PythonRuntime(entry_point="test_agents_lib:relay")),
                agent_id="local",
            )
            await worker_agent(client, "far")
            await client.workflows.create(
                Workflow(
                    steps=[
                        Step(id="near", agent="local"),
                        Step(
                            id="away",
                            agent="far",
                            depends_on=["near"],
                            input_mapping={"n": "${input.n}"},
                        ),
                    ]
                ),
                workflow_id="traced",
            )
            worker = baton.Worker(client, {"agents/far": remote}, tracer_provider=provider)
            serving = asyncio.create_task(worker.run())
            with tracer.start_as_current_span("caller") as caller:
                started = await client.executions.start("traced", {"n": 41}, trace=True)
            done = await client.executions.wait(started.name, timeout=20)
            assert done.state == Execution.STATE_SUCCEEDED, done.error
            await worker.stop()
            serving.cancel()
        for _ in range(50):  # the execution's span ends as its run finishes
            if any(s.name == "execution" for s in exporter.get_finished_spans()):
                break
            await asyncio.sleep(0.05)
    finally:
        await server.stop(0)

    spans = exporter.get_finished_spans()
    trace_id = caller.get_span_context().trace_id
    rpc = named(spans, "baton.v1.ExecutionService/StartExecution")
    execution = named(spans, "execution")
    step = named(spans, "step away")
    attempt = named(spans, "attempt away/1")
    on_worker = named(spans, "agent agents/far")
    work = named(spans, "handler work")
    chain = [rpc, execution, step, attempt, on_worker, work]
    assert {s.context.trace_id for s in chain} == {trace_id}  # one trace, end to end
    assert parent_of(rpc) == caller.get_span_context().span_id
    assert parent_of(execution) == rpc.context.span_id
    assert parent_of(step) == execution.context.span_id
    assert parent_of(attempt) == step.context.span_id
    assert parent_of(on_worker) == attempt.context.span_id
    assert parent_of(work) == on_worker.context.span_id
    assert execution.attributes["baton.state"] == "SUCCEEDED"
    # trace: true records what each attempt got and gave.
    events = {e.name: e.attributes["baton.payload"] for e in attempt.events}
    assert events == {"input": '{"n":41}', "output": '{"seen":42}'}


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP endpoint on this machine, as a collector would be: keeps what it receives."""

    def __init__(self) -> None:
        self.names: list[str] = []

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.names += [span.name for span in scope_spans.spans]
        return trace_service_pb2.ExportTraceServiceResponse()


async def test_spans_go_over_otlp_when_the_environment_names_an_endpoint(
    tmp_path: Path,
) -> None:
    assert provider_from_environment({}) is None  # off by default
    assert (
        provider_from_environment(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317", "OTEL_SDK_DISABLED": "true"}
        )
        is None
    )
    collector = Collector()
    otlp = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, otlp)
    otlp_port = otlp.add_insecure_port("127.0.0.1:0")
    await otlp.start()
    processes: list[subprocess.Popen[str]] = []
    try:
        process, port = await start_process(
            tmp_path / "baton.db",
            extra_env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
                "OTEL_SERVICE_NAME": "baton-under-test",
            },
        )
        processes.append(process)
        async with Client.connect(f"127.0.0.1:{port}") as client:
            await client.agents.create(
                baton.Agent(python=baton.PythonRuntime(entry_point="test_agents_lib:relay")),
                agent_id="local",
            )
            await client.workflows.create(
                Workflow(steps=[Step(id="only", agent="local")]), workflow_id="w"
            )
            started = await client.executions.start("w", {})
            await client.executions.wait(started.name, timeout=20)
        process.send_signal(signal.SIGTERM)  # shutting down exports what is buffered
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        stop_processes(processes)
        await otlp.stop(0)
    assert "execution" in collector.names
    assert "attempt only/1" in collector.names
    assert "baton.v1.ExecutionService/StartExecution" in collector.names
