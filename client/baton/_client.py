"""The async client: `async with Client.connect(target) as client: await client.agents.get(...)`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc
from google.protobuf import duration_pb2, field_mask_pb2, struct_pb2, timestamp_pb2

from baton._errors import from_rpc_error
from baton._tracing import trace_metadata
from baton._views import M, MessageView
from baton.v1 import (
    agent_pb2,
    agent_pb2_grpc,
    event_pb2,
    execution_pb2,
    execution_pb2_grpc,
    handoff_pb2,
    handoff_pb2_grpc,
    monitoring_pb2,
    monitoring_pb2_grpc,
    schedule_pb2,
    schedule_pb2_grpc,
    tool_pb2,
    tool_pb2_grpc,
    workflow_pb2,
    workflow_pb2_grpc,
)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
DEFAULT_TIMEOUT = 30.0
_RETRIES = 3
_RETRY_DELAY = 0.1
# UNAVAILABLE: not reached; CANCELLED from the server: refused while it shuts down. Both are
# retried for calls that are safe to repeat (reads, and writes that carry a request_id).
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)


def _name(collection: str, name: str) -> str:
    """Accepts `collection/id` or a bare id."""
    return name if name.startswith(f"{collection}/") else f"{collection}/{name}"


def _request_id(value: str | None) -> str:
    """The caller's request id, or a fresh one so that retries stay idempotent."""
    return value if value is not None else uuid.uuid4().hex


class Client:
    """Async client for every Baton service.

    Use `Client.connect(...)` as an async context manager (or call `close()`). Each service
    is an attribute: `agents`, `workflows`, `handoffs`, `executions`; plus
    `system_health()`.
    Every failed call raises a subclass of `baton.BatonError`.
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        token: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        self._channel = channel
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        self._timeout = timeout
        self.agents = Agents(self, agent_pb2_grpc.AgentServiceStub(channel))
        self.workflows = Workflows(self, workflow_pb2_grpc.WorkflowServiceStub(channel))
        self.handoffs = Handoffs(self, handoff_pb2_grpc.HandoffServiceStub(channel))
        self.executions = Executions(self, execution_pb2_grpc.ExecutionServiceStub(channel))
        self.schedules = Schedules(self, schedule_pb2_grpc.ScheduleServiceStub(channel))
        self.tools = Tools(self, tool_pb2_grpc.ToolServiceStub(channel))
        self._monitoring: monitoring_pb2_grpc.MonitoringServiceAsyncStub = (
            monitoring_pb2_grpc.MonitoringServiceStub(channel)
        )

    @classmethod
    def connect(
        cls,
        target: str,
        *,
        token: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> Client:
        """Opens a channel to `target` (e.g. `localhost:50051`).

        Args:
            target: host:port of the Baton server.
            token: Bearer token sent with every call.
            timeout: Default deadline of each call in seconds (None: no deadline).
            credentials: TLS credentials; plaintext when None.
            options: Extra gRPC channel options.
        """
        if credentials is not None:
            channel = grpc.aio.secure_channel(target, credentials, options=list(options))
        else:
            channel = grpc.aio.insecure_channel(target, options=list(options))
        return cls(channel, token=token, timeout=timeout)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel."""
        await self._channel.close()

    async def system_health(self) -> monitoring_pb2.SystemHealth:
        """The health of the server and its components (storage, Redis)."""
        return await self._call(
            self._monitoring.GetSystemHealth, monitoring_pb2.GetSystemHealthRequest()
        )

    async def workflow_metrics(
        self,
        workflow: str,
        *,
        start_time: timestamp_pb2.Timestamp | None = None,
        end_time: timestamp_pb2.Timestamp | None = None,
    ) -> monitoring_pb2.WorkflowMetrics:
        """Counts, success rate and durations of the workflow's executions created in the
        window (default: the last 24 hours)."""
        request = monitoring_pb2.GetWorkflowMetricsRequest(
            workflow=_name("workflows", workflow), start_time=start_time, end_time=end_time
        )
        return await self._call(self._monitoring.GetWorkflowMetrics, request)

    async def agent_performance(
        self,
        agent: str,
        *,
        start_time: timestamp_pb2.Timestamp | None = None,
        end_time: timestamp_pb2.Timestamp | None = None,
    ) -> monitoring_pb2.AgentPerformance:
        """Attempts, success rate, errors and durations of the agent in the window (default:
        the last 24 hours)."""
        request = monitoring_pb2.GetAgentPerformanceRequest(
            agent=_name("agents", agent), start_time=start_time, end_time=end_time
        )
        return await self._call(self._monitoring.GetAgentPerformance, request)

    async def _call(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        *,
        idempotent: bool = True,
        deadline: float | None = None,
    ) -> Resp:
        """Every RPC goes through here: deadline, metadata, retries of UNAVAILABLE and
        CANCELLED (only for calls that are safe to repeat), and errors turned into BatonError."""
        attempt = 0
        while True:
            try:
                return await method(
                    request,
                    timeout=deadline or self._timeout,
                    metadata=self._metadata + trace_metadata(),
                )
            except grpc.aio.AioRpcError as exc:
                attempt += 1
                if idempotent and exc.code() in _RETRYABLE and attempt < _RETRIES:
                    await asyncio.sleep(_RETRY_DELAY * 2 ** (attempt - 1))
                    continue
                raise from_rpc_error(exc) from None

    async def _pages(self, method: Any, request: Any, field: str) -> AsyncIterator[Any]:
        """Yields the items of every page, following `next_page_token`."""
        while True:
            response = await self._call(method, request)
            for item in getattr(response, field):
                yield item
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token


class Agents:
    """AgentService: the agents that run steps."""

    def __init__(self, client: Client, stub: agent_pb2_grpc.AgentServiceAsyncStub) -> None:
        self._client = client
        self._stub = stub

    async def create(
        self, agent: agent_pb2.Agent, *, agent_id: str = "", request_id: str | None = None
    ) -> agent_pb2.Agent:
        """Creates an agent; `agent_id` names it `agents/{agent_id}` (generated if empty)."""
        request = agent_pb2.CreateAgentRequest(
            agent=agent, agent_id=agent_id, request_id=_request_id(request_id)
        )
        return await self._client._call(self._stub.CreateAgent, request)

    async def get(self, name: str) -> agent_pb2.Agent:
        """Returns the agent `agents/{id}` (or a bare id)."""
        request = agent_pb2.GetAgentRequest(name=_name("agents", name))
        return await self._client._call(self._stub.GetAgent, request)

    def list(
        self,
        *,
        capabilities: Sequence[str] = (),
        state: agent_pb2.Agent.State = agent_pb2.Agent.STATE_UNSPECIFIED,
        page_size: int = 0,
    ) -> AsyncIterator[agent_pb2.Agent]:
        """Iterates over all agents (page by page) with all `capabilities`, in `state`."""
        request = agent_pb2.ListAgentsRequest(
            capabilities=capabilities, state=state, page_size=page_size
        )
        return self._client._pages(self._stub.ListAgents, request, "agents")

    async def update(
        self,
        agent: agent_pb2.Agent,
        *,
        update_mask: Sequence[str] = (),
        request_id: str | None = None,
    ) -> agent_pb2.Agent:
        """Replaces the fields in `update_mask` (all writable fields if empty)."""
        request = agent_pb2.UpdateAgentRequest(
            agent=agent,
            update_mask=field_mask_pb2.FieldMask(paths=update_mask),
            request_id=_request_id(request_id),
        )
        return await self._client._call(self._stub.UpdateAgent, request)

    async def delete(
        self, name: str, *, etag: str = "", force: bool = False, request_id: str | None = None
    ) -> None:
        """Deletes an agent (`force` also while workflows or handoffs refer to it)."""
        request = agent_pb2.DeleteAgentRequest(
            name=_name("agents", name), etag=etag, force=force, request_id=_request_id(request_id)
        )
        await self._client._call(self._stub.DeleteAgent, request)


class Workflows:
    """WorkflowService: workflow definitions and their revisions."""

    def __init__(self, client: Client, stub: workflow_pb2_grpc.WorkflowServiceAsyncStub) -> None:
        self._client = client
        self._stub = stub

    async def create(
        self,
        workflow: workflow_pb2.Workflow,
        *,
        workflow_id: str = "",
        request_id: str | None = None,
    ) -> workflow_pb2.Workflow:
        """Validates and creates a workflow at revision 1."""
        request = workflow_pb2.CreateWorkflowRequest(
            workflow=workflow, workflow_id=workflow_id, request_id=_request_id(request_id)
        )
        return await self._client._call(self._stub.CreateWorkflow, request)

    async def get(self, name: str, *, revision: int = 0) -> workflow_pb2.Workflow:
        """Returns the latest revision, or `revision`."""
        request = workflow_pb2.GetWorkflowRequest(name=_name("workflows", name), revision=revision)
        return await self._client._call(self._stub.GetWorkflow, request)

    def list(
        self,
        *,
        tags: Sequence[str] = (),
        state: workflow_pb2.Workflow.State = workflow_pb2.Workflow.STATE_UNSPECIFIED,
        page_size: int = 0,
    ) -> AsyncIterator[workflow_pb2.Workflow]:
        """Iterates over all workflows with all `tags`, in `state`."""
        request = workflow_pb2.ListWorkflowsRequest(tags=tags, state=state, page_size=page_size)
        return self._client._pages(self._stub.ListWorkflows, request, "workflows")

    async def update(
        self,
        workflow: workflow_pb2.Workflow,
        *,
        update_mask: Sequence[str] = (),
        request_id: str | None = None,
    ) -> workflow_pb2.Workflow:
        """Replaces the fields in `update_mask`, creating a new revision."""
        request = workflow_pb2.UpdateWorkflowRequest(
            workflow=workflow,
            update_mask=field_mask_pb2.FieldMask(paths=update_mask),
            request_id=_request_id(request_id),
        )
        return await self._client._call(self._stub.UpdateWorkflow, request)

    async def delete(self, name: str, *, etag: str = "", request_id: str | None = None) -> None:
        """Deletes a workflow and its revisions."""
        request = workflow_pb2.DeleteWorkflowRequest(
            name=_name("workflows", name), etag=etag, request_id=_request_id(request_id)
        )
        await self._client._call(self._stub.DeleteWorkflow, request)

    async def validate(
        self, workflow: workflow_pb2.Workflow
    ) -> workflow_pb2.ValidateWorkflowResponse:
        """Checks a workflow without storing it; raises InvalidArgumentError when invalid."""
        request = workflow_pb2.ValidateWorkflowRequest(workflow=workflow)
        return await self._client._call(self._stub.ValidateWorkflow, request)


class Handoffs:
    """HandoffService: declared handoffs between agents."""

    def __init__(self, client: Client, stub: handoff_pb2_grpc.HandoffServiceAsyncStub) -> None:
        self._client = client
        self._stub = stub

    async def create(
        self, handoff: handoff_pb2.Handoff, *, handoff_id: str = "", request_id: str | None = None
    ) -> handoff_pb2.Handoff:
        """Creates a handoff between two existing agents."""
        request = handoff_pb2.CreateHandoffRequest(
            handoff=handoff, handoff_id=handoff_id, request_id=_request_id(request_id)
        )
        return await self._client._call(self._stub.CreateHandoff, request)

    async def get(self, name: str) -> handoff_pb2.Handoff:
        """Returns the handoff `handoffs/{id}` (or a bare id)."""
        request = handoff_pb2.GetHandoffRequest(name=_name("handoffs", name))
        return await self._client._call(self._stub.GetHandoff, request)

    def list(
        self,
        *,
        source_agent: str = "",
        target_agent: str = "",
        type: handoff_pb2.Handoff.Type = handoff_pb2.Handoff.TYPE_UNSPECIFIED,
        page_size: int = 0,
    ) -> AsyncIterator[handoff_pb2.Handoff]:
        """Iterates over all handoffs from `source_agent`, to `target_agent`, of `type`."""
        request = handoff_pb2.ListHandoffsRequest(
            source_agent=_name("agents", source_agent) if source_agent else "",
            target_agent=_name("agents", target_agent) if target_agent else "",
            type=type,
            page_size=page_size,
        )
        return self._client._pages(self._stub.ListHandoffs, request, "handoffs")

    async def update(
        self,
        handoff: handoff_pb2.Handoff,
        *,
        update_mask: Sequence[str] = (),
        request_id: str | None = None,
    ) -> handoff_pb2.Handoff:
        """Replaces the fields in `update_mask`."""
        request = handoff_pb2.UpdateHandoffRequest(
            handoff=handoff,
            update_mask=field_mask_pb2.FieldMask(paths=update_mask),
            request_id=_request_id(request_id),
        )
        return await self._client._call(self._stub.UpdateHandoff, request)

    async def delete(self, name: str, *, etag: str = "", request_id: str | None = None) -> None:
        """Deletes a handoff."""
        request = handoff_pb2.DeleteHandoffRequest(
            name=_name("handoffs", name), etag=etag, request_id=_request_id(request_id)
        )
        await self._client._call(self._stub.DeleteHandoff, request)


class Tools:
    """ToolService: functions agents may call."""

    def __init__(self, client: Client, stub: tool_pb2_grpc.ToolServiceAsyncStub) -> None:
        self._client = client
        self._stub = stub

    async def create(
        self, tool: tool_pb2.Tool, *, tool_id: str = "", request_id: str | None = None
    ) -> tool_pb2.Tool:
        """Creates a tool; its id is the name models call it by."""
        request = tool_pb2.CreateToolRequest(
            tool=tool, tool_id=tool_id, request_id=_request_id(request_id)
        )
        return await self._client._call(self._stub.CreateTool, request)

    async def get(self, name: str) -> tool_pb2.Tool:
        """Returns the tool `tools/{id}` (or a bare id)."""
        request = tool_pb2.GetToolRequest(name=_name("tools", name))
        return await self._client._call(self._stub.GetTool, request)

    def list(self, *, page_size: int = 0) -> AsyncIterator[tool_pb2.Tool]:
        """Iterates over all tools in creation order."""
        request = tool_pb2.ListToolsRequest(page_size=page_size)
        return self._client._pages(self._stub.ListTools, request, "tools")

    async def update(
        self,
        tool: tool_pb2.Tool,
        *,
        update_mask: Sequence[str] = (),
        request_id: str | None = None,
    ) -> tool_pb2.Tool:
        """Replaces the fields in `update_mask` (all writable ones when empty)."""
        request = tool_pb2.UpdateToolRequest(
            tool=tool,
            update_mask=field_mask_pb2.FieldMask(paths=update_mask),
            request_id=_request_id(request_id),
        )
        return await self._client._call(self._stub.UpdateTool, request)

    async def delete(self, name: str, *, etag: str = "", request_id: str | None = None) -> None:
        """Deletes a tool; FailedPreconditionError (TOOL_IN_USE) while an agent names it."""
        request = tool_pb2.DeleteToolRequest(
            name=_name("tools", name), etag=etag, request_id=_request_id(request_id)
        )
        await self._client._call(self._stub.DeleteTool, request)


class Schedules:
    """ScheduleService: start a workflow on a cron calendar or at an interval."""

    def __init__(self, client: Client, stub: schedule_pb2_grpc.ScheduleServiceAsyncStub) -> None:
        self._client = client
        self._stub = stub

    async def create(
        self,
        schedule: schedule_pb2.Schedule,
        *,
        schedule_id: str = "",
        request_id: str | None = None,
    ) -> MessageView[schedule_pb2.Schedule]:
        """Creates a schedule of an existing workflow; it fires from its next slot on."""
        request = schedule_pb2.CreateScheduleRequest(
            schedule=schedule, schedule_id=schedule_id, request_id=_request_id(request_id)
        )
        return MessageView(await self._client._call(self._stub.CreateSchedule, request))

    async def get(self, name: str) -> MessageView[schedule_pb2.Schedule]:
        """Returns the schedule `schedules/{id}` (or a bare id) with its next run times."""
        request = schedule_pb2.GetScheduleRequest(name=_name("schedules", name))
        return MessageView(await self._client._call(self._stub.GetSchedule, request))

    def list(
        self,
        *,
        workflow: str = "",
        state: schedule_pb2.Schedule.State = schedule_pb2.Schedule.STATE_UNSPECIFIED,
        page_size: int = 0,
    ) -> AsyncIterator[MessageView[schedule_pb2.Schedule]]:
        """Iterates over schedules in creation order, of `workflow` and in `state`."""
        request = schedule_pb2.ListSchedulesRequest(
            workflow=_name("workflows", workflow) if workflow else "",
            state=state,
            page_size=page_size,
        )
        return _views(self._client._pages(self._stub.ListSchedules, request, "schedules"))

    async def update(
        self,
        schedule: schedule_pb2.Schedule,
        *,
        update_mask: Sequence[str] = (),
        request_id: str | None = None,
    ) -> MessageView[schedule_pb2.Schedule]:
        """Replaces the fields in `update_mask` (all writable ones when empty)."""
        request = schedule_pb2.UpdateScheduleRequest(
            schedule=schedule,
            update_mask=field_mask_pb2.FieldMask(paths=update_mask),
            request_id=_request_id(request_id),
        )
        return MessageView(await self._client._call(self._stub.UpdateSchedule, request))

    async def delete(self, name: str, *, etag: str = "", request_id: str | None = None) -> None:
        """Deletes a schedule; the executions it started stay."""
        request = schedule_pb2.DeleteScheduleRequest(
            name=_name("schedules", name), etag=etag, request_id=_request_id(request_id)
        )
        await self._client._call(self._stub.DeleteSchedule, request)

    async def pause(
        self, name: str, *, reason: str = "", request_id: str | None = None
    ) -> MessageView[schedule_pb2.Schedule]:
        """Stops the schedule firing until `unpause`; missed slots are not caught up."""
        request = schedule_pb2.PauseScheduleRequest(
            name=_name("schedules", name), reason=reason, request_id=_request_id(request_id)
        )
        return MessageView(await self._client._call(self._stub.PauseSchedule, request))

    async def unpause(
        self, name: str, *, request_id: str | None = None
    ) -> MessageView[schedule_pb2.Schedule]:
        """Lets a paused schedule fire again from its next slot."""
        request = schedule_pb2.UnpauseScheduleRequest(
            name=_name("schedules", name), request_id=_request_id(request_id)
        )
        return MessageView(await self._client._call(self._stub.UnpauseSchedule, request))


def _struct(value: dict[str, Any] | struct_pb2.Struct | None) -> struct_pb2.Struct:
    if isinstance(value, struct_pb2.Struct):
        return value
    message = struct_pb2.Struct()
    if value:
        message.update(value)
    return message


def _duration(seconds: float | None) -> duration_pb2.Duration | None:
    if seconds is None:
        return None
    message = duration_pb2.Duration()
    message.FromNanoseconds(round(seconds * 1e9))
    return message


class Executions:
    """ExecutionService: run workflows and follow their executions."""

    def __init__(self, client: Client, stub: execution_pb2_grpc.ExecutionServiceAsyncStub) -> None:
        self._client = client
        self._stub = stub

    async def start(
        self,
        workflow: str,
        input: dict[str, Any] | struct_pb2.Struct | None = None,
        *,
        revision: int = 0,
        priority: int = 0,
        timeout: float | None = None,
        trace: bool = False,
        labels: dict[str, str] | None = None,
        execution_id: str = "",
        request_id: str | None = None,
    ) -> MessageView[execution_pb2.Execution]:
        """Starts an execution of `workflow` (latest revision unless `revision`).

        Args:
            workflow: `workflows/{id}` or a bare id.
            input: The execution input (a dict or a Struct).
            revision: A workflow revision to pin; 0 means the latest.
            priority: Higher leaves the queue first when the server is at its limit.
            timeout: Seconds the whole execution may take.
            trace: Record agent inputs in the event log.
            labels: Free-form labels.
            execution_id: Names it `executions/{execution_id}`; generated if empty.
            request_id: Idempotency key (generated if None, so retries start one execution).
        """
        request = execution_pb2.StartExecutionRequest(
            workflow=_name("workflows", workflow),
            workflow_revision=revision,
            input=_struct(input),
            priority=priority,
            timeout=_duration(timeout),
            trace=trace,
            labels=labels or {},
            execution_id=execution_id,
            request_id=_request_id(request_id),
        )
        return MessageView(await self._client._call(self._stub.StartExecution, request))

    async def get(self, name: str) -> MessageView[execution_pb2.Execution]:
        """Returns an execution with its per-step runs."""
        request = execution_pb2.GetExecutionRequest(name=_name("executions", name))
        return MessageView(await self._client._call(self._stub.GetExecution, request))

    async def wait(
        self, name: str, *, timeout: float | None = None
    ) -> MessageView[execution_pb2.Execution]:
        """Returns the execution once it has ended, or as it is after `timeout` seconds (by
        default the client's call timeout)."""
        within = timeout if timeout is not None else self._client._timeout
        request = execution_pb2.WaitExecutionRequest(
            name=_name("executions", name), timeout=_duration(within)
        )
        deadline = within + 5.0 if within is not None else None
        execution = await self._client._call(self._stub.WaitExecution, request, deadline=deadline)
        return MessageView(execution)

    def list(
        self,
        *,
        workflow: str = "",
        state: execution_pb2.Execution.State = execution_pb2.Execution.STATE_UNSPECIFIED,
        start_time: timestamp_pb2.Timestamp | None = None,
        end_time: timestamp_pb2.Timestamp | None = None,
        labels: Mapping[str, str] | None = None,
        waiting: bool = False,
        parent: str = "",
        page_size: int = 0,
    ) -> AsyncIterator[MessageView[execution_pb2.Execution]]:
        """Iterates over executions, newest first, filtered by workflow, state, creation
        time within [start_time, end_time), `labels` (all must match), `waiting` (a step
        waits for a signal or an approval now), and `parent` (the children of one)."""
        request = execution_pb2.ListExecutionsRequest(
            workflow=_name("workflows", workflow) if workflow else "",
            state=state,
            start_time=start_time,
            end_time=end_time,
            labels=dict(labels or {}),
            waiting=waiting,
            parent=_name("executions", parent) if parent else "",
            page_size=page_size,
        )
        return _views(self._client._pages(self._stub.ListExecutions, request, "executions"))

    async def cancel(
        self, name: str, *, reason: str = "", request_id: str | None = None
    ) -> MessageView[execution_pb2.Execution]:
        """Cancels an execution; FailedPreconditionError (EXECUTION_ALREADY_TERMINAL) if it
        has ended."""
        request = execution_pb2.CancelExecutionRequest(
            name=_name("executions", name), reason=reason, request_id=_request_id(request_id)
        )
        return MessageView(await self._client._call(self._stub.CancelExecution, request))

    async def retry(
        self, name: str, from_steps: Sequence[str] = (), *, request_id: str | None = None
    ) -> MessageView[execution_pb2.Execution]:
        """Runs a FAILED, CANCELLED or TIMED_OUT execution again from `from_steps` (default:
        the steps that did not finish) and everything downstream; upstream outputs are kept.
        The same execution goes on, with `run` + 1."""
        request = execution_pb2.RetryExecutionRequest(
            name=_name("executions", name),
            from_steps=list(from_steps),
            request_id=_request_id(request_id),
        )
        return MessageView(await self._client._call(self._stub.RetryExecution, request))

    async def pause(
        self, name: str, *, reason: str = "", request_id: str | None = None
    ) -> MessageView[execution_pb2.Execution]:
        """Pauses a RUNNING execution: no step starts until `resume` (running attempts
        finish). FailedPreconditionError (EXECUTION_NOT_RUNNING) otherwise."""
        request = execution_pb2.PauseExecutionRequest(
            name=_name("executions", name), reason=reason, request_id=_request_id(request_id)
        )
        return MessageView(await self._client._call(self._stub.PauseExecution, request))

    async def resume(
        self, name: str, *, request_id: str | None = None
    ) -> MessageView[execution_pb2.Execution]:
        """Resumes a PAUSED execution. FailedPreconditionError (EXECUTION_NOT_PAUSED)
        otherwise."""
        request = execution_pb2.ResumeExecutionRequest(
            name=_name("executions", name), request_id=_request_id(request_id)
        )
        return MessageView(await self._client._call(self._stub.ResumeExecution, request))

    async def approve(
        self,
        name: str,
        step: str,
        *,
        reject: bool = False,
        reason: str = "",
        request_id: str | None = None,
    ) -> MessageView[execution_pb2.Execution]:
        """Approves (or, with `reject`, rejects) the approval step `step`, which must wait
        for a decision; the caller's identity and role are recorded. PermissionDeniedError
        when the caller's role may not decide it; FailedPreconditionError (STEP_NOT_WAITING)
        when it does not wait."""
        request = execution_pb2.ApproveStepRequest(
            name=_name("executions", name),
            step=step,
            reject=reject,
            reason=reason,
            request_id=_request_id(request_id),
        )
        return MessageView(await self._client._call(self._stub.ApproveStep, request))

    async def signal(
        self,
        name: str,
        signal: str,
        payload: dict[str, Any] | struct_pb2.Struct | None = None,
        *,
        request_id: str | None = None,
    ) -> MessageView[execution_pb2.Execution]:
        """Delivers `signal` with `payload` to an execution that has not ended: a step
        waiting for it takes it, else it waits for one. Safe to retry (request_id)."""
        request = execution_pb2.SignalExecutionRequest(
            name=_name("executions", name),
            signal=signal,
            payload=_struct(payload),
            request_id=_request_id(request_id),
        )
        return MessageView(await self._client._call(self._stub.SignalExecution, request))

    async def delete(self, name: str, *, request_id: str | None = None) -> None:
        """Deletes an ended execution with its event log; FailedPreconditionError
        (EXECUTION_NOT_TERMINAL) while it runs."""
        request = execution_pb2.DeleteExecutionRequest(
            name=_name("executions", name), request_id=_request_id(request_id)
        )
        await self._client._call(self._stub.DeleteExecution, request)

    async def stream(
        self,
        name: str,
        *,
        after_sequence: int = 0,
        event_types: Sequence[event_pb2.EventType] = (),
        reconnect_for: float = 60.0,
    ) -> AsyncIterator[MessageView[event_pb2.ExecutionEvent]]:
        """Yields the execution's events after `after_sequence`, stored ones then live ones,
        and ends after the terminal event.

        A dropped connection (UNAVAILABLE, or CANCELLED by a server shutting down) is
        reopened from the last sequence received, so nothing is missed or repeated; it gives
        up when no event has arrived for `reconnect_for` seconds of failed reconnects.
        """
        last = after_sequence
        failing_since: float | None = None
        delay = _RETRY_DELAY
        while True:
            request = execution_pb2.StreamExecutionEventsRequest(
                execution=_name("executions", name), after_sequence=last, event_types=event_types
            )
            call = self._stub.StreamExecutionEvents(
                request, metadata=self._client._metadata + trace_metadata(), timeout=None
            )
            try:
                async for event in call:
                    failing_since, delay = None, _RETRY_DELAY
                    last = event.sequence
                    yield MessageView(event)
                return  # the server ended the stream after the terminal event
            except grpc.aio.AioRpcError as exc:
                now = asyncio.get_running_loop().time()
                failing_since = failing_since if failing_since is not None else now
                if exc.code() not in _RETRYABLE or now - failing_since > reconnect_for:
                    raise from_rpc_error(exc) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                call.cancel()

    def events(
        self,
        name: str,
        *,
        event_types: Sequence[event_pb2.EventType] = (),
        page_size: int = 0,
    ) -> AsyncIterator[MessageView[event_pb2.ExecutionEvent]]:
        """Iterates over the execution's stored event log (with agent log lines), in order."""
        request = execution_pb2.ListExecutionEventsRequest(
            execution=_name("executions", name), event_types=event_types, page_size=page_size
        )
        return _views(self._client._pages(self._stub.ListExecutionEvents, request, "events"))

    def items(
        self, name: str, step: str, *, page_size: int = 0
    ) -> AsyncIterator[MessageView[execution_pb2.StepItem]]:
        """Iterates over the ended items of a `for_each` step, by index."""
        request = execution_pb2.ListStepItemsRequest(
            execution=_name("executions", name), step=step, page_size=page_size
        )
        return _views(self._client._pages(self._stub.ListStepItems, request, "items"))


async def _views(messages: AsyncIterator[M]) -> AsyncIterator[MessageView[M]]:
    async for message in messages:
        yield MessageView(message)
