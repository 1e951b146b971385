"""The blocking client: the async client run on a private event loop in a background thread,
so both share one implementation."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc
from google.protobuf import struct_pb2, timestamp_pb2

from baton._client import (
    DEFAULT_TIMEOUT,
    Agents,
    Client,
    Executions,
    Handoffs,
    Schedules,
    Tools,
    Workflows,
)
from baton._views import MessageView
from baton.v1 import (
    agent_pb2,
    event_pb2,
    execution_pb2,
    handoff_pb2,
    monitoring_pb2,
    schedule_pb2,
    tool_pb2,
    workflow_pb2,
)

T = TypeVar("T")


class _Loop:
    """An event loop running in a daemon thread; `run` blocks on a coroutine there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="baton-sync-client", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        iterator = aiter(items)
        while True:
            try:
                yield self.run(_next(iterator))
            except StopAsyncIteration:
                return

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


async def _next(iterator: AsyncIterator[T]) -> T:
    return await anext(iterator)


class SyncClient:
    """Blocking client with the same methods as `Client`: `with SyncClient.connect(t) as c:`."""

    def __init__(self, loop: _Loop, client: Client) -> None:
        self._loop = loop
        self._client = client
        self.agents = SyncAgents(loop, client.agents)
        self.workflows = SyncWorkflows(loop, client.workflows)
        self.handoffs = SyncHandoffs(loop, client.handoffs)
        self.schedules = SyncSchedules(loop, client.schedules)
        self.tools = SyncTools(loop, client.tools)
        self.executions = SyncExecutions(loop, client.executions)

    @classmethod
    def connect(
        cls,
        target: str,
        *,
        token: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> SyncClient:
        """Opens a channel to `target`; arguments as for `Client.connect`."""
        loop = _Loop()

        async def make() -> Client:
            return Client.connect(
                target, token=token, timeout=timeout, credentials=credentials, options=options
            )

        return cls(loop, loop.run(make()))

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel and stops the background loop."""
        self._loop.run(self._client.close())
        self._loop.stop()

    def system_health(self) -> monitoring_pb2.SystemHealth:
        """The health of the server and its components."""
        return self._loop.run(self._client.system_health())

    def workflow_metrics(
        self,
        workflow: str,
        *,
        start_time: timestamp_pb2.Timestamp | None = None,
        end_time: timestamp_pb2.Timestamp | None = None,
    ) -> monitoring_pb2.WorkflowMetrics:
        """See `Client.workflow_metrics`."""
        return self._loop.run(
            self._client.workflow_metrics(workflow, start_time=start_time, end_time=end_time)
        )

    def agent_performance(
        self,
        agent: str,
        *,
        start_time: timestamp_pb2.Timestamp | None = None,
        end_time: timestamp_pb2.Timestamp | None = None,
    ) -> monitoring_pb2.AgentPerformance:
        """See `Client.agent_performance`."""
        return self._loop.run(
            self._client.agent_performance(agent, start_time=start_time, end_time=end_time)
        )


class SyncAgents:
    """Blocking AgentService; see `baton.Agents`."""

    def __init__(self, loop: _Loop, agents: Agents) -> None:
        self._loop = loop
        self._async = agents

    def create(
        self, agent: agent_pb2.Agent, *, agent_id: str = "", request_id: str | None = None
    ) -> agent_pb2.Agent:
        """See `Agents.create`."""
        return self._loop.run(self._async.create(agent, agent_id=agent_id, request_id=request_id))

    def get(self, name: str) -> agent_pb2.Agent:
        """See `Agents.get`."""
        return self._loop.run(self._async.get(name))

    def list(
        self,
        *,
        capabilities: Sequence[str] = (),
        state: agent_pb2.Agent.State = agent_pb2.Agent.STATE_UNSPECIFIED,
        page_size: int = 0,
    ) -> Iterator[agent_pb2.Agent]:
        """See `Agents.list`."""
        return self._loop.iterate(
            self._async.list(capabilities=capabilities, state=state, page_size=page_size)
        )

    def update(
        self,
        agent: agent_pb2.Agent,
        *,
        update_mask: Sequence[str] = (),
        request_id: str | None = None,
    ) -> agent_pb2.Agent:
        """See `Agents.update`."""
        return self._loop.run(
            self._async.update(agent, update_mask=update_mask, request_id=request_id)
        )

    def delete(
        self, name: str, *, etag: str = "", force: bool = False, request_id: str | None = None
    ) -> None:
        """See `Agents.delete`."""
        self._loop.run(self._async.delete(name, etag=etag, force=force, request_id=request_id))


class SyncWorkflows:
    """Blocking WorkflowService; see `baton.Workflows`."""

    def __init__(self, loop: _Loop, workflows: Workflows) -> None:
        self._loop = loop
        self._async = workflows

    def create(
        self,
        workflow: workflow_pb2.Workflow,
        *,
        workflow_id: str = "",
        request_id: str | None = None,
    ) -> workflow_pb2.Workflow:
        """See `Workflows.create`."""
        return self._loop.run(
            self._async.create(workflow, workflow_id=workflow_id, request_id=request_id)
        )

    def get(self, name: str, *, revision: int = 0) -> workflow_pb2.Workflow:
        """See `Workflows.get`."""
        return self._loop.run(self._async.get(name, revision=revision))

    def list(
        self,
        *,
        tags: Sequence[str] = (),
        state: workflow_pb2.Workflow.State = workflow_pb2.Workflow.STATE_UNSPECIFIED,
        page_size: int = 0,
    ) -> Iterator[workflow_pb2.Workflow]:
        """See `Workflows.list`."""
        return self._loop.iterate(self._async.list(tags=tags, state=state, page_size=page_size))

    def update(
        self,
        workflow: workflow_pb2.Workflow,
        *,
        update_mask: Sequence[str] = (),
        request_id: str | None = None,
    ) -> workflow_pb2.Workflow:
        """See `Workflows.update`."""
        return self._loop.run(
            self._async.update(workflow, update_mask=update_mask, request_id=request_id)
        )

    def delete(self, name: str, *, etag: str = "", request_id: str | None = None) -> None:
        """See `Workflows.delete`."""
        self._loop.run(self._async.delete(name, etag=etag, request_id=request_id))

    def validate(self, workflow: workflow_pb2.Workflow) -> workflow_pb2.ValidateWorkflowResponse:
        """See `Workflows.validate`."""
        return self._loop.run(self._async.validate(workflow))


class SyncTools:
    """Blocking ToolService; see `baton.Tools`."""

    def __init__(self, loop: _Loop, tools: Tools) -> None:
        self._loop = loop
        self._async = tools

    def create(
        self, tool: tool_pb2.Tool, *, tool_id: str = "", request_id: str | None = None
    ) -> tool_pb2.Tool:
        """See `Tools.create`."""
        return self._loop.run(self._async.create(tool, tool_id=tool_id, request_id=request_id))

    def get(self, name: str) -> tool_pb2.Tool:
        """See `Tools.get`."""
        return self._loop.run(self._async.get(name))

    def list(self, *, page_size: int = 0) -> Iterator[tool_pb2.Tool]:
        """See `Tools.list`."""
        return self._loop.iterate(self._async.list(page_size=page_size))

    def update(
        self,
        tool: tool_pb2.Tool,
        *,
        update_mask: Sequence[str] = (),
        request_id: str | None = None,
    ) -> tool_pb2.Tool:
        """See `Tools.update`."""
        return self._loop.run(
            self._async.update(tool, update_mask=update_mask, request_id=request_id)
        )

    def delete(self, name: str, *, etag: str = "", request_id: str | None = None) -> None:
        """See `Tools.delete`."""
        self._loop.run(self._async.delete(name, etag=etag, request_id=request_id))


class SyncSchedules:
    """Blocking ScheduleService; see `baton.Schedules`."""

    def __init__(self, loop: _Loop, schedules: Schedules) -> None:
        self._loop = loop
        self._async = schedules

    def create(
        self,
        schedule: schedule_pb2.Schedule,
        *,
        schedule_id: str = "",
        request_id: str | None = None,
    ) -> MessageView[schedule_pb2.Schedule]:
        """See `Schedules.create`."""
        return self._loop.run(
            self._async.create(schedule, schedule_id=schedule_id, request_id=request_id)
        )

    def get(self, name: str) -> MessageView[schedule_pb2.Schedule]:
        """See `Schedules.get`."""
        return self._loop.run(self._async.get(name))

    def list(
        self,
        *,
        workflow: str = "",
        state: schedule_pb2.Schedule.State = schedule_pb2.Schedule.STATE_UNSPECIFIED,
        page_size: int = 0,
    ) -> Iterator[MessageView[schedule_pb2.Schedule]]:
        """See `Schedules.list`."""
        return self._loop.iterate(
            self._async.list(workflow=workflow, state=state, page_size=page_size)
        )

    def update(
        self,
        schedule: schedule_pb2.Schedule,
        *,
        update_mask: Sequence[str] = (),
        request_id: str | None = None,
    ) -> MessageView[schedule_pb2.Schedule]:
        """See `Schedules.update`."""
        return self._loop.run(
            self._async.update(schedule, update_mask=update_mask, request_id=request_id)
        )

    def delete(self, name: str, *, etag: str = "", request_id: str | None = None) -> None:
        """See `Schedules.delete`."""
        self._loop.run(self._async.delete(name, etag=etag, request_id=request_id))

    def pause(
        self, name: str, *, reason: str = "", request_id: str | None = None
    ) -> MessageView[schedule_pb2.Schedule]:
        """See `Schedules.pause`."""
        return self._loop.run(self._async.pause(name, reason=reason, request_id=request_id))

    def unpause(
        self, name: str, *, request_id: str | None = None
    ) -> MessageView[schedule_pb2.Schedule]:
        """See `Schedules.unpause`."""
        return self._loop.run(self._async.unpause(name, request_id=request_id))


class SyncHandoffs:
    """Blocking HandoffService; see `baton.Handoffs`."""

    def __init__(self, loop: _Loop, handoffs: Handoffs) -> None:
        self._loop = loop
        self._async = handoffs

    def create(
        self, handoff: handoff_pb2.Handoff, *, handoff_id: str = "", request_id: str | None = None
    ) -> handoff_pb2.Handoff:
        """See `Handoffs.create`."""
        return self._loop.run(
            self._async.create(handoff, handoff_id=handoff_id, request_id=request_id)
        )

    def get(self, name: str) -> handoff_pb2.Handoff:
        """See `Handoffs.get`."""
        return self._loop.run(self._async.get(name))

    def list(
        self,
        *,
        source_agent: str = "",
        target_agent: str = "",
        type: handoff_pb2.Handoff.Type = handoff_pb2.Handoff.TYPE_UNSPECIFIED,
        page_size: int = 0,
    ) -> Iterator[handoff_pb2.Handoff]:
        """See `Handoffs.list`."""
        return self._loop.iterate(
            self._async.list(
                source_agent=source_agent,
                target_agent=target_agent,
                type=type,
                page_size=page_size,
            )
        )

    def update(
        self,
        handoff: handoff_pb2.Handoff,
        *,
        update_mask: Sequence[str] = (),
        request_id: str | None = None,
    ) -> handoff_pb2.Handoff:
        """See `Handoffs.update`."""
        return self._loop.run(
            self._async.update(handoff, update_mask=update_mask, request_id=request_id)
        )

    def delete(self, name: str, *, etag: str = "", request_id: str | None = None) -> None:
        """See `Handoffs.delete`."""
        self._loop.run(self._async.delete(name, etag=etag, request_id=request_id))


class SyncExecutions:
    """Blocking ExecutionService; see `baton.Executions`."""

    def __init__(self, loop: _Loop, executions: Executions) -> None:
        self._loop = loop
        self._async = executions

    def start(
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
        """See `Executions.start`."""
        return self._loop.run(
            self._async.start(
                workflow,
                input,
                revision=revision,
                priority=priority,
                timeout=timeout,
                trace=trace,
                labels=labels,
                execution_id=execution_id,
                request_id=request_id,
            )
        )

    def get(self, name: str) -> MessageView[execution_pb2.Execution]:
        """See `Executions.get`."""
        return self._loop.run(self._async.get(name))

    def wait(
        self, name: str, *, timeout: float | None = None
    ) -> MessageView[execution_pb2.Execution]:
        """See `Executions.wait`."""
        return self._loop.run(self._async.wait(name, timeout=timeout))

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
    ) -> Iterator[MessageView[execution_pb2.Execution]]:
        """See `Executions.list`."""
        return self._loop.iterate(
            self._async.list(
                workflow=workflow,
                state=state,
                start_time=start_time,
                end_time=end_time,
                labels=labels,
                waiting=waiting,
                parent=parent,
                page_size=page_size,
            )
        )

    def cancel(
        self, name: str, *, reason: str = "", request_id: str | None = None
    ) -> MessageView[execution_pb2.Execution]:
        """See `Executions.cancel`."""
        return self._loop.run(self._async.cancel(name, reason=reason, request_id=request_id))

    def retry(
        self, name: str, from_steps: Sequence[str] = (), *, request_id: str | None = None
    ) -> MessageView[execution_pb2.Execution]:
        """See `Executions.retry`."""
        return self._loop.run(self._async.retry(name, from_steps, request_id=request_id))

    def pause(
        self, name: str, *, reason: str = "", request_id: str | None = None
    ) -> MessageView[execution_pb2.Execution]:
        """See `Executions.pause`."""
        return self._loop.run(self._async.pause(name, reason=reason, request_id=request_id))

    def resume(
        self, name: str, *, request_id: str | None = None
    ) -> MessageView[execution_pb2.Execution]:
        """See `Executions.resume`."""
        return self._loop.run(self._async.resume(name, request_id=request_id))

    def approve(
        self,
        name: str,
        step: str,
        *,
        reject: bool = False,
        reason: str = "",
        request_id: str | None = None,
    ) -> MessageView[execution_pb2.Execution]:
        """See `Executions.approve`."""
        return self._loop.run(
            self._async.approve(name, step, reject=reject, reason=reason, request_id=request_id)
        )

    def signal(
        self,
        name: str,
        signal: str,
        payload: dict[str, Any] | None = None,
        *,
        request_id: str | None = None,
    ) -> MessageView[execution_pb2.Execution]:
        """See `Executions.signal`."""
        return self._loop.run(self._async.signal(name, signal, payload, request_id=request_id))

    def delete(self, name: str, *, request_id: str | None = None) -> None:
        """See `Executions.delete`."""
        self._loop.run(self._async.delete(name, request_id=request_id))

    def stream(
        self,
        name: str,
        *,
        after_sequence: int = 0,
        event_types: Sequence[event_pb2.EventType] = (),
        reconnect_for: float = 60.0,
    ) -> Iterator[MessageView[event_pb2.ExecutionEvent]]:
        """See `Executions.stream`."""
        return self._loop.iterate(
            self._async.stream(
                name,
                after_sequence=after_sequence,
                event_types=event_types,
                reconnect_for=reconnect_for,
            )
        )

    def events(
        self,
        name: str,
        *,
        event_types: Sequence[event_pb2.EventType] = (),
        page_size: int = 0,
    ) -> Iterator[MessageView[event_pb2.ExecutionEvent]]:
        """See `Executions.events`."""
        return self._loop.iterate(
            self._async.events(name, event_types=event_types, page_size=page_size)
        )

    def items(
        self, name: str, step: str, *, page_size: int = 0
    ) -> Iterator[MessageView[execution_pb2.StepItem]]:
        """See `Executions.items`."""
        return self._loop.iterate(self._async.items(name, step, page_size=page_size))
