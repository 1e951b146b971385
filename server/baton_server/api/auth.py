"""Bearer-token authentication and role checks, as one server interceptor.

Tokens map to roles: `reader` (Get, List, Wait, Stream, Validate, metrics, health),
`operator` (also Create, Update, Delete, Start, Cancel), `worker` (WorkerService only) and
`admin` (everything). Health checks and reflection need no token, so that probes work.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import grpc

from baton_server.api.status import to_status
from baton_server.errors import BatonError, Code

READ, WRITE, WORK = "read", "write", "work"
ROLES: dict[str, frozenset[str]] = {
    "reader": frozenset({READ}),
    "operator": frozenset({READ, WRITE}),
    "worker": frozenset({WORK}),
    "admin": frozenset({READ, WRITE, WORK}),
}
_OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
_READ_VERBS = ("Get", "List", "Wait", "Stream", "Validate")


def parse_tokens(setting: str) -> dict[str, str]:
    """`token=role,token=role`, or `@path` to a file with one `token role` per line."""
    if setting.startswith("@"):
        pairs = [
            line.split()
            for line in Path(setting[1:]).read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
    else:
        pairs = [item.split("=", 1) for item in setting.split(",") if item.strip()]
    tokens: dict[str, str] = {}
    for pair in pairs:
        if len(pair) != 2 or pair[1].strip() not in ROLES:
            raise SystemExit(
                f"baton: bad auth token entry {pair!r}: write token=role with a role "
                f"of {', '.join(sorted(ROLES))}"
            )
        tokens[pair[0].strip()] = pair[1].strip()
    if not tokens:
        raise SystemExit("baton: auth_tokens names no tokens")
    return tokens


def permission(method: str) -> str | None:
    """What a method needs: READ, WRITE or WORK; None for the open services."""
    if method.startswith(_OPEN_SERVICES):
        return None
    if method.startswith("/baton.v1.WorkerService/"):
        return WORK
    name = method.rsplit("/", 1)[-1]
    return READ if name.startswith(_READ_VERBS) else WRITE


class BearerAuth(grpc.aio.ServerInterceptor):
    """Checks `authorization: Bearer <token>` against the configured tokens."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        # Keyed by a digest, compared in constant time: no token leaks through timing.
        self._roles = {_digest(token): role for token, role in tokens.items()}
        # One refusing handler per (method, role; None for no valid token), made once: a
        # bounded set of long-lived handlers, which the telemetry interceptor wraps once.
        self._refusals: dict[tuple[str, str | None], grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        needed = permission(method)
        handler = await continuation(handler_call_details)
        if needed is None or handler is None:
            return handler
        role = self._role(handler_call_details.invocation_metadata or ())
        if role is not None and needed in ROLES[role]:
            return handler
        refusal = self._refusals.get((method, role))
        if refusal is None:
            refusal = self._refusals[(method, role)] = _refusing(handler, _refusal(method, role))
        return refusal

    def _role(self, metadata: Any) -> str | None:
        for key, value in metadata:
            if key == "authorization" and isinstance(value, str):
                scheme, _, token = value.partition(" ")
                if scheme.lower() == "bearer" and token:
                    digest = _digest(token.strip())
                    for known, role in self._roles.items():
                        if hmac.compare_digest(known, digest):
                            return role
        return None


def _refusal(method: str, role: str | None) -> BatonError:
    if role is None:
        return BatonError(
            Code.UNAUTHENTICATED,
            "UNAUTHENTICATED",
            "send a valid token as metadata `authorization: Bearer <token>`",
        )
    return BatonError(
        Code.PERMISSION_DENIED,
        "PERMISSION_DENIED",
        f"role {role!r} may not call {method}",
        metadata={"role": role, "method": method},
    )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _refusing(
    handler: grpc.RpcMethodHandler[Any, Any], error: BatonError
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same kind as `handler` that ends the call with `error`."""
    status = to_status(error)

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort_with_status(status)

    async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort_with_status(status)
        yield  # a streaming handler is a generator

    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            stream, handler.request_deserializer, handler.response_serializer
        )
    return grpc.unary_unary_rpc_method_handler(
        unary, handler.request_deserializer, handler.response_serializer
    )
