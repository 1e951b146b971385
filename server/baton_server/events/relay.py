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


class Bus(Protocol):
    """What the relay needs from a message bus."""

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
            await self._bus.publish(self._encode(batch))

    def _encode(self, events: list[Event]) -> bytes:
        return json.dumps(
            {
                "origin": self._origin,
                "events": [
                    [
                        e.execution_id,
                        e.sequence,
                        e.type.value,
                        e.time,
                        e.step_id,
                        e.attempt,
                        e.payload,
                    ]
                    for e in events
                ],
            },
            separators=(",", ":"),
        ).encode()

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
