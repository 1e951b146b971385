"""ScheduleService: translates schedule requests to the schedule service and back."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2

from baton.v1 import schedule_pb2, schedule_pb2_grpc
from baton_server.api.convert import (
    check_new_id,
    dict_to_struct,
    duration,
    optional_struct,
    parse_name,
    seconds_of,
    timestamp,
)
from baton_server.api.enums import enum_to_domain, enum_to_proto
from baton_server.api.requests import PageTokens, request_info, update_fields
from baton_server.api.status import translate_errors
from baton_server.definitions.service import SCHEDULE_FIELDS, etag_of
from baton_server.domain.ids import new_id
from baton_server.domain.schedules import (
    DEFAULT_CATCH_UP_LIMIT,
    CatchUpPolicy,
    OverlapPolicy,
    Schedule,
    ScheduleState,
)
from baton_server.errors import invalid_field
from baton_server.limits import MAX_REASON
from baton_server.schedules.service import Schedules, ScheduleView

Context = grpc.aio.ServicerContext[Any, Any]
# `cron`, `interval` and `time_zone` are one calendar: an update replaces them together.
_ALIASES = {"workflow": "workflow_id", "cron": "spec", "interval": "spec", "time_zone": "spec"}
_SPEC = {"cron", "interval", "time_zone"}


def schedule_from_proto(message: schedule_pb2.Schedule, schedule_id: str) -> Schedule:
    """The domain schedule a request's Schedule message describes."""
    return Schedule(
        id=schedule_id,
        # `workflows/x` or a bare `x` (checked by validation), as agent references are.
        workflow_id=message.workflow.removeprefix("workflows/"),
        display_name=message.display_name,
        description=message.description,
        workflow_revision=message.workflow_revision,
        input=optional_struct(message, "input", "schedule.input") or {},
        labels=dict(message.labels),
        cron=message.cron,
        interval=seconds_of(message, "interval", "schedule.interval"),
        time_zone=message.time_zone,
        overlap_policy=enum_to_domain(
            message.overlap_policy,
            schedule_pb2.Schedule.OverlapPolicy,
            OverlapPolicy,
            "schedule.overlap_policy",
        )
        or OverlapPolicy.SKIP,
        catch_up_policy=enum_to_domain(
            message.catch_up_policy,
            schedule_pb2.Schedule.CatchUpPolicy,
            CatchUpPolicy,
            "schedule.catch_up_policy",
        )
        or CatchUpPolicy.LAST,
        catch_up_limit=message.catch_up_limit or DEFAULT_CATCH_UP_LIMIT,
    )


def schedule_to_proto(view: ScheduleView) -> schedule_pb2.Schedule:
    """The Schedule message for a schedule with its firing."""
    schedule, firing = view.schedule, view.firing
    message = schedule_pb2.Schedule(
        name=f"schedules/{schedule.id}",
        display_name=schedule.display_name,
        description=schedule.description,
        workflow=f"workflows/{schedule.workflow_id}",
        workflow_revision=schedule.workflow_revision,
        input=dict_to_struct(schedule.input),
        labels=schedule.labels,
        time_zone=schedule.time_zone,
        overlap_policy=enum_to_proto(schedule.overlap_policy, schedule_pb2.Schedule.OverlapPolicy),
        catch_up_policy=enum_to_proto(
            schedule.catch_up_policy, schedule_pb2.Schedule.CatchUpPolicy
        ),
        catch_up_limit=schedule.catch_up_limit,
        state=enum_to_proto(schedule.state, schedule_pb2.Schedule.State),
        pause_reason=schedule.pause_reason,
        next_run_times=[timestamp(t) for t in view.next_run_times],
        last_run_time=timestamp(firing.last_slot),
        last_execution=f"executions/{firing.last_execution}" if firing.last_execution else "",
        fired_count=firing.fired,
        skipped_count=firing.skipped,
        last_error=firing.last_error,
        create_time=timestamp(schedule.create_time),
        update_time=timestamp(schedule.update_time),
        etag=etag_of(schedule),
    )
    interval = duration(schedule.interval)
    if schedule.cron:
        message.cron = schedule.cron
    elif interval is not None:
        message.interval.CopyFrom(interval)
    return message


@translate_errors
class ScheduleServicer(schedule_pb2_grpc.ScheduleServiceServicer):
    """baton.v1.ScheduleService."""

    def __init__(self, schedules: Schedules, tokens: PageTokens) -> None:
        self._schedules = schedules
        self._tokens = tokens

    async def CreateSchedule(
        self, request: schedule_pb2.CreateScheduleRequest, context: Context
    ) -> schedule_pb2.Schedule:
        info = request_info("CreateSchedule", request)
        if not request.HasField("schedule"):
            raise invalid_field("schedule", "is required", "FIELD_REQUIRED")
        schedule_id = check_new_id(request.schedule_id, "schedule_id") or new_id("schedule")
        schedule = schedule_from_proto(request.schedule, schedule_id)
        return schedule_to_proto(await self._schedules.create(schedule, info))

    async def GetSchedule(
        self, request: schedule_pb2.GetScheduleRequest, context: Context
    ) -> schedule_pb2.Schedule:
        schedule_id = parse_name(request.name, "schedules", "name")
        return schedule_to_proto(await self._schedules.get(schedule_id))

    async def ListSchedules(
        self, request: schedule_pb2.ListSchedulesRequest, context: Context
    ) -> schedule_pb2.ListSchedulesResponse:
        workflow_id = (
            parse_name(request.workflow, "workflows", "workflow") if request.workflow else ""
        )
        state = enum_to_domain(request.state, schedule_pb2.Schedule.State, ScheduleState, "state")
        filters = {"workflow": workflow_id, "state": request.state}
        schedules, token = await self._tokens.page(
            "ListSchedules",
            request,
            filters,
            lambda after, limit: self._schedules.list(
                after=after, limit=limit, workflow_id=workflow_id, state=state
            ),
            schedule_to_proto,
        )
        return schedule_pb2.ListSchedulesResponse(schedules=schedules, next_page_token=token)

    async def UpdateSchedule(
        self, request: schedule_pb2.UpdateScheduleRequest, context: Context
    ) -> schedule_pb2.Schedule:
        info = request_info("UpdateSchedule", request)
        schedule_id = parse_name(request.schedule.name, "schedules", "schedule.name")
        writable = (SCHEDULE_FIELDS - _SPEC) | {"spec"}
        fields = update_fields(request.update_mask, writable, _ALIASES, resource="schedule")
        if "spec" in fields:
            fields = (fields - {"spec"}) | _SPEC
        patch = schedule_from_proto(request.schedule, schedule_id)
        updated = await self._schedules.update(patch, fields, request.schedule.etag, info)
        return schedule_to_proto(updated)

    async def DeleteSchedule(
        self, request: schedule_pb2.DeleteScheduleRequest, context: Context
    ) -> empty_pb2.Empty:
        info = request_info("DeleteSchedule", request)
        schedule_id = parse_name(request.name, "schedules", "name")
        await self._schedules.delete(schedule_id, request.etag, info)
        return empty_pb2.Empty()

    async def PauseSchedule(
        self, request: schedule_pb2.PauseScheduleRequest, context: Context
    ) -> schedule_pb2.Schedule:
        info = request_info("PauseSchedule", request)
        schedule_id = parse_name(request.name, "schedules", "name")
        if len(request.reason) > MAX_REASON:
            raise invalid_field("reason", f"is longer than {MAX_REASON} characters")
        return schedule_to_proto(await self._schedules.pause(schedule_id, request.reason, info))

    async def UnpauseSchedule(
        self, request: schedule_pb2.UnpauseScheduleRequest, context: Context
    ) -> schedule_pb2.Schedule:
        info = request_info("UnpauseSchedule", request)
        schedule_id = parse_name(request.name, "schedules", "name")
        return schedule_to_proto(await self._schedules.unpause(schedule_id, info))
