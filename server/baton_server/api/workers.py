"""WorkerService: remote workers poll for step tasks and answer them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from baton.v1 import worker_pb2, worker_pb2_grpc
from baton_server.api.convert import (
    agent_ref,
    dict_to_struct,
    duration,
    seconds_of,
    struct_to_dict,
    timestamp,
)
from baton_server.api.status import translate_errors
from baton_server.engine.definitions import Definitions
from baton_server.engine.execution_model import Failure
from baton_server.engine.ids import is_resource_id
from baton_server.engine.model import WorkerRuntime, runtime_kind
from baton_server.engine.task_broker import Task, TaskBroker
from baton_server.errors import invalid_field

Context = grpc.aio.ServicerContext[Any, Any]
_SEVERITIES = {1: "debug", 2: "info", 3: "warning", 4: "error"}


def task_to_proto(task: Task) -> worker_pb2.Task:
    """A leased task as the Task message a worker receives."""
    ctx = task.ctx
    message = worker_pb2.Task(
        task_token=task.token,
        agent=f"agents/{task.agent.id}",
        execution=ctx.execution,
        step_id=ctx.step_id,
        attempt=ctx.attempt,
        idempotency_key=ctx.idempotency_key,
        input=dict_to_struct(task.input),
        agent_config=dict_to_struct(task.agent.config),
        heartbeat_timeout=duration(task.heartbeat_timeout),
    )
    if task.deadline:
        message.deadline.CopyFrom(timestamp(task.deadline))
    return message


@translate_errors
class WorkerServicer(worker_pb2_grpc.WorkerServiceServicer):
    """baton.v1.WorkerService."""

    def __init__(self, broker: TaskBroker, definitions: Definitions) -> None:
        self._broker = broker
        self._definitions = definitions

    async def PollTasks(
        self, request: worker_pb2.PollTasksRequest, context: Context
    ) -> AsyncIterator[worker_pb2.Task]:
        if not request.agents:
            raise invalid_field("agents", "name at least one agent", "FIELD_REQUIRED")
        agents = []
        for i, name in enumerate(request.agents):
            agent_id = agent_ref(name)
            if not is_resource_id(agent_id):
                raise invalid_field(f"agents[{i}]", f"{name!r} is not an agent name")
            agent = await self._definitions.get_agent(agent_id)  # NOT_FOUND if unknown
            if not isinstance(agent.runtime, WorkerRuntime):
                raise invalid_field(
                    f"agents[{i}]",
                    f"agents/{agent_id} is not served by workers (its runtime is "
                    f"{runtime_kind(agent.runtime)!r}, not 'worker')",
                    "NOT_A_WORKER_AGENT",
                )
            agents.append(agent_id)
        if request.max_concurrent_tasks < 0:
            raise invalid_field("max_concurrent_tasks", "must not be negative")
        identity = request.identity or context.peer()
        async for task in self._broker.poll(
            identity, frozenset(agents), request.max_concurrent_tasks or 1
        ):
            yield task_to_proto(task)

    async def CompleteTask(
        self, request: worker_pb2.CompleteTaskRequest, context: Context
    ) -> worker_pb2.CompleteTaskResponse:
        _require_token(request.task_token)
        accepted = self._broker.complete(
            request.task_token, struct_to_dict(request.output), agent_ref(request.handoff_to)
        )
        return worker_pb2.CompleteTaskResponse(accepted=accepted)

    async def FailTask(
        self, request: worker_pb2.FailTaskRequest, context: Context
    ) -> worker_pb2.FailTaskResponse:
        _require_token(request.task_token)
        error = request.error
        failure = Failure(
            error.type or "WorkerError",
            error.message or "the worker reported a failure",
            non_retryable=error.non_retryable,
            details=struct_to_dict(error.details) if error.HasField("details") else None,
        )
        accepted = self._broker.fail(
            request.task_token, failure, seconds_of(request, "retry_after")
        )
        return worker_pb2.FailTaskResponse(accepted=accepted)

    async def HeartbeatTask(
        self, request: worker_pb2.HeartbeatTaskRequest, context: Context
    ) -> worker_pb2.HeartbeatTaskResponse:
        _require_token(request.task_token)
        task, stop = self._broker.heartbeat(request.task_token)
        if task is not None and not stop:
            for entry in request.logs:
                write = getattr(task.ctx.log, _SEVERITIES.get(entry.severity, "info"))
                write(entry.message, **struct_to_dict(entry.fields))
            if request.HasField("output_delta"):
                delta = request.output_delta
                data = struct_to_dict(delta.data) if delta.HasField("data") else None
                task.ctx.emit(delta.text, data)
        return worker_pb2.HeartbeatTaskResponse(cancel_requested=stop)


def _require_token(token: str) -> None:
    if not token:
        raise invalid_field("task_token", "is required", "FIELD_REQUIRED")
