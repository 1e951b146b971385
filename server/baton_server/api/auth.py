"""Bearer-token authentication, role checks (one server interceptor), and who a caller is.

Tokens map to roles: `reader` (Get, List, Wait, Stream, Validate, metrics, health),
`operator` (also Create, Update, Delete, Start, Cancel, …), `worker` (WorkerService only) and
`admin` (everything). Any other role name (for example `reviewer`) reads like `reader` and
may decide the approval steps that name it. ApproveStep is open to every role but
`worker`; the execution service checks the step's roles. Health checks and reflection need
no token, so that probes work. A token may carry a name (`token=role:name`): the identity
recorded when its caller decides an approval.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from baton_server.api.status import to_status
from baton_server.domain.ids import ROLE_NAME
from baton_server.errors import BatonError, Code

log = logging.getLogger(__name__)

READ, WRITE, WORK, DECIDE = "read", "write", "work", "decide"
ROLES: dict[str, frozenset[str]] = {
    "reader": frozenset({READ, DECIDE}),
    "operator": frozenset({READ, WRITE, DECIDE}),
    "worker": frozenset({WORK}),
    "admin": frozenset({READ, WRITE, WORK, DECIDE}),
}
CUSTOM_ROLE = frozenset({READ, DECIDE})
"""What a role Baton does not define may do: read, and decide the approvals naming it."""
_OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
_READ_VERBS = ("Get", "List", "Wait", "Stream", "Validate")
_DECIDE_METHODS = frozenset({"/baton.v1.ExecutionService/ApproveStep"})
ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who called: a name for the record, and the role that grants what it may do."""

    name: str
    role: str


def parse_tokens(setting: str) -> dict[str, Caller]:
    """`token=role[:name],…`, or `@path` to a file with one `token role [name]` per line.
    A token without a name is known by a prefix of its digest (`token:1a2b3c4d`)."""
    if setting.startswith("@"):
        entries = [
            line.split(maxsplit=2)
            for line in Path(setting[1:]).read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        pairs = [
            [e[0], f"{e[1]}:{e[2]}" if len(e) == 3 else e[1]] if len(e) >= 2 else e for e in entries
        ]
    else:
        pairs = [item.split("=", 1) for item in setting.split(",") if item.strip()]
    tokens: dict[str, Caller] = {}
    for pair in pairs:
        role, _, name = pair[1].strip().partition(":") if len(pair) == 2 else ("", "", "")
        token = pair[0].strip()
        if not token or not ROLE_NAME.fullmatch(role):
            raise SystemExit(
                f"baton: bad auth token entry {pair[0][:4]!r}…: write token=role or "
                f"token=role:name, with a role of {', '.join(sorted(ROLES))} or another "
                "name of 1-32 of [a-z0-9_-] (a role that approval steps name)"
            )
        tokens[token] = Caller(name.strip() or f"token:{_digest(token)[:8]}", role)
    if not tokens:
        raise SystemExit("baton: auth_tokens names no tokens")
    custom = sorted({c.role for c in tokens.values()} - ROLES.keys())
    if custom:
        log.info("auth: roles %s read, and decide the approval steps that name them", custom)
    return tokens


def permission(method: str) -> str | None:
    """What a method needs: READ, WRITE, WORK or DECIDE; None for the open services."""
    if method.startswith(_OPEN_SERVICES):
        return None
    if method.startswith("/baton.v1.WorkerService/"):
        return WORK
    if method in _DECIDE_METHODS:
        return DECIDE
    name = method.rsplit("/", 1)[-1]
    return READ if name.startswith(_READ_VERBS) else WRITE


def granted(role: str) -> frozenset[str]:
    """The permissions of a role."""
    return ROLES.get(role, CUSTOM_ROLE)


class Callers:
    """Tells who a call comes from: its token's caller, else (auth off) an admin named by
    its client certificate's subject, or `anonymous`."""

    def __init__(self, tokens: Mapping[str, Caller]) -> None:
        # Keyed by a digest, compared in constant time: no token leaks through timing.
        self._callers = {_digest(token): caller for token, caller in tokens.items()}

    @property
    def enabled(self) -> bool:
        """True when tokens are required."""
        return bool(self._callers)

    def from_metadata(self, metadata: Any) -> Caller | None:
        """The caller a call's `authorization: Bearer <token>` names; None for none."""
        for key, value in metadata or ():
            if key == "authorization" and isinstance(value, str):
                scheme, _, token = value.partition(" ")
                if scheme.lower() == "bearer" and token:
                    digest = _digest(token.strip())
                    for known, caller in self._callers.items():
                        if hmac.compare_digest(known, digest):
                            return caller
        return None

    def identify(self, context: grpc.aio.ServicerContext[Any, Any]) -> Caller:
        """Who is calling (the interceptor has already let the call in)."""
        caller = self.from_metadata(context.invocation_metadata())
        subject = _certificate_subject(context)
        if caller is not None:
            named = not caller.name.startswith("token:")
            return caller if named or not subject else Caller(subject, caller.role)
        return Caller(subject or ANONYMOUS, "admin")


def _certificate_subject(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The common name of the client certificate (mutual TLS), or ''."""
    names = list(context.auth_context().get("x509_common_name") or [])
    return names[0].decode(errors="replace")[:200] if names else ""


class BearerAuth(grpc.aio.ServerInterceptor):
    """Checks `authorization: Bearer <token>` against the configured tokens."""

    def __init__(self, callers: Callers) -> None:
        self._callers = callers
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
        caller = self._callers.from_metadata(handler_call_details.invocation_metadata)
        role = caller.role if caller is not None else None
        if role is not None and needed in granted(role):
            return handler
        refusal = self._refusals.get((method, role))
        if refusal is None:
            refusal = self._refusals[(method, role)] = _refusing(handler, _refusal(method, role))
        return refusal


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
