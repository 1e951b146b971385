"""The catalogue of failure types Baton itself reports, in one spelling (UPPER_SNAKE).

They are a step's or an execution's `error.type`; users match them (for example in a retry
policy's `non_retryable_error_types`), so they are stable. Failures an agent raises keep
the agent's own type (an `AgentError` type, or the exception's class name). The README
lists these with their meaning; a test checks the two agree.
"""

from __future__ import annotations

# Attempts
STEP_TIMEOUT = "STEP_TIMEOUT"
"""The attempt ran past the step's timeout (retryable)."""
SIGNAL_TIMEOUT = "SIGNAL_TIMEOUT"
"""A waiting step's signal did not come within its wait_for timeout."""
APPROVAL_TIMEOUT = "APPROVAL_TIMEOUT"
"""Nobody decided an approval step within its timeout."""
APPROVAL_REJECTED = "APPROVAL_REJECTED"
"""Someone rejected an approval step (without `continue_on_reject`)."""
SLEEP_UNTIL_ERROR = "SLEEP_UNTIL_ERROR"
"""A step's `sleep_until` did not give a time."""
MAX_ITERATIONS_EXCEEDED = "MAX_ITERATIONS_EXCEEDED"
"""A loop's condition still did not hold after `max_iterations` iterations."""
CHILD_DEPTH_EXCEEDED = "CHILD_DEPTH_EXCEEDED"
"""A child workflow would nest deeper than children may."""
CHILD_NOT_STARTED = "CHILD_NOT_STARTED"
"""A child execution could not start (its workflow is missing or archived, or its input
does not fit the workflow's input schema)."""
FOR_EACH_ERROR = "FOR_EACH_ERROR"
"""A step's `for_each` did not give a list (or gave too many elements)."""
INTERRUPTED = "INTERRUPTED"
"""The server stopped during the attempt; it was delivered again with the same number."""
CANCELLED = "CANCELLED"
"""The execution was cancelled."""
OUTPUT_TOO_LARGE = "OUTPUT_TOO_LARGE"
"""The output is over BATON_MAX_OUTPUT_BYTES, or the execution would be over its bound."""
INPUT_TOO_LARGE = "INPUT_TOO_LARGE"
"""The step's mapped input is over BATON_MAX_OUTPUT_BYTES."""
MAPPING_ERROR = "MAPPING_ERROR"
"""The step's input mapping (or a handoff's data mapping) reads a path that is missing."""
OUTPUT_MAPPING_ERROR = "OUTPUT_MAPPING_ERROR"
"""The step's or the workflow's output mapping reads a path that is missing."""
CONDITION_ERROR = "CONDITION_ERROR"
"""The step's `when` could not be evaluated, or did not give a boolean."""

# Agents
AGENT_NOT_FOUND = "AGENT_NOT_FOUND"
AGENT_DISABLED = "AGENT_DISABLED"
NO_AGENT_FOR_CAPABILITY = "NO_AGENT_FOR_CAPABILITY"
RUNTIME_NOT_AVAILABLE = "RUNTIME_NOT_AVAILABLE"
ENTRY_POINT_NOT_FOUND = "ENTRY_POINT_NOT_FOUND"
ENTRY_POINT_NOT_ALLOWED = "ENTRY_POINT_NOT_ALLOWED"
SECRET_NOT_ALLOWED = "SECRET_NOT_ALLOWED"
ENDPOINT_NOT_ALLOWED = "ENDPOINT_NOT_ALLOWED"
CONFIG_ERROR = "CONFIG_ERROR"
"""The agent's configuration is unusable (a missing key, a missing template)."""

MAX_TURNS_EXCEEDED = "MAX_TURNS_EXCEEDED"
"""An LLM agent with tools made `max_turns` model calls without a final answer."""
OUTPUT_SCHEMA_MISMATCH = "OUTPUT_SCHEMA_MISMATCH"
"""The agent's output does not match the step's `output_schema` (an LLM agent was asked
again twice first)."""
TOOL_NOT_FOUND = "TOOL_NOT_FOUND"
"""A model called a tool its agent does not have (the model is told, and may go on)."""
TOOL_ARGUMENTS_INVALID = "TOOL_ARGUMENTS_INVALID"
"""A model called a tool with arguments that are not JSON or do not match the tool's
parameters (the model is told, and may go on)."""
TOOL_TIMEOUT = "TOOL_TIMEOUT"
"""A tool call ran past the tool's timeout (retried by the tool's retry policy)."""

# Remote workers
HEARTBEAT_TIMEOUT = "HEARTBEAT_TIMEOUT"
"""The worker holding the task sent no heartbeat within the lease (retryable)."""
WORKER_LOST = "WORKER_LOST"
"""The worker holding the task disconnected (retryable)."""
SCHEDULE_TIMEOUT = "SCHEDULE_TIMEOUT"
"""No worker took the task within the agent's schedule_timeout (retryable)."""
WORKER_ERROR = "WORKER_ERROR"
"""A worker reported a failure without a type."""

# HTTP (openai agents, the http_request built-in)
HTTP_ERROR = "HTTP_ERROR"
"""The endpoint could not be reached (retryable)."""
BAD_RESPONSE = "BAD_RESPONSE"
"""The endpoint's answer could not be read."""
ANSWER_TOO_LARGE = "ANSWER_TOO_LARGE"
"""The endpoint's answer passed MAX_ANSWER_BYTES; the rest was not read (retryable)."""
HTTP_STATUS_PREFIX = "HTTP_"
"""`HTTP_<status>`: the endpoint answered that status (429 and 5xx retryable)."""

# Handoffs
HANDOFF_NOT_ALLOWED = "HANDOFF_NOT_ALLOWED"
HANDOFF_DEPTH_EXCEEDED = "HANDOFF_DEPTH_EXCEEDED"

# Executions
EXECUTION_TIMED_OUT = "EXECUTION_TIMED_OUT"
INTERNAL_ERROR = "INTERNAL_ERROR"
"""The engine failed (a bug); the server log has the details."""

TIMEOUTS = frozenset(
    {STEP_TIMEOUT, HEARTBEAT_TIMEOUT, SCHEDULE_TIMEOUT}
    | {"StepTimeout", "HeartbeatTimeout", "ScheduleTimeout"}  # as stored before 0.5
)
"""The types counted as timeouts in agent performance."""


def http_status(status: int) -> str:
    """The failure type for an HTTP answer with `status`, e.g. HTTP_503."""
    return f"{HTTP_STATUS_PREFIX}{status}"
