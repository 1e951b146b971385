"""Health of the server's dependencies: SQLite (required) and Redis (optional)."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

from baton_server.storage.cache import RedisCache
from baton_server.storage.database import Database

PROBE_TIMEOUT = 2.0


class Status(enum.StrEnum):
    """Health of a component or of the whole."""

    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    UNHEALTHY = "UNHEALTHY"


@dataclass(frozen=True)
class Component:
    """The result of probing one dependency."""

    name: str
    status: Status
    message: str
    latency: float


@dataclass(frozen=True)
class Report:
    """The health of the server: UNHEALTHY if storage is down, DEGRADED if only Redis is."""

    status: Status
    components: list[Component]


class HealthProbe:
    """Probes storage and cache on demand."""

    def __init__(self, db: Database, cache: RedisCache | None) -> None:
        self._db = db
        self._cache = cache

    async def check(self) -> Report:
        """Probes every component (each bounded by a timeout) and summarises."""
        components = [await self._storage()]
        if self._cache is not None:
            components.append(await self._redis(self._cache))
        if components[0].status is not Status.HEALTHY:
            overall = Status.UNHEALTHY
        elif any(c.status is not Status.HEALTHY for c in components):
            overall = Status.DEGRADED
        else:
            overall = Status.HEALTHY
        return Report(overall, components)

    async def _storage(self) -> Component:
        try:
            latency = await asyncio.wait_for(self._db.ping(), PROBE_TIMEOUT)
        except Exception as exc:  # any failure of the probe means unhealthy storage
            return Component(
                "storage", Status.UNHEALTHY, f"{self._db.kind}: {exc or type(exc).__name__}", 0.0
            )
        return Component("storage", Status.HEALTHY, self._db.kind, latency)

    async def _redis(self, cache: RedisCache) -> Component:
        try:
            latency = await asyncio.wait_for(cache.ping(), PROBE_TIMEOUT)
        except Exception as exc:  # Redis is optional: down means degraded, not failed
            return Component(
                "redis",
                Status.DEGRADED,
                f"unreachable, serving from sqlite: {exc or type(exc).__name__}",
                0.0,
            )
        return Component("redis", Status.HEALTHY, "definition cache", latency)
