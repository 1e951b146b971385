"""The `openai` runtime against a real local HTTP server that speaks the chat-completions
protocol (no internet here): parsed output, streamed deltas, 429 with Retry-After."""

from __future__ import annotations

import json

import pytest
from fake_llm import FakeOpenAI
from google.protobuf import duration_pb2

from baton import (
    Agent,
    Client,
    EventType,
    Execution,
    OpenAIRuntime,
    PythonRuntime,
    RetryPolicy,
    Step,
    Workflow,
)


async def llm(
    client: Client, agent_id: str, base_url: str, model: str, *, stream: bool = False
) -> None:
    await client.agents.create(
        Agent(
            openai=OpenAIRuntime(
                base_url=base_url,
                model=model,
                instructions="You are a Project Architect.",
                api_key_env="FAKE_LLM_KEY",
                stream=stream,
                temperature=0.1,
            )
        ),
        agent_id=agent_id,
    )


async def run(client: Client, agent_id: str, attempts: int = 3) -> Execution:
    interval = duration_pb2.Duration(nanos=50_000_000)
    workflow = await client.workflows.create(
        Workflow(
            steps=[
                Step(
                    id="ask",
                    agent=agent_id,
                    retry_policy=RetryPolicy(max_attempts=attempts, initial_interval=interval),
                )
            ]
        )
    )
    execution = await client.executions.start(workflow.name, {"request": "OAuth"})
    return await client.executions.wait(execution.name, timeout=30)


async def test_json_and_text_replies(
    client: Client, fake_openai: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLM_KEY", "sk-test")
    await llm(client, "architect", fake_openai, "json")
    await llm(client, "greeter", fake_openai, "text")
    done = await run(client, "architect")
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    assert dict(done.steps[0].output) == {"plan": "plan for OAuth", "steps": 3}
    request = FakeOpenAI.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer sk-test"
    assert request["body"]["messages"][0] == {
        "role": "system",
        "content": "You are a Project Architect.",
    }
    assert json.loads(request["body"]["messages"][1]["content"]) == {"request": "OAuth"}
    assert request["body"]["temperature"] == 0.1
    greeted = await run(client, "greeter")
    assert dict(greeted.steps[0].output) == {"text": "Hello, OAuth!"}


async def test_streamed_tokens_become_deltas(
    client: Client, fake_openai: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLM_KEY", "sk-test")
    await llm(client, "streamer", fake_openai, "text", stream=True)
    done = await run(client, "streamer")
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    deltas = [
        e.step_output_delta.text
        async for e in client.executions.events(
            done.name, event_types=[EventType.EVENT_TYPE_STEP_OUTPUT_DELTA]
        )
    ]
    assert deltas == ["Hello, ", "OAuth! "]
    assert done.steps[0].output["text"] == "Hello, OAuth! "


async def test_429_is_retried_after_retry_after(
    client: Client, fake_openai: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLM_KEY", "sk-test")
    await llm(client, "limited", fake_openai, "limited")
    done = await run(client, "limited")
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    # The 429 is tried again within the attempt (its turns so far are kept), after the
    # Retry-After; the step's retry policy is not needed.
    attempts = done.steps[0].attempts
    assert [a.error.type for a in attempts] == [""]
    first, second = FakeOpenAI.limited_calls
    assert second - first >= 1.0  # Retry-After: 1
    warnings = [
        e.log.message
        async for e in client.executions.events(done.name, event_types=[EventType.EVENT_TYPE_LOG])
    ]
    assert any("HTTP_429" in w and "trying again in 1s" in w for w in warnings), warnings


async def test_client_errors_and_missing_keys_are_not_retried(
    client: Client, fake_openai: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLM_KEY", "sk-test")
    await llm(client, "broken", fake_openai, "broken")
    done = await run(client, "broken")
    assert done.state == Execution.STATE_FAILED
    assert [a.error.type for a in done.steps[0].attempts] == ["HTTP_400"]
    monkeypatch.delenv("FAKE_LLM_KEY")
    await llm(client, "keyless", fake_openai, "json")
    done = await run(client, "keyless")
    assert done.error.type == "CONFIG_ERROR" and "FAKE_LLM_KEY" in done.error.message


@pytest.mark.parametrize("stream", [False, True])
async def test_an_endless_answer_is_cut_off(
    client: Client, fake_openai: str, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    """A model that answers without end: the server reads 16 MiB of it and no more (one
    endless line when streamed), and the attempt fails ANSWER_TOO_LARGE, retryably."""
    monkeypatch.setenv("FAKE_LLM_KEY", "sk-test")
    await llm(client, "endless", fake_openai, "endless", stream=stream)
    done = await run(client, "endless", attempts=2)
    assert done.state == Execution.STATE_FAILED
    assert [a.error.type for a in done.steps[0].attempts] == ["ANSWER_TOO_LARGE"] * 2
    assert "16777216 bytes" in done.error.message


async def test_the_http_request_agent_cuts_off_an_endless_answer(
    client: Client, fake_openai: str
) -> None:
    await client.agents.create(
        Agent(python=PythonRuntime(entry_point="baton_server.agents.builtin:http_request")),
        agent_id="fetch",
    )
    workflow = await client.workflows.create(
        Workflow(
            steps=[
                Step(
                    id="get",
                    agent="fetch",
                    input_mapping={"url": f"{fake_openai}/endless"},
                    retry_policy=RetryPolicy(max_attempts=1),
                )
            ]
        )
    )
    execution = await client.executions.start(workflow.name, {})
    done = await client.executions.wait(execution.name, timeout=30)
    assert done.state == Execution.STATE_FAILED
    assert done.error.type == "ANSWER_TOO_LARGE", done.error
