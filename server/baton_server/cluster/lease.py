"""Which server process runs executions when several share one database: the holder of
the engine lease. It renews the lease; another process takes it over once it expires, or
at once when its holder was a process on the same host that no longer exists."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable

from baton_server.storage.coordination import CoordinationRepository, Holder
from baton_server.storage.database import Database, SqlConnection

_LIVE: set[str] = set()
"""The lease owners alive in this process (a process may run several servers, as tests do)."""


class EngineLease:
    """This process's claim on the engine lease."""

    def __init__(
        self, db: Database, repo: CoordinationRepository, ttl: float, clock: Callable[[], float]
    ) -> None:
        self.db = db
        self.repo = repo
        self.ttl = ttl
        self.clock = clock
        self.owner = uuid.uuid4().hex
        self.host = socket.gethostname()
        self.pid = os.getpid()
        _LIVE.add(self.owner)
        self.address = ""  # where this process serves gRPC, once it listens
        self._expires = 0.0  # until when we hold it, as last written

    async def hold(self) -> bool:
        """Takes or renews the lease if it is free or ours; returns whether we hold it."""

        async def job(conn: SqlConnection) -> bool:
            holder = await self.repo.holder(conn)
            now = self.clock()
            if holder is not None and not self._free(holder, now):
                return False
            await self.repo.take(
                conn, self.owner, self.host, self.pid, now + self.ttl, self.address
            )
            self._expires = now + self.ttl
            return True

        return await self.db.write(job)

    async def holder_address(self) -> str:
        """Where the current lease holder serves gRPC ('' when nobody holds the lease)."""
        holder = await self.db.read(self.repo.holder)
        if holder is None or holder.expires < self.clock():
            return ""
        return holder.address

    async def release(self) -> None:
        """Gives the lease up (at shutdown), so a standby can take over at once."""
        _LIVE.discard(self.owner)
        await self.db.write(lambda conn: self.repo.release(conn, self.owner))

    def forget(self) -> None:
        """At shutdown of a process that does not hold the lease: it is no longer alive."""
        _LIVE.discard(self.owner)

    def _free(self, holder: Holder, now: float) -> bool:
        if holder.owner == self.owner or holder.expires < now:
            return True
        if holder.host != self.host:
            return False
        if holder.pid == self.pid:
            # An earlier life of this process id (a restarted container is pid 1 again),
            # unless it is another server alive in this very process.
            return holder.owner not in _LIVE
        try:
            os.kill(holder.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
