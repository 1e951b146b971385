"""`baton.Worker`: serve agents with runtime `worker` from any Python process."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
from google.protobuf import duration_pb2, struct_pb2

from baton._agent import AgentError, HandoffRequest, StepContext, StepLogger
from baton._client import Client
from baton._errors import from_rpc_error
from baton._plain import plain
from baton._tracing import end_span, task_span, trace_metadata, worker_tracer
from baton.v1 import common_pb2, worker_pb2, worker_pb2_grpc

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], StepContext], Any]
"""A function `(input, ctx) -> output dict | HandoffRequest | None`, sync or async."""

# Errors that say the worker itself is wrong; anything else is retried with backoff.
_FATAL = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNIMPLEMENTED,
)
_CANCEL_GRACE = 1.0
_SEVERITY = {"DEBUG": 1, "INFO": 2, "WARNING": 3, "ERROR": 4}


class Worker:
    """Serves agents and tools for a Baton server: receives their tasks (step attempts, and
    tool calls of LLM agents), runs the handlers, heartbeats while they run, and reports the
    results.

    Example:
        async with baton.Client.connect("localhost:50051") as client:
            worker = baton.Worker(
                client, {"agents/summarizer": summarize, "tools/search": search}
            )
            await worker.run()  # until worker.stop()

    Args:
        client: A connected `baton.Client`.
        handlers: Agent name (`agents/{id}`, or a bare id) or tool name (`tools/{id}`) ->
            handler, called with the input (a tool: the call's arguments) and a StepContext.
            Async handlers run on the event loop, plain ones in a thread (so they may
            block).
        identity: How this worker appears in the server's records; default host and pid.
        max_concurrent_tasks: Most tasks run at once.
        heartbeat_interval: Seconds between heartbeats; default a third of each task's
            heartbeat timeout.
        tracer_provider: Where task spans go, with OpenTelemetry installed (default: the
            global provider). Each task runs in a span under the server's attempt span.
    """

    def __init__(
        self,
        client: Client,
        handlers: Mapping[str, Handler],
        *,
        identity: str | None = None,
        max_concurrent_tasks: int = 4,
        heartbeat_interval: float | None = None,
        tracer_provider: Any = None,
    ) -> None:
        if not handlers:
            raise ValueError("a worker needs at least one handler")
        self._client = client
        self._stub = worker_pb2_grpc.WorkerServiceStub(client._channel)
        self._handlers = {
            (n if n.startswith(("agents/", "tools/")) else f"agents/{n}"): h
            for n, h in handlers.items()
        }
        self.identity = identity or f"{socket.gethostname()}:{os.getpid()}"
        self._capacity = max_concurrent_tasks
        self._interval = heartbeat_interval
        self._stopping = False
        self._poll: Any = None
        self._running: set[asyncio.Task[None]] = set()
        self.completed = 0
        self._tracer = worker_tracer(tracer_provider)

    async def run(self) -> None:
        """Polls for tasks until `stop()`; reconnects with backoff when the server goes away."""
        delay = 0.1
        while not self._stopping:
            request = worker_pb2.PollTasksRequest(
                agents=[n for n in self._handlers if n.startswith("agents/")],
                tools=[n for n in self._handlers if n.startswith("tools/")],
                identity=self.identity,
                max_concurrent_tasks=self._capacity,
            )
            self._poll = self._stub.PollTasks(
                request, metadata=self._client._metadata + trace_metadata()
            )
            try:
                async for task in self._poll:
                    delay = 0.1
                    running = asyncio.create_task(self._serve(task))
                    self._running.add(running)
                    running.add_done_callback(self._running.discard)
            except grpc.aio.AioRpcError as exc:
                if self._stopping:
                    break
                if exc.code() in _FATAL:
                    raise from_rpc_error(exc) from None
                log.info("worker reconnecting", extra={"error": exc.details()})
            if not self._stopping:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def stop(self, grace: float = 10.0) -> None:
        """Stops taking tasks and waits up to `grace` seconds for running ones."""
        self._stopping = True
        if self._poll is not None:
            self._poll.cancel()
        if self._running:
            await asyncio.wait(self._running, timeout=grace)

    async def _serve(self, task: worker_pb2.Task) -> None:
        served = task.tool or task.agent
        handler = self._handlers[served]
        loop = asyncio.get_running_loop()
        outbox: list[tuple[str, str, dict[str, Any]]] = []
        deltas: list[tuple[str, dict[str, Any] | None]] = []
        wake = asyncio.Event()

        def log_line(level: str, message: str, fields: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(outbox.append, (level, message, fields))

        def emit(text: str, data: dict[str, Any] | None) -> None:
            loop.call_soon_threadsafe(deltas.append, (text, data))
            loop.call_soon_threadsafe(wake.set)

        deadline = task.deadline.ToNanoseconds() / 1e9 if task.HasField("deadline") else None
        ctx = StepContext(
            execution=task.execution,
            step_id=task.step_id,
            attempt=task.attempt,
            idempotency_key=task.idempotency_key,
            agent=task.agent,
            config=plain(task.agent_config),
            deadline=deadline,
            cancelled=threading.Event(),
            log=StepLogger(log_line),
            deltas=emit,
        )
        value = plain(task.input)
        lease = task.heartbeat_timeout.ToNanoseconds() / 1e9 or 30.0
        interval = self._interval or max(min(lease / 3, 10.0), 0.05)
        kind = "tool" if task.tool else "agent"
        with task_span(self._tracer, f"{kind} {served}", task.traceparent) as span:
            work = asyncio.ensure_future(_call(handler, value, ctx))  # runs in the span
        try:
            while not work.done():
                wake.clear()
                waiter = asyncio.ensure_future(wake.wait())
                await asyncio.wait(
                    {work, waiter}, timeout=interval, return_when=asyncio.FIRST_COMPLETED
                )
                waiter.cancel()
                if work.done():
                    break
                if await self._heartbeat(task.task_token, outbox, deltas):
                    # Cancelled, or the lease is gone: ask the handler to stop, give it a
                    # moment to do so, then cancel it.
                    ctx.cancelled.set()
                    await asyncio.wait({work}, timeout=_CANCEL_GRACE)
                    work.cancel()
                    with contextlib.suppress(BaseException):
                        await work
                    return
            if outbox or deltas:
                await self._heartbeat(task.task_token, outbox, deltas)
            await self._answer(task.task_token, work)
        except grpc.aio.AioRpcError as exc:
            log.warning("could not report a task", extra={"error": exc.details()})
        finally:
            if not work.done():
                work.cancel()
            if span is not None:
                failure = work.exception() if work.done() and not work.cancelled() else None
                end_span(span, failure)

    async def _heartbeat(
        self,
        token: str,
        outbox: list[tuple[str, str, dict[str, Any]]],
        deltas: list[tuple[str, dict[str, Any] | None]],
    ) -> bool:
        request = worker_pb2.HeartbeatTaskRequest(task_token=token)
        for level, message, fields in outbox:
            request.logs.add(
                severity=_SEVERITY.get(level, 2), message=message, fields=_struct(fields)
            )
        if deltas:
            request.output_delta.text = "".join(text for text, _ in deltas)
            data = next((d for _, d in reversed(deltas) if d is not None), None)
            if data is not None:
                request.output_delta.data.CopyFrom(_struct(data))
        outbox.clear()
        deltas.clear()
        response = await self._stub.HeartbeatTask(request, metadata=self._client._metadata)
        return bool(response.cancel_requested)

    async def _answer(self, token: str, work: asyncio.Future[Any]) -> None:
        metadata = self._client._metadata
        try:
            result = work.result()
        except AgentError as exc:
            retry_after = None
            if exc.retry_after is not None:
                retry_after = duration_pb2.Duration()
                retry_after.FromNanoseconds(round(exc.retry_after * 1e9))
            failure = common_pb2.Failure(
                type=exc.type, message=exc.message, non_retryable=exc.non_retryable
            )
            if exc.details:
                failure.details.CopyFrom(_struct(exc.details))
            await self._stub.FailTask(
                worker_pb2.FailTaskRequest(
                    task_token=token, error=failure, retry_after=retry_after
                ),
                metadata=metadata,
            )
            return
        except Exception as exc:  # any other failure of the handler is the task's failure
            await self._stub.FailTask(
                worker_pb2.FailTaskRequest(
                    task_token=token,
                    error=common_pb2.Failure(type=type(exc).__name__, message=str(exc)),
                ),
                metadata=metadata,
            )
            return
        handoff_to = ""
        if isinstance(result, HandoffRequest):
            handoff_to, result = result.target, result.output
        output = (
            result if isinstance(result, dict) else ({} if result is None else {"result": result})
        )
        await self._stub.CompleteTask(
            worker_pb2.CompleteTaskRequest(
                task_token=token, output=_struct(output), handoff_to=handoff_to
            ),
            metadata=metadata,
        )
        self.completed += 1


async def _call(handler: Handler, value: dict[str, Any], ctx: StepContext) -> Any:
    if inspect.iscoroutinefunction(handler):
        return await handler(value, ctx)
    result = await asyncio.to_thread(handler, value, ctx)
    if isinstance(result, Awaitable):
        return await result
    return result


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message
