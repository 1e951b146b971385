"""The durable loop of an `openai` agent: call the model; when it asks for tools, run them
(in parallel when there are several) and call it again with their results; stop at a final
reply, a `transfer_to_<agent>` call (a handoff the agent requests), or `max_turns`.

Every model turn and every tool call's end is written as an event before the loop goes on,
and those events are the checkpoints: an attempt that a restart cut short is delivered
again with the same number, reads them back, rebuilds the conversation, runs only the tool
calls that had not ended, and calls the model only for turns not yet answered.

With a step `output_schema`, the schema is sent as the `response_format`, and a final reply
that does not match goes back to the model with what is wrong, at most MAX_SCHEMA_RETRIES
times."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from baton_server.domain import failures
from baton_server.domain.attempts import AgentResult, AttemptFailedError, AttemptInfo
from baton_server.domain.definitions import Agent, Handoff, HandoffType, OpenAIRuntime
from baton_server.domain.events import (
    AgentTurn,
    Payload,
    ToolCallFailed,
    ToolCallSucceeded,
)
from baton_server.domain.executions import Failure, Usage
from baton_server.runtimes.openai import OpenAIClient, Reply, parse_reply
from baton_server.runtimes.tools import ToolCall, ToolOutcome, ToolRunner

MAX_SCHEMA_RETRIES = 2
"""How many times a reply that does not match the output schema is sent back."""
MODEL_CALL_TRIES = 3
"""How many times one model turn is tried within an attempt."""
MAX_IN_ATTEMPT_WAIT = 30.0
"""The longest Retry-After waited for within an attempt (longer: the attempt fails)."""
_BACKOFF = 0.5
TRANSFER_PREFIX = "transfer_to_"
TRANSFER_REASON = "transfer_reason"
"""The output key under which a handoff's target gets the reason the model gave."""


@dataclass
class _Conversation:
    """The conversation so far, and what the attempt has spent on it."""

    messages: list[dict[str, Any]]
    turns: int = 0
    rejections: int = 0
    usage: Usage = field(default_factory=Usage)
    last: AgentTurn | None = None
    outcomes: dict[str, ToolOutcome] = field(default_factory=dict)


class AgentLoop:
    """Runs `openai` agent attempts as durable loops."""

    def __init__(self, client: OpenAIClient, tools: ToolRunner, max_result_bytes: int) -> None:
        self._client = client
        self._tools = tools
        self._max_result_bytes = max_result_bytes

    async def run(self, agent: Agent, value: dict[str, Any], info: AttemptInfo) -> AgentResult:
        """One attempt; raises AttemptFailedError (with the usage spent) on failure."""
        runtime = agent.runtime
        assert isinstance(runtime, OpenAIRuntime)
        conversation = _Conversation(_opening(runtime, value))
        if info.checkpoints is not None:
            _replay(conversation, await info.checkpoints())
        try:
            return await self._go_on(agent, runtime, value, info, conversation)
        except AttemptFailedError as failed:
            failed.usage = conversation.usage
            raise

    async def _go_on(
        self,
        agent: Agent,
        runtime: OpenAIRuntime,
        value: dict[str, Any],
        info: AttemptInfo,
        conversation: _Conversation,
    ) -> AgentResult:
        tools = {tool.id: tool for tool in info.tools}
        transfers = _transfers(info.handoffs)
        specs = _tool_specs(info, transfers)
        response_format = _response_format(info.output_schema)
        while True:
            last = conversation.last
            if last is not None and last.tool_calls:
                calls = [
                    ToolCall(c["id"], c["name"], c["arguments"], last.turn) for c in last.tool_calls
                ]
                transfer = next((c for c in calls if c.name in transfers), None)
                if transfer is not None:
                    return AgentResult(
                        _transfer_output(value, transfer.arguments),
                        transfers[transfer.name],
                        usage=conversation.usage,
                    )
                await self._run_calls(calls, tools, info, conversation)
            elif last is not None and not last.rejected:
                return AgentResult(parse_reply(last.content), usage=conversation.usage)
            if conversation.turns >= runtime.turn_limit:
                raise AttemptFailedError(
                    Failure(
                        failures.MAX_TURNS_EXCEEDED,
                        f"agents/{agent.id} made {conversation.turns} model calls (its "
                        "max_turns) without a final answer",
                        non_retryable=True,
                    )
                )
            reply = await self._model_call(
                agent, conversation.messages, info, specs, response_format
            )
            await self._take(reply, info, conversation)

    async def _model_call(
        self,
        agent: Agent,
        messages: list[dict[str, Any]],
        info: AttemptInfo,
        specs: list[dict[str, Any]] | None,
        response_format: dict[str, Any] | None,
    ) -> Reply:
        """One model turn. A retryable answer (429, 5xx, no connection) is tried again
        within the attempt, MODEL_CALL_TRIES times at most, honouring a Retry-After of up to
        MAX_IN_ATTEMPT_WAIT seconds: the turns and tool calls made so far are kept. Past
        that, the attempt fails and the step's retry policy takes over."""
        tries = 0
        while True:
            tries += 1
            try:
                return await self._client.complete(
                    agent, messages, info, tools=specs, response_format=response_format
                )
            except AttemptFailedError as failed:
                wait = max(failed.retry_after or 0.0, _BACKOFF * 2 ** (tries - 1))
                if (
                    failed.failure.non_retryable
                    or tries >= MODEL_CALL_TRIES
                    or wait > MAX_IN_ATTEMPT_WAIT
                ):
                    raise
                info.log(
                    "WARNING",
                    f"the model call failed ({failed.failure.type}); trying again in {wait:g}s",
                    {"type": failed.failure.type, "try": tries},
                )
                await asyncio.sleep(wait)

    async def _take(self, reply: Reply, info: AttemptInfo, conversation: _Conversation) -> None:
        """Records a model turn (with why its reply was refused, if it was) and adds it to
        the conversation."""
        rejected = ""
        if not reply.tool_calls and info.check_output is not None:
            problems = await _output_problems(reply.content, info)
            if problems:
                if conversation.rejections >= MAX_SCHEMA_RETRIES:
                    raise AttemptFailedError(
                        Failure(
                            failures.OUTPUT_SCHEMA_MISMATCH,
                            "the reply does not match the step's output_schema: " + problems,
                        )
                    )
                rejected = problems
        turn = AgentTurn(
            conversation.turns + 1,
            reply.content,
            reply.tool_calls or None,
            reply.usage.to_doc(),
            reply.finish_reason,
            info.item,
            rejected,
            info.agent.removeprefix("agents/"),
        )
        assert info.record is not None, "the driver records the loop's events"
        await info.record([turn])
        _add_turn(conversation, turn)

    async def _run_calls(
        self,
        calls: Sequence[ToolCall],
        tools: dict[str, Any],
        info: AttemptInfo,
        conversation: _Conversation,
    ) -> None:
        """Runs the calls that have not ended, in parallel, recording each end; then adds
        every result to the conversation in the order the model asked."""

        async def record(payload: Payload) -> None:
            assert info.record is not None
            await info.record([payload])

        async def one(call: ToolCall) -> None:
            conversation.outcomes[call.call_id] = await self._tools.call(
                tools.get(call.name), call, info, record, self._max_result_bytes
            )

        await asyncio.gather(*(one(c) for c in calls if c.call_id not in conversation.outcomes))
        _close_turn(conversation)


def _opening(runtime: OpenAIRuntime, value: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if runtime.instructions:
        messages.append({"role": "system", "content": runtime.instructions})
    messages.append({"role": "user", "content": json.dumps(value, ensure_ascii=False)})
    return messages


def _replay(conversation: _Conversation, recorded: Sequence[Payload]) -> None:
    """Rebuilds the conversation from an attempt's checkpoints."""
    for payload in recorded:
        if isinstance(payload, AgentTurn):
            if conversation.last is not None and conversation.last.tool_calls:
                _close_turn(conversation)
            _add_turn(conversation, payload)
        elif isinstance(payload, ToolCallSucceeded):
            conversation.outcomes[payload.call_id] = ToolOutcome(result=payload.result or {})
        elif isinstance(payload, ToolCallFailed) and not payload.will_retry:
            conversation.outcomes[payload.call_id] = ToolOutcome(error=payload.error)


def _close_turn(conversation: _Conversation) -> None:
    """The tool results of a recorded turn that the model was called again after."""
    assert conversation.last is not None
    for call in conversation.last.tool_calls or ():
        outcome = conversation.outcomes.get(call["id"]) or ToolOutcome(
            error=Failure(failures.INTERRUPTED, "the call's result was not recorded")
        )
        conversation.messages.append(_tool_message(call["id"], outcome))
    conversation.last = None


def _add_turn(conversation: _Conversation, turn: AgentTurn) -> None:
    conversation.turns = turn.turn
    conversation.usage += Usage.from_doc(turn.usage)
    message: dict[str, Any] = {"role": "assistant", "content": turn.content or None}
    if turn.tool_calls:
        message["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"]},
            }
            for call in turn.tool_calls
        ]
    conversation.messages.append(message)
    conversation.last = turn
    if turn.rejected:
        conversation.rejections += 1
        conversation.messages.append(
            {
                "role": "user",
                "content": "Your reply does not match the required JSON Schema: "
                f"{turn.rejected}. Answer again with JSON that matches it.",
            }
        )


def _tool_message(call_id: str, outcome: ToolOutcome) -> dict[str, Any]:
    if outcome.error is not None:
        content = {"error": {"type": outcome.error.type, "message": outcome.error.message}}
    else:
        content = outcome.result or {}
    return {
        "role": "tool",
        "tool_call_id": call_id,
        "content": json.dumps(content, ensure_ascii=False),
    }


def _transfers(handoffs: Sequence[Handoff]) -> dict[str, str]:
    """The `transfer_to_<agent>` tools, by name: the target agent of each handoff the agent
    may ask for (ON_FAILURE ones happen only after failures)."""
    return {
        f"{TRANSFER_PREFIX}{h.target_agent}": h.target_agent
        for h in handoffs
        if h.type is not HandoffType.ON_FAILURE
    }


def _tool_specs(info: AttemptInfo, transfers: dict[str, str]) -> list[dict[str, Any]] | None:
    specs = [
        {
            "type": "function",
            "function": {
                "name": tool.id,
                "description": tool.description,
                "parameters": tool.parameters or {"type": "object", "properties": {}},
            },
        }
        for tool in info.tools
    ]
    descriptions = {h.target_agent: h.description for h in info.handoffs}
    for name, target in transfers.items():
        specs.append(
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": descriptions.get(target)
                    or f"Hand the task over to agents/{target}.",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            TRANSFER_REASON: {
                                "type": "string",
                                "description": "Why the task is handed over.",
                            }
                        },
                    },
                },
            }
        )
    return specs or None


def _transfer_output(value: dict[str, Any], arguments: str) -> dict[str, Any]:
    """What a handoff through a `transfer_to_` tool gives its target: the step's input, with
    the reason the model gave."""
    output = dict(value)
    try:
        reason = json.loads(arguments or "{}").get(TRANSFER_REASON)
    except (ValueError, AttributeError):
        reason = None
    if isinstance(reason, str) and reason:
        output[TRANSFER_REASON] = reason
    return output


def _response_format(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    if schema is None:
        return None
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


async def _output_problems(content: str, info: AttemptInfo) -> str:
    """Where a final reply does not match the output schema ('' when it does)."""
    assert info.check_output is not None
    try:
        parsed = json.loads(content)
    except ValueError:
        return "the reply is not JSON"
    if not isinstance(parsed, dict):
        return "the reply is not a JSON object"
    problems = await asyncio.to_thread(info.check_output, parsed)
    return "; ".join(problems)
