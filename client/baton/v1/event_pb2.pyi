import datetime

from baton.v1 import common_pb2 as _common_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_EXECUTION_QUEUED: _ClassVar[EventType]
    EVENT_TYPE_EXECUTION_STARTED: _ClassVar[EventType]
    EVENT_TYPE_EXECUTION_SUCCEEDED: _ClassVar[EventType]
    EVENT_TYPE_EXECUTION_FAILED: _ClassVar[EventType]
    EVENT_TYPE_EXECUTION_CANCELLED: _ClassVar[EventType]
    EVENT_TYPE_EXECUTION_TIMED_OUT: _ClassVar[EventType]
    EVENT_TYPE_STEP_SCHEDULED: _ClassVar[EventType]
    EVENT_TYPE_STEP_STARTED: _ClassVar[EventType]
    EVENT_TYPE_STEP_SUCCEEDED: _ClassVar[EventType]
    EVENT_TYPE_STEP_FAILED: _ClassVar[EventType]
    EVENT_TYPE_STEP_RETRYING: _ClassVar[EventType]
    EVENT_TYPE_STEP_SKIPPED: _ClassVar[EventType]
    EVENT_TYPE_STEP_TIMED_OUT: _ClassVar[EventType]
    EVENT_TYPE_FALLBACK_ACTIVATED: _ClassVar[EventType]
    EVENT_TYPE_HANDOFF: _ClassVar[EventType]
    EVENT_TYPE_STEP_OUTPUT_DELTA: _ClassVar[EventType]
    EVENT_TYPE_LOG: _ClassVar[EventType]
    EVENT_TYPE_STEP_INTERRUPTED: _ClassVar[EventType]
    EVENT_TYPE_SIGNAL_RECEIVED: _ClassVar[EventType]
    EVENT_TYPE_EXECUTION_PAUSED: _ClassVar[EventType]
    EVENT_TYPE_EXECUTION_RESUMED: _ClassVar[EventType]
    EVENT_TYPE_EXECUTION_RETRIED: _ClassVar[EventType]
    EVENT_TYPE_APPROVAL_DECIDED: _ClassVar[EventType]
    EVENT_TYPE_LOOP_ITERATION_STARTED: _ClassVar[EventType]
    EVENT_TYPE_AGENT_TURN: _ClassVar[EventType]
    EVENT_TYPE_TOOL_CALL_STARTED: _ClassVar[EventType]
    EVENT_TYPE_TOOL_CALL_SUCCEEDED: _ClassVar[EventType]
    EVENT_TYPE_TOOL_CALL_FAILED: _ClassVar[EventType]
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_EXECUTION_QUEUED: EventType
EVENT_TYPE_EXECUTION_STARTED: EventType
EVENT_TYPE_EXECUTION_SUCCEEDED: EventType
EVENT_TYPE_EXECUTION_FAILED: EventType
EVENT_TYPE_EXECUTION_CANCELLED: EventType
EVENT_TYPE_EXECUTION_TIMED_OUT: EventType
EVENT_TYPE_STEP_SCHEDULED: EventType
EVENT_TYPE_STEP_STARTED: EventType
EVENT_TYPE_STEP_SUCCEEDED: EventType
EVENT_TYPE_STEP_FAILED: EventType
EVENT_TYPE_STEP_RETRYING: EventType
EVENT_TYPE_STEP_SKIPPED: EventType
EVENT_TYPE_STEP_TIMED_OUT: EventType
EVENT_TYPE_FALLBACK_ACTIVATED: EventType
EVENT_TYPE_HANDOFF: EventType
EVENT_TYPE_STEP_OUTPUT_DELTA: EventType
EVENT_TYPE_LOG: EventType
EVENT_TYPE_STEP_INTERRUPTED: EventType
EVENT_TYPE_SIGNAL_RECEIVED: EventType
EVENT_TYPE_EXECUTION_PAUSED: EventType
EVENT_TYPE_EXECUTION_RESUMED: EventType
EVENT_TYPE_EXECUTION_RETRIED: EventType
EVENT_TYPE_APPROVAL_DECIDED: EventType
EVENT_TYPE_LOOP_ITERATION_STARTED: EventType
EVENT_TYPE_AGENT_TURN: EventType
EVENT_TYPE_TOOL_CALL_STARTED: EventType
EVENT_TYPE_TOOL_CALL_SUCCEEDED: EventType
EVENT_TYPE_TOOL_CALL_FAILED: EventType

class ExecutionEvent(_message.Message):
    __slots__ = ("execution", "sequence", "time", "type", "step_id", "attempt", "iteration", "execution_queued", "execution_started", "execution_succeeded", "execution_failed", "execution_cancelled", "execution_timed_out", "step_scheduled", "step_started", "step_succeeded", "step_failed", "step_retrying", "step_skipped", "step_timed_out", "fallback_activated", "handoff", "step_output_delta", "log", "step_interrupted", "signal_received", "execution_paused", "execution_resumed", "execution_retried", "approval_decided", "loop_iteration_started", "agent_turn", "tool_call_started", "tool_call_succeeded", "tool_call_failed")
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_QUEUED_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_STARTED_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_FAILED_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_CANCELLED_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    STEP_SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    STEP_STARTED_FIELD_NUMBER: _ClassVar[int]
    STEP_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    STEP_FAILED_FIELD_NUMBER: _ClassVar[int]
    STEP_RETRYING_FIELD_NUMBER: _ClassVar[int]
    STEP_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    STEP_TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_ACTIVATED_FIELD_NUMBER: _ClassVar[int]
    HANDOFF_FIELD_NUMBER: _ClassVar[int]
    STEP_OUTPUT_DELTA_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    STEP_INTERRUPTED_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PAUSED_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_RESUMED_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_RETRIED_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_DECIDED_FIELD_NUMBER: _ClassVar[int]
    LOOP_ITERATION_STARTED_FIELD_NUMBER: _ClassVar[int]
    AGENT_TURN_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_STARTED_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_FAILED_FIELD_NUMBER: _ClassVar[int]
    execution: str
    sequence: int
    time: _timestamp_pb2.Timestamp
    type: EventType
    step_id: str
    attempt: int
    iteration: int
    execution_queued: ExecutionQueued
    execution_started: ExecutionStarted
    execution_succeeded: ExecutionSucceeded
    execution_failed: ExecutionFailed
    execution_cancelled: ExecutionCancelled
    execution_timed_out: ExecutionTimedOut
    step_scheduled: StepScheduled
    step_started: StepStarted
    step_succeeded: StepSucceeded
    step_failed: StepFailed
    step_retrying: StepRetrying
    step_skipped: StepSkipped
    step_timed_out: StepTimedOut
    fallback_activated: FallbackActivated
    handoff: HandoffOccurred
    step_output_delta: StepOutputDelta
    log: _common_pb2.LogEntry
    step_interrupted: StepInterrupted
    signal_received: SignalReceived
    execution_paused: ExecutionPaused
    execution_resumed: ExecutionResumed
    execution_retried: ExecutionRetried
    approval_decided: ApprovalDecided
    loop_iteration_started: LoopIterationStarted
    agent_turn: AgentTurn
    tool_call_started: ToolCallStarted
    tool_call_succeeded: ToolCallSucceeded
    tool_call_failed: ToolCallFailed
    def __init__(self, execution: _Optional[str] = ..., sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., type: _Optional[_Union[EventType, str]] = ..., step_id: _Optional[str] = ..., attempt: _Optional[int] = ..., iteration: _Optional[int] = ..., execution_queued: _Optional[_Union[ExecutionQueued, _Mapping]] = ..., execution_started: _Optional[_Union[ExecutionStarted, _Mapping]] = ..., execution_succeeded: _Optional[_Union[ExecutionSucceeded, _Mapping]] = ..., execution_failed: _Optional[_Union[ExecutionFailed, _Mapping]] = ..., execution_cancelled: _Optional[_Union[ExecutionCancelled, _Mapping]] = ..., execution_timed_out: _Optional[_Union[ExecutionTimedOut, _Mapping]] = ..., step_scheduled: _Optional[_Union[StepScheduled, _Mapping]] = ..., step_started: _Optional[_Union[StepStarted, _Mapping]] = ..., step_succeeded: _Optional[_Union[StepSucceeded, _Mapping]] = ..., step_failed: _Optional[_Union[StepFailed, _Mapping]] = ..., step_retrying: _Optional[_Union[StepRetrying, _Mapping]] = ..., step_skipped: _Optional[_Union[StepSkipped, _Mapping]] = ..., step_timed_out: _Optional[_Union[StepTimedOut, _Mapping]] = ..., fallback_activated: _Optional[_Union[FallbackActivated, _Mapping]] = ..., handoff: _Optional[_Union[HandoffOccurred, _Mapping]] = ..., step_output_delta: _Optional[_Union[StepOutputDelta, _Mapping]] = ..., log: _Optional[_Union[_common_pb2.LogEntry, _Mapping]] = ..., step_interrupted: _Optional[_Union[StepInterrupted, _Mapping]] = ..., signal_received: _Optional[_Union[SignalReceived, _Mapping]] = ..., execution_paused: _Optional[_Union[ExecutionPaused, _Mapping]] = ..., execution_resumed: _Optional[_Union[ExecutionResumed, _Mapping]] = ..., execution_retried: _Optional[_Union[ExecutionRetried, _Mapping]] = ..., approval_decided: _Optional[_Union[ApprovalDecided, _Mapping]] = ..., loop_iteration_started: _Optional[_Union[LoopIterationStarted, _Mapping]] = ..., agent_turn: _Optional[_Union[AgentTurn, _Mapping]] = ..., tool_call_started: _Optional[_Union[ToolCallStarted, _Mapping]] = ..., tool_call_succeeded: _Optional[_Union[ToolCallSucceeded, _Mapping]] = ..., tool_call_failed: _Optional[_Union[ToolCallFailed, _Mapping]] = ...) -> None: ...

class AgentTurn(_message.Message):
    __slots__ = ("turn", "content", "tool_calls", "usage", "finish_reason", "item", "rejected", "agent")
    TURN_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    turn: int
    content: str
    tool_calls: _containers.RepeatedCompositeFieldContainer[ToolCall]
    usage: _common_pb2.TokenUsage
    finish_reason: str
    item: int
    rejected: str
    agent: str
    def __init__(self, turn: _Optional[int] = ..., content: _Optional[str] = ..., tool_calls: _Optional[_Iterable[_Union[ToolCall, _Mapping]]] = ..., usage: _Optional[_Union[_common_pb2.TokenUsage, _Mapping]] = ..., finish_reason: _Optional[str] = ..., item: _Optional[int] = ..., rejected: _Optional[str] = ..., agent: _Optional[str] = ...) -> None: ...

class ToolCall(_message.Message):
    __slots__ = ("id", "tool", "arguments")
    ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    tool: str
    arguments: str
    def __init__(self, id: _Optional[str] = ..., tool: _Optional[str] = ..., arguments: _Optional[str] = ...) -> None: ...

class ToolCallStarted(_message.Message):
    __slots__ = ("call_id", "tool", "arguments", "try_number", "turn", "item")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    TRY_NUMBER_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    tool: str
    arguments: _struct_pb2.Struct
    try_number: int
    turn: int
    item: int
    def __init__(self, call_id: _Optional[str] = ..., tool: _Optional[str] = ..., arguments: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., try_number: _Optional[int] = ..., turn: _Optional[int] = ..., item: _Optional[int] = ...) -> None: ...

class ToolCallSucceeded(_message.Message):
    __slots__ = ("call_id", "tool", "result", "try_number", "turn", "item")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    TRY_NUMBER_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    tool: str
    result: _struct_pb2.Struct
    try_number: int
    turn: int
    item: int
    def __init__(self, call_id: _Optional[str] = ..., tool: _Optional[str] = ..., result: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., try_number: _Optional[int] = ..., turn: _Optional[int] = ..., item: _Optional[int] = ...) -> None: ...

class ToolCallFailed(_message.Message):
    __slots__ = ("call_id", "tool", "error", "try_number", "will_retry", "turn", "item")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TRY_NUMBER_FIELD_NUMBER: _ClassVar[int]
    WILL_RETRY_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    tool: str
    error: _common_pb2.Failure
    try_number: int
    will_retry: bool
    turn: int
    item: int
    def __init__(self, call_id: _Optional[str] = ..., tool: _Optional[str] = ..., error: _Optional[_Union[_common_pb2.Failure, _Mapping]] = ..., try_number: _Optional[int] = ..., will_retry: _Optional[bool] = ..., turn: _Optional[int] = ..., item: _Optional[int] = ...) -> None: ...

class LoopIterationStarted(_message.Message):
    __slots__ = ("iteration", "reset_steps")
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    RESET_STEPS_FIELD_NUMBER: _ClassVar[int]
    iteration: int
    reset_steps: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, iteration: _Optional[int] = ..., reset_steps: _Optional[_Iterable[str]] = ...) -> None: ...

class ApprovalDecided(_message.Message):
    __slots__ = ("approved", "decided_by", "role", "reason")
    APPROVED_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    approved: bool
    decided_by: str
    role: str
    reason: str
    def __init__(self, approved: _Optional[bool] = ..., decided_by: _Optional[str] = ..., role: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ExecutionRetried(_message.Message):
    __slots__ = ("reset_steps", "run")
    RESET_STEPS_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    reset_steps: _containers.RepeatedScalarFieldContainer[str]
    run: int
    def __init__(self, reset_steps: _Optional[_Iterable[str]] = ..., run: _Optional[int] = ...) -> None: ...

class ExecutionPaused(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class ExecutionResumed(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SignalReceived(_message.Message):
    __slots__ = ("signal", "payload", "taken_by")
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TAKEN_BY_FIELD_NUMBER: _ClassVar[int]
    signal: str
    payload: _struct_pb2.Struct
    taken_by: str
    def __init__(self, signal: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., taken_by: _Optional[str] = ...) -> None: ...

class StepInterrupted(_message.Message):
    __slots__ = ("agent", "reason")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    agent: str
    reason: str
    def __init__(self, agent: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ExecutionQueued(_message.Message):
    __slots__ = ("workflow_revision", "priority")
    WORKFLOW_REVISION_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    workflow_revision: int
    priority: int
    def __init__(self, workflow_revision: _Optional[int] = ..., priority: _Optional[int] = ...) -> None: ...

class ExecutionStarted(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExecutionSucceeded(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: _struct_pb2.Struct
    def __init__(self, output: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ExecutionFailed(_message.Message):
    __slots__ = ("error",)
    ERROR_FIELD_NUMBER: _ClassVar[int]
    error: _common_pb2.Failure
    def __init__(self, error: _Optional[_Union[_common_pb2.Failure, _Mapping]] = ...) -> None: ...

class ExecutionCancelled(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class ExecutionTimedOut(_message.Message):
    __slots__ = ("timeout",)
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    timeout: _duration_pb2.Duration
    def __init__(self, timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class StepScheduled(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: str
    def __init__(self, agent: _Optional[str] = ...) -> None: ...

class StepStarted(_message.Message):
    __slots__ = ("agent", "idempotency_key", "input")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    agent: str
    idempotency_key: str
    input: _struct_pb2.Struct
    def __init__(self, agent: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., input: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class StepSucceeded(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: _struct_pb2.Struct
    def __init__(self, output: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class StepFailed(_message.Message):
    __slots__ = ("error",)
    ERROR_FIELD_NUMBER: _ClassVar[int]
    error: _common_pb2.Failure
    def __init__(self, error: _Optional[_Union[_common_pb2.Failure, _Mapping]] = ...) -> None: ...

class StepRetrying(_message.Message):
    __slots__ = ("error", "delay", "next_attempt")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    error: _common_pb2.Failure
    delay: _duration_pb2.Duration
    next_attempt: int
    def __init__(self, error: _Optional[_Union[_common_pb2.Failure, _Mapping]] = ..., delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., next_attempt: _Optional[int] = ...) -> None: ...

class StepSkipped(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class StepTimedOut(_message.Message):
    __slots__ = ("timeout",)
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    timeout: _duration_pb2.Duration
    def __init__(self, timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class FallbackActivated(_message.Message):
    __slots__ = ("from_agent", "to_agent", "error")
    FROM_AGENT_FIELD_NUMBER: _ClassVar[int]
    TO_AGENT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    from_agent: str
    to_agent: str
    error: _common_pb2.Failure
    def __init__(self, from_agent: _Optional[str] = ..., to_agent: _Optional[str] = ..., error: _Optional[_Union[_common_pb2.Failure, _Mapping]] = ...) -> None: ...

class HandoffOccurred(_message.Message):
    __slots__ = ("handoff", "source_agent", "target_agent", "requested_by_agent")
    HANDOFF_FIELD_NUMBER: _ClassVar[int]
    SOURCE_AGENT_FIELD_NUMBER: _ClassVar[int]
    TARGET_AGENT_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_AGENT_FIELD_NUMBER: _ClassVar[int]
    handoff: str
    source_agent: str
    target_agent: str
    requested_by_agent: bool
    def __init__(self, handoff: _Optional[str] = ..., source_agent: _Optional[str] = ..., target_agent: _Optional[str] = ..., requested_by_agent: _Optional[bool] = ...) -> None: ...

class StepOutputDelta(_message.Message):
    __slots__ = ("text", "data")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    text: str
    data: _struct_pb2.Struct
    def __init__(self, text: _Optional[str] = ..., data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
