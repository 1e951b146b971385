"""What firing each schedule has done (`schedule_firings`), beside the schedule definitions
(`schedules`, written through the definition repository)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from baton_server.storage.codec import Codec
from baton_server.storage.database import SqlConnection


class FiringRepository:
    """Reads and writes schedule firings. Writes run inside a `Database.write` job."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    async def save(
        self,
        conn: SqlConnection,
        schedule_id: str,
        next_fire: float | None,
        firing: Mapping[str, Any],
        version: int = 0,
    ) -> bool:
        """Stores a schedule's firing; False when the schedule no longer exists, or (with
        `version`) has changed since that version."""
        rows = list(
            await conn.execute_fetchall(
                "INSERT INTO schedule_firings (schedule_seq, next_fire, doc) "
                "SELECT seq, CAST(? AS DOUBLE PRECISION), CAST(? AS BLOB) FROM schedules "
                "WHERE id = ? AND (? = 0 OR version = ?) "
                "ON CONFLICT (schedule_seq) DO UPDATE SET next_fire = excluded.next_fire, "
                "doc = excluded.doc RETURNING schedule_seq",
                (
                    next_fire,
                    self.codec.encode(firing),
                    schedule_id,
                    version,
                    version,
                ),
            )
        )
        return bool(rows)

    async def get_many(
        self, conn: SqlConnection, schedule_ids: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """The firings of the schedules among `schedule_ids` that have one, by id."""
        if not schedule_ids:
            return {}
        marks = ",".join("?" * len(schedule_ids))
        rows = await conn.execute_fetchall(
            "SELECT s.id, f.doc FROM schedule_firings f "
            f"JOIN schedules s ON s.seq = f.schedule_seq WHERE s.id IN ({marks})",
            tuple(schedule_ids),
        )
        return {r[0]: self.codec.decode(r[1]) for r in rows}

    async def due(
        self, conn: SqlConnection, now: float, limit: int
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Schedules whose next firing is at or before `now`, soonest first: (document,
        firing) pairs."""
        rows = await conn.execute_fetchall(
            "SELECT s.doc, f.doc FROM schedule_firings f "
            "JOIN schedules s ON s.seq = f.schedule_seq "
            "WHERE f.next_fire IS NOT NULL AND f.next_fire <= ? ORDER BY f.next_fire LIMIT ?",
            (now, limit),
        )
        return [(self.codec.decode(r[0]), self.codec.decode(r[1])) for r in rows]

    async def next_fire(self, conn: SqlConnection) -> float | None:
        """When the soonest schedule needs attention; None when none does."""
        rows = list(
            await conn.execute_fetchall(
                "SELECT MIN(next_fire) FROM schedule_firings WHERE next_fire IS NOT NULL"
            )
        )
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    async def of_workflow(self, conn: SqlConnection, workflow_id: str, limit: int) -> list[str]:
        """Ids of up to `limit` schedules that start the workflow."""
        rows = await conn.execute_fetchall(
            "SELECT id FROM schedules WHERE workflow = ? ORDER BY seq LIMIT ?",
            (workflow_id, limit),
        )
        return [r[0] for r in rows]
