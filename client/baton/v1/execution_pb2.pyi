import datetime

from baton.v1 import common_pb2 as _common_pb2
from baton.v1 import event_pb2 as _event_pb2
from baton.v1 import handoff_pb2 as _handoff_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Execution(_message.Message):
    __slots__ = ("name", "workflow", "workflow_revision", "input", "output", "state", "error", "priority", "timeout", "trace", "labels", "steps", "create_time", "start_time", "end_time", "last_event_sequence", "run", "parent")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Execution.State]
        STATE_QUEUED: _ClassVar[Execution.State]
        STATE_RUNNING: _ClassVar[Execution.State]
        STATE_SUCCEEDED: _ClassVar[Execution.State]
        STATE_FAILED: _ClassVar[Execution.State]
        STATE_CANCELLED: _ClassVar[Execution.State]
        STATE_TIMED_OUT: _ClassVar[Execution.State]
        STATE_PAUSED: _ClassVar[Execution.State]
    STATE_UNSPECIFIED: Execution.State
    STATE_QUEUED: Execution.State
    STATE_RUNNING: Execution.State
    STATE_SUCCEEDED: Execution.State
    STATE_FAILED: Execution.State
    STATE_CANCELLED: Execution.State
    STATE_TIMED_OUT: Execution.State
    STATE_PAUSED: Execution.State
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_REVISION_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    workflow: str
    workflow_revision: int
    input: _struct_pb2.Struct
    output: _struct_pb2.Struct
    state: Execution.State
    error: _common_pb2.Failure
    priority: int
    timeout: _duration_pb2.Duration
    trace: bool
    labels: _containers.ScalarMap[str, str]
    steps: _containers.RepeatedCompositeFieldContainer[StepRun]
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    last_event_sequence: int
    run: int
    parent: str
    def __init__(self, name: _Optional[str] = ..., workflow: _Optional[str] = ..., workflow_revision: _Optional[int] = ..., input: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., output: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., state: _Optional[_Union[Execution.State, str]] = ..., error: _Optional[_Union[_common_pb2.Failure, _Mapping]] = ..., priority: _Optional[int] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., trace: _Optional[bool] = ..., labels: _Optional[_Mapping[str, str]] = ..., steps: _Optional[_Iterable[_Union[StepRun, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_event_sequence: _Optional[int] = ..., run: _Optional[int] = ..., parent: _Optional[str] = ...) -> None: ...

class StepRun(_message.Message):
    __slots__ = ("step_id", "state", "attempt", "agent", "schedule_time", "start_time", "end_time", "output", "error", "attempts", "handoffs", "wake_time", "iteration", "iteration_outputs", "child_execution", "items_total", "items_succeeded", "items_failed", "items_running", "usage")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[StepRun.State]
        STATE_PENDING: _ClassVar[StepRun.State]
        STATE_SCHEDULED: _ClassVar[StepRun.State]
        STATE_RUNNING: _ClassVar[StepRun.State]
        STATE_RETRYING: _ClassVar[StepRun.State]
        STATE_SUCCEEDED: _ClassVar[StepRun.State]
        STATE_FAILED: _ClassVar[StepRun.State]
        STATE_SKIPPED: _ClassVar[StepRun.State]
        STATE_CANCELLED: _ClassVar[StepRun.State]
        STATE_TIMED_OUT: _ClassVar[StepRun.State]
        STATE_WAITING: _ClassVar[StepRun.State]
        STATE_SLEEPING: _ClassVar[StepRun.State]
    STATE_UNSPECIFIED: StepRun.State
    STATE_PENDING: StepRun.State
    STATE_SCHEDULED: StepRun.State
    STATE_RUNNING: StepRun.State
    STATE_RETRYING: StepRun.State
    STATE_SUCCEEDED: StepRun.State
    STATE_FAILED: StepRun.State
    STATE_SKIPPED: StepRun.State
    STATE_CANCELLED: StepRun.State
    STATE_TIMED_OUT: StepRun.State
    STATE_WAITING: StepRun.State
    STATE_SLEEPING: StepRun.State
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    HANDOFFS_FIELD_NUMBER: _ClassVar[int]
    WAKE_TIME_FIELD_NUMBER: _ClassVar[int]
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    ITERATION_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    CHILD_EXECUTION_FIELD_NUMBER: _ClassVar[int]
    ITEMS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ITEMS_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FAILED_FIELD_NUMBER: _ClassVar[int]
    ITEMS_RUNNING_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    state: StepRun.State
    attempt: int
    agent: str
    schedule_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    output: _struct_pb2.Struct
    error: _common_pb2.Failure
    attempts: _containers.RepeatedCompositeFieldContainer[StepAttempt]
    handoffs: _containers.RepeatedCompositeFieldContainer[HandoffRecord]
    wake_time: _timestamp_pb2.Timestamp
    iteration: int
    iteration_outputs: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    child_execution: str
    items_total: int
    items_succeeded: int
    items_failed: int
    items_running: int
    usage: _common_pb2.TokenUsage
    def __init__(self, step_id: _Optional[str] = ..., state: _Optional[_Union[StepRun.State, str]] = ..., attempt: _Optional[int] = ..., agent: _Optional[str] = ..., schedule_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., output: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.Failure, _Mapping]] = ..., attempts: _Optional[_Iterable[_Union[StepAttempt, _Mapping]]] = ..., handoffs: _Optional[_Iterable[_Union[HandoffRecord, _Mapping]]] = ..., wake_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., iteration: _Optional[int] = ..., iteration_outputs: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ..., child_execution: _Optional[str] = ..., items_total: _Optional[int] = ..., items_succeeded: _Optional[int] = ..., items_failed: _Optional[int] = ..., items_running: _Optional[int] = ..., usage: _Optional[_Union[_common_pb2.TokenUsage, _Mapping]] = ...) -> None: ...

class StepItem(_message.Message):
    __slots__ = ("index", "state", "attempt", "output", "error")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    index: int
    state: StepRun.State
    attempt: int
    output: _struct_pb2.Struct
    error: _common_pb2.Failure
    def __init__(self, index: _Optional[int] = ..., state: _Optional[_Union[StepRun.State, str]] = ..., attempt: _Optional[int] = ..., output: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.Failure, _Mapping]] = ...) -> None: ...

class ListStepItemsRequest(_message.Message):
    __slots__ = ("execution", "step", "page_size", "page_token")
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    execution: str
    step: str
    page_size: int
    page_token: str
    def __init__(self, execution: _Optional[str] = ..., step: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListStepItemsResponse(_message.Message):
    __slots__ = ("items", "next_page_token")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[StepItem]
    next_page_token: str
    def __init__(self, items: _Optional[_Iterable[_Union[StepItem, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class StepAttempt(_message.Message):
    __slots__ = ("attempt", "agent", "fallback", "start_time", "end_time", "error", "usage")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    agent: str
    fallback: bool
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    error: _common_pb2.Failure
    usage: _common_pb2.TokenUsage
    def __init__(self, attempt: _Optional[int] = ..., agent: _Optional[str] = ..., fallback: _Optional[bool] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.Failure, _Mapping]] = ..., usage: _Optional[_Union[_common_pb2.TokenUsage, _Mapping]] = ...) -> None: ...

class HandoffRecord(_message.Message):
    __slots__ = ("handoff", "source_agent", "target_agent", "type", "requested_by_agent", "time")
    HANDOFF_FIELD_NUMBER: _ClassVar[int]
    SOURCE_AGENT_FIELD_NUMBER: _ClassVar[int]
    TARGET_AGENT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_AGENT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    handoff: str
    source_agent: str
    target_agent: str
    type: _handoff_pb2.Handoff.Type
    requested_by_agent: bool
    time: _timestamp_pb2.Timestamp
    def __init__(self, handoff: _Optional[str] = ..., source_agent: _Optional[str] = ..., target_agent: _Optional[str] = ..., type: _Optional[_Union[_handoff_pb2.Handoff.Type, str]] = ..., requested_by_agent: _Optional[bool] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StartExecutionRequest(_message.Message):
    __slots__ = ("workflow", "workflow_revision", "input", "priority", "timeout", "trace", "labels", "execution_id", "request_id")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_REVISION_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    workflow: str
    workflow_revision: int
    input: _struct_pb2.Struct
    priority: int
    timeout: _duration_pb2.Duration
    trace: bool
    labels: _containers.ScalarMap[str, str]
    execution_id: str
    request_id: str
    def __init__(self, workflow: _Optional[str] = ..., workflow_revision: _Optional[int] = ..., input: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., priority: _Optional[int] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., trace: _Optional[bool] = ..., labels: _Optional[_Mapping[str, str]] = ..., execution_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetExecutionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WaitExecutionRequest(_message.Message):
    __slots__ = ("name", "timeout")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    name: str
    timeout: _duration_pb2.Duration
    def __init__(self, name: _Optional[str] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ListExecutionsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "workflow", "state", "start_time", "end_time", "labels", "waiting", "parent")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    workflow: str
    state: Execution.State
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    labels: _containers.ScalarMap[str, str]
    waiting: bool
    parent: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., workflow: _Optional[str] = ..., state: _Optional[_Union[Execution.State, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., waiting: _Optional[bool] = ..., parent: _Optional[str] = ...) -> None: ...

class ListExecutionsResponse(_message.Message):
    __slots__ = ("executions", "next_page_token")
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[Execution]
    next_page_token: str
    def __init__(self, executions: _Optional[_Iterable[_Union[Execution, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelExecutionRequest(_message.Message):
    __slots__ = ("name", "reason", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RetryExecutionRequest(_message.Message):
    __slots__ = ("name", "from_steps", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FROM_STEPS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    from_steps: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    def __init__(self, name: _Optional[str] = ..., from_steps: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ApproveStepRequest(_message.Message):
    __slots__ = ("name", "step", "reject", "reason", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    REJECT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    step: str
    reject: bool
    reason: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., step: _Optional[str] = ..., reject: _Optional[bool] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class PauseExecutionRequest(_message.Message):
    __slots__ = ("name", "reason", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ResumeExecutionRequest(_message.Message):
    __slots__ = ("name", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class SignalExecutionRequest(_message.Message):
    __slots__ = ("name", "signal", "payload", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    signal: str
    payload: _struct_pb2.Struct
    request_id: str
    def __init__(self, name: _Optional[str] = ..., signal: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeleteExecutionRequest(_message.Message):
    __slots__ = ("name", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class StreamExecutionEventsRequest(_message.Message):
    __slots__ = ("execution", "after_sequence", "event_types")
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    execution: str
    after_sequence: int
    event_types: _containers.RepeatedScalarFieldContainer[_event_pb2.EventType]
    def __init__(self, execution: _Optional[str] = ..., after_sequence: _Optional[int] = ..., event_types: _Optional[_Iterable[_Union[_event_pb2.EventType, str]]] = ...) -> None: ...

class ListExecutionEventsRequest(_message.Message):
    __slots__ = ("execution", "page_size", "page_token", "event_types")
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    execution: str
    page_size: int
    page_token: str
    event_types: _containers.RepeatedScalarFieldContainer[_event_pb2.EventType]
    def __init__(self, execution: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., event_types: _Optional[_Iterable[_Union[_event_pb2.EventType, str]]] = ...) -> None: ...

class ListExecutionEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.ExecutionEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[_event_pb2.ExecutionEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
