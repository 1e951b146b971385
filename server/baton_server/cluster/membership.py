"""The server processes that share one database, each running executions: every process
renews its own row; one that stops renewing is gone once its row expires (at once if it
was a process on the same host that no longer exists), and the others claim what it ran."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable

from baton_server.storage.coordination import CoordinationRepository, ReplicaRow
from baton_server.storage.database import Database, SqlConnection

_LIVE: set[str] = set()
"""The replicas alive in this process (a process may run several servers, as tests do)."""


class Membership:
    """This process's row among the replicas, and what it last read of the others'."""

    def __init__(
        self, db: Database, repo: CoordinationRepository, ttl: float, clock: Callable[[], float]
    ) -> None:
        self.db = db
        self.repo = repo
        self.ttl = ttl
        self.clock = clock
        self.id = uuid.uuid4().hex
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.address = ""  # where this process serves gRPC, once it listens
        _LIVE.add(self.id)
        self._rows: dict[str, ReplicaRow] = {}
        self._live: frozenset[str] = frozenset({self.id})

    @property
    def live(self) -> frozenset[str]:
        """The ids of the replicas alive at the last renewal (this one's included)."""
        return self._live

    @property
    def leads(self) -> bool:
        """Whether this process does the work one replica does for all (firing schedules,
        deleting old executions): the live replica with the smallest id. (While replicas
        come and go two may both think so for a moment: that work is safe to do twice.)"""
        return self.id == min(self._live)

    async def renew(self, running: int) -> frozenset[str]:
        """Writes this process's row (alive for `ttl` more seconds, running `running`
        executions); reads the others' and forgets the dead ones' rows. Returns the ids of
        the replicas alive."""
        now = self.clock()
        mine = ReplicaRow(self.id, self.host, self.pid, self.address, now + self.ttl, running)

        async def job(conn: SqlConnection) -> list[ReplicaRow]:
            rows = await self.repo.renew(conn, mine)
            live = [row for row in rows if self._alive(row, now)]
            if len(live) < len(rows):  # the dead ones' rows go in the same transaction
                await self.repo.forget(conn, [r.id for r in rows if r not in live])
            return live

        live = await self.db.write(job)
        self._rows = {row.id: row for row in live}
        self._live = frozenset(self._rows)
        return self._live

    def running_elsewhere(self) -> list[int]:
        """How many executions each other live replica ran at its last renewal."""
        return [self._rows[i].running for i in self._live if i != self.id and i in self._rows]

    async def address_of(self, replica: str) -> str:
        """Where a live replica serves gRPC ('' when it is not alive, or unknown)."""
        rows = await self.db.read(self.repo.replicas)
        now = self.clock()
        return next((r.address for r in rows if r.id == replica and self._alive(r, now)), "")

    async def leave(self) -> None:
        """At shutdown: this process is gone, and the others claim what it did not finish
        at once."""
        _LIVE.discard(self.id)
        await self.db.write(lambda conn: self.repo.forget(conn, [self.id]))

    def _alive(self, row: ReplicaRow, now: float) -> bool:
        if row.id == self.id:
            return True
        if row.expires < now:
            return False
        if row.host != self.host:
            return True
        if row.pid == self.pid:
            # An earlier life of this process id (a restarted container is pid 1 again),
            # unless it is another server alive in this very process.
            return row.id in _LIVE
        try:
            os.kill(row.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
