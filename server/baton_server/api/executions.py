"""ExecutionService: translates execution requests to the engine and executions and events
back to protos."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import duration_pb2, empty_pb2, timestamp_pb2

from baton.v1 import common_pb2, event_pb2, execution_pb2, execution_pb2_grpc
from baton_server.api.auth import Callers
from baton_server.api.convert import (
    dict_to_struct,
    duration,
    optional_struct,
    parse_name,
    seconds_of,
    struct_to_dict,
    time_of,
    timestamp,
    usage_to_proto,
)
from baton_server.api.enums import enum_to_domain
from baton_server.api.forwarding import OwnerForwarder
from baton_server.api.requests import PageTokens, request_info
from baton_server.api.status import translate_errors
from baton_server.domain import events as ev
from baton_server.domain.events import payload_of
from baton_server.domain.executions import (
    PARENT_LABEL,
    Event,
    EventType,
    Execution,
    ExecutionState,
    Failure,
    ItemResult,
    StepRun,
    StepState,
    Usage,
)
from baton_server.domain.ids import STEP_ID
from baton_server.errors import BatonError, invalid_field, raise_if_invalid
from baton_server.executions.decisions import StepDecided
from baton_server.executions.service import Executions, StartOptions
from baton_server.language.validation import SIGNAL_NAME, check_labels
from baton_server.limits import MAX_LIST_ITEMS, MAX_REASON
from baton_server.storage.executions import ExecutionFilter

Context = grpc.aio.ServicerContext[Any, Any]
_DEADLINE_MARGIN = 0.05


def failure_to_proto(failure: Failure | None) -> common_pb2.Failure | None:
    """A domain failure as a Failure message (None stays None)."""
    if failure is None:
        return None
    message = common_pb2.Failure(
        type=failure.type,
        message=failure.message,
        step_id=failure.step_id,
        non_retryable=failure.non_retryable,
        cause=failure_to_proto(failure.cause),
    )
    if failure.details:
        message.details.CopyFrom(dict_to_struct(failure.details))
    return message


def _duration(seconds: float | None) -> duration_pb2.Duration:
    return duration(seconds or 0.0) or duration_pb2.Duration()


# States as their enum numbers (setting an enum field by number is quicker than by name).
_STEP_STATES: dict[StepState, Any] = {
    state: execution_pb2.StepRun.State.Value(f"STATE_{state.value}") for state in StepState
}
_EVENT_TYPES: dict[EventType, Any] = {
    kind: event_pb2.EventType.Value(f"EVENT_TYPE_{kind.value}") for kind in EventType
}
_EXECUTION_STATES: dict[ExecutionState, Any] = {
    state: execution_pb2.Execution.State.Value(f"STATE_{state.value}") for state in ExecutionState
}


def _set_time(field: timestamp_pb2.Timestamp, seconds: float) -> None:
    """Sets a Timestamp field to epoch `seconds` (callers skip 0: the field stays unset,
    and is not even touched)."""
    field.seconds, field.nanos = divmod(round(seconds * 1e9), 1_000_000_000)


def _set_span(message: Any, start: float, end: float) -> None:
    """Sets the `start_time` and `end_time` of an Execution, StepRun or StepAttempt message,
    each only when it is set."""
    if start:
        _set_time(message.start_time, start)
    if end:
        _set_time(message.end_time, end)


def step_to_proto(
    run: StepRun, *, detailed: bool = True, into: execution_pb2.StepRun | None = None
) -> execution_pb2.StepRun:
    """A step run as a StepRun message (filled `into` an empty one, e.g. one just added to
    an execution's steps, instead of a copy); `detailed` adds attempts and handoffs. Only
    what is set is filled in: this runs for every step of every execution a call returns."""
    message = execution_pb2.StepRun() if into is None else into
    message.step_id = run.step_id
    message.state = _STEP_STATES[run.state]
    message.attempt = run.attempt
    if run.agent:
        message.agent = f"agents/{run.agent}"
    if run.schedule_time:
        _set_time(message.schedule_time, run.schedule_time)
    _set_span(message, run.start_time, run.end_time)
    if run.wake_time:
        _set_time(message.wake_time, run.wake_time)
    if run.error is not None:
        message.error.CopyFrom(_error(run.error))
    if run.iteration:
        message.iteration = run.iteration
    if run.child:
        message.child_execution = f"executions/{run.child}"
    if run.items_total:
        message.items_total = run.items_total
        message.items_succeeded = run.items_succeeded
        message.items_failed = run.items_failed
        message.items_running = len(run.items_running)
    used = bool(run.items_usage)
    if run.output is not None:
        output = run.output
        message.output.SetInParent()  # present even when empty
        if output:
            message.output.update(output)
    if detailed:
        if run.past_outputs:
            message.iteration_outputs.extend(dict_to_struct(o) for o in run.past_outputs)
        for a in run.attempts:
            attempt = message.attempts.add(attempt=a.attempt, fallback=a.fallback)
            if a.agent:
                attempt.agent = f"agents/{a.agent}"
            _set_span(attempt, a.start_time, a.end_time)
            if a.error is not None:
                attempt.error.CopyFrom(_error(a.error))
            if a.usage:
                used = True
                attempt.usage.CopyFrom(usage_to_proto(Usage.from_doc(a.usage)))
    else:
        used = used or any(a.usage for a in run.attempts)
    if used:
        message.usage.CopyFrom(usage_to_proto(run.usage))
    if detailed and run.handoffs:
        message.handoffs.extend(
            execution_pb2.HandoffRecord(
                handoff=h.handoff,
                source_agent=f"agents/{h.source_agent}",
                target_agent=f"agents/{h.target_agent}",
                type=f"TYPE_{h.type}" if h.type else "TYPE_UNSPECIFIED",
                requested_by_agent=h.requested_by_agent,
                time=timestamp(h.time),
            )
            for h in map(ev.HandoffRecord.from_doc, run.handoffs)
        )
    return message


def execution_to_proto(execution: Execution, *, detailed: bool = True) -> execution_pb2.Execution:
    """An execution as an Execution message (what is unset is not touched: this runs for
    every execution a call returns)."""
    message = execution_pb2.Execution(
        name=f"executions/{execution.id}",
        workflow=f"workflows/{execution.workflow_id}",
        workflow_revision=execution.workflow_revision,
        state=_EXECUTION_STATES[execution.state],
        priority=execution.priority,
        trace=execution.trace,
        last_event_sequence=execution.last_sequence,
        run=execution.run,
    )
    message.input.SetInParent()  # present even when empty
    if execution.input:
        message.input.update(execution.input)
    error = failure_to_proto(execution.error)
    if error is not None:
        message.error.CopyFrom(error)
    if execution.timeout is not None:
        message.timeout.FromNanoseconds(round(execution.timeout * 1e9))
    if execution.labels:
        message.labels.update(execution.labels)
    if execution.parent:
        message.parent = f"executions/{execution.parent}"
    for run in execution.steps:
        step_to_proto(run, detailed=detailed, into=message.steps.add())
    if execution.create_time:
        _set_time(message.create_time, execution.create_time)
    _set_span(message, execution.start_time, execution.end_time)
    if execution.output is not None:
        message.output.SetInParent()
        if execution.output:
            message.output.update(execution.output)
    return message


def _check_step_id(value: str, field: str) -> None:
    if not STEP_ID.fullmatch(value):
        raise invalid_field(field, "must be a step id: 1-63 of [A-Za-z0-9_-], from a letter")


def _item_to_proto(item: ItemResult) -> execution_pb2.StepItem:
    message = execution_pb2.StepItem(
        index=item.index,
        state=f"STATE_{item.state.value}",
        attempt=item.attempt,
        error=failure_to_proto(item.error),
    )
    if item.output is not None:
        message.output.CopyFrom(dict_to_struct(item.output))
    return message


def _agent(agent_id: str) -> str:
    return f"agents/{agent_id}" if agent_id else ""


def _tool_name(name: str) -> str:
    """A tool as events name it: `tools/{tool}`, or the `transfer_to_` name as it is."""
    return name if name.startswith("transfer_to_") else f"tools/{name}"


def _error(failure: Failure | None) -> common_pb2.Failure:
    return failure_to_proto(failure) or common_pb2.Failure()


def event_to_proto(event: Event) -> event_pb2.ExecutionEvent:
    """An event of the log as an ExecutionEvent message."""
    message = event_pb2.ExecutionEvent(
        execution=f"executions/{event.execution_id}",
        sequence=event.sequence,
        type=_EVENT_TYPES[event.type],
        step_id=event.step_id,
        attempt=event.attempt,
        iteration=event.iteration,
    )
    if event.time:
        _set_time(message.time, event.time)
    p = payload_of(event)
    match p:
        case ev.ExecutionQueued():
            message.execution_queued.CopyFrom(
                event_pb2.ExecutionQueued(
                    workflow_revision=p.workflow_revision, priority=p.priority
                )
            )
        case ev.ExecutionStarted():
            message.execution_started.SetInParent()
        case ev.ExecutionSucceeded():
            message.execution_succeeded.output.CopyFrom(dict_to_struct(p.output))
        case ev.ExecutionFailed():
            message.execution_failed.error.CopyFrom(_error(p.error))
        case ev.ExecutionCancelled():
            message.execution_cancelled.reason = p.reason
        case ev.ExecutionTimedOut():
            message.execution_timed_out.timeout.CopyFrom(_duration(p.timeout))
        case ev.StepScheduled():
            message.step_scheduled.agent = _agent(p.agent)
        case ev.StepStarted():
            message.step_started.agent = _agent(p.agent)
            message.step_started.idempotency_key = p.idempotency_key
            if p.input is not None:
                message.step_started.input.CopyFrom(dict_to_struct(p.input))
        case ev.StepSucceeded():
            message.step_succeeded.output.CopyFrom(dict_to_struct(p.output))
        case ev.StepFailed():
            message.step_failed.error.CopyFrom(_error(p.error))
        case ev.StepRetrying():
            message.step_retrying.CopyFrom(
                event_pb2.StepRetrying(
                    error=_error(p.error), delay=duration(p.delay), next_attempt=p.next_attempt
                )
            )
        case ev.StepSkipped():
            message.step_skipped.reason = p.reason
        case ev.StepTimedOut():
            message.step_timed_out.timeout.CopyFrom(_duration(p.timeout))
        case ev.FallbackActivated():
            message.fallback_activated.CopyFrom(
                event_pb2.FallbackActivated(
                    from_agent=_agent(p.from_agent),
                    to_agent=_agent(p.to_agent),
                    error=_error(p.error),
                )
            )
        case ev.HandoffRecord():
            message.handoff.CopyFrom(
                event_pb2.HandoffOccurred(
                    handoff=p.handoff,
                    source_agent=_agent(p.source_agent),
                    target_agent=_agent(p.target_agent),
                    requested_by_agent=p.requested_by_agent,
                )
            )
        case ev.OutputDelta():
            message.step_output_delta.text = p.text
            if p.data is not None:
                message.step_output_delta.data.CopyFrom(dict_to_struct(p.data))
        case ev.Log():
            message.log.CopyFrom(
                common_pb2.LogEntry(
                    severity=f"LOG_SEVERITY_{p.severity}",
                    message=p.message,
                    fields=dict_to_struct(p.fields),
                )
            )
        case ev.ExecutionPaused():
            message.execution_paused.reason = p.reason
        case ev.ExecutionRetried():
            message.execution_retried.CopyFrom(
                event_pb2.ExecutionRetried(reset_steps=p.reset_steps or [], run=p.run)
            )
        case ev.ApprovalDecided():
            message.approval_decided.CopyFrom(
                event_pb2.ApprovalDecided(
                    approved=p.approved, decided_by=p.decided_by, role=p.role, reason=p.reason
                )
            )
        case ev.LoopIterationStarted():
            message.loop_iteration_started.CopyFrom(
                event_pb2.LoopIterationStarted(
                    iteration=p.iteration, reset_steps=p.reset_steps or []
                )
            )
        case ev.AgentTurn():
            message.agent_turn.CopyFrom(
                event_pb2.AgentTurn(
                    turn=p.turn,
                    content=p.content,
                    tool_calls=[
                        event_pb2.ToolCall(
                            id=c["id"], tool=_tool_name(c["name"]), arguments=c["arguments"]
                        )
                        for c in p.tool_calls or ()
                    ],
                    usage=usage_to_proto(Usage.from_doc(p.usage)),
                    finish_reason=p.finish_reason,
                    item=p.item,
                    rejected=p.rejected,
                    agent=_agent(p.agent),
                )
            )
        case ev.ToolCallStarted():
            message.tool_call_started.CopyFrom(
                event_pb2.ToolCallStarted(
                    call_id=p.call_id,
                    tool=_tool_name(p.tool),
                    arguments=dict_to_struct(p.arguments),
                    try_number=p.try_number,
                    turn=p.turn,
                    item=p.item,
                )
            )
        case ev.ToolCallSucceeded():
            message.tool_call_succeeded.CopyFrom(
                event_pb2.ToolCallSucceeded(
                    call_id=p.call_id,
                    tool=_tool_name(p.tool),
                    result=dict_to_struct(p.result),
                    try_number=p.try_number,
                    turn=p.turn,
                    item=p.item,
                )
            )
        case ev.ToolCallFailed():
            message.tool_call_failed.CopyFrom(
                event_pb2.ToolCallFailed(
                    call_id=p.call_id,
                    tool=_tool_name(p.tool),
                    error=_error(p.error),
                    try_number=p.try_number,
                    will_retry=p.will_retry,
                    turn=p.turn,
                    item=p.item,
                )
            )
        case ev.ExecutionResumed():
            message.execution_resumed.SetInParent()
        case ev.SignalReceived():
            message.signal_received.CopyFrom(
                event_pb2.SignalReceived(
                    signal=p.signal, payload=dict_to_struct(p.payload), taken_by=p.taken_by
                )
            )
        case ev.StepInterrupted():
            message.step_interrupted.CopyFrom(
                event_pb2.StepInterrupted(agent=p.agent, reason=p.reason)
            )
    return message


def _event_types(values: Any, field: str) -> list[EventType]:
    if len(values) > MAX_LIST_ITEMS:
        raise invalid_field(field, f"name at most {MAX_LIST_ITEMS} event types", "TOO_MANY")
    types = []
    for i, value in enumerate(values):
        member = enum_to_domain(value, event_pb2.EventType, EventType, f"{field}[{i}]")
        if member is None:
            raise invalid_field(f"{field}[{i}]", "EVENT_TYPE_UNSPECIFIED is not an event type")
        types.append(member)
    return types


@translate_errors
class ExecutionServicer(execution_pb2_grpc.ExecutionServiceServicer):
    """baton.v1.ExecutionService."""

    def __init__(
        self,
        executions: Executions,
        tokens: PageTokens,
        callers: Callers,
        forwarder: OwnerForwarder,
    ) -> None:
        self._executions = executions
        self._tokens = tokens
        self._callers = callers
        self._forwarder = forwarder

    async def _here_or_owner(
        self,
        method: str,
        request: Any,
        context: Context,
        command: Callable[[], Awaitable[Execution]],
    ) -> execution_pb2.Execution:
        """Carries out a command on a run in memory here, or passes the call on to the
        process that runs the execution."""
        try:
            return execution_to_proto(await command())
        except BatonError as exc:
            if exc.reason != "ENGINE_ELSEWHERE" or "owner" not in exc.metadata:
                raise
            owner = exc.metadata["owner"]
        answer: execution_pb2.Execution = await self._forwarder.unary(
            execution_pb2_grpc.ExecutionServiceStub, method, request, context, owner
        )
        return answer

    async def StartExecution(
        self, request: execution_pb2.StartExecutionRequest, context: Context
    ) -> execution_pb2.Execution:
        info = request_info("StartExecution", request)
        workflow_id = parse_name(request.workflow, "workflows", "workflow")
        if request.workflow_revision < 0:
            raise invalid_field("workflow_revision", "must be 0 (latest) or a revision number")
        if request.execution_id:
            parse_name(f"executions/{request.execution_id}", "executions", "execution_id")
        raise_if_invalid(check_labels("labels", dict(request.labels)))
        options = StartOptions(
            priority=request.priority,
            timeout=seconds_of(request, "timeout"),
            trace=request.trace,
            labels=dict(request.labels),
            execution_id=request.execution_id,
        )
        execution = await self._executions.start(
            workflow_id,
            request.workflow_revision,
            struct_to_dict(request.input, "input"),
            options,
            info,
        )
        return execution_to_proto(execution)

    async def GetExecution(
        self, request: execution_pb2.GetExecutionRequest, context: Context
    ) -> execution_pb2.Execution:
        execution_id = parse_name(request.name, "executions", "name")
        return execution_to_proto(await self._executions.get(execution_id))

    async def WaitExecution(
        self, request: execution_pb2.WaitExecutionRequest, context: Context
    ) -> execution_pb2.Execution:
        execution_id = parse_name(request.name, "executions", "name")
        within = seconds_of(request, "timeout")
        remaining = context.time_remaining()
        if remaining is not None:
            # Answer just before the caller's deadline, with the state as it is then.
            budget = max(remaining - _DEADLINE_MARGIN, 0.0)
            within = budget if within is None else min(within, budget)
        return execution_to_proto(await self._executions.wait(execution_id, within))

    async def ListExecutions(
        self, request: execution_pb2.ListExecutionsRequest, context: Context
    ) -> execution_pb2.ListExecutionsResponse:
        workflow_id = (
            parse_name(request.workflow, "workflows", "workflow") if request.workflow else ""
        )
        state = ""
        if request.state:
            if request.state not in execution_pb2.Execution.State.values():
                raise invalid_field("state", f"unknown value {request.state}")
            state = ExecutionState(
                execution_pb2.Execution.State.Name(request.state).removeprefix("STATE_")
            ).value
        labels = dict(request.labels)
        raise_if_invalid(check_labels("labels", labels))
        if request.parent:
            labels[PARENT_LABEL] = parse_name(request.parent, "executions", "parent")
        where = ExecutionFilter(
            workflow_id=workflow_id,
            state=state,
            created_from=time_of(request, "start_time") or 0.0,
            created_to=time_of(request, "end_time") or 0.0,
            labels=tuple(sorted(labels.items())),
            waiting=request.waiting,
        )
        filters = {
            "workflow": workflow_id,
            "state": state,
            "from": where.created_from,
            "to": where.created_to,
            "labels": where.labels,
            "waiting": where.waiting,
        }
        executions, token = await self._tokens.page(
            "ListExecutions",
            request,
            filters,
            lambda after, limit: self._executions.list_executions(
                before=after, limit=limit, where=where
            ),
            lambda execution: execution_to_proto(execution, detailed=False),
        )
        return execution_pb2.ListExecutionsResponse(executions=executions, next_page_token=token)

    async def CancelExecution(
        self, request: execution_pb2.CancelExecutionRequest, context: Context
    ) -> execution_pb2.Execution:
        info = request_info("CancelExecution", request)
        execution_id = parse_name(request.name, "executions", "name")
        if len(request.reason) > MAX_REASON:
            raise invalid_field("reason", f"is longer than {MAX_REASON} characters")
        execution = await self._executions.cancel(execution_id, request.reason, info)
        return execution_to_proto(execution)

    async def RetryExecution(
        self, request: execution_pb2.RetryExecutionRequest, context: Context
    ) -> execution_pb2.Execution:
        info = request_info("RetryExecution", request)
        execution_id = parse_name(request.name, "executions", "name")
        if len(request.from_steps) > MAX_LIST_ITEMS:
            raise invalid_field("from_steps", f"name at most {MAX_LIST_ITEMS} steps", "TOO_MANY")
        from_steps = list(request.from_steps)
        return execution_to_proto(await self._executions.retry(execution_id, from_steps, info))

    async def PauseExecution(
        self, request: execution_pb2.PauseExecutionRequest, context: Context
    ) -> execution_pb2.Execution:
        info = request_info("PauseExecution", request)
        execution_id = parse_name(request.name, "executions", "name")
        if len(request.reason) > MAX_REASON:
            raise invalid_field("reason", f"is longer than {MAX_REASON} characters")
        return await self._here_or_owner(
            "PauseExecution",
            request,
            context,
            lambda: self._executions.pause(execution_id, request.reason, info),
        )

    async def ResumeExecution(
        self, request: execution_pb2.ResumeExecutionRequest, context: Context
    ) -> execution_pb2.Execution:
        info = request_info("ResumeExecution", request)
        execution_id = parse_name(request.name, "executions", "name")
        return await self._here_or_owner(
            "ResumeExecution",
            request,
            context,
            lambda: self._executions.resume(execution_id, info),
        )

    async def ApproveStep(
        self, request: execution_pb2.ApproveStepRequest, context: Context
    ) -> execution_pb2.Execution:
        info = request_info("ApproveStep", request)
        execution_id = parse_name(request.name, "executions", "name")
        _check_step_id(request.step, "step")
        if len(request.reason) > MAX_REASON:
            raise invalid_field("reason", f"is longer than {MAX_REASON} characters")
        caller = self._callers.identify(context)
        decided = StepDecided(
            request.step,
            approved=not request.reject,
            decided_by=caller.name,
            role=caller.role,
            reason=request.reason,
        )
        return await self._here_or_owner(
            "ApproveStep",
            request,
            context,
            lambda: self._executions.approve(execution_id, decided, info),
        )

    async def ListStepItems(
        self, request: execution_pb2.ListStepItemsRequest, context: Context
    ) -> execution_pb2.ListStepItemsResponse:
        execution_id = parse_name(request.execution, "executions", "execution")
        _check_step_id(request.step, "step")
        filters = {"execution": execution_id, "step": request.step}
        items, token = await self._tokens.page(
            "ListStepItems",
            request,
            filters,
            lambda after, limit: self._executions.step_items(
                execution_id, request.step, after=after, limit=limit
            ),
            _item_to_proto,
        )
        return execution_pb2.ListStepItemsResponse(items=items, next_page_token=token)

    async def SignalExecution(
        self, request: execution_pb2.SignalExecutionRequest, context: Context
    ) -> execution_pb2.Execution:
        info = request_info("SignalExecution", request)
        execution_id = parse_name(request.name, "executions", "name")
        if not SIGNAL_NAME.fullmatch(request.signal):
            raise invalid_field("signal", "must be 1-63 of [A-Za-z0-9_.-], from a letter")
        payload = optional_struct(request, "payload", "payload") or {}
        return await self._here_or_owner(
            "SignalExecution",
            request,
            context,
            lambda: self._executions.signal(execution_id, request.signal, payload, info),
        )

    async def DeleteExecution(
        self, request: execution_pb2.DeleteExecutionRequest, context: Context
    ) -> empty_pb2.Empty:
        info = request_info("DeleteExecution", request)
        execution_id = parse_name(request.name, "executions", "name")
        await self._executions.delete(execution_id, info)
        return empty_pb2.Empty()

    async def ListExecutionEvents(
        self, request: execution_pb2.ListExecutionEventsRequest, context: Context
    ) -> execution_pb2.ListExecutionEventsResponse:
        execution_id = parse_name(request.execution, "executions", "execution")
        types = _event_types(request.event_types, "event_types")
        filters = {"execution": execution_id, "types": sorted(t.value for t in types)}
        events, token = await self._tokens.page(
            "ListExecutionEvents",
            request,
            filters,
            lambda after, limit: self._executions.events(
                execution_id, after=after, limit=limit, types=types
            ),
            event_to_proto,
        )
        return execution_pb2.ListExecutionEventsResponse(events=events, next_page_token=token)

    async def StreamExecutionEvents(
        self, request: execution_pb2.StreamExecutionEventsRequest, context: Context
    ) -> AsyncIterator[event_pb2.ExecutionEvent]:
        execution_id = parse_name(request.execution, "executions", "execution")
        if request.after_sequence < 0:
            raise invalid_field("after_sequence", "must not be negative")
        types = _event_types(request.event_types, "event_types")
        async for event in self._executions.follow(
            execution_id, after=request.after_sequence, types=types
        ):
            yield event_to_proto(event)
