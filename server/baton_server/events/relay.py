"""Relays committed events to other server processes over an event bus, and theirs to this
process's event hub, so that a stream is live in any process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Protocol

from baton_server.domain.executions import Event, EventType
from baton_server.events.hub import EventHub

log = logging.getLogger(__name__)

_QUEUE_BOUND = 10_000
_ENVELOPE = 100
"""Room for a message's envelope (origin and brackets)."""


def _row(e: Event) -> list[Any]:
    return [e.execution_id, e.sequence, e.type.value, e.time, e.step_id, e.attempt, e.payload]


class Bus(Protocol):
    """What the relay needs from a message bus."""

    @property
    def max_message_bytes(self) -> int | None:
        """The largest message it carries (None: no bound)."""
        ...

    async def publish(self, message: bytes) -> bool: ...

    async def listen(self, deliver: Any) -> None: ...


class EventRelay:
    """Sends this process's events out (one task, in order, bounded) and hands other
    processes' events to the local hub."""

    def __init__(self, bus: Bus, hub: EventHub, origin: str) -> None:
        self._bus = bus
        self._hub = hub
        self._origin = origin
        self._outbox: asyncio.Queue[list[Event]] = asyncio.Queue(_QUEUE_BOUND)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Starts sending and receiving."""
        self._tasks = [
            asyncio.create_task(self._send()),
            asyncio.create_task(self._bus.listen(self._receive)),
        ]

    async def stop(self) -> None:
        """Stops both tasks."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def publish(self, events: list[Event]) -> None:
        """Queues committed events for the bus; when the queue is full the oldest batch is
        dropped (streams elsewhere read it from storage)."""
        if self._outbox.full():
            self._outbox.get_nowait()
        self._outbox.put_nowait(events)

    async def _send(self) -> None:
        while True:
            batch = await self._outbox.get()
            while not self._outbox.empty() and len(batch) < 1000:
                batch = batch + self._outbox.get_nowait()
            for message in self._messages(batch):
                await self._bus.publish(message)

    def _messages(self, events: list[Event]) -> list[bytes]:
        """The events as bus messages, each within the bus's bound: events are packed in
        order, and one too large alone is left out (streams elsewhere read it from
        storage when they see the gap)."""
        limit = self._bus.max_message_bytes
        if limit is None:
            return [self._envelope([json.dumps(_row(e), separators=(",", ":")) for e in events])]
        messages: list[bytes] = []
        rows: list[str] = []
        size = 0
        for event in events:
            row = json.dumps(_row(event), separators=(",", ":"))
            if len(row) + _ENVELOPE > limit:
                continue
            if rows and size + len(row) + _ENVELOPE > limit:
                messages.append(self._envelope(rows))
                rows, size = [], 0
            rows.append(row)
            size += len(row) + 1
        if rows:
            messages.append(self._envelope(rows))
        return messages

    def _envelope(self, rows: list[str]) -> bytes:
        origin = json.dumps(self._origin)
        return f'{{"origin":{origin},"events":[{",".join(rows)}]}}'.encode()

    def _receive(self, message: bytes) -> None:
        try:
            decoded = json.loads(message)
            if decoded.get("origin") == self._origin:
                return
            events = [
                Event(EventType(t), step_id, attempt, payload, sequence, time, execution_id)
                for execution_id, sequence, t, time, step_id, attempt, payload in decoded["events"]
            ]
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed event bus message")
            return
        self._hub.publish(events)
