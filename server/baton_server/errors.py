"""The one error type raised inside the server, translated to a gRPC status at the API edge."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from baton_server.limits import shorten


class Code(enum.Enum):
    """Canonical error codes (the gRPC ones), named without importing gRPC."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    ABORTED = "ABORTED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    UNAVAILABLE = "UNAVAILABLE"
    UNIMPLEMENTED = "UNIMPLEMENTED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field: its path in the request (e.g. `workflow.steps[1].when`) and why."""

    field: str
    description: str
    reason: str = "INVALID_VALUE"


@dataclass
class BatonError(Exception):
    """An error with a canonical code, a stable UPPER_SNAKE reason and lowerCamel metadata.

    Raised anywhere in the engine or storage; the API layer turns it into a gRPC status
    carrying `google.rpc.ErrorInfo` (and `google.rpc.BadRequest` for field violations).
    """

    code: Code
    reason: str
    message: str
    metadata: dict[str, str] = field(default_factory=dict)
    violations: list[FieldViolation] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.code.value} {self.reason}: {self.message}"


def invalid(violations: list[FieldViolation]) -> BatonError:
    """An INVALID_ARGUMENT error for one or more field violations; the first names the field."""
    first = violations[0]
    message = "; ".join(f"{v.field}: {v.description}" for v in violations[:5])
    if len(violations) > 5:
        message += f"; and {len(violations) - 5} more"
    return BatonError(
        Code.INVALID_ARGUMENT,
        first.reason,
        message,
        metadata={"field": first.field},
        violations=list(violations),
    )


def raise_if_invalid(violations: list[FieldViolation]) -> None:
    """Raises INVALID_ARGUMENT for `violations`, if there are any."""
    if violations:
        raise invalid(violations)


def invalid_field(field_path: str, description: str, reason: str = "INVALID_VALUE") -> BatonError:
    """An INVALID_ARGUMENT error for a single field."""
    return invalid([FieldViolation(field_path, description, reason)])


def not_found(kind: str, name: str) -> BatonError:
    """A NOT_FOUND error, reason `<KIND>_NOT_FOUND`, e.g. WORKFLOW_NOT_FOUND."""
    return BatonError(
        Code.NOT_FOUND,
        f"{kind.upper()}_NOT_FOUND",
        f"{kind} {shorten(name)!r} not found",
        metadata={"name": shorten(name)},
    )
