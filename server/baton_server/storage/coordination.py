"""SQL for coordinating server processes that share one database: the engine lease (which
process runs executions) and cancel requests for executions another process runs."""

from __future__ import annotations

from dataclasses import dataclass

from baton_server.storage.database import SqlConnection


@dataclass(frozen=True)
class Holder:
    """Who holds the engine lease, and until when."""

    owner: str
    host: str
    pid: int
    expires: float
    address: str = ""


class CoordinationRepository:
    """Lease and cancel-request rows."""

    async def holder(self, conn: SqlConnection) -> Holder | None:
        """The current lease holder, if any."""
        rows = list(
            await conn.execute_fetchall(
                "SELECT owner, host, pid, expires, address FROM engine_lease WHERE id = 1"
            )
        )
        return Holder(*rows[0]) if rows else None

    async def take(
        self,
        conn: SqlConnection,
        owner: str,
        host: str,
        pid: int,
        expires: float,
        address: str = "",
    ) -> None:
        """Makes `owner` (reachable at `address`) the lease holder until `expires`."""
        await conn.execute(
            "INSERT INTO engine_lease (id, owner, host, pid, expires, address) "
            "VALUES (1, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, host = excluded.host, "
            "pid = excluded.pid, expires = excluded.expires, address = excluded.address",
            (owner, host, pid, expires, address),
        )

    async def release(self, conn: SqlConnection, owner: str) -> None:
        """Gives the lease up if `owner` holds it."""
        await conn.execute("DELETE FROM engine_lease WHERE id = 1 AND owner = ?", (owner,))

    async def request_cancel(
        self, conn: SqlConnection, execution_id: str, reason: str, now: float
    ) -> None:
        """Asks the engine-running process to cancel an execution."""
        await conn.execute(
            "INSERT INTO cancel_requests (execution_id, reason, create_time) VALUES (?, ?, ?) "
            "ON CONFLICT (execution_id) DO NOTHING",
            (execution_id, reason, now),
        )

    async def take_cancel_requests(self, conn: SqlConnection) -> list[tuple[str, str]]:
        """Removes and returns every pending cancel request as (execution id, reason)."""
        rows = await conn.execute_fetchall(
            "DELETE FROM cancel_requests RETURNING execution_id, reason"
        )
        return [(r[0], r[1]) for r in rows]
