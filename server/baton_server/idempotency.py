"""Idempotent mutating requests: a `request_id` answered before gets its first answer back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from baton_server.errors import invalid_field
from baton_server.storage.database import SqlConnection
from baton_server.storage.idempotency import IdempotencyRepository


@dataclass(frozen=True)
class RequestInfo:
    """What makes a mutating request repeatable: its `request_id` and a fingerprint of the
    rest of it (a repeat must be the same request)."""

    method: str
    request_id: str = ""
    fingerprint: str = ""


async def once(
    conn: SqlConnection,
    repo: IdempotencyRepository,
    request: RequestInfo,
    produce: Callable[[SqlConnection], Awaitable[Any]],
    now: float,
) -> Any:
    """Inside a write job: runs `produce` unless this request id was answered before, and
    remembers its answer in the same transaction. Failed requests are not remembered."""
    if not request.request_id:
        return await produce(conn)
    key = f"{request.method}:{request.request_id}"
    remembered = await repo.get(conn, key)
    if remembered is not None:
        if remembered.fingerprint != request.fingerprint:
            raise invalid_field(
                "request_id", "was already used for a different request", "REQUEST_ID_REUSED"
            )
        return remembered.response
    response = await produce(conn)
    await repo.put(conn, key, request.fingerprint, response, now)
    return response
