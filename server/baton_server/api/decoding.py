"""Requests that cannot be decoded end with INVALID_ARGUMENT, not UNKNOWN.

grpc.aio answers UNKNOWN (naming a Python exception class) when a request deserializer
raises: bad wire format, invalid UTF-8 in a string field, or messages nested deeper than
protobuf's recursion limit. This interceptor, the innermost, gives every handler a
deserializer that never raises: an undecodable request becomes an `Undecodable` value and
the handler ends the call with INVALID_ARGUMENT / MALFORMED_REQUEST. Since the check runs in
the handler, the interceptors outside it (auth) still answer first: a caller without a token
gets UNAUTHENTICATED whatever bytes it sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from baton_server.api.handler_streams import items_of
from baton_server.api.status import to_status
from baton_server.errors import BatonError, Code

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]


class Undecodable:
    """Stands for a request whose bytes did not decode."""

    __slots__ = ("message_type",)

    def __init__(self, message_type: str) -> None:
        self.message_type = message_type


def _status(request: Undecodable) -> grpc.Status:
    return to_status(
        BatonError(
            Code.INVALID_ARGUMENT,
            "MALFORMED_REQUEST",
            f"the request is not a valid {request.message_type} message (bad wire format, "
            "invalid UTF-8 in a string field, or nested too deeply)",
        )
    )


class DecodingInterceptor(grpc.aio.ServerInterceptor):
    """Wraps each method's handler once (the handlers are fixed per method)."""

    def __init__(self) -> None:
        # Keyed by the method, holding the handler it wrapped: identity is compared against
        # a handler this dict keeps alive, so it can never be a reused id.
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = _wrap(handler, method)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


def _wrap(handler: Handler, method: str) -> Handler:
    deserialize = handler.request_deserializer
    assert deserialize is not None
    message_type = method.rsplit("/", 1)[-1] + " request"

    def safe(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception:  # any decoding failure is the caller's malformed request
            return Undecodable(message_type)

    if handler.unary_unary:
        inner: Any = handler.unary_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if isinstance(request, Undecodable):
                await context.abort_with_status(_status(request))
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(unary, safe, handler.response_serializer)
    if handler.unary_stream:
        inner_stream: Any = handler.unary_stream

        async def stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            if isinstance(request, Undecodable):
                await context.abort_with_status(_status(request))
            async for item in items_of(inner_stream(request, context)):
                yield item

        return grpc.unary_stream_rpc_method_handler(stream, safe, handler.response_serializer)
    return handler  # streaming requests (reflection) decode inside their own loop
