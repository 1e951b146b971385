"""Chat-completions calls to OpenAI-compatible endpoints, through the server's one shared
HTTP client: a request with the conversation (and tools, and a response format), and its
answer as a `Reply`, streamed or not. With `stream`, tokens are sent as output deltas as
they arrive and tool-call fragments are put together. 429 and 5xx answers are retryable and
honour Retry-After; other 4xx answers are not retried. The agent loop (`agent_loop.py`)
decides what to send."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from baton_server.domain import failures
from baton_server.domain.agent_policy import AgentPolicy
from baton_server.domain.attempts import AttemptFailedError, AttemptInfo
from baton_server.domain.definitions import Agent, OpenAIRuntime
from baton_server.domain.executions import Failure, Usage
from baton_server.runtimes.http_answers import check_status, parse_json, read_body, read_lines

TEXT_KEY = "text"


@dataclass(frozen=True, slots=True)
class Reply:
    """One chat-completions answer: the assistant's text and tool calls (each
    {"id", "name", "arguments"}), its token usage and finish reason."""

    content: str
    tool_calls: list[dict[str, str]]
    usage: Usage
    finish_reason: str = ""


class OpenAIClient:
    """Calls OpenAI-compatible chat-completions endpoints with a shared `httpx.AsyncClient`."""

    def __init__(self, http: httpx.AsyncClient, policy: AgentPolicy | None = None) -> None:
        self._http = http
        self._policy = policy or AgentPolicy()

    async def complete(
        self,
        agent: Agent,
        messages: list[dict[str, Any]],
        info: AttemptInfo,
        *,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> Reply:
        """One chat completion; raises AttemptFailedError on failure."""
        runtime = agent.runtime
        assert isinstance(runtime, OpenAIRuntime)
        headers = {"Content-Type": "application/json"}
        if runtime.api_key_env:
            headers["Authorization"] = f"Bearer {self._key(agent, runtime)}"
        body: dict[str, Any] = {
            "model": runtime.model,
            "messages": messages,
            "stream": runtime.stream,
        }
        if runtime.stream:
            body["stream_options"] = {"include_usage": True}
        if runtime.temperature is not None:
            body["temperature"] = runtime.temperature
        if tools:
            body["tools"] = tools
        if response_format is not None:
            body["response_format"] = response_format
        url = runtime.base_url.rstrip("/") + "/chat/completions"
        try:
            if runtime.stream:
                return await self._streamed(url, headers, body, info)
            async with self._http.stream("POST", url, headers=headers, json=body) as response:
                answer = await read_body(response)
            check_status(response, answer)
            try:
                return _reply(parse_json(answer))
            except ValueError:
                raise AttemptFailedError(
                    Failure(failures.BAD_RESPONSE, "the endpoint's answer is not JSON")
                ) from None
        except httpx.HTTPError as exc:
            raise AttemptFailedError(
                Failure(failures.HTTP_ERROR, f"{type(exc).__name__}: {exc}")
            ) from None

    def _key(self, agent: Agent, runtime: OpenAIRuntime) -> str:
        try:
            key = self._policy.secret(runtime.api_key_env, runtime.base_url)
        except PermissionError as exc:  # the policy was narrowed after the agent was written
            raise AttemptFailedError(
                Failure(failures.SECRET_NOT_ALLOWED, str(exc), non_retryable=True)
            ) from None
        if not key:
            raise AttemptFailedError(
                Failure(
                    failures.CONFIG_ERROR,
                    f"environment variable {runtime.api_key_env} (the API key of "
                    f"agents/{agent.id}) is not set on the server",
                    non_retryable=True,
                )
            )
        return key

    async def _streamed(
        self, url: str, headers: dict[str, str], body: dict[str, Any], info: AttemptInfo
    ) -> Reply:
        parts: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        usage = Usage()
        finish = ""
        async with self._http.stream("POST", url, headers=headers, json=body) as response:
            if response.status_code >= 400:
                check_status(response, await read_body(response))
            async for line in read_lines(response):
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    chunk = json.loads(data)
                    if chunk.get("usage"):
                        usage = Usage.from_doc(chunk["usage"])
                    if not chunk.get("choices"):
                        continue  # the usage chunk
                    choice = chunk["choices"][0]
                    finish = choice.get("finish_reason") or finish
                    delta = choice.get("delta") or {}
                    text = delta.get("content") or ""
                    for call in delta.get("tool_calls") or ():
                        _merge_call(calls, call)
                except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                    raise AttemptFailedError(
                        Failure(failures.BAD_RESPONSE, f"unreadable stream chunk: {data[:200]}")
                    ) from None
                if text:
                    parts.append(text)
                    info.deltas(text, None)
        return Reply("".join(parts), [calls[i] for i in sorted(calls)], usage, finish)


def _merge_call(calls: dict[int, dict[str, str]], delta: dict[str, Any]) -> None:
    """Adds a streamed tool-call fragment to the call it continues (by index)."""
    call = calls.setdefault(int(delta.get("index", 0)), {"id": "", "name": "", "arguments": ""})
    if delta.get("id"):
        call["id"] = str(delta["id"])
    function = delta.get("function") or {}
    if function.get("name"):
        call["name"] += str(function["name"])
    if function.get("arguments"):
        call["arguments"] += str(function["arguments"])


def _reply(payload: Any) -> Reply:
    try:
        choice = payload["choices"][0]
        message = choice["message"]
        calls = [
            {
                "id": str(call["id"]),
                "name": str(call["function"]["name"]),
                "arguments": str(call["function"].get("arguments") or ""),
            }
            for call in message.get("tool_calls") or ()
        ]
        return Reply(
            str(message.get("content") or ""),
            calls,
            Usage.from_doc(payload.get("usage")),
            str(choice.get("finish_reason") or ""),
        )
    except (KeyError, IndexError, TypeError, AttributeError):
        raise AttemptFailedError(
            Failure(failures.BAD_RESPONSE, "the endpoint's answer has no choices[0].message")
        ) from None


def parse_reply(text: str) -> dict[str, Any]:
    """A reply as a step output: a JSON object as it is, anything else under `text`."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return {TEXT_KEY: text}
    return parsed if isinstance(parsed, dict) else {TEXT_KEY: text}
