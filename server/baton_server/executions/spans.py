"""The trace of one run: a span for the execution (in the trace it was started in), one per
step under it, and one per attempt under its step. With `trace: true` on the execution, an
attempt's input and output are recorded as events of its span. Does nothing when tracing
is off."""

from __future__ import annotations

from typing import Any

import orjson
from opentelemetry.trace import Span, StatusCode

from baton_server.domain.executions import Execution, Failure
from baton_server.tracing import Tracing, traceparent

MAX_RECORDED = 16 * 1024
"""Most characters of an input or output recorded on a span."""


class RunSpans:
    """Opens and closes the spans of one run as its driver carries out decisions."""

    def __init__(self, tracing: Tracing, execution: Execution) -> None:
        self._tracing = tracing if tracing.enabled else None
        self._execution = execution
        self._run: Span | None = None
        self._steps: dict[str, Span] = {}
        self._attempts: dict[str, Span] = {}

    def begin(self) -> None:
        """The run begins or resumes (after a restart, a new span in the same trace)."""
        if self._tracing is None or self._run is not None:
            return
        execution = self._execution
        self._run = self._tracing.start(
            "execution",
            execution.traceparent,
            {
                "baton.execution": execution.id,
                "baton.workflow": execution.workflow_id,
                "baton.workflow_revision": execution.workflow_revision,
            },
        )

    def attempt_started(self, step_id: str, attempt: int, agent: str, value: dict[str, Any]) -> str:
        """Opens the attempt's span (and its step's, for its first); returns its
        traceparent, for the runtime to pass on."""
        if self._tracing is None:
            return ""
        step = self._steps.get(step_id)
        if step is None:
            step = self._steps[step_id] = self._tracing.start(
                f"step {step_id}", self._run, {"baton.step": step_id}
            )
        self.attempt_stopped(step_id)  # one that was stopped without reporting
        span = self._tracing.start(
            f"attempt {step_id}/{attempt}",
            step,
            {"baton.step": step_id, "baton.attempt": attempt, "baton.agent": agent},
        )
        if self._execution.trace:
            span.add_event("input", {"baton.payload": _recorded(value)})
        self._attempts[step_id] = span
        return traceparent(span)

    def attempt_ended(
        self,
        step_id: str,
        *,
        output: dict[str, Any] | None = None,
        failure: Failure | None = None,
    ) -> None:
        """Closes the attempt's span with how it ended."""
        span = self._attempts.pop(step_id, None)
        if span is None:
            return
        if failure is not None:
            span.set_status(StatusCode.ERROR, f"{failure.type}: {failure.message}"[:1024])
            span.set_attribute("baton.error_type", failure.type)
        elif output is not None and self._execution.trace:
            span.add_event("output", {"baton.payload": _recorded(output)})
        span.end()

    def attempt_stopped(self, step_id: str) -> None:
        """Closes the span of an attempt the engine stopped (it timed out, or the run ended)."""
        span = self._attempts.pop(step_id, None)
        if span is not None:
            span.set_status(StatusCode.ERROR, "stopped")
            span.end()

    def step_ended(self, step_id: str, state: str) -> None:
        """Closes the step's span when it reached a final state."""
        span = self._steps.pop(step_id, None)
        if span is None:
            return
        span.set_attribute("baton.state", state)
        if state in ("FAILED", "TIMED_OUT"):
            span.set_status(StatusCode.ERROR, state)
        span.end()

    def end(self) -> None:
        """The run ended or stopped: closes every span still open."""
        for span in [*self._attempts.values(), *self._steps.values()]:
            span.end()
        self._attempts.clear()
        self._steps.clear()
        if self._run is not None:
            state = self._execution.state.value
            self._run.set_attribute("baton.state", state)
            if state in ("FAILED", "TIMED_OUT"):
                self._run.set_status(StatusCode.ERROR, state)
            self._run.end()
            self._run = None


def _recorded(value: dict[str, Any]) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= MAX_RECORDED else text[:MAX_RECORDED] + "…"
