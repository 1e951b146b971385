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

from baton_server.errors import BatonError, Code

DOMAIN = "baton.dev"

log = logging.getLogger(__name__)

_CODES: dict[Code, int] = {code: getattr(code_pb2, code.value) for code in Code}

C = TypeVar("C", bound=type)


def to_status(error: BatonError) -> grpc.Status:
    """Builds the gRPC status for a BatonError."""
    status = status_pb2.Status(code=_CODES[error.code], message=error.message)
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=error.metadata)
    )
    if error.violations:
        status.details.add().Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description, reason=v.reason
                    )
                    for v in error.violations
                ]
            )
        )
    result: grpc.Status = rpc_status.to_status(status)
    return result


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
