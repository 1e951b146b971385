"""SQL for definition resources (agents, workflows, handoffs): stored as JSON documents with
indexed columns for the list filters and side tables for multi-valued filters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from baton_server.storage.codec import Codec
from baton_server.storage.database import SqlConnection


@dataclass(frozen=True)
class Table:
    """Where one kind of definition lives."""

    name: str
    columns: tuple[str, ...]
    """Indexed scalar columns, filled from the row's `index` values."""
    side_tables: Mapping[str, str]
    """Multi-valued attribute -> side table holding (owner_seq, value)."""


AGENTS = Table("agents", ("state",), {"capabilities": "agent_capabilities", "tools": "agent_tools"})
WORKFLOWS = Table("workflows", ("state",), {"tags": "workflow_tags", "agents": "workflow_agents"})
HANDOFFS = Table("handoffs", ("source", "target", "type"), {})
SCHEDULES = Table("schedules", ("state", "workflow"), {})
TOOLS = Table("tools", (), {"runs": "tool_runs"})
"""`runs`: the agent (`agents/x`) or workflow (`workflows/x`) a tool runs, if any."""


@dataclass(frozen=True)
class Row:
    """A stored definition."""

    seq: int
    id: str
    version: int
    doc: dict[str, Any]


@dataclass(frozen=True)
class Filter:
    """Which rows a list returns: columns equal to values, and side tables holding all values."""

    equals: Mapping[str, str]
    all_of: Mapping[str, Sequence[str]]


class DefinitionRepository:
    """Reads and writes definition rows. Write methods take the writer connection from
    inside a `Database.write` job; read methods take any connection."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    async def next_version(self, conn: SqlConnection) -> int:
        """Bumps and returns the database-wide write counter."""
        rows = list(
            await conn.execute_fetchall(
                "UPDATE meta SET value = CAST(value AS BIGINT) + 1 WHERE key = 'version' "
                "RETURNING CAST(value AS BIGINT)"
            )
        )
        row = rows[0] if rows else None
        assert row is not None, "meta.version is created by the first migration"
        return int(row[0])

    async def version(self, conn: SqlConnection, table: Table, id_: str) -> int | None:
        """The version of the row with this id (its document unread), or None."""
        rows = list(
            await conn.execute_fetchall(f"SELECT version FROM {table.name} WHERE id = ?", (id_,))
        )
        return int(rows[0][0]) if rows else None

    async def get(self, conn: SqlConnection, table: Table, id_: str) -> Row | None:
        """Returns the row with this id, or None."""
        rows = list(
            await conn.execute_fetchall(
                f"SELECT seq, id, version, doc FROM {table.name} WHERE id = ?", (id_,)
            )
        )
        return self._row(rows[0]) if rows else None

    async def get_many(
        self, conn: SqlConnection, table: Table, ids: Sequence[str]
    ) -> dict[str, Row]:
        """Returns the rows among `ids` that exist, by id."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = await conn.execute_fetchall(
            f"SELECT seq, id, version, doc FROM {table.name} WHERE id IN ({marks})", tuple(ids)
        )
        return {r["id"]: self._row(r) for r in rows}

    async def list_page(
        self,
        conn: SqlConnection,
        table: Table,
        *,
        after_seq: int,
        limit: int,
        where: Filter,
    ) -> list[Row]:
        """Returns up to `limit` rows with seq > `after_seq` matching `where`, by seq."""
        clauses = ["seq > ?"]
        params: list[Any] = [after_seq]
        for column, value in where.equals.items():
            if column not in table.columns:
                raise ValueError(f"{table.name} has no filter column {column}")
            clauses.append(f"{column} = ?")
            params.append(value)
        for attribute, values in where.all_of.items():
            wanted = sorted(set(values))
            if not wanted:
                continue
            side = table.side_tables[attribute]
            marks = ",".join("?" * len(wanted))
            clauses.append(
                f"seq IN (SELECT owner_seq FROM {side} WHERE value IN ({marks}) "
                f"GROUP BY owner_seq HAVING COUNT(*) = ?)"
            )
            params.extend(wanted)
            params.append(len(wanted))
        sql = (
            f"SELECT seq, id, version, doc FROM {table.name} WHERE {' AND '.join(clauses)} "
            f"ORDER BY seq LIMIT ?"
        )
        params.append(limit)
        rows = await conn.execute_fetchall(sql, params)
        return [self._row(r) for r in rows]

    async def insert(
        self,
        conn: SqlConnection,
        table: Table,
        *,
        id_: str,
        version: int,
        doc: Mapping[str, Any],
        index: Mapping[str, str],
        multi: Mapping[str, Sequence[str]],
    ) -> int:
        """Inserts a row (the caller has checked the id is free); returns its seq."""
        columns = ["id", "version", "doc", *table.columns]
        values = [id_, version, self.codec.encode(doc), *(index[c] for c in table.columns)]
        rows = list(
            await conn.execute_fetchall(
                f"INSERT INTO {table.name} ({','.join(columns)}) "
                f"VALUES ({','.join('?' * len(columns))}) RETURNING seq",
                values,
            )
        )
        row = rows[0] if rows else None
        assert row is not None
        seq = int(row[0])
        await self._write_side_tables(conn, table, seq, multi)
        return seq

    async def update(
        self,
        conn: SqlConnection,
        table: Table,
        *,
        seq: int,
        version: int,
        doc: Mapping[str, Any],
        index: Mapping[str, str],
        multi: Mapping[str, Sequence[str]],
    ) -> None:
        """Replaces the document, indexed columns and side-table values of a row."""
        sets = ", ".join(f"{c} = ?" for c in ("version", "doc", *table.columns))
        await conn.execute(
            f"UPDATE {table.name} SET {sets} WHERE seq = ?",
            [version, self.codec.encode(doc), *(index[c] for c in table.columns), seq],
        )
        for side in table.side_tables.values():
            await conn.execute(f"DELETE FROM {side} WHERE owner_seq = ?", (seq,))
        await self._write_side_tables(conn, table, seq, multi)

    async def delete(self, conn: SqlConnection, table: Table, seq: int) -> None:
        """Deletes a row; side tables and revisions go with it (ON DELETE CASCADE)."""
        await conn.execute(f"DELETE FROM {table.name} WHERE seq = ?", (seq,))

    async def insert_revision(
        self, conn: SqlConnection, workflow_seq: int, revision: int, doc: Mapping[str, Any]
    ) -> None:
        """Stores one immutable workflow revision."""
        await conn.execute(
            "INSERT INTO workflow_revisions (workflow_seq, revision, doc) VALUES (?, ?, ?)",
            (workflow_seq, revision, self.codec.encode(doc)),
        )

    async def get_revision(
        self, conn: SqlConnection, workflow_id: str, revision: int
    ) -> dict[str, Any] | None:
        """Returns a stored workflow revision's document, or None."""
        rows = list(
            await conn.execute_fetchall(
                "SELECT r.doc FROM workflow_revisions r JOIN workflows w ON w.seq = r.workflow_seq "
                "WHERE w.id = ? AND r.revision = ?",
                (workflow_id, revision),
            )
        )
        return self.codec.decode(rows[0][0]) if rows else None

    async def tools_running(self, conn: SqlConnection, name: str, limit: int = 5) -> list[str]:
        """Ids of up to `limit` tools that run the agent or workflow `name` (`agents/x`)."""
        rows = await conn.execute_fetchall(
            "SELECT t.id FROM tool_runs r JOIN tools t ON t.seq = r.owner_seq "
            "WHERE r.value = ? ORDER BY t.seq LIMIT ?",
            (name, limit),
        )
        return [r[0] for r in rows]

    async def tool_users(self, conn: SqlConnection, tool_id: str, limit: int = 5) -> list[str]:
        """Ids of up to `limit` agents that name the tool."""
        rows = await conn.execute_fetchall(
            "SELECT a.id FROM agent_tools t JOIN agents a ON a.seq = t.owner_seq "
            "WHERE t.value = ? ORDER BY a.seq LIMIT ?",
            (tool_id, limit),
        )
        return [r[0] for r in rows]

    async def agent_references(
        self, conn: SqlConnection, agent_id: str, limit: int = 5
    ) -> tuple[list[str], list[str]]:
        """Returns (workflow ids, handoff ids) that refer to the agent, up to `limit` each."""
        workflows = [
            r[0]
            for r in await conn.execute_fetchall(
                "SELECT w.id FROM workflow_agents a JOIN workflows w ON w.seq = a.owner_seq "
                "WHERE a.value = ? ORDER BY w.seq LIMIT ?",
                (agent_id, limit),
            )
        ]
        handoffs = [
            r[0]
            for r in await conn.execute_fetchall(
                "SELECT id FROM handoffs WHERE source = ? OR target = ? ORDER BY seq LIMIT ?",
                (agent_id, agent_id, limit),
            )
        ]
        return workflows, handoffs

    async def delete_handoffs_of(self, conn: SqlConnection, agent_id: str) -> list[str]:
        """Deletes every handoff from or to the agent; returns their ids."""
        rows = await conn.execute_fetchall(
            "DELETE FROM handoffs WHERE source = ? OR target = ? RETURNING id", (agent_id, agent_id)
        )
        return [r[0] for r in rows]

    async def _write_side_tables(
        self,
        conn: SqlConnection,
        table: Table,
        seq: int,
        multi: Mapping[str, Sequence[str]],
    ) -> None:
        for attribute, side in table.side_tables.items():
            values = sorted(set(multi.get(attribute, ())))
            if values:
                await conn.executemany(
                    f"INSERT INTO {side} (owner_seq, value) VALUES (?, ?)",
                    [(seq, v) for v in values],
                )

    def _row(self, row: aiosqlite.Row) -> Row:
        return Row(
            seq=int(row["seq"]),
            id=row["id"],
            version=int(row["version"]),
            doc=self.codec.decode(row["doc"]),
        )
