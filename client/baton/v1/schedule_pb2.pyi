import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Schedule(_message.Message):
    __slots__ = ("name", "display_name", "description", "workflow", "workflow_revision", "input", "labels", "cron", "interval", "time_zone", "overlap_policy", "catch_up_policy", "catch_up_limit", "state", "pause_reason", "next_run_times", "last_run_time", "last_execution", "fired_count", "skipped_count", "last_error", "create_time", "update_time", "etag")
    class OverlapPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OVERLAP_POLICY_UNSPECIFIED: _ClassVar[Schedule.OverlapPolicy]
        OVERLAP_POLICY_SKIP: _ClassVar[Schedule.OverlapPolicy]
        OVERLAP_POLICY_BUFFER_ONE: _ClassVar[Schedule.OverlapPolicy]
        OVERLAP_POLICY_ALLOW_ALL: _ClassVar[Schedule.OverlapPolicy]
    OVERLAP_POLICY_UNSPECIFIED: Schedule.OverlapPolicy
    OVERLAP_POLICY_SKIP: Schedule.OverlapPolicy
    OVERLAP_POLICY_BUFFER_ONE: Schedule.OverlapPolicy
    OVERLAP_POLICY_ALLOW_ALL: Schedule.OverlapPolicy
    class CatchUpPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CATCH_UP_POLICY_UNSPECIFIED: _ClassVar[Schedule.CatchUpPolicy]
        CATCH_UP_POLICY_NONE: _ClassVar[Schedule.CatchUpPolicy]
        CATCH_UP_POLICY_LAST: _ClassVar[Schedule.CatchUpPolicy]
        CATCH_UP_POLICY_ALL: _ClassVar[Schedule.CatchUpPolicy]
    CATCH_UP_POLICY_UNSPECIFIED: Schedule.CatchUpPolicy
    CATCH_UP_POLICY_NONE: Schedule.CatchUpPolicy
    CATCH_UP_POLICY_LAST: Schedule.CatchUpPolicy
    CATCH_UP_POLICY_ALL: Schedule.CatchUpPolicy
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Schedule.State]
        STATE_ACTIVE: _ClassVar[Schedule.State]
        STATE_PAUSED: _ClassVar[Schedule.State]
    STATE_UNSPECIFIED: Schedule.State
    STATE_ACTIVE: Schedule.State
    STATE_PAUSED: Schedule.State
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_REVISION_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_POLICY_FIELD_NUMBER: _ClassVar[int]
    CATCH_UP_POLICY_FIELD_NUMBER: _ClassVar[int]
    CATCH_UP_LIMIT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAUSE_REASON_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_TIMES_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_EXECUTION_FIELD_NUMBER: _ClassVar[int]
    FIRED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    description: str
    workflow: str
    workflow_revision: int
    input: _struct_pb2.Struct
    labels: _containers.ScalarMap[str, str]
    cron: str
    interval: _duration_pb2.Duration
    time_zone: str
    overlap_policy: Schedule.OverlapPolicy
    catch_up_policy: Schedule.CatchUpPolicy
    catch_up_limit: int
    state: Schedule.State
    pause_reason: str
    next_run_times: _containers.RepeatedCompositeFieldContainer[_timestamp_pb2.Timestamp]
    last_run_time: _timestamp_pb2.Timestamp
    last_execution: str
    fired_count: int
    skipped_count: int
    last_error: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    etag: str
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., workflow: _Optional[str] = ..., workflow_revision: _Optional[int] = ..., input: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., cron: _Optional[str] = ..., interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., time_zone: _Optional[str] = ..., overlap_policy: _Optional[_Union[Schedule.OverlapPolicy, str]] = ..., catch_up_policy: _Optional[_Union[Schedule.CatchUpPolicy, str]] = ..., catch_up_limit: _Optional[int] = ..., state: _Optional[_Union[Schedule.State, str]] = ..., pause_reason: _Optional[str] = ..., next_run_times: _Optional[_Iterable[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]]] = ..., last_run_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_execution: _Optional[str] = ..., fired_count: _Optional[int] = ..., skipped_count: _Optional[int] = ..., last_error: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class CreateScheduleRequest(_message.Message):
    __slots__ = ("schedule", "schedule_id", "request_id")
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    schedule_id: str
    request_id: str
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ..., schedule_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetScheduleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListSchedulesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "workflow", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    workflow: str
    state: Schedule.State
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., workflow: _Optional[str] = ..., state: _Optional[_Union[Schedule.State, str]] = ...) -> None: ...

class ListSchedulesResponse(_message.Message):
    __slots__ = ("schedules", "next_page_token")
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    schedules: _containers.RepeatedCompositeFieldContainer[Schedule]
    next_page_token: str
    def __init__(self, schedules: _Optional[_Iterable[_Union[Schedule, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateScheduleRequest(_message.Message):
    __slots__ = ("schedule", "update_mask", "request_id")
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    update_mask: _field_mask_pb2.FieldMask
    request_id: str
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeleteScheduleRequest(_message.Message):
    __slots__ = ("name", "etag", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class PauseScheduleRequest(_message.Message):
    __slots__ = ("name", "reason", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class UnpauseScheduleRequest(_message.Message):
    __slots__ = ("name", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...
