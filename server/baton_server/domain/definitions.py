"""Domain objects for definitions (agents, workflows, handoffs), free of gRPC and SQL.

Times are epoch seconds and durations seconds (floats); agents are referred to by id.
`to_doc`/`from_doc` turn them into the JSON documents that storage keeps.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class AgentState(enum.StrEnum):
    """Whether an agent accepts new steps."""

    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"


class WorkflowState(enum.StrEnum):
    """Whether new executions of a workflow may start."""

    ACTIVE = "ACTIVE"
    ARCHIVED = "ARCHIVED"


class HandoffType(enum.StrEnum):
    """When a handoff happens."""

    SEQUENTIAL = "SEQUENTIAL"
    ON_FAILURE = "ON_FAILURE"


@dataclass
class PythonRuntime:
    """A Python callable `module:function` run inside the server."""

    entry_point: str
    cpu_bound: bool = False


@dataclass
class WorkerRuntime:
    """An agent served by remote workers."""

    heartbeat_timeout: float | None = None
    schedule_timeout: float | None = None


@dataclass
class OpenAIRuntime:
    """An OpenAI-compatible chat-completions endpoint."""

    base_url: str
    model: str
    instructions: str = ""
    api_key_env: str = ""
    temperature: float | None = None
    stream: bool = False
    max_turns: int = 0
    """Most model calls per attempt when the agent has tools (0: DEFAULT_MAX_TURNS)."""

    @property
    def turn_limit(self) -> int:
        """The model calls an attempt may make."""
        return self.max_turns or DEFAULT_MAX_TURNS


DEFAULT_MAX_TURNS = 10


Runtime = PythonRuntime | WorkerRuntime | OpenAIRuntime
_RUNTIMES: dict[str, type[PythonRuntime] | type[WorkerRuntime] | type[OpenAIRuntime]] = {
    "python": PythonRuntime,
    "worker": WorkerRuntime,
    "openai": OpenAIRuntime,
}


def runtime_kind(runtime: Runtime | None) -> str:
    """The name of a runtime's kind (`python`, `worker`, `openai`), or '' for none."""
    for kind, cls in _RUNTIMES.items():
        if isinstance(runtime, cls):
            return kind
    return ""


@dataclass
class Agent:
    """An agent definition."""

    id: str
    display_name: str = ""
    description: str = ""
    capabilities: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    state: AgentState = AgentState.ACTIVE
    config: dict[str, Any] = field(default_factory=dict)
    runtime: Runtime | None = None
    max_concurrency: int = 0
    create_time: float = 0.0
    update_time: float = 0.0
    version: int = 0

    def to_doc(self) -> dict[str, Any]:
        """The JSON document storage keeps."""
        doc = asdict(self)
        doc["runtime"] = (
            {"kind": runtime_kind(self.runtime), **asdict(self.runtime)} if self.runtime else None
        )
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Agent:
        """Reverses `to_doc`."""
        runtime_doc = dict(doc["runtime"]) if doc.get("runtime") else None
        runtime: Runtime | None = None
        if runtime_doc is not None:
            runtime = _RUNTIMES[runtime_doc.pop("kind")](**runtime_doc)
        return cls(**{**doc, "state": AgentState(doc["state"]), "runtime": runtime})


@dataclass
class RetryPolicy:
    """How failed attempts of a step are retried; zero values mean the server defaults."""

    max_attempts: int = 0
    initial_interval: float | None = None
    backoff_coefficient: float = 0.0
    maximum_interval: float | None = None
    jitter: float = 0.0
    non_retryable_error_types: list[str] = field(default_factory=list)


@dataclass
class WaitFor:
    """What a waiting step waits for: a signal by name, for at most `timeout` seconds,
    taking only signals for which `when` (CEL over `signal`) holds."""

    signal: str
    timeout: float | None = None
    when: str = ""


@dataclass
class Loop:
    """A loop ending at its step: the body (from `start`, or the step alone) runs again
    until `until` holds, at most `max_iterations` times."""

    until: str
    max_iterations: int = 0
    start: str = ""


APPROVING_ROLES = ("operator", "admin")
"""The roles that may decide any approval step; a step can name more."""


@dataclass
class Approval:
    """An approval step: a person with one of `roles` (or operator, admin) decides; no
    decision within `timeout` seconds fails it."""

    roles: list[str] = field(default_factory=list)
    timeout: float | None = None
    prompt: str = ""
    continue_on_reject: bool = False

    def allows(self, role: str) -> bool:
        """True when a caller with `role` may decide."""
        return role in APPROVING_ROLES or role in self.roles


@dataclass
class Step:
    """One node of a workflow DAG; exactly one of `agent` (an id), `capability`,
    `wait_for`, `approval`, `sleep` (seconds), `sleep_until` (an expression) and
    `workflow` (a child workflow's id) is set."""

    id: str
    display_name: str = ""
    agent: str = ""
    capability: str = ""
    input_mapping: dict[str, Any] | None = None
    output_mapping: dict[str, Any] | None = None
    depends_on: list[str] = field(default_factory=list)
    when: str = ""
    timeout: float | None = None
    retry_policy: RetryPolicy | None = None
    fallback_agents: list[str] = field(default_factory=list)
    wait_for: WaitFor | None = None
    approval: Approval | None = None
    sleep: float | None = None
    sleep_until: str = ""
    loop: Loop | None = None
    workflow: str = ""
    """A workflow id: the step runs it as a child execution."""
    for_each: str = ""
    """An expression giving a list: the step's agent runs once per element."""
    max_parallel: int = 0
    continue_on_error: bool = False
    output_schema: dict[str, Any] | None = None
    """A JSON Schema the agent's output must match."""

    @property
    def maps(self) -> bool:
        """True for a step that runs its agent once per element of a list."""
        return bool(self.for_each)

    @property
    def waits(self) -> bool:
        """True for a step that waits for a signal or a decision (it runs no agent)."""
        return self.wait_for is not None or self.approval is not None

    @property
    def sleeps(self) -> bool:
        """True for a step that sleeps on a durable timer (it runs no agent)."""
        return self.sleep is not None or bool(self.sleep_until)

    @property
    def runs_agent(self) -> bool:
        """True for a step an agent runs."""
        return not (self.waits or self.sleeps or self.workflow)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Step:
        """Builds a step from its stored document."""
        policy = doc.get("retry_policy")
        wait_for = doc.get("wait_for")
        approval = doc.get("approval")
        return cls(
            **{
                **doc,
                "retry_policy": RetryPolicy(**policy) if policy else None,
                "wait_for": WaitFor(**wait_for) if wait_for else None,
                "approval": Approval(**approval) if approval else None,
                "loop": Loop(**doc["loop"]) if doc.get("loop") else None,
            }
        )


@dataclass
class Workflow:
    """A workflow definition at one revision."""

    id: str
    display_name: str = ""
    description: str = ""
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    state: WorkflowState = WorkflowState.ACTIVE
    revision: int = 0
    input_schema: dict[str, Any] | None = None
    output_mapping: dict[str, Any] | None = None
    steps: list[Step] = field(default_factory=list)
    create_time: float = 0.0
    update_time: float = 0.0
    version: int = 0

    def agent_ids(self) -> list[str]:
        """Every agent the steps name, directly or as a fallback, without repeats."""
        seen: dict[str, None] = {}
        for step in self.steps:
            for agent in ([step.agent] if step.agent else []) + step.fallback_agents:
                seen.setdefault(agent, None)
        return list(seen)

    def to_doc(self) -> dict[str, Any]:
        """The JSON document storage keeps."""
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Workflow:
        """Reverses `to_doc`."""
        return cls(
            **{
                **doc,
                "state": WorkflowState(doc["state"]),
                "steps": [Step.from_doc(s) for s in doc["steps"]],
            }
        )


@dataclass
class Handoff:
    """A declared passage of work from a source agent to a target agent."""

    id: str
    source_agent: str = ""
    target_agent: str = ""
    type: HandoffType | None = None
    data_mapping: dict[str, str] = field(default_factory=dict)
    trigger_conditions: list[str] = field(default_factory=list)
    priority: int = 0
    description: str = ""
    create_time: float = 0.0
    update_time: float = 0.0
    version: int = 0

    def to_doc(self) -> dict[str, Any]:
        """The JSON document storage keeps."""
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Handoff:
        """Reverses `to_doc`."""
        return cls(**{**doc, "type": HandoffType(doc["type"]) if doc.get("type") else None})
