"""Tool calls of LLM agents: the arguments checked against the tool's parameters, then the
tool run by its implementation (a Python callable, remote workers, an HTTP request, another
agent) under its timeout, tried again as its retry policy says. The agent loop records each
try as events; a call that fails for good gives the model its error, not the attempt."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import httpx
import orjson

from baton_server.domain import failures
from baton_server.domain.agent_policy import AgentPolicy
from baton_server.domain.attempts import AgentResult, AttemptFailedError, AttemptInfo
from baton_server.domain.definitions import Agent, PythonRuntime, WorkerRuntime
from baton_server.domain.events import Payload, ToolCallFailed, ToolCallStarted, ToolCallSucceeded
from baton_server.domain.executions import Failure
from baton_server.domain.retry import Backoff
from baton_server.domain.tools import AgentTool, HttpTool, Tool, WorkflowTool
from baton_server.language.input_schema import InputSchema
from baton_server.runtimes.http_answers import check_status, parse_json, read_body

MAX_ARGUMENT_CHARS = 256 * 1024
"""The longest arguments text a model may send to a tool."""


class ToolHost(Protocol):
    """What tool calls use of the runtimes around them."""

    async def call_python(
        self, runtime: PythonRuntime, value: dict[str, Any], info: AttemptInfo
    ) -> Any: ...

    async def invoke(self, agent: Agent, value: dict[str, Any], info: AttemptInfo) -> AgentResult:
        """Runs an agent attempt."""
        ...

    async def call_worker(
        self, queue: str, runtime: WorkerRuntime, value: dict[str, Any], info: AttemptInfo
    ) -> AgentResult: ...


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call a model asked for, in the turn that asked."""

    call_id: str
    name: str
    arguments: str
    turn: int


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """How a call ended: its result, or the error the model is told."""

    result: dict[str, Any] | None = None
    error: Failure | None = None


Record = Callable[[Payload], Awaitable[None]]


class ToolRunner:
    """Runs tool calls; keeps the compiled parameter schema of each tool version."""

    def __init__(self, host: ToolHost, http: httpx.AsyncClient | None, policy: AgentPolicy) -> None:
        self._host = host
        self._http = http
        self._policy = policy
        self._schemas: dict[tuple[str, int], InputSchema] = {}

    async def call(
        self,
        tool: Tool | None,
        call: ToolCall,
        info: AttemptInfo,
        record: Record,
        max_result_bytes: int,
    ) -> ToolOutcome:
        """Runs the call to its end (tries included); records each try's start and each
        failure; returns the result or the error to tell the model."""
        if tool is None:
            return await _refused(
                call,
                info,
                record,
                Failure(failures.TOOL_NOT_FOUND, f"there is no tool {call.name!r}"),
            )
        arguments, problem = await self._arguments(tool, call.arguments)
        if arguments is None:
            failure = Failure(failures.TOOL_ARGUMENTS_INVALID, problem)
            return await _refused(call, info, record, failure)
        backoff = Backoff.from_policy(tool.retry_policy) if tool.retry_policy else None
        tries = 0
        while True:
            tries += 1
            await record(
                ToolCallStarted(call.call_id, tool.id, arguments, tries, call.turn, info.item)
            )
            try:
                result = await self._run(tool, arguments, _call_info(info, call))
                size = len(orjson.dumps(result))
                if size > max_result_bytes:
                    raise AttemptFailedError(
                        Failure(
                            failures.OUTPUT_TOO_LARGE,
                            f"the tool's result is {size} bytes; at most {max_result_bytes} "
                            "are kept (BATON_MAX_OUTPUT_BYTES)",
                            non_retryable=True,
                        )
                    )
                await record(
                    ToolCallSucceeded(call.call_id, tool.id, result, tries, call.turn, info.item)
                )
                return ToolOutcome(result=result)
            except AttemptFailedError as failed:
                failure, retry_after = failed.failure, failed.retry_after
            again = backoff is not None and backoff.should_retry(failure, tries)
            await record(
                ToolCallFailed(failure, call.call_id, tool.id, tries, again, call.turn, info.item)
            )
            if not again:
                return ToolOutcome(error=failure)
            assert backoff is not None
            await asyncio.sleep(backoff.delay(tries, retry_after))

    async def _arguments(self, tool: Tool, text: str) -> tuple[dict[str, Any] | None, str]:
        if len(text) > MAX_ARGUMENT_CHARS:
            return None, f"the arguments are over {MAX_ARGUMENT_CHARS} characters"
        try:
            arguments = json.loads(text or "{}")
        except ValueError as exc:
            return None, f"the arguments are not JSON: {exc}"
        if not isinstance(arguments, dict):
            return None, "the arguments must be a JSON object"
        if tool.parameters is not None:
            key = (tool.id, tool.version)
            schema = self._schemas.get(key)
            if schema is None:
                schema = self._schemas[key] = InputSchema(tool.parameters)
            problems = await asyncio.to_thread(schema.problems, arguments)
            if problems:
                return None, "the arguments do not match the parameters: " + "; ".join(problems)
        return arguments, ""

    async def _run(
        self, tool: Tool, arguments: dict[str, Any], info: AttemptInfo
    ) -> dict[str, Any]:
        try:
            async with asyncio.timeout(tool.timeout):
                return await self._implementation(tool, arguments, info)
        except TimeoutError:
            raise AttemptFailedError(
                Failure(failures.TOOL_TIMEOUT, f"tools/{tool.id} ran past {tool.timeout:g}s")
            ) from None

    async def _implementation(
        self, tool: Tool, arguments: dict[str, Any], info: AttemptInfo
    ) -> dict[str, Any]:
        implementation = tool.implementation
        if isinstance(implementation, PythonRuntime):
            return as_result(await self._host.call_python(implementation, arguments, info))
        if isinstance(implementation, WorkerRuntime):
            queue = f"tools/{tool.id}"
            return (await self._host.call_worker(queue, implementation, arguments, info)).output
        if isinstance(implementation, AgentTool):
            agent = info.tool_agents.get(implementation.agent)
            if agent is None:
                raise AttemptFailedError(
                    Failure(
                        failures.AGENT_NOT_FOUND,
                        f"agents/{implementation.agent} (the agent of tools/{tool.id}) is gone",
                        non_retryable=True,
                    )
                )
            plain = replace(info, tools=(), handoffs=(), output_schema=None, check_output=None)
            return (await self._host.invoke(agent, arguments, plain)).output
        if isinstance(implementation, HttpTool):
            return await self._request(tool, implementation, arguments)
        if isinstance(implementation, WorkflowTool) and info.run_workflow is not None:
            workflow = implementation.workflow.removeprefix("workflows/")
            run = await info.run_workflow(workflow, arguments, info.idempotency_key)
            return run.output
        raise AttemptFailedError(
            Failure(
                failures.RUNTIME_NOT_AVAILABLE,
                f"tools/{tool.id} has no implementation this server can run",
                non_retryable=True,
            )
        )

    async def _request(
        self, tool: Tool, template: HttpTool, arguments: dict[str, Any]
    ) -> dict[str, Any]:
        """The request template filled in: `{name}` in the URL (quoted) and in header values
        takes that argument; the other arguments go in the query (GET, DELETE) or over the
        template body (other methods)."""
        used: set[str] = set()
        url = _fill(template.url, arguments, used, quote=True)
        headers = {k: _fill(v, arguments, used, quote=False) for k, v in template.headers.items()}
        problem = self._policy.endpoint_problem(url)
        if problem is not None:
            raise AttemptFailedError(
                Failure(failures.ENDPOINT_NOT_ALLOWED, problem, non_retryable=True)
            )
        rest = {k: v for k, v in arguments.items() if k not in used}
        method = template.method.upper() or "POST"
        assert self._http is not None, "the server's HTTP client"
        if method in ("GET", "DELETE", "HEAD"):
            query = {k: v if isinstance(v, str) else json.dumps(v) for k, v in rest.items()}
            request = self._http.stream(method, url, headers=headers, params=query)
        else:
            request = self._http.stream(
                method, url, headers=headers, json={**(template.body or {}), **rest}
            )
        try:
            async with request as response:
                answer = await read_body(response)
        except httpx.HTTPError as exc:
            raise AttemptFailedError(
                Failure(failures.HTTP_ERROR, f"{type(exc).__name__}: {exc}")
            ) from None
        check_status(response, answer)
        try:
            return as_result(parse_json(answer))
        except ValueError:
            return {"text": answer.decode("utf-8", "replace")}


def _fill(text: str, arguments: dict[str, Any], used: set[str], *, quote: bool) -> str:
    for name, value in arguments.items():
        placeholder = "{" + name + "}"
        if placeholder in text:
            used.add(name)
            plain = value if isinstance(value, str) else json.dumps(value)
            text = text.replace(placeholder, urllib.parse.quote(plain, safe="") if quote else plain)
    return text


def as_result(value: Any) -> dict[str, Any]:
    """A tool's return value as a result: a dict as it is, None as {}, anything else under
    `result`."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    return {"result": value}


def _call_info(info: AttemptInfo, call: ToolCall) -> AttemptInfo:
    """What a tool's implementation sees: the attempt, with an idempotency key of its own
    (`{attempt key}/{call id}`: the same on every try and after a restart, so that a call
    tried again can tell it already had its effect)."""
    return replace(
        info,
        idempotency_key=call_key(info.idempotency_key, call.call_id),
        tools=(),
        handoffs=(),
        output_schema=None,
        check_output=None,
    )


def call_key(attempt_key: str, call_id: str) -> str:
    """A tool call's idempotency key."""
    return f"{attempt_key}/{call_id}"


async def _refused(
    call: ToolCall, info: AttemptInfo, record: Record, failure: Failure
) -> ToolOutcome:
    await record(ToolCallFailed(failure, call.call_id, call.name, 1, False, call.turn, info.item))
    return ToolOutcome(error=failure)
