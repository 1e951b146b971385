"""Redis read-through cache of definitions and of ended executions. Optional and never
required: every Redis failure is logged, reported through `healthy`, and answered as a
cache miss."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from baton_server.storage.codec import Codec

log = logging.getLogger(__name__)

# Stores (version, payload) only if the version is newer than what the key holds, so a slow
# reader can never overwrite a newer write, nor resurrect a deleted resource (whose
# tombstone carries the delete's version).
_SET_IF_NEWER = """
local current = redis.call('HGET', KEYS[1], 'v')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

_RETRY_AFTER = 1.0
"""Seconds to leave Redis alone after a failure before trying it again."""


@dataclass(frozen=True)
class Cached:
    """A cache hit: the stored document, or None for a tombstone (the resource was deleted)."""

    version: int
    doc: dict[str, Any] | None


class RedisCache:
    """Caches documents by kind and id, with a TTL and versioned invalidation."""

    def __init__(self, url: str, *, prefix: str, ttl: float, codec: Codec) -> None:
        self._redis = redis.Redis.from_url(
            url,
            socket_connect_timeout=0.25,
            socket_timeout=0.25,
            retry=Retry(NoBackoff(), 0),
        )
        self._set_if_newer = self._redis.register_script(_SET_IF_NEWER)
        self._prefix = prefix
        self._ttl_ms = int(ttl * 1000)
        self._codec = codec
        self.healthy = True
        self.last_error = ""
        self._retry_at = 0.0
        self._must_purge = False

    async def close(self) -> None:
        """Closes the connection pool."""
        await self._redis.aclose()

    async def get(self, kind: str, id_: str) -> Cached | None:
        """Returns the cached entry, or None on a miss or when Redis is unavailable."""
        if not await self._usable():
            return None
        try:
            values = await self._redis.hmget(self._key(kind, id_), ["v", "d"])
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return None
        version, payload = values
        if version is None:
            return None
        if isinstance(payload, str):  # only if the client were set to decode responses
            payload = payload.encode()
        return Cached(int(version), self._codec.decode(payload) if payload else None)

    async def put(self, kind: str, id_: str, version: int, doc: dict[str, Any] | None) -> None:
        """Stores a document (None stores a tombstone) unless a newer version is cached."""
        if not await self._usable():
            # An invalidation is lost: purge our keys once Redis is back.
            self._must_purge = True
            return
        payload = b"" if doc is None else self._codec.encode(doc)
        try:
            await self._set_if_newer(
                keys=[self._key(kind, id_)], args=[version, payload, self._ttl_ms]
            )
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            self._must_purge = True

    async def ping(self) -> float:
        """Round-trips a PING; returns its latency. Raises when Redis does not answer."""
        start = time.perf_counter()
        try:
            await self._redis.ping()
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            raise
        self._recovered()
        return time.perf_counter() - start

    def _key(self, kind: str, id_: str) -> str:
        return f"{self._prefix}{kind}:{id_}"

    async def _usable(self) -> bool:
        if self.healthy and not self._must_purge:
            return True
        if not self.healthy and time.monotonic() < self._retry_at:
            return False
        try:
            if self._must_purge:
                await self._purge()
            else:
                await self._redis.ping()
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return False
        self._recovered()
        return True

    async def _purge(self) -> None:
        """Deletes every key under our prefix: invalidations may have been lost while down."""
        async for key in self._redis.scan_iter(match=f"{self._prefix}*", count=500):
            await self._redis.delete(key)
        self._must_purge = False

    def _failed(self, exc: BaseException) -> None:
        if self.healthy:
            log.warning("redis unavailable, serving from sqlite", extra={"error": str(exc)})
        self.healthy = False
        self.last_error = str(exc) or type(exc).__name__
        self._retry_at = time.monotonic() + _RETRY_AFTER

    def _recovered(self) -> None:
        if not self.healthy:
            log.info("redis available again")
        self.healthy = True
        self.last_error = ""
