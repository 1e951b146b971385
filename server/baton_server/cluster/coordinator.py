"""The background work that keeps this process among the replicas: renew its row, and every
round pick up what no live replica holds (executions stored for any replica to run, those
of replicas that are gone, cancel requests)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from baton_server.cluster.membership import Membership

log = logging.getLogger(__name__)

RENEWAL = 1.0
"""Most seconds between two renewals of this process's row (and reads of the others')."""


class Coordinator:
    """Every `interval` seconds runs `each_round(renewed)`; `renewed` is True when the
    replicas were read again just before (then replicas that are gone are noticed)."""

    def __init__(
        self,
        membership: Membership,
        *,
        interval: float,
        running: Callable[[], int],
        each_round: Callable[[bool], Awaitable[None]],
    ) -> None:
        self.membership = membership
        self._interval = interval
        self._running = running
        self._each_round = each_round

    async def join(self) -> None:
        """At start-up: this process's row, and the others' read."""
        await self.membership.renew(self._running())

    async def run(self) -> None:
        """The background loop (until cancelled)."""
        loop = asyncio.get_running_loop()
        renew_every = min(self.membership.ttl / 3, RENEWAL)
        next_renewal = loop.time() + renew_every
        while True:
            await asyncio.sleep(self._interval)
            try:
                renewed = loop.time() >= next_renewal
                if renewed:
                    await self.membership.renew(self._running())
                    next_renewal = loop.time() + renew_every
                await self._each_round(renewed)
            except Exception:  # a failed round is retried at the next one
                log.exception("coordination round failed")
