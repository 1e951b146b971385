"""One exception tree for every failed call, carrying the gRPC code and the ErrorInfo reason."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2

_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    """One invalid request field, from google.rpc.BadRequest."""

    field: str
    description: str
    reason: str


class BatonError(Exception):
    """A call to Baton failed.

    Attributes:
        code: The gRPC status code.
        reason: The stable UPPER_SNAKE reason from google.rpc.ErrorInfo, e.g.
            WORKFLOW_NOT_FOUND ('' when the server sent none, e.g. a transport failure).
        message: The status message.
        metadata: The ErrorInfo metadata, e.g. {"field": "workflow.steps[0].agent"}.
        violations: Every invalid field, for INVALID_ARGUMENT.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        reason: str = "",
        metadata: dict[str, str] | None = None,
        violations: list[FieldViolation] | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}" + (f" [{reason}]" if reason else ""))
        self.code = code
        self.message = message
        self.reason = reason
        self.metadata = metadata or {}
        self.violations = violations or []

    @property
    def field(self) -> str:
        """The offending request field for INVALID_ARGUMENT, else ''."""
        return self.metadata.get("field", "")


class InvalidArgumentError(BatonError):
    """INVALID_ARGUMENT: the request is malformed; `field` names the culprit."""


class NotFoundError(BatonError):
    """NOT_FOUND: the named resource does not exist."""


class AlreadyExistsError(BatonError):
    """ALREADY_EXISTS: a resource with that id exists."""


class FailedPreconditionError(BatonError):
    """FAILED_PRECONDITION: the resource is not in a state that allows this."""


class AbortedError(BatonError):
    """ABORTED: a concurrent change won (e.g. ETAG_MISMATCH); read again and retry."""


class ResourceExhaustedError(BatonError):
    """RESOURCE_EXHAUSTED: a size or rate limit was hit."""


class UnauthenticatedError(BatonError):
    """UNAUTHENTICATED: no valid token."""


class PermissionDeniedError(BatonError):
    """PERMISSION_DENIED: the token's role may not do this."""


class UnavailableError(BatonError):
    """UNAVAILABLE: the server could not be reached or is shutting down."""


class DeadlineExceededError(BatonError):
    """DEADLINE_EXCEEDED: the call's deadline passed."""


class UnimplementedError(BatonError):
    """UNIMPLEMENTED: this server does not implement the call (yet)."""


class InternalError(BatonError):
    """INTERNAL or UNKNOWN: a server bug."""


_BY_CODE: dict[grpc.StatusCode, type[BatonError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.ABORTED: AbortedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNIMPLEMENTED: UnimplementedError,
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.UNKNOWN: InternalError,
}


def from_rpc_error(error: grpc.aio.AioRpcError) -> BatonError:
    """The BatonError for a failed call, with ErrorInfo and BadRequest decoded."""
    code = error.code()
    reason, metadata, violations = "", {}, []
    for key, value in error.trailing_metadata() or ():
        if key != _DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, metadata = info.reason, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations = [
                    FieldViolation(v.field, v.description, v.reason) for v in bad.field_violations
                ]
    cls = _BY_CODE.get(code, BatonError)
    return cls(code, error.details() or "", reason, metadata, violations)
