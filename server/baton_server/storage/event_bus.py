"""Redis pub/sub carrying live events between server processes.

Pub/sub rather than Redis Streams: SQLite already keeps every event durably and numbered,
so the bus only has to be fast; a message lost while Redis is away costs a stream a short
wait until it reads the missing events from SQLite."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

log = logging.getLogger(__name__)

_RECONNECT_DELAY = 0.5


class RedisEventBus:
    """Publishes and receives opaque messages on one channel."""

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
