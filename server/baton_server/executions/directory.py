"""The agents, handoffs and tools running executions look up, cached for a second: the
transition function reads them synchronously, and asks for what is not at hand to be loaded
first; an attempt's runtime is given the agent's tools and handoffs."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from baton_server.definitions.service import Definitions
from baton_server.domain.definitions import Agent, AgentState, Handoff
from baton_server.domain.tools import Tool
from baton_server.errors import BatonError
from baton_server.executions.decisions import (
    NotLoaded,
)

CACHE_SECONDS = 1.0

V = TypeVar("V")


class AgentDirectory:
    """Agents by id, the agent for a capability, and handoffs by source: each kept for
    CACHE_SECONDS; concurrent misses share one lookup."""

    def __init__(self, definitions: Definitions) -> None:
        self._definitions = definitions
        self._agents: dict[str, tuple[float, asyncio.Future[Agent | None]]] = {}
        self._capable: dict[str, tuple[float, asyncio.Future[Agent | None]]] = {}
        self._handoffs: dict[str, tuple[float, asyncio.Future[list[Handoff]]]] = {}
        self._tools: dict[str, tuple[float, asyncio.Future[Tool | None]]] = {}

    # What the transition function reads (raises NotLoaded) --------------------------------

    def agent(self, agent_id: str) -> Agent | None:
        """The agent, or None when there is no such agent."""
        return _peek(self._agents, "agent", agent_id)

    def capable(self, capability: str) -> Agent | None:
        """The first active agent with the capability, or None."""
        return _peek(self._capable, "capability", capability)

    def handoffs_from(self, agent_id: str) -> Sequence[Handoff]:
        """The handoffs whose source is the agent, highest priority first."""
        return _peek(self._handoffs, "handoffs", agent_id)

    # Loading ------------------------------------------------------------------------------

    async def load(self, missing: NotLoaded) -> None:
        """Loads what the transition function found missing."""
        if missing.kind == "agent":
            await _cached(self._agents, missing.key, lambda: self._load_agent(missing.key))
        elif missing.kind == "capability":
            await _cached(self._capable, missing.key, lambda: self._load_capable(missing.key))
        else:
            await _cached(self._handoffs, missing.key, lambda: self._load_handoffs(missing.key))

    # What an attempt's runtime is given (loaded before it starts) ------------------------

    async def tools_of(self, agent: Agent) -> list[Tool]:
        """The agent's tools that exist (one deleted since the agent was written is left
        out: a model that calls it is told there is no such tool)."""
        found = []
        for tool_id in agent.tools:
            tool = await _cached(self._tools, tool_id, functools.partial(self._load_tool, tool_id))
            if tool is not None:
                found.append(tool)
        return found

    async def agent_async(self, agent_id: str) -> Agent | None:
        """The agent, loaded if it is not at hand."""
        return await _cached(self._agents, agent_id, lambda: self._load_agent(agent_id))

    async def handoffs_async(self, agent_id: str) -> list[Handoff]:
        """The handoffs whose source is the agent, loaded if they are not at hand."""
        return await _cached(self._handoffs, agent_id, lambda: self._load_handoffs(agent_id))

    async def _load_tool(self, tool_id: str) -> Tool | None:
        try:
            return await self._definitions.get_tool(tool_id)
        except BatonError:
            return None

    async def _load_agent(self, agent_id: str) -> Agent | None:
        try:
            return await self._definitions.get_agent(agent_id)
        except BatonError:  # not found (or an id that cannot exist)
            return None

    async def _load_capable(self, capability: str) -> Agent | None:
        page = await self._definitions.list_agents(
            after=0, limit=1, capabilities=[capability], state=AgentState.ACTIVE
        )
        return page.items[0] if page.items else None

    async def _load_handoffs(self, agent_id: str) -> list[Handoff]:
        found: list[Handoff] = []
        after = 0
        while True:
            page = await self._definitions.list_handoffs(
                after=after, limit=1000, source_agent=agent_id, target_agent="", type_=None
            )
            found += page.items
            if page.next_after is None:
                break
            after = page.next_after
        return sorted(found, key=lambda h: -h.priority)


def _peek(cache: dict[str, tuple[float, asyncio.Future[V]]], kind: str, key: str) -> V:
    entry = cache.get(key)
    if entry is None or not entry[1].done() or _stale(entry):
        raise NotLoaded(kind, key)
    return entry[1].result()


async def _cached(
    cache: dict[str, tuple[float, asyncio.Future[V]]],
    key: str,
    load: Callable[[], Awaitable[V]],
) -> V:
    """A value kept for CACHE_SECONDS after it loaded; while it loads, other callers wait
    for the same load (so an expiry under load costs one query, not one per caller).
    Failures are not kept."""
    entry = cache.get(key)
    if entry is None or _stale(entry):
        future: asyncio.Future[V] = asyncio.ensure_future(load())
        cache[key] = (float("inf"), future)

        def loaded(done: asyncio.Future[V]) -> None:
            if cache.get(key, (0.0, None))[1] is done:
                cache[key] = (time.monotonic() + CACHE_SECONDS, done)

        future.add_done_callback(loaded)
        entry = cache[key]
    return await asyncio.shield(entry[1])


def _stale(entry: tuple[float, asyncio.Future[V]]) -> bool:
    """True when an entry must be loaded again: expired, or its load failed."""
    expiry, future = entry
    return expiry <= time.monotonic() or (future.done() and future.exception() is not None)
