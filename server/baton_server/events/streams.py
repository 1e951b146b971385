"""Following an execution from any process: its event log as a stream (stored events, then
live ones from the hub, with storage filling any gap), and waiting for its end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from baton_server.domain.executions import Event, EventType, Execution
from baton_server.events.hub import EventHub

PAGE = 500


class EventSource(Protocol):
    """Where executions and their stored events are read."""

    async def get(self, execution_id: str) -> Execution:
        """The execution as last committed."""

    async def stored_events(self, execution: Execution, after: int, limit: int) -> list[Event]:
        """Up to `limit` of its stored events after sequence `after`."""


class Streams:
    """Streams and waits fed by the hub (the engine and, across processes, Redis), checking
    storage every `poll` seconds in case a live event never arrives (e.g. Redis is down)."""

    def __init__(self, source: EventSource, hub: EventHub, poll: float) -> None:
        self._source = source
        self._hub = hub
        self._poll = poll

    async def follow(
        self, execution_id: str, *, after: int, types: Sequence[EventType] = ()
    ) -> AsyncIterator[Event]:
        """The execution's events after sequence `after`, until its terminal event."""
        subscription = self._hub.subscribe(execution_id)  # before reading: nothing slips by
        try:
            execution = await self._source.get(execution_id)
            if execution.state.terminal and after >= execution.last_sequence:
                return  # the terminal event is behind the caller already
            wanted = set(types)
            last = after
            while True:
                page = await self._source.stored_events(execution, last, PAGE)
                for event in page:
                    last = event.sequence
                    if not wanted or event.type in wanted:
                        yield event
                    if event.type.terminal:
                        return
                if len(page) == PAGE:
                    continue
                in_order = True
                while in_order:
                    batch = await subscription.next(self._poll)
                    if batch is None:
                        break  # quiet, or lagging: look at storage
                    for event in batch:
                        if event.sequence <= last:
                            continue
                        if event.sequence != last + 1:
                            in_order = False  # a gap: storage has the missing events
                            break
                        last = event.sequence
                        if not wanted or event.type in wanted:
                            yield event
                        if event.type.terminal:
                            return
        finally:
            self._hub.unsubscribe(subscription)

    async def wait(self, execution_id: str, within: float | None) -> Execution:
        """The execution once it has ended, or as it is after `within` seconds; woken by its
        events, and checking storage every `poll` seconds in any case."""
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        subscription = self._hub.subscribe(execution_id)
        try:
            while True:
                execution = await self._source.get(execution_id)
                remaining = None if deadline is None else deadline - loop.time()
                if execution.state.terminal or (remaining is not None and remaining <= 0):
                    return execution
                await subscription.next(min(self._poll, remaining or self._poll))
        finally:
            self._hub.unsubscribe(subscription)
