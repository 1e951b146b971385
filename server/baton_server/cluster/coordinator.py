"""Keeping the engine lease in the background: renew it while held, try to take it while
not, and tell the engine when it was gained or lost; between renewals, a round of the
holder's own coordination work (picking up what other processes stored)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from baton_server.cluster.lease import EngineLease

log = logging.getLogger(__name__)


class Coordinator:
    """Runs `gained`/`lost` when the lease changes hands, and `each_round` every `interval`
    seconds while this process holds it (without a lease, it always does)."""

    def __init__(
        self,
        lease: EngineLease | None,
        *,
        interval: float,
        gained: Callable[[], Awaitable[None]],
        lost: Callable[[], Awaitable[None]],
        each_round: Callable[[], Awaitable[None]],
    ) -> None:
        self.lease = lease
        self.owner = lease is None  # without a lease: the only process, always the engine
        self._interval = interval
        self._gained = gained
        self._lost = lost
        self._each_round = each_round

    async def take(self) -> bool:
        """At start-up: takes the lease if it is free; True when this process holds it."""
        if self.lease is not None:
            self.owner = await self.lease.hold()
        return self.owner

    async def release(self) -> None:
        """At shutdown: gives the lease up, so that a standby takes over at once."""
        if self.lease is None:
            return
        if self.owner:
            await self.lease.release()
        else:
            self.lease.forget()

    async def run(self) -> None:
        """The background loop (until cancelled)."""
        loop = asyncio.get_running_loop()
        renew_every = self.lease.ttl / 3 if self.lease is not None else float("inf")
        next_renewal = loop.time() + renew_every
        while True:
            await asyncio.sleep(self._interval if self.owner else min(renew_every, 1.0))
            try:
                if self.lease is not None and (not self.owner or loop.time() >= next_renewal):
                    held = await self.lease.hold()
                    next_renewal = loop.time() + renew_every
                    if held and not self.owner:
                        log.info("took over the engine lease; resuming executions")
                        self.owner = True
                        await self._gained()
                    elif not held and self.owner:
                        log.error("lost the engine lease to another process; stopping runs")
                        self.owner = False
                        await self._lost()
                if self.owner:
                    await self._each_round()
            except Exception:  # a failed round is retried at the next one
                log.exception("coordination round failed")
