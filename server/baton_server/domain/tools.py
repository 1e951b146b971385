"""Tools: functions agents may call, each with a JSON Schema of its parameters and one
implementation (a Python callable, remote workers, an HTTP request, another agent, or a
workflow run as a child)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from baton_server.domain.definitions import PythonRuntime, RetryPolicy, WorkerRuntime


@dataclass
class HttpTool:
    """An HTTP request template."""

    url: str
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None


@dataclass
class AgentTool:
    """Another agent, run with the arguments as its input."""

    agent: str


@dataclass
class WorkflowTool:
    """A workflow, run as a child execution with the arguments as its input."""

    workflow: str


Implementation = PythonRuntime | WorkerRuntime | HttpTool | AgentTool | WorkflowTool
_KINDS: dict[str, type[Any]] = {
    "python": PythonRuntime,
    "worker": WorkerRuntime,
    "http": HttpTool,
    "agent": AgentTool,
    "workflow": WorkflowTool,
}


def implementation_kind(implementation: Implementation | None) -> str:
    """The name of an implementation's kind ('' for none)."""
    for kind, cls in _KINDS.items():
        if isinstance(implementation, cls):
            return kind
    return ""


@dataclass
class Tool:
    """A tool definition; its id is the name a model calls it by."""

    id: str
    description: str = ""
    parameters: dict[str, Any] | None = None
    implementation: Implementation | None = None
    timeout: float | None = None
    retry_policy: RetryPolicy | None = None
    create_time: float = 0.0
    update_time: float = 0.0
    version: int = 0

    def to_doc(self) -> dict[str, Any]:
        """The JSON document storage keeps."""
        doc = asdict(self)
        implementation = self.implementation
        doc["implementation"] = (
            {"kind": implementation_kind(implementation), **asdict(implementation)}
            if implementation is not None
            else None
        )
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Tool:
        """Reverses `to_doc`."""
        implementation: Implementation | None = None
        if doc.get("implementation"):
            fields = dict(doc["implementation"])
            implementation = _KINDS[fields.pop("kind")](**fields)
        policy = doc.get("retry_policy")
        return cls(
            **{
                **doc,
                "implementation": implementation,
                "retry_policy": RetryPolicy(**policy) if policy else None,
            }
        )
