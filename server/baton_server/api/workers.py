"""WorkerService: remote workers poll for step tasks and answer them. A task lives in the
replica that runs its execution; workers connected to other replicas get it, and answer
it, through the database (`task_offers.py`)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from baton.v1 import worker_pb2, worker_pb2_grpc
from baton_server.api.convert import (
    agent_ref,
    dict_to_struct,
    duration,
    optional_struct,
    seconds_of,
    struct_to_dict,
    timestamp,
)
from baton_server.api.status import translate_errors
from baton_server.api.task_offers import TaskOffers
from baton_server.definitions.service import Definitions
from baton_server.domain import failures
from baton_server.domain.definitions import runtime_kind
from baton_server.domain.executions import Failure
from baton_server.domain.ids import is_resource_id
from baton_server.domain.tools import implementation_kind
from baton_server.errors import BatonError, invalid_field
from baton_server.limits import (
    MAX_ERROR_MESSAGE,
    MAX_ERROR_TYPE,
    MAX_LIST_ITEMS,
    MAX_STEP_DURATION_SECONDS,
    shorten,
)
from baton_server.runtimes.worker_broker import Hosted, Task, TaskBroker, owner_of

TOOL_QUEUE = "tools/"
"""Tool calls wait for workers under `tools/{tool}` (agent steps under the agent id)."""
MAX_IDENTITY = 256
MAX_TOKEN = 256

Context = grpc.aio.ServicerContext[Any, Any]
log = logging.getLogger(__name__)
_SEVERITIES = {1: "DEBUG", 2: "INFO", 3: "WARNING", 4: "ERROR"}


def _served_id(resource_id: str, field: str, what: str) -> str:
    if not is_resource_id(resource_id):
        raise invalid_field(field, f"{shorten(resource_id)!r} is not {what} name")
    return resource_id


def _check_served(field: str, name: str, kind: str) -> None:
    """Workers may serve only agents and tools that workers implement."""
    if kind != "worker":
        reason = "NOT_A_WORKER_TOOL" if name.startswith(TOOL_QUEUE) else "NOT_A_WORKER_AGENT"
        raise invalid_field(
            field, f"{name} is not served by workers (it is {kind!r}, not 'worker')", reason
        )


def task_to_proto(task: Task) -> worker_pb2.Task:
    """A leased task as the Task message a worker receives."""
    ctx = task.attempt
    tool = task.queue.startswith(TOOL_QUEUE)
    message = worker_pb2.Task(
        task_token=task.token,
        agent="" if tool else f"agents/{task.queue}",
        tool=task.queue if tool else "",
        execution=ctx.execution,
        step_id=ctx.step_id,
        attempt=ctx.attempt,
        idempotency_key=ctx.idempotency_key,
        input=dict_to_struct(task.input),
        agent_config=dict_to_struct(task.config),
        heartbeat_timeout=duration(task.heartbeat_timeout),
        traceparent=ctx.traceparent,
    )
    if task.deadline:
        message.deadline.CopyFrom(timestamp(task.deadline))
    return message


@translate_errors
class WorkerServicer(worker_pb2_grpc.WorkerServiceServicer):
    """baton.v1.WorkerService."""

    def __init__(
        self,
        broker: TaskBroker,
        definitions: Definitions,
        offers: TaskOffers,
    ) -> None:
        self._broker = broker
        self._definitions = definitions
        self._offers = offers
        self._answers: dict[str, tuple[Any, Callable[[Any, bool], bool]]] = {
            "complete": (worker_pb2.CompleteTaskRequest, self._complete),
            "fail": (worker_pb2.FailTaskRequest, self._fail),
            "heartbeat": (worker_pb2.HeartbeatTaskRequest, self._heartbeat),
        }

    async def PollTasks(
        self, request: worker_pb2.PollTasksRequest, context: Context
    ) -> AsyncIterator[worker_pb2.Task]:
        if not request.agents and not request.tools:
            raise invalid_field("agents", "name at least one agent or tool", "FIELD_REQUIRED")
        for name in ("agents", "tools"):
            if len(getattr(request, name)) > MAX_LIST_ITEMS:
                raise invalid_field(name, f"name at most {MAX_LIST_ITEMS} {name}", "TOO_MANY")
        if len(request.identity) > MAX_IDENTITY:
            raise invalid_field("identity", f"is longer than {MAX_IDENTITY} characters")
        queues = []
        for i, name in enumerate(request.agents):
            agent_id = _served_id(name.removeprefix("agents/"), f"agents[{i}]", "an agent")
            agent = await self._definitions.get_agent(agent_id)  # NOT_FOUND if unknown
            _check_served(f"agents[{i}]", f"agents/{agent_id}", runtime_kind(agent.runtime))
            queues.append(agent_id)
        for i, name in enumerate(request.tools):
            tool_id = _served_id(name.removeprefix(TOOL_QUEUE), f"tools[{i}]", "a tool")
            tool = await self._definitions.get_tool(tool_id)  # NOT_FOUND if unknown
            kind = implementation_kind(tool.implementation)
            _check_served(f"tools[{i}]", f"tools/{tool_id}", kind)
            queues.append(TOOL_QUEUE + tool_id)
        if request.max_concurrent_tasks < 0:
            raise invalid_field("max_concurrent_tasks", "must not be negative")
        identity = request.identity or context.peer()
        capacity = request.max_concurrent_tasks or 1
        async for task in self._broker.poll(identity, frozenset(queues), capacity):
            if isinstance(task, Hosted):  # another replica's, as it made the message
                yield worker_pb2.Task.FromString(task.message)
            else:
                yield task_to_proto(task)

    async def CompleteTask(
        self, request: worker_pb2.CompleteTaskRequest, context: Context
    ) -> worker_pb2.CompleteTaskResponse:
        accepted = await self._here_or_owner("complete", request)
        return worker_pb2.CompleteTaskResponse(accepted=accepted)

    async def FailTask(
        self, request: worker_pb2.FailTaskRequest, context: Context
    ) -> worker_pb2.FailTaskResponse:
        accepted = await self._here_or_owner("fail", request)
        return worker_pb2.FailTaskResponse(accepted=accepted)

    async def HeartbeatTask(
        self, request: worker_pb2.HeartbeatTaskRequest, context: Context
    ) -> worker_pb2.HeartbeatTaskResponse:
        stop = await self._here_or_owner("heartbeat", request)
        return worker_pb2.HeartbeatTaskResponse(cancel_requested=stop)

    async def apply_passed_on(self, kind: str, body: bytes) -> bool:
        """Carries out an answer another replica received (and checked) for a task of this
        one; returns what that replica answers (accepted, or for a heartbeat: stop)."""
        message_type, carry_out = self._answers[kind]
        try:
            return carry_out(message_type.FromString(body), True)
        except (BatonError, DecodeError):  # checked where it was received; cannot happen
            log.exception("a worker answer passed on could not be carried out")
            return kind == "heartbeat"

    async def _here_or_owner(self, kind: str, request: Any) -> bool:
        """Checks an answer, then carries it out here, or passes it on to the replica whose
        task it is (letting go of the task when it was hosted here)."""
        token = request.task_token
        _require_token(token)
        carry_out = self._answers[kind][1]
        if self._broker.knows(token):
            return carry_out(request, True)
        carry_out(request, False)  # checks it only
        hosted = self._broker.hosted(token)
        owner = hosted.owner if hosted is not None else owner_of(token)
        if not owner or owner == self._broker.owner:
            return carry_out(request, True)  # unknown here: refused, as a token of nobody's
        verdict = await self._offers.pass_on(owner, token, kind, request.SerializeToString())
        if hosted is not None:
            if kind == "heartbeat":
                self._broker.heard_from_host(token)
            else:
                self._broker.let_go(token, heard=True)
        return verdict

    def _complete(self, request: worker_pb2.CompleteTaskRequest, apply: bool) -> bool:
        handoff_to = agent_ref(request.handoff_to)
        if handoff_to and not is_resource_id(handoff_to):
            raise invalid_field(
                "handoff_to", f"{shorten(request.handoff_to)!r} is not an agent name"
            )
        output = struct_to_dict(request.output, "output")
        return apply and self._broker.complete(request.task_token, output, handoff_to)

    def _fail(self, request: worker_pb2.FailTaskRequest, apply: bool) -> bool:
        error = request.error
        if len(error.type) > MAX_ERROR_TYPE:
            raise invalid_field("error.type", f"is longer than {MAX_ERROR_TYPE} characters")
        if len(error.message) > MAX_ERROR_MESSAGE:
            raise invalid_field("error.message", f"is longer than {MAX_ERROR_MESSAGE} characters")
        retry_after = seconds_of(request, "retry_after")
        if retry_after is not None and not 0 <= retry_after <= MAX_STEP_DURATION_SECONDS:
            raise invalid_field("retry_after", "must be within [0, a year]")
        failure = Failure(
            error.type or failures.WORKER_ERROR,
            error.message or "the worker reported a failure",
            non_retryable=error.non_retryable,
            details=optional_struct(error, "details", "error.details"),
        )
        return apply and self._broker.fail(request.task_token, failure, retry_after)

    def _heartbeat(self, request: worker_pb2.HeartbeatTaskRequest, apply: bool) -> bool:
        """Returns whether the worker should stop."""
        if len(request.logs) > MAX_LIST_ITEMS:
            raise invalid_field("logs", f"at most {MAX_LIST_ITEMS} lines per heartbeat")
        logs = [
            (
                _SEVERITIES.get(entry.severity, "INFO"),
                _bounded_text(entry.message, f"logs[{i}].message"),
                struct_to_dict(entry.fields, f"logs[{i}].fields"),
            )
            for i, entry in enumerate(request.logs)
        ]
        delta = None
        if request.HasField("output_delta"):
            delta = (
                _bounded_text(request.output_delta.text, "output_delta.text"),
                optional_struct(request.output_delta, "data", "output_delta.data"),
            )
        if not apply:
            return False
        task, stop = self._broker.heartbeat(request.task_token)
        if task is not None and not stop:
            for severity, message, fields in logs:
                task.attempt.log(severity, message, fields)
            if delta is not None:
                task.attempt.deltas(*delta)
        return stop


def _bounded_text(text: str, field: str) -> str:
    if len(text) > MAX_ERROR_MESSAGE:
        raise invalid_field(field, f"is longer than {MAX_ERROR_MESSAGE} characters")
    return text


def _require_token(token: str) -> None:
    if not token:
        raise invalid_field("task_token", "is required", "FIELD_REQUIRED")
    if len(token) > MAX_TOKEN:
        raise invalid_field("task_token", "is not a task token")
