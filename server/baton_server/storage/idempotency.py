"""Remembered answers to mutating requests, keyed by method and `request_id`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from baton_server.storage.codec import Codec
from baton_server.storage.database import SqlConnection


@dataclass(frozen=True)
class Remembered:
    """The first answer given to a request id, and the fingerprint of that request."""

    fingerprint: str
    response: Any


class IdempotencyRepository:
    """Stores first answers in the same transaction as the change they describe."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    async def get(self, conn: SqlConnection, key: str) -> Remembered | None:
        """Returns the remembered answer for `key`, or None."""
        rows = list(
            await conn.execute_fetchall(
                "SELECT fingerprint, response FROM idempotency WHERE key = ?", (key,)
            )
        )
        if not rows:
            return None
        row = rows[0]
        response = self.codec.decode(row[1]) if row[1] is not None else None
        return Remembered(row[0], response)

    async def put(
        self, conn: SqlConnection, key: str, fingerprint: str, response: Any, now: float
    ) -> None:
        """Remembers the answer to `key`."""
        await conn.execute(
            "INSERT INTO idempotency (key, fingerprint, response, create_time) VALUES (?, ?, ?, ?)",
            (key, fingerprint, None if response is None else self.codec.encode(response), now),
        )

    async def claim(
        self, conn: SqlConnection, key: str, fingerprint: str, response: Any, now: float
    ) -> bool:
        """Remembers `response` for `key` unless something is remembered already; returns
        whether it did (one statement, for answers known before the change is made)."""
        rows = await conn.execute_fetchall(
            "INSERT INTO idempotency (key, fingerprint, response, create_time) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (key) DO NOTHING RETURNING key",
            (key, fingerprint, self.codec.encode(response), now),
        )
        return bool(list(rows))

    async def purge(self, conn: SqlConnection, before: float) -> int:
        """Forgets answers older than `before` (epoch seconds); returns how many."""
        rows = await conn.execute_fetchall(
            "DELETE FROM idempotency WHERE create_time < ? RETURNING 1", (before,)
        )
        count = len(list(rows))
        return count
