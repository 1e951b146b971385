"""Agents that ship with Baton, so a workflow can run with nothing else installed.

Use them as `python` runtime entry points, e.g. `baton_server.agents.builtin:echo`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from baton import AgentError, StepContext
from baton_server.domain import failures
from baton_server.language.mapping import MappingError, render
from baton_server.runtimes.http_answers import parse_json, read_body


def echo(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Returns its input unchanged (a plain function: runs in the thread pool)."""
    return value


async def noop(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Returns an empty output at once (async: runs on the event loop)."""
    return {}


def template(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Renders the agent's `config.template` (any JSON value with `${input.x}` expressions)
    against the step input; the result is the output (under `result` if not an object)."""
    if "template" not in ctx.config:
        raise AgentError(
            "the agent's config has no 'template'", type=failures.CONFIG_ERROR, non_retryable=True
        )
    try:
        rendered = render(ctx.config["template"], {"input": value})
    except MappingError as exc:
        raise AgentError(str(exc), type=failures.MAPPING_ERROR, non_retryable=True) from None
    return rendered if isinstance(rendered, dict) else {"result": rendered}


async def sleep(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Waits `seconds` (from the input, else the config, else 1), then returns its input."""
    seconds = float(value.get("seconds", ctx.config.get("seconds", 1.0)))
    await asyncio.sleep(seconds)
    return value


async def http_request(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Makes an HTTP request with the server's shared client.

    Input (or config, as defaults): `url` (required), `method` (GET), `headers`, `params`,
    `json` or `body`, `timeout` seconds. Output: `status`, `headers`, and `json` when the
    response is JSON, else `text`. 5xx and 429 fail retryably (429 honours Retry-After);
    other 4xx fail without retries. An answer past MAX_ANSWER_BYTES fails ANSWER_TOO_LARGE.
    """
    spec = {**ctx.config, **value}
    if not spec.get("url"):
        raise AgentError("'url' is required", type=failures.CONFIG_ERROR, non_retryable=True)
    client: httpx.AsyncClient = ctx.http
    try:
        async with client.stream(
            spec.get("method", "GET"),
            spec["url"],
            headers=spec.get("headers"),
            params=spec.get("params"),
            json=spec.get("json"),
            content=spec.get("body"),
            timeout=spec.get("timeout", 30.0),
        ) as response:
            answer = await read_body(response)
    except httpx.HTTPError as exc:
        raise AgentError(f"{type(exc).__name__}: {exc}", type=failures.HTTP_ERROR) from None
    if response.status_code == 429 or response.status_code >= 500:
        retry_after = response.headers.get("retry-after")
        raise AgentError(
            f"HTTP {response.status_code} from {spec['url']}",
            type=failures.http_status(response.status_code),
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )
    if response.status_code >= 400:
        raise AgentError(
            f"HTTP {response.status_code} from {spec['url']}",
            type=failures.http_status(response.status_code),
            non_retryable=True,
        )
    output: dict[str, Any] = {"status": response.status_code, "headers": dict(response.headers)}
    if response.headers.get("content-type", "").startswith("application/json"):
        try:
            output["json"] = parse_json(answer)
        except ValueError:
            raise AgentError(
                f"the answer from {spec['url']} is not JSON", type=failures.BAD_RESPONSE
            ) from None
    else:
        output["text"] = answer.decode(response.encoding or "utf-8", "replace")
    return output
