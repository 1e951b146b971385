"""Reading what an HTTP endpoint (a model, an `http` tool) answers, within bounds: a body is
read up to MAX_ANSWER_BYTES and no further, a streamed answer's lines one at a time up to
the same bound in all, so an endpoint that answers without end cannot fill the server's
memory. Statuses of 400 and more become the attempt's failure."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from baton_server.domain import failures
from baton_server.domain.attempts import AttemptFailedError
from baton_server.domain.executions import Failure
from baton_server.limits import MAX_ANSWER_BYTES


async def read_body(response: httpx.Response) -> bytes:
    """The body of a streamed response; the attempt fails past MAX_ANSWER_BYTES."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
        raise _too_large(int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise _too_large(size)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_lines(response: httpx.Response) -> AsyncIterator[str]:
    """The lines of a streamed response (Server-Sent Events); the attempt fails once they
    pass MAX_ANSWER_BYTES in all."""
    pending: list[bytes] = []  # the line begun, in pieces (joined once it ends)
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise _too_large(size)
        *ended, rest = chunk.split(b"\n")
        for piece in ended:
            line = b"".join([*pending, piece])
            pending = []
            yield line.rstrip(b"\r").decode("utf-8", "replace")
        if rest:
            pending.append(rest)
    if pending:
        yield b"".join(pending).decode("utf-8", "replace")


def parse_json(body: bytes) -> Any:
    """The JSON value of a body; ValueError if it is not JSON (or nests too deep)."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("the JSON nests too deep") from None


def check_status(response: httpx.Response, body: bytes) -> None:
    """Raises the failure of an HTTP answer of 400 or more: 429 and 5xx retryable (after
    their Retry-After), the other 4xx not."""
    status = response.status_code
    if status < 400:
        return
    detail = body[:300].decode("utf-8", "replace")
    if status == 429 or status >= 500:
        raise AttemptFailedError(
            Failure(failures.http_status(status), f"the endpoint answered {status}: {detail}"),
            _retry_after(response.headers.get("retry-after")),
        )
    raise AttemptFailedError(
        Failure(
            failures.http_status(status),
            f"the endpoint answered {status}: {detail}",
            non_retryable=True,
        )
    )


def _too_large(size: int) -> AttemptFailedError:
    return AttemptFailedError(
        Failure(
            failures.ANSWER_TOO_LARGE,
            f"the endpoint's answer passed {MAX_ANSWER_BYTES} bytes ({size} read); "
            "the rest was not read",
        )
    )


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None
