"""Joining the caller's trace, when OpenTelemetry is installed (`baton-workflows[tracing]`):
calls carry the current span's W3C `traceparent`, and a worker runs each task in a span under
the attempt's. Without OpenTelemetry these do nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
except ImportError:  # tracing is optional for the client
    trace = None  # type: ignore[assignment]


def trace_metadata() -> tuple[tuple[str, str], ...]:
    """gRPC metadata that carries the current trace context (empty outside a span)."""
    if trace is None:
        return ()
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple(carrier.items())


def worker_tracer(tracer_provider: Any = None) -> Any:
    """The tracer a worker's task spans come from (None without OpenTelemetry)."""
    if trace is None:
        return None
    return trace.get_tracer("baton.worker", tracer_provider=tracer_provider)


@contextlib.contextmanager
def task_span(tracer: Any, name: str, traceparent: str) -> Iterator[Any]:
    """A span for one task under the attempt's `traceparent`, current while the block runs
    (so work started in it inherits it); yields None without a tracer or a traceparent."""
    if tracer is None or not traceparent:
        yield None
        return
    parent = propagate.extract({"traceparent": traceparent})
    span = tracer.start_span(name, context=parent, kind=trace.SpanKind.CONSUMER)
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield span
    finally:
        otel_context.detach(token)


def end_span(span: Any, failure: BaseException | None) -> None:
    """Ends a task span, marked failed when the handler raised."""
    if failure is not None:
        span.record_exception(failure)
        span.set_status(trace.StatusCode.ERROR, str(failure)[:1024])
    span.end()
