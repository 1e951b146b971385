"""A research agent with tools, against any OpenAI-compatible endpoint:

    python examples/research.py "How do engines keep tool calls from running twice?" \
        [--server HOST:PORT] [--llm-url URL] [--model NAME] [--api-key-env NAME]

The agent (`researcher`, an `openai` agent) has three tools: `search-notes` and `read-note`
are Python functions the server runs (examples/agents.py); `glossary` is served by a worker
that this script runs itself (any language could serve it). Baton runs the loop durably:
every model turn and tool call is an event, and a restarted server goes on from the last
one. The step's output must match a JSON Schema ({"answer", "sources"}).

The endpoint comes from --llm-url / BATON_EXAMPLE_LLM_URL (default OpenAI's), the model
from --model / BATON_EXAMPLE_LLM_MODEL (default gpt-4o-mini), and the API key from the
server's environment variable named by --api-key-env (default OPENAI_API_KEY; the server
must allow it with BATON_AGENT_SECRET_ENV; give '' for an endpoint without a key)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import baton

GLOSSARY = {
    "idempotency": "Doing a thing twice has the effect of doing it once.",
    "checkpoint": "A durable record of progress that work can go on from.",
    "handoff": "Passing a task from one agent to another.",
}
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "sources": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["answer", "sources"],
}
INSTRUCTIONS = (
    "You research questions about workflow engines. Search the notes, read the ones that "
    "matter, look terms up in the glossary, then answer in JSON: "
    '{"answer": "...", "sources": ["note ids"]}.'
)


def glossary(arguments: dict[str, Any], ctx: baton.StepContext) -> dict[str, Any]:
    """The worker tool: a term's definition."""
    term = str(arguments.get("term", "")).lower()
    return {"term": term, "definition": GLOSSARY.get(term, "not in the glossary")}


async def define(client: baton.Client, llm_url: str, model: str, api_key_env: str) -> str:
    """Creates (or updates) the tools, the agent and the workflow; returns the workflow."""
    tools = {
        "search-notes": _tool(
            "Finds the notes that mention every word of a query.",
            "query",
            python=baton.PythonRuntime(entry_point="examples.agents:search_notes"),
        ),
        "read-note": _tool(
            "Reads one note by its id.",
            "id",
            python=baton.PythonRuntime(entry_point="examples.agents:read_note"),
        ),
        "glossary": _tool("Defines a term.", "term", worker=baton.WorkerRuntime()),
    }
    for tool_id, tool in tools.items():
        await _put(client.tools, tool, "tool", tool_id)
    agent = baton.Agent(
        display_name="Researcher",
        tools=list(tools),
        openai=baton.OpenAIRuntime(
            base_url=llm_url,
            model=model,
            instructions=INSTRUCTIONS,
            api_key_env=api_key_env,
            max_turns=8,
        ),
    )
    await _put(client.agents, agent, "agent", "researcher")
    step = baton.Step(
        id="research", agent="researcher", input_mapping={"question": "${input.question}"}
    )
    step.output_schema.update(OUTPUT_SCHEMA)
    workflow = baton.Workflow(display_name="Research", steps=[step])
    await _put(client.workflows, workflow, "workflow", "research")
    return "workflows/research"


def _tool(description: str, argument: str, **implementation: Any) -> baton.Tool:
    """A tool that takes one string argument."""
    return baton.Tool(
        description=description,
        parameters={
            "type": "object",
            "properties": {argument: {"type": "string"}},
            "required": [argument],
        },
        **implementation,
    )


async def _put(resources: Any, resource: Any, kind: str, resource_id: str) -> None:
    """Creates the resource, or replaces the one of that id (a run after an earlier one)."""
    try:
        await resources.create(resource, **{f"{kind}_id": resource_id})
    except baton.AlreadyExistsError:
        resource.name = f"{kind}s/{resource_id}"
        await resources.update(resource)


async def main(arguments: argparse.Namespace) -> int:
    async with baton.Client.connect(arguments.server) as client:
        workflow = await define(client, arguments.llm_url, arguments.model, arguments.api_key_env)
        worker = baton.Worker(client, {"tools/glossary": glossary})
        serving = asyncio.ensure_future(worker.run())
        try:
            execution = await client.executions.start(workflow, {"question": arguments.question})
            print(f"started {execution.name}")
            async for event in client.executions.stream(execution.name):
                _show(event)
            done = await client.executions.get(execution.name)
        finally:
            await worker.stop()
            serving.cancel()
        print(f"{baton.Execution.State.Name(done.state)}")
        if done.state != baton.Execution.STATE_SUCCEEDED:
            print(f"error: {done.error.type}: {done.error.message}")
            return 1
        step = done.steps[0]
        print(json.dumps(dict(step.output), indent=2, default=list))
        print(f"tokens: {step.usage.total_tokens} in {len(step.attempts)} attempt(s)")
        return 0


def _show(event: Any) -> None:
    kind = event.WhichOneof("payload")
    if kind == "agent_turn":
        turn = event.agent_turn
        calls = ", ".join(f"{c.tool}({c.arguments})" for c in turn.tool_calls)
        print(f"turn {turn.turn}: {calls or 'answer'} [{turn.usage.total_tokens} tokens]")
    elif kind == "tool_call_succeeded":
        done = event.tool_call_succeeded
        print(f"  {done.tool} -> {json.dumps(dict(done.result), default=list)}")
    elif kind == "tool_call_failed":
        failed = event.tool_call_failed
        print(f"  {failed.tool} failed: {failed.error.type}: {failed.error.message}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question")
    parser.add_argument("--server", default="localhost:50051")
    parser.add_argument(
        "--llm-url", default=os.environ.get("BATON_EXAMPLE_LLM_URL", "https://api.openai.com/v1")
    )
    parser.add_argument("--model", default=os.environ.get("BATON_EXAMPLE_LLM_MODEL", "gpt-4o-mini"))
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY")
    sys.exit(asyncio.run(main(parser.parse_args())))
