"""Buses carrying live events between server processes: Redis pub/sub, or PostgreSQL's
LISTEN/NOTIFY when the events are stored there and no Redis is configured.

Pub/sub rather than a durable queue: the database already keeps every event durably and
numbered, so a bus only has to be fast; a message lost while the bus is away (or an event
too large for NOTIFY) costs a stream a short wait until it reads the missing events from
the database."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

log = logging.getLogger(__name__)

_RECONNECT_DELAY = 0.5


class RedisEventBus:
    """Publishes and receives opaque messages on one channel."""

    max_message_bytes: int | None = None

    def __init__(self, url: str, channel: str) -> None:
        self.channel = channel
        self._publisher = redis.Redis.from_url(
            url, socket_connect_timeout=0.25, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        # Subscribing blocks on reads, so that connection has no read timeout.
        self._subscriber = redis.Redis.from_url(
            url,
            socket_connect_timeout=0.25,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=5,
        )
        self.connected = False

    async def publish(self, message: bytes) -> bool:
        """Sends a message; False when Redis could not take it."""
        try:
            await self._publisher.publish(self.channel, message)
        except (redis.RedisError, OSError):
            return False
        return True

    async def listen(self, deliver: Callable[[bytes], None]) -> None:
        """Calls `deliver` with each message, reconnecting whenever Redis goes away."""
        while True:
            pubsub = self._subscriber.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self.connected = True
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        deliver(message["data"])
            except (redis.RedisError, OSError) as exc:
                if self.connected:
                    log.warning(
                        "event bus lost redis; streams read sqlite", extra={"error": str(exc)}
                    )
                self.connected = False
                await asyncio.sleep(_RECONNECT_DELAY)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        """Closes both connections."""
        await self._publisher.aclose()
        await self._subscriber.aclose()


class PostgresEventBus:
    """LISTEN/NOTIFY on one channel of the database: one connection notifies, another
    listens (and reconnects when the database goes away)."""

    max_message_bytes: int | None = 7900
    """NOTIFY payloads must be under 8,000 bytes."""

    def __init__(self, url: str, channel: str) -> None:
        self.channel = channel
        self._url = url
        self._publisher: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self.connected = False

    async def publish(self, message: bytes) -> bool:
        """Sends a message; False when the database could not take it."""
        try:
            async with self._lock:
                if self._publisher is None or self._publisher.is_closed():
                    self._publisher = await asyncpg.connect(self._url, timeout=2)
                await self._publisher.execute(
                    "SELECT pg_notify($1, $2)", self.channel, message.decode()
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            self._publisher = None
            return False
        return True

    async def listen(self, deliver: Callable[[bytes], None]) -> None:
        """Calls `deliver` with each message, reconnecting whenever the database goes away."""
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._url, timeout=2)
                await conn.add_listener(
                    self.channel, lambda _c, _pid, _channel, payload: deliver(payload.encode())
                )
                self.connected = True
                while not conn.is_closed():
                    await asyncio.sleep(5)
                    await conn.execute("SELECT 1")  # notices a dead connection
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                if self.connected:
                    log.warning(
                        "event bus lost postgresql; streams read the database",
                        extra={"error": str(exc)},
                    )
                self.connected = False
                await asyncio.sleep(_RECONNECT_DELAY)
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close()

    async def close(self) -> None:
        """Closes the publishing connection."""
        if self._publisher is not None and not self._publisher.is_closed():
            await self._publisher.close()
