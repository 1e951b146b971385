"""The `openai` runtime: one chat-completions call to an OpenAI-compatible endpoint per
attempt, through the server's one shared HTTP client.

The agent's instructions are the system message and the step input (as JSON) the user
message. A reply that is a JSON object is the step output; any other reply is kept as
`{"text": reply}`. With `stream`, tokens are sent as output deltas as they arrive. 429 and
5xx answers are retryable and honour Retry-After; other 4xx answers are not retried."""

from __future__ import annotations

import json
from typing import Any

import httpx

from baton_server.domain import failures
from baton_server.domain.agent_policy import AgentPolicy
from baton_server.domain.attempts import AgentResult, AttemptFailedError, AttemptInfo
from baton_server.domain.definitions import Agent, OpenAIRuntime
from baton_server.domain.executions import Failure

TEXT_KEY = "text"


class OpenAIClient:
    """Runs `openai` agent attempts with a shared `httpx.AsyncClient`."""

    def __init__(self, http: httpx.AsyncClient, policy: AgentPolicy | None = None) -> None:
        self._http = http
        self._policy = policy or AgentPolicy()

    async def run(self, agent: Agent, value: dict[str, Any], info: AttemptInfo) -> AgentResult:
        """One chat completion; raises AttemptFailedError on failure."""
        runtime = agent.runtime
        assert isinstance(runtime, OpenAIRuntime)
        headers = {"Content-Type": "application/json"}
        if runtime.api_key_env:
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
            headers["Authorization"] = f"Bearer {key}"
        messages = []
        if runtime.instructions:
            messages.append({"role": "system", "content": runtime.instructions})
        messages.append({"role": "user", "content": json.dumps(value, ensure_ascii=False)})
        body: dict[str, Any] = {
            "model": runtime.model,
            "messages": messages,
            "stream": runtime.stream,
        }
        if runtime.temperature is not None:
            body["temperature"] = runtime.temperature
        url = runtime.base_url.rstrip("/") + "/chat/completions"
        try:
            if runtime.stream:
                text = await self._streamed(url, headers, body, info)
            else:
                response = await self._http.post(url, headers=headers, json=body)
                _check(response)
                text = _content(response.json())
        except httpx.HTTPError as exc:
            raise AttemptFailedError(
                Failure(failures.HTTP_ERROR, f"{type(exc).__name__}: {exc}")
            ) from None
        return AgentResult(parse_reply(text))

    async def _streamed(
        self, url: str, headers: dict[str, str], body: dict[str, Any], info: AttemptInfo
    ) -> str:
        parts: list[str] = []
        async with self._http.stream("POST", url, headers=headers, json=body) as response:
            if response.status_code >= 400:
                await response.aread()
                _check(response)
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    chunk = json.loads(data)
                    delta = chunk["choices"][0].get("delta", {}).get("content") or ""
                except (ValueError, KeyError, IndexError, TypeError):
                    raise AttemptFailedError(
                        Failure(failures.BAD_RESPONSE, f"unreadable stream chunk: {data[:200]}")
                    ) from None
                if delta:
                    parts.append(delta)
                    info.deltas(delta, None)
        return "".join(parts)


def parse_reply(text: str) -> dict[str, Any]:
    """A reply as a step output: a JSON object as it is, anything else under `text`."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return {TEXT_KEY: text}
    return parsed if isinstance(parsed, dict) else {TEXT_KEY: text}


def _content(payload: Any) -> str:
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise AttemptFailedError(
            Failure(
                failures.BAD_RESPONSE, "the endpoint's answer has no choices[0].message.content"
            )
        ) from None
    return str(content or "")


def _check(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = response.text[:300]
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


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None
