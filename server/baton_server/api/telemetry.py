"""Prometheus metrics: RPC counts and latency by method and status (an interceptor), event
counts by type, LLM tokens by agent, and gauges read at scrape time; served over HTTP on
their own port."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from baton_server.api.handler_streams import items_of
from baton_server.domain.events import AgentTurn, payload_of
from baton_server.domain.executions import Event, EventType, Usage
from baton_server.tracing import Tracing

Gauges = Callable[[], dict[str, tuple[str, float]]]
"""Returns {metric name: (help, value)} for gauges read at scrape time."""


class Telemetry:
    """One server's metrics, in a registry of its own."""

    def __init__(self, gauges: Gauges) -> None:
        self.registry = CollectorRegistry()
        self.rpcs = Counter(
            "baton_rpc_requests",
            "RPCs handled, by method and status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.rpc_seconds = Histogram(
            "baton_rpc_duration_seconds",
            "Time to handle an RPC (streams: until they end)",
            ["method"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30),
        )
        self.events = _EventCounts()
        self.registry.register(self.events)
        self.tokens = Counter(
            "baton_llm_tokens",
            "Tokens LLM agents' model calls counted, by agent and kind (prompt, completion)",
            ["agent", "kind"],
            registry=self.registry,
        )
        self.registry.register(_GaugeCollector(gauges))
        self._http: Any = None
        # Labelled children, looked up once: `labels()` costs a lock and a tuple per call.
        self._children: dict[tuple[str, ...], Any] = {}

    def child(self, metric: Counter | Histogram, *labels: str) -> Any:
        """The metric's child for `labels`, cached."""
        key = (str(id(metric)), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def count_events(self, events: list[Event]) -> None:
        """Counts committed events (an engine listener)."""
        counts = self.events.by_type
        turns = False
        for event in events:
            counts[event.type] += 1
            turns = turns or event.type is EventType.AGENT_TURN
        if not turns:
            return
        for event in events:
            if event.type is EventType.AGENT_TURN:
                turn = payload_of(event)
                assert isinstance(turn, AgentTurn)
                usage = Usage.from_doc(turn.usage)
                self.child(self.tokens, turn.agent, "prompt").inc(usage.prompt_tokens)
                self.child(self.tokens, turn.agent, "completion").inc(usage.completion_tokens)

    def serve(self, listen: str) -> int:
        """Serves /metrics on `host:port` in a background thread; returns the port."""
        host, _, port = listen.rpartition(":")
        server, _thread = start_http_server(
            int(port), addr=host or "0.0.0.0", registry=self.registry
        )
        self._http = server
        return int(server.server_address[1])

    def close(self) -> None:
        """Stops the HTTP server."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


class _EventCounts(Collector):
    """`baton_events_total` by type: plain counts the engine adds to on every commit (a
    labelled prometheus Counter takes a lock per increment), read at scrape time."""

    def __init__(self) -> None:
        self.by_type: dict[EventType, int] = dict.fromkeys(EventType, 0)

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "baton_events", "Execution events committed, by type", labels=["type"]
        )
        for kind, count in self.by_type.items():
            if count:
                family.add_metric([kind.value], count)
        yield family


class _GaugeCollector(Collector):
    def __init__(self, gauges: Gauges) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, (description, value) in self._gauges().items():
            yield GaugeMetricFamily(name, description, value=value)


class TelemetryInterceptor(grpc.aio.ServerInterceptor):
    """Times every RPC and counts it by method and final status code; when tracing is on,
    runs it in a SERVER span that continues the caller's trace."""

    def __init__(self, telemetry: Telemetry, tracing: Tracing | None = None) -> None:
        self._telemetry = telemetry
        self._tracing = tracing if tracing is not None and tracing.enabled else None
        # Handlers are fixed per method (and per refusal, which auth keeps per method and
        # role): wrap each once, not on every call. Keyed by the handler itself, which the
        # dict keeps alive; never by id(), which a short-lived object would free for reuse.
        self._wrapped: dict[
            tuple[str, grpc.RpcMethodHandler[Any, Any]], grpc.RpcMethodHandler[Any, Any]
        ] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        key = (method, handler)
        wrapped = self._wrapped.get(key)
        if wrapped is None:
            wrapped = self._wrapped[key] = self._wrap(method, handler)
        return wrapped

    def _wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        observe = self._observe
        tracing = self._tracing
        # The handlers are the aio server's: coroutines and async generators.
        if handler.unary_unary:
            inner: Any = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                started = time.perf_counter()
                span = _RpcSpan(tracing, method, context) if tracing is not None else None
                try:
                    return await inner(request, context)
                except BaseException as exc:
                    if span is not None:
                        span.failed(exc)
                    raise
                finally:
                    observe(method, context, started)
                    if span is not None:
                        span.end(context)

            return grpc.unary_unary_rpc_method_handler(
                unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            inner_stream: Any = handler.unary_stream

            async def stream(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                started = time.perf_counter()
                span = _RpcSpan(tracing, method, context) if tracing is not None else None
                try:
                    async for item in items_of(inner_stream(request, context)):
                        yield item
                except BaseException as exc:
                    if span is not None:
                        span.failed(exc)
                    raise
                finally:
                    observe(method, context, started)
                    if span is not None:
                        span.end(context)

            return grpc.unary_stream_rpc_method_handler(
                stream, handler.request_deserializer, handler.response_serializer
            )
        return handler

    def _observe(
        self, method: str, context: grpc.aio.ServicerContext[Any, Any], started: float
    ) -> None:
        code = context.code()
        name = code.name if isinstance(code, grpc.StatusCode) else "OK"
        telemetry = self._telemetry
        telemetry.child(telemetry.rpcs, method, name).inc()
        telemetry.child(telemetry.rpc_seconds, method).observe(time.perf_counter() - started)


class _RpcSpan:
    """An RPC's span, current while its handler runs."""

    __slots__ = ("_span", "_token")

    def __init__(
        self, tracing: Tracing, method: str, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        self._span = tracing.rpc(method, context.invocation_metadata())
        self._token = otel_context.attach(trace.set_span_in_context(self._span))

    def failed(self, exc: BaseException) -> None:
        self._span.record_exception(exc)

    def end(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        code = context.code()
        if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK:
            self._span.set_status(StatusCode.ERROR, code.name)
            self._span.set_attribute("rpc.grpc.status_code", code.value[0])
        self._span.end()
        with contextlib.suppress(ValueError):  # detached in another context: nothing to undo
            otel_context.detach(self._token)
