"""Live events for streams in this process: committed events are handed to the
subscriptions of their execution, each with a bounded buffer. A subscription that falls
behind is marked lagging and its stream catches up from storage instead: writers never
wait for readers, and memory stays bounded."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable

from baton_server.domain.executions import Event

DEFAULT_BUFFER = 1000


class Subscription:
    """One stream's view of one execution's live events."""

    def __init__(self, execution_id: str, bound: int) -> None:
        self.execution_id = execution_id
        self._bound = bound
        self._events: collections.deque[Event] = collections.deque()
        self._ready = asyncio.Event()
        self.lagged = False

    def push(self, events: Iterable[Event]) -> None:
        """Buffers events; on overflow drops them all and marks the subscription lagging."""
        if self.lagged:
            return
        self._events.extend(events)
        if len(self._events) > self._bound:
            self._events.clear()
            self.lagged = True
        self._ready.set()

    async def next(self, within: float) -> list[Event] | None:
        """The buffered events, waiting up to `within` seconds for some; None when none came
        or the subscription lagged (the caller then reads storage)."""
        if not self._events and not self.lagged:
            try:
                async with asyncio.timeout(within):
                    await self._ready.wait()
            except TimeoutError:
                return None
        self._ready.clear()
        if self.lagged:
            self.lagged = False
            self._events.clear()
            return None
        batch = list(self._events)
        self._events.clear()
        return batch


class EventHub:
    """Fans committed events out to this process's subscriptions."""

    def __init__(self, buffer: int = DEFAULT_BUFFER) -> None:
        self._buffer = buffer
        self._subscriptions: dict[str, set[Subscription]] = {}

    def subscribe(self, execution_id: str) -> Subscription:
        """A new subscription to one execution's events."""
        subscription = Subscription(execution_id, self._buffer)
        self._subscriptions.setdefault(execution_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Ends a subscription."""
        subscribers = self._subscriptions.get(subscription.execution_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscriptions[subscription.execution_id]

    def publish(self, events: list[Event]) -> None:
        """Hands committed events to the subscriptions of their executions."""
        if not self._subscriptions:
            return
        by_execution: dict[str, list[Event]] = {}
        for event in events:
            by_execution.setdefault(event.execution_id, []).append(event)
        for execution_id, batch in by_execution.items():
            for subscription in self._subscriptions.get(execution_id, ()):
                subscription.push(batch)

    @property
    def streams(self) -> int:
        """Open subscriptions."""
        return sum(len(s) for s in self._subscriptions.values())
