"""OpenTelemetry tracing: a span per RPC, execution, step and attempt, in the caller's trace.

Off unless the standard OTEL_* variables name an OTLP endpoint (then spans are exported over
OTLP), or a tracer provider is handed to the server (tests use an in-memory exporter). The
W3C `traceparent` comes in with the caller's metadata, is stored with each execution (so a
resumed execution stays in its trace), and goes out with each worker task."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def provider_from_environment(environ: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """A provider that exports spans over OTLP, when the environment names an endpoint
    (and does not turn the SDK or the traces exporter off); else None."""
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").lower() == "none":
        return None
    if not any(environ.get(name) for name in _ENDPOINT_VARIABLES):
        return None
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME", "baton")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


class Tracing:
    """The server's tracer (a no-op one when tracing is off)."""

    def __init__(self, provider: trace.TracerProvider | None) -> None:
        self.provider = provider
        self.enabled = provider is not None
        self.tracer: Tracer = (provider or trace.NoOpTracerProvider()).get_tracer("baton")

    def rpc(self, method: str, metadata: Iterable[tuple[str, str | bytes]] | None) -> Span:
        """A SERVER span for an RPC, child of the caller's `traceparent` if it sent one."""
        carrier = {key: value for key, value in metadata or () if isinstance(value, str)}
        parent = _PROPAGATOR.extract(carrier)
        return self.tracer.start_span(method.lstrip("/"), context=parent, kind=SpanKind.SERVER)

    def start(
        self, name: str, parent: str | Span | None, attributes: Mapping[str, str | int]
    ) -> Span:
        """An INTERNAL span under `parent` (a traceparent string, a span, or none)."""
        return self.tracer.start_span(name, context=parent_context(parent), attributes=attributes)


def parent_context(parent: str | Span | None) -> Context | None:
    """The context a child of `parent` starts in."""
    if parent is None or parent == "":
        return None
    if isinstance(parent, str):
        return _PROPAGATOR.extract({"traceparent": parent})
    return trace.set_span_in_context(parent)


def traceparent(span: Span | None = None) -> str:
    """The W3C traceparent of `span` (default: the current span); '' when not recording."""
    span = span or trace.get_current_span()
    context = span.get_span_context()
    if not context.is_valid:
        return ""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(NonRecordingSpan(context)))
    return carrier.get("traceparent", "")
