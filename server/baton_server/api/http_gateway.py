"""The HTTP/JSON API and the web console, served on BATON_HTTP_LISTEN.

The API is every RPC that has a `google.api.http` annotation in proto/ (AIP-127), served by
calling the same gRPC service in this process over a private Unix socket. It is one
mapping, not a second implementation: auth, validation, errors, pagination and idempotency
are the gRPC API's own.

- A request is built from the path's variables, the body (the field the rule names, or the
  whole request for `*`) and the query string (`page_size=10`, `labels.team=ml`,
  `event_types=EVENT_TYPE_LOG&event_types=...`); JSON takes proto field names or their
  lowerCamelCase forms. The `Authorization` header is passed on as it is.
- A response is the message as JSON with proto field names.
- An error is `{"error": {"code", "status", "message", "details"}}`, with the HTTP status of
  its gRPC code and its details (ErrorInfo, BadRequest) as JSON.
- A server-streaming RPC (StreamExecutionEvents) is served as Server-Sent Events: one event
  per message, `id` its sequence, `event` its type. A client that reconnects with
  `Last-Event-ID` resumes after that sequence, missing nothing.

The console is a page (`/`) with its scripts and libraries (`/static/`), which calls the
API; `/console/session` tells it the caller's role, to show the actions it may take.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from google.api import annotations_pb2
from google.protobuf import descriptor, json_format, message_factory
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from baton.v1 import (
    agent_pb2,
    execution_pb2,
    handoff_pb2,
    monitoring_pb2,
    schedule_pb2,
    tool_pb2,
    workflow_pb2,
)
from baton_server.api.auth import ANONYMOUS, Caller, Callers, granted

log = logging.getLogger(__name__)

CONSOLE_STATIC = Path(__file__).resolve().parent.parent / "console" / "static"
"""The web console: a page and its scripts, with the libraries it uses (no CDN)."""

_ = error_details_pb2  # the error detail types, known to the JSON printer through the pool

FILES = (
    agent_pb2,
    workflow_pb2,
    handoff_pb2,
    tool_pb2,
    schedule_pb2,
    execution_pb2,
    monitoring_pb2,
)
"""The services mapped (WorkerService is not: workers use gRPC streams)."""
KEEPALIVE_SECONDS = 15.0
"""An SSE stream sends a comment this often when it has nothing else to send."""
_HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
_FORWARDED_HEADERS = ("authorization", "traceparent")


@dataclass(frozen=True)
class Route:
    """One RPC's HTTP rule, compiled."""

    verb: str
    pattern: re.Pattern[str]
    variables: tuple[str, ...]
    """The request field path each path variable sets, in the pattern's group order."""
    body: str
    method: descriptor.MethodDescriptor
    request: type[Message]
    response: type[Message]

    @property
    def path(self) -> str:
        """The gRPC method path, `/baton.v1.Service/Method`."""
        return f"/{self.method.containing_service.full_name}/{self.method.name}"


def routes() -> list[Route]:
    """The routes of every annotated RPC of the mapped services."""
    found = []
    for module in FILES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                options = method.GetOptions()
                if not options.HasExtension(annotations_pb2.http):
                    continue
                rule = options.Extensions[annotations_pb2.http]
                verb = rule.WhichOneof("pattern")
                if verb is None or verb == "custom":
                    continue
                pattern, variables = _compile(getattr(rule, verb))
                found.append(
                    Route(
                        verb.upper(),
                        pattern,
                        variables,
                        rule.body,
                        method,
                        message_factory.GetMessageClass(method.input_type),
                        message_factory.GetMessageClass(method.output_type),
                    )
                )
    return found


def _compile(template: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """`/v1/{name=executions/*}:wait` -> a regex with one group per variable, and the
    variables' field paths. A `*` matches one path segment (no `/` or `:`)."""
    variables = []
    regex = ""
    position = 0
    for match in re.finditer(r"\{([\w.]+)(?:=([^}]+))?\}", template):
        regex += re.escape(template[position : match.start()])
        field_path, segments = match.group(1), match.group(2) or "*"
        inner = "/".join(
            "[^/:]+" if segment == "*" else re.escape(segment) for segment in segments.split("/")
        )
        regex += f"({inner})"
        variables.append(field_path)
        position = match.end()
    regex += re.escape(template[position:])
    return re.compile(f"^{regex}$"), tuple(variables)


class HttpGateway:
    """Serves the HTTP/JSON API on an aiohttp server, calling gRPC on `channel`."""

    def __init__(
        self, channel: grpc.aio.Channel, max_body_bytes: int, callers: Callers | None = None
    ) -> None:
        self._channel = channel
        self._routes = routes()
        self._max_body = max_body_bytes
        self._callers = callers or Callers({})
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, listen: str) -> int:
        """Listens on `host:port` (port 0 picks one); returns the port."""
        app = web.Application(client_max_size=self._max_body)
        app.router.add_get("/", _console_page)
        app.router.add_static("/static/", CONSOLE_STATIC, follow_symlinks=False)
        app.router.add_get("/console/session", self._session)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        host, _, port = listen.rpartition(":")
        site = web.TCPSite(self._runner, host or "0.0.0.0", int(port))
        await site.start()
        server = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        return self.port

    async def stop(self) -> None:
        """Stops serving (open event streams end)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _session(self, request: web.Request) -> web.Response:
        """Who the console's caller is, and what its role may do (to show the actions it
        may take; the API checks every call anyway)."""
        header = request.headers.get("Authorization", "")
        caller = self._callers.from_metadata((("authorization", header),))
        if caller is None and self._callers.enabled:
            return _error_response(401, "UNAUTHENTICATED", "a valid bearer token is needed", [])
        caller = caller or Caller(ANONYMOUS, "admin")
        return web.json_response(
            {
                "auth": self._callers.enabled,
                "name": caller.name,
                "role": caller.role,
                "permissions": sorted(granted(caller.role)),
            }
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        matched = self._match(request)
        if isinstance(matched, web.Response):
            return matched
        route, values = matched
        try:
            message = await self._build(route, request, values)
        except _BadRequestError as exc:
            return _error_response(400, "INVALID_ARGUMENT", str(exc), [])
        metadata = tuple(
            (name, request.headers[name]) for name in _FORWARDED_HEADERS if name in request.headers
        )
        if route.method.server_streaming:
            return await self._stream(route, request, message, metadata)
        call = self._channel.unary_unary(
            route.path,
            request_serializer=route.request.SerializeToString,
            response_deserializer=route.response.FromString,
        )
        try:
            response = await call(message, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            return _rpc_error(exc)
        return web.json_response(text=_json(response))

    def _match(self, request: web.Request) -> tuple[Route, tuple[str, ...]] | web.Response:
        """The route and its path variables, or the error response (404, 405)."""
        allowed = set()
        for route in self._routes:
            found = route.pattern.match(request.path)
            if found is None:
                continue
            if route.verb != request.method:
                allowed.add(route.verb)
                continue
            return route, found.groups()
        if allowed:
            response = _error_response(
                405, "UNIMPLEMENTED", f"{request.method} is not allowed here", []
            )
            response.headers["Allow"] = ", ".join(sorted(allowed))
            return response
        return _error_response(404, "NOT_FOUND", f"no API at {request.path}", [])

    async def _build(self, route: Route, request: web.Request, values: tuple[str, ...]) -> Message:
        message = route.request()
        if route.body:
            text = await request.text()
            if text.strip():
                try:
                    document = json.loads(text)
                except ValueError as exc:
                    raise _BadRequestError(f"the body is not JSON: {exc}") from None
                target = message if route.body == "*" else getattr(message, route.body)
                _parse(document, target, "the body")
        query = _query_document(route.method.input_type, request)
        if query:
            _parse(query, message, "the query")
        for field_path, value in zip(route.variables, values, strict=True):
            _set_path(message, field_path, value)
        return message

    async def _stream(
        self,
        route: Route,
        request: web.Request,
        message: Message,
        metadata: tuple[tuple[str, str], ...],
    ) -> web.StreamResponse:
        resume = request.headers.get("Last-Event-ID", "")
        if resume.isdigit() and "after_sequence" in route.request.DESCRIPTOR.fields_by_name:
            message.after_sequence = max(message.after_sequence, int(resume))  # type: ignore[attr-defined]
        call = self._channel.unary_stream(
            route.path,
            request_serializer=route.request.SerializeToString,
            response_deserializer=route.response.FromString,
        )(message, metadata=metadata)
        try:
            first = await _next(call)
        except grpc.aio.AioRpcError as exc:
            return _rpc_error(exc)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        try:
            item = first
            while item is not None:
                await response.write(_sse(item))
                item = await _next_or_keepalive(call, response)
        except grpc.aio.AioRpcError as exc:
            body = {"error": _error_document(exc)}
            await response.write(f"event: error\ndata: {json.dumps(body)}\n\n".encode())
        finally:  # ended, failed, or the client went away
            call.cancel()
        return response


class _BadRequestError(Exception):
    pass


def _parse(document: Any, target: Message, where: str) -> None:
    if not isinstance(document, dict):
        raise _BadRequestError(f"{where} must be a JSON object")
    try:
        json_format.ParseDict(document, target)
    except json_format.ParseError as exc:
        raise _BadRequestError(f"{where}: {exc}") from None


def _query_document(request: descriptor.Descriptor, http: web.Request) -> dict[str, Any]:
    """The query string as a JSON document for the request message: repeated keys give
    lists, `a.b=v` a nested field (or a map entry), and scalars take their field's type."""
    document: dict[str, Any] = {}
    for key in dict.fromkeys(http.query):
        values = http.query.getall(key)
        parts = key.split(".")
        field = _field(request, parts)
        if field is None:
            raise _BadRequestError(f"the query names {key!r}, which is not a field")
        holder = document
        for part in parts[:-1]:
            holder = holder.setdefault(part, {})
        if field.is_repeated:
            holder[parts[-1]] = [_scalar(field, v) for v in values]
        else:
            holder[parts[-1]] = _scalar(field, values[-1])
    return document


def _field(message: descriptor.Descriptor, parts: list[str]) -> descriptor.FieldDescriptor | None:
    """The field a dotted query key sets (a map's value field for `map.key`)."""
    current: descriptor.Descriptor | None = message
    field = None
    for index, part in enumerate(parts):
        if current is None:
            return None
        field = current.fields_by_name.get(part) or current.fields_by_camelcase_name.get(part)
        if field is None:
            return None
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            if index == len(parts) - 2:
                return entry.fields_by_name["value"]
            return None if index < len(parts) - 1 else field
        current = entry
    return field


def _scalar(field: descriptor.FieldDescriptor, value: str) -> Any:
    if field.type == descriptor.FieldDescriptor.TYPE_BOOL:
        if value.lower() in ("true", "1", ""):
            return True
        if value.lower() in ("false", "0"):
            return False
        raise _BadRequestError(f"{field.name} must be true or false")
    return value  # numbers as text: the JSON parser takes them for number fields


def _set_path(message: Message, field_path: str, value: str) -> None:
    *holders, last = field_path.split(".")
    target = message
    for name in holders:
        target = getattr(target, name)
    setattr(target, last, value)


async def _next(call: Any) -> Message | None:
    item = await call.read()
    return None if item is grpc.aio.EOF else item


async def _next_or_keepalive(call: Any, response: web.StreamResponse) -> Message | None:
    """The stream's next message; a comment goes out while none comes, so that proxies and
    clients keep the connection."""
    reading = asyncio.ensure_future(_next(call))
    try:
        while True:
            done, _ = await asyncio.wait({reading}, timeout=KEEPALIVE_SECONDS)
            if done:
                return reading.result()
            await response.write(b": keep-alive\n\n")
    finally:
        if not reading.done():
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading


def _sse(message: Message) -> bytes:
    document = json_format.MessageToDict(message, preserving_proto_field_name=True)
    lines = []
    sequence = document.get("sequence")
    if sequence is not None:
        lines.append(f"id: {sequence}")
    kind = document.get("type")
    if isinstance(kind, str):
        lines.append(f"event: {kind.removeprefix('EVENT_TYPE_')}")
    lines.append(f"data: {json.dumps(document, separators=(',', ':'))}")
    return ("\n".join(lines) + "\n\n").encode()


def _json(message: Message) -> str:
    return json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True))


def _error_document(exc: grpc.aio.AioRpcError) -> dict[str, Any]:
    code = exc.code()
    details: list[Any] = []
    for key, value in exc.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            details = [
                json_format.MessageToDict(d, preserving_proto_field_name=True)
                for d in status.details
            ]
    return {
        "code": _HTTP_STATUS.get(code, 500),
        "status": code.name,
        "message": exc.details() or "",
        "details": details,
    }


def _rpc_error(exc: grpc.aio.AioRpcError) -> web.Response:
    document = _error_document(exc)
    return web.json_response({"error": document}, status=document["code"])


def _error_response(status: int, code: str, message: str, details: list[Any]) -> web.Response:
    return web.json_response(
        {"error": {"code": status, "status": code, "message": message, "details": details}},
        status=status,
    )


async def _console_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(CONSOLE_STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def loopback_address(directory: str) -> str:
    """Where the gateway reaches the gRPC server: a Unix socket in a private directory."""
    return f"unix:{directory}/grpc.sock"
