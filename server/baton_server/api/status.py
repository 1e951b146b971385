"""The one place server errors become gRPC statuses: BatonError -> code + google.rpc.ErrorInfo
(+ google.rpc.BadRequest); anything unexpected -> INTERNAL with no detail on the wire."""

from __future__ import annotations

import functools
import inspect
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from baton_server.errors import BatonError, Code, FieldViolation
from baton_server.limits import (
    MAX_STATUS_MESSAGE_CHARS,
    MAX_STATUS_METADATA_CHARS,
    MAX_STATUS_VIOLATIONS,
    shorten,
)

DOMAIN = "baton.dev"

log = logging.getLogger(__name__)

_CODES: dict[Code, int] = {code: getattr(code_pb2, code.value) for code in Code}

C = TypeVar("C", bound=type)


def to_status(error: BatonError) -> grpc.Status:
    """Builds the gRPC status for a BatonError. Every text in it is cut to a bound, so that
    the status always fits in the trailers whatever input an error quotes."""
    status = status_pb2.Status(
        code=_CODES[error.code], message=shorten(error.message, MAX_STATUS_MESSAGE_CHARS)
    )
    metadata = {
        shorten(k, 64): shorten(v, MAX_STATUS_METADATA_CHARS)
        for k, v in list(error.metadata.items())[:16]
    }
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=metadata)
    )
    if error.violations:
        status.details.add().Pack(
            error_details_pb2.BadRequest(field_violations=_bounded(error.violations))
        )
    result: grpc.Status = rpc_status.to_status(status)
    return result


def _bounded(
    violations: list[FieldViolation],
) -> list[error_details_pb2.BadRequest.FieldViolation]:
    shown = [
        error_details_pb2.BadRequest.FieldViolation(
            field=shorten(v.field, MAX_STATUS_METADATA_CHARS),
            description=shorten(v.description, MAX_STATUS_METADATA_CHARS),
            reason=v.reason,
        )
        for v in violations[:MAX_STATUS_VIOLATIONS]
    ]
    hidden = len(violations) - len(shown)
    if hidden > 0:
        shown.append(
            error_details_pb2.BadRequest.FieldViolation(
                field="", description=f"and {hidden} more violations", reason="MORE_VIOLATIONS"
            )
        )
    return shown


def _internal(method: str, exc: BaseException) -> grpc.Status:
    ref = uuid.uuid4().hex[:12]
    log.error("unexpected error in %s (ref %s)", method, ref, exc_info=exc)
    return to_status(
        BatonError(
            Code.INTERNAL,
            "INTERNAL",
            f"internal error (ref {ref}); see the server log",
            metadata={"ref": ref},
        )
    )


def translate_errors(cls: C) -> C:
    """Class decorator: wraps every RPC method of a servicer (the methods its generated
    base class declares) so that BatonError and unexpected exceptions end the call with a
    proper status."""
    rpcs = {name for base in cls.__mro__[1:] for name in vars(base) if not name.startswith("_")}
    for name, method in list(vars(cls).items()):
        if name not in rpcs:
            continue
        if inspect.isasyncgenfunction(method):
            setattr(cls, name, _wrap_stream(method, f"{cls.__name__}.{name}"))
        elif inspect.iscoroutinefunction(method):
            setattr(cls, name, _wrap_unary(method, f"{cls.__name__}.{name}"))
    return cls


def _wrap_unary(method: Callable[..., Any], label: str) -> Callable[..., Any]:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await method(self, request, context)
        except BatonError as exc:
            await context.abort_with_status(to_status(exc))
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # the single boundary for unexpected errors
            await context.abort_with_status(_internal(label, exc))

    return wrapper


def _wrap_stream(method: Callable[..., AsyncIterator[Any]], label: str) -> Callable[..., Any]:
    @functools.wraps(method)
    async def wrapper(
        self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        try:
            async for item in method(self, request, context):
                yield item
        except BatonError as exc:
            await context.abort_with_status(to_status(exc))
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # the single boundary for unexpected errors
            await context.abort_with_status(_internal(label, exc))

    return wrapper
