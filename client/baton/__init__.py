"""Baton's Python client: `baton.Client` (async), `baton.SyncClient`, errors and API types.

The message types are the generated protobuf classes of package `baton.v1`, re-exported
here for convenience.
"""

from baton._agent import AgentError, HandoffRequest, StepContext, StepInfo, StepLogger
from baton._client import Agents, Client, Executions, Handoffs, Schedules, Tools, Workflows
from baton._errors import (
    AbortedError,
    AlreadyExistsError,
    BatonError,
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from baton._sync import (
    SyncAgents,
    SyncClient,
    SyncExecutions,
    SyncHandoffs,
    SyncSchedules,
    SyncTools,
    SyncWorkflows,
)
from baton._worker import Worker
from baton.v1.agent_pb2 import Agent, OpenAIRuntime, PythonRuntime, WorkerRuntime
from baton.v1.common_pb2 import Failure, RetryPolicy
from baton.v1.event_pb2 import EventType, ExecutionEvent
from baton.v1.execution_pb2 import Execution, StepRun
from baton.v1.handoff_pb2 import Handoff
from baton.v1.schedule_pb2 import Schedule
from baton.v1.tool_pb2 import HttpTool, Tool
from baton.v1.workflow_pb2 import Approval, Loop, Step, WaitFor, Workflow

__version__ = "0.4.0"

__all__ = [
    "AbortedError",
    "Agent",
    "AgentError",
    "Agents",
    "AlreadyExistsError",
    "Approval",
    "BatonError",
    "Client",
    "DeadlineExceededError",
    "EventType",
    "Execution",
    "ExecutionEvent",
    "Executions",
    "FailedPreconditionError",
    "Failure",
    "FieldViolation",
    "Handoff",
    "HandoffRequest",
    "Handoffs",
    "HttpTool",
    "InternalError",
    "InvalidArgumentError",
    "Loop",
    "NotFoundError",
    "OpenAIRuntime",
    "PermissionDeniedError",
    "PythonRuntime",
    "ResourceExhaustedError",
    "RetryPolicy",
    "Schedule",
    "Schedules",
    "Step",
    "StepContext",
    "StepInfo",
    "StepLogger",
    "StepRun",
    "SyncAgents",
    "SyncClient",
    "SyncExecutions",
    "SyncHandoffs",
    "SyncSchedules",
    "SyncTools",
    "SyncWorkflows",
    "Tool",
    "Tools",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "WaitFor",
    "Worker",
    "WorkerRuntime",
    "Workflow",
    "Workflows",
]
