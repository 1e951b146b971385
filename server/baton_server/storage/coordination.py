"""SQL for coordinating server processes that share one database: the processes alive
(each renews its own row) and cancel requests for executions another process runs."""

from __future__ import annotations

from dataclasses import dataclass

from baton_server.storage.database import SqlConnection


@dataclass(frozen=True)
class ReplicaRow:
    """A server process, as it last renewed its row."""

    id: str
    host: str
    pid: int
    address: str
    """Where it serves gRPC, for calls passed on to it."""
    expires: float
    running: int
    """How many executions it ran at its last renewal."""


class CoordinationRepository:
    """Replica and cancel-request rows."""

    async def renew(self, conn: SqlConnection, replica: ReplicaRow) -> list[ReplicaRow]:
        """Writes this process's row, and returns every row (this one's included)."""
        await conn.execute(
            "INSERT INTO replicas (id, host, pid, address, expires, running) "
            "VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET address = excluded.address, "
            "expires = excluded.expires, running = excluded.running",
            (
                replica.id,
                replica.host,
                replica.pid,
                replica.address,
                replica.expires,
                replica.running,
            ),
        )
        return await self.replicas(conn)

    async def replicas(self, conn: SqlConnection) -> list[ReplicaRow]:
        """Every replica row, live or not."""
        rows = await conn.execute_fetchall(
            "SELECT id, host, pid, address, expires, running FROM replicas ORDER BY id"
        )
        return [
            ReplicaRow(str(r[0]), str(r[1]), int(r[2]), str(r[3]), float(r[4]), int(r[5]))
            for r in rows
        ]

    async def forget(self, conn: SqlConnection, ids: list[str]) -> None:
        """Deletes the rows of replicas that are gone (theirs at shutdown, or dead ones)."""
        await conn.executemany("DELETE FROM replicas WHERE id = ?", [(i,) for i in ids])

    async def request_cancel(
        self, conn: SqlConnection, execution_id: str, reason: str, now: float
    ) -> None:
        """Asks the process that runs an execution to cancel it."""
        await conn.execute(
            "INSERT INTO cancel_requests (execution_id, reason, create_time) VALUES (?, ?, ?) "
            "ON CONFLICT (execution_id) DO NOTHING",
            (execution_id, reason, now),
        )

    async def take_cancel_requests(self, conn: SqlConnection, owner: str) -> list[tuple[str, str]]:
        """Removes and returns the cancel requests for executions `owner` runs, and those for
        executions that ended (nobody is to carry them out), as (execution id, reason)."""
        rows = await conn.execute_fetchall(
            "DELETE FROM cancel_requests WHERE execution_id IN ("
            "SELECT c.execution_id FROM cancel_requests c "
            "LEFT JOIN executions e ON e.id = c.execution_id "
            "WHERE e.id IS NULL OR e.owner = ? OR e.end_time IS NOT NULL) "
            "RETURNING execution_id, reason",
            (owner,),
        )
        return [(r[0], r[1]) for r in rows]
