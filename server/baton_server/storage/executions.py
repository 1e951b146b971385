"""SQL for executions, their step runs and their event logs. A state change and its events
are written by one `update` inside one transaction, which also numbers the events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from baton_server.storage.codec import Codec
from baton_server.storage.database import SqlConnection

ACTIVE_STATES = ("QUEUED", "RUNNING", "PAUSED")
_ACTIVE = ", ".join("?" for _ in ACTIVE_STATES)


@dataclass(frozen=True)
class ExecutionRow:
    """A stored execution (without its steps)."""

    seq: int
    id: str
    workflow_id: str
    workflow_revision: int
    state: str
    priority: int
    create_time: float
    start_time: float
    end_time: float
    last_sequence: int
    input: dict[str, Any]
    doc: dict[str, Any]
    owner: str = ""
    """The process that runs it ('' when none claimed it yet)."""
    fence: int = 0
    """The fencing token of the owner's claim: each claim bumps it."""


@dataclass(frozen=True)
class StepRow:
    """A stored step run."""

    position: int
    step_id: str
    state: str
    attempt: int
    doc: dict[str, Any]


@dataclass(frozen=True)
class EventRow:
    """A stored event; `sequence` is 0 until it is written."""

    type: str
    time: float
    step_id: str
    attempt: int
    doc: dict[str, Any]
    sequence: int = 0


@dataclass(frozen=True)
class Change:
    """One execution's state change: its new columns, its document (None: unchanged), the
    step runs that changed and the events to append, already numbered up to
    `last_sequence`."""

    seq: int
    fence: int
    """The fencing token of the writer's claim: the change is refused if it is not the
    execution's current one."""
    state: str
    start_time: float
    end_time: float
    doc: dict[str, Any] | None
    last_sequence: int
    steps: Sequence[StepRow]
    events: Sequence[EventRow]
    items: Sequence[ItemRow] = ()
    """Ended items of `for_each` steps to store."""
    cleared: Sequence[int] = ()
    """Positions of `for_each` steps whose stored items are dropped first."""


StoredItem = tuple[int, int, str, int, bytes]
"""An ended item as stored: position, index, state, attempt, encoded document."""


@dataclass(frozen=True)
class ItemRow:
    """An ended item of a `for_each` step."""

    position: int
    index: int
    state: str
    attempt: int
    doc: dict[str, Any]


@dataclass
class PreparedInsert:
    """The parameters that store a new execution (less its seq, which the insert makes)."""

    execution: tuple[Any, ...]
    labels: list[tuple[str, str]]
    steps: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]


@dataclass
class PreparedChanges:
    """The parameters of the statements that write a batch of changes."""

    cleared: list[tuple[Any, ...]]
    items: list[tuple[Any, ...]]
    executions: list[tuple[Any, ...]]
    steps: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]


@dataclass(frozen=True)
class ExecutionFilter:
    """Which executions a list returns."""

    workflow_id: str = ""
    state: str = ""
    created_from: float = 0.0
    created_to: float = 0.0
    labels: tuple[tuple[str, str], ...] = ()
    """(key, value) pairs that must all be among the execution's labels."""
    waiting: bool = False
    """Only executions with a step WAITING (for a signal or an approval)."""


class ExecutionRepository:
    """Reads and writes executions. Write methods run inside a `Database.write` job."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    def prepare_insert(
        self, execution: ExecutionRow, steps: Sequence[StepRow], events: Sequence[EventRow]
    ) -> PreparedInsert:
        """The parameters that store a new execution with its steps and first events
        (numbered from 1), documents encoded: made on the event loop (see `prepare`)."""
        encode = self.codec.encode
        return PreparedInsert(
            execution=(
                execution.id,
                execution.workflow_id,
                execution.workflow_revision,
                execution.state,
                execution.priority,
                execution.create_time,
                execution.start_time or None,
                execution.end_time or None,
                len(events),
                encode(execution.input),
                encode(execution.doc),
                execution.owner,
                execution.fence,
            ),
            labels=list((execution.doc.get("labels") or {}).items()),
            steps=[(s.position, s.step_id, s.state, s.attempt, encode(s.doc)) for s in steps],
            events=[
                (i + 1, e.type, e.time, e.step_id, e.attempt, encode(e.doc))
                for i, e in enumerate(events)
            ],
        )

    async def insert(self, conn: SqlConnection, prepared: PreparedInsert) -> int:
        """Stores a new execution with its steps and first events; returns its seq."""
        rows = list(
            await conn.execute_fetchall(
                "INSERT INTO executions (id, workflow_id, workflow_revision, state, priority, "
                "create_time, start_time, end_time, last_sequence, input, doc, owner, fence) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
                prepared.execution,
            )
        )
        seq = int(rows[0][0])
        if prepared.labels:
            await conn.executemany(
                "INSERT INTO execution_labels (execution_seq, key, value) VALUES (?, ?, ?)",
                [(seq, *label) for label in prepared.labels],
            )
        await conn.executemany(
            "INSERT INTO step_runs (execution_seq, position, step_id, state, attempt, doc) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(seq, *step) for step in prepared.steps],
        )
        await conn.executemany(
            "INSERT INTO events (execution_seq, sequence, type, time, step_id, attempt, doc) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(seq, *event) for event in prepared.events],
        )
        return seq

    async def claim(self, conn: SqlConnection, owner: str, seqs: Sequence[int]) -> list[int]:
        """Makes `owner` the owner of the executions with these seqs, each with a new
        fencing token; returns the seqs it claimed."""
        if not seqs:
            return []
        return await self._claim(conn, owner, f"seq IN ({', '.join('?' * len(seqs))})", seqs)

    async def claim_orphans(
        self, conn: SqlConnection, owner: str, now: float, limit: int
    ) -> list[int]:
        """Claims up to `limit` running or paused executions whose owner is gone (its
        replica row expired at `now`, or was deleted as dead), oldest first."""
        return await self._claim_unowned(
            conn, owner, now, "state IN ('RUNNING', 'PAUSED')", "seq", limit
        )

    async def claim_queued(
        self, conn: SqlConnection, owner: str, now: float, limit: int
    ) -> list[int]:
        """Claims up to `limit` QUEUED executions that no live replica holds (stored for
        any replica to run, or held by one that is gone): highest priority, then oldest,
        first."""
        return await self._claim_unowned(
            conn, owner, now, "state = 'QUEUED'", "priority DESC, seq", limit
        )

    async def _claim_unowned(
        self, conn: SqlConnection, owner: str, now: float, where: str, order: str, limit: int
    ) -> list[int]:
        # Rows another replica is claiming right now are skipped, not waited for.
        lock = getattr(conn, "row_lock", "")
        return await self._claim(
            conn,
            owner,
            f"seq IN (SELECT seq FROM executions WHERE {where} AND owner NOT IN "
            f"(SELECT id FROM replicas WHERE expires >= ?) ORDER BY {order} LIMIT ?{lock})",
            (now, limit),
        )

    async def _claim(
        self, conn: SqlConnection, owner: str, where: str, params: Sequence[Any]
    ) -> list[int]:
        rows = await conn.execute_fetchall(
            f"UPDATE executions SET owner = ?, fence = fence + 1 WHERE {where} RETURNING seq",
            (owner, *params),
        )
        return sorted(int(r[0]) for r in rows)

    async def lost_claims(
        self, conn: SqlConnection, owner: str, claims: Sequence[tuple[int, int]]
    ) -> set[int]:
        """The seqs among `claims` ((seq, fence) pairs) whose execution `owner` no longer
        holds with that fence: another process claimed it since."""
        if not claims:
            return set()
        marks = ", ".join("?" * len(claims))
        rows = await conn.execute_fetchall(
            f"SELECT seq, owner, fence FROM executions WHERE seq IN ({marks})",
            [seq for seq, _ in claims],
        )
        current = {int(r[0]): (r[1], int(r[2])) for r in rows}
        return {seq for seq, fence in claims if current.get(seq) != (owner, fence)}

    async def with_seqs(
        self, conn: SqlConnection, seqs: Sequence[int]
    ) -> list[tuple[ExecutionRow, list[StepRow]]]:
        """The executions with these seqs, with their steps, oldest first."""
        if not seqs:
            return []
        marks = ", ".join("?" * len(seqs))
        return await self._with_steps(
            conn, f"SELECT * FROM executions WHERE seq IN ({marks})", list(seqs), order=""
        )

    def prepare(self, changes: Sequence[Change]) -> PreparedChanges:
        """The statements' parameters for `changes`, documents encoded: made on the event
        loop, so that the writer thread, which competes with it for the GIL, only binds
        and runs them."""
        encode = self.codec.encode
        return PreparedChanges(
            cleared=[(c.seq, position) for c in changes for position in c.cleared],
            items=[
                (c.seq, i.position, i.index, i.state, i.attempt, encode(i.doc))
                for c in changes
                for i in c.items
            ],
            executions=[
                (
                    c.state,
                    c.start_time or None,
                    c.end_time or None,
                    None if c.doc is None else encode(c.doc),
                    c.last_sequence,
                    c.seq,
                )
                for c in changes
            ],
            steps=[
                (s.state, s.attempt, encode(s.doc), c.seq, s.position)
                for c in changes
                for s in c.steps
            ],
            events=[
                (c.seq, e.sequence, e.type, e.time, e.step_id, e.attempt, encode(e.doc))
                for c in changes
                for e in c.events
            ],
        )

    async def apply(self, conn: SqlConnection, prepared: PreparedChanges) -> None:
        """Writes many executions' prepared changes with three statements, whatever their
        number (and two more when `for_each` items ended)."""
        if prepared.cleared:
            await conn.executemany(
                "DELETE FROM map_items WHERE execution_seq = ? AND position = ?",
                prepared.cleared,
            )
        if prepared.items:
            await conn.executemany(
                "INSERT INTO map_items "
                "(execution_seq, position, item, state, attempt, doc) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (execution_seq, position, item) DO UPDATE SET "
                "state = excluded.state, attempt = excluded.attempt, doc = excluded.doc",
                prepared.items,
            )
        await conn.executemany(
            "UPDATE executions SET state = ?, start_time = ?, end_time = ?, "
            "doc = COALESCE(?, doc), last_sequence = ? WHERE seq = ?",
            prepared.executions,
        )
        if prepared.steps:
            await conn.executemany(
                "UPDATE step_runs SET state = ?, attempt = ?, doc = ? "
                "WHERE execution_seq = ? AND position = ?",
                prepared.steps,
            )
        if prepared.events:
            await conn.executemany(
                "INSERT INTO events (execution_seq, sequence, type, time, step_id, attempt, doc) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                prepared.events,
            )

    async def items(
        self, conn: SqlConnection, execution_id: str, position: int, after: int, limit: int
    ) -> list[StoredItem]:
        """Up to `limit` ended items of the `for_each` step at `position`, with index >
        `after`, by index, as stored (`item_rows` decodes them)."""
        rows = await conn.execute_fetchall(
            "SELECT i.position, i.item, i.state, i.attempt, i.doc FROM map_items i "
            "JOIN executions e ON e.seq = i.execution_seq "
            "WHERE e.id = ? AND i.position = ? AND i.item > ? ORDER BY i.item LIMIT ?",
            (execution_id, position, after, limit),
        )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def item_rows(self, stored: list[StoredItem]) -> list[ItemRow]:
        """Items as `items` read them, decoded."""
        return [
            ItemRow(p, i, state, attempt, self.codec.decode(doc))
            for p, i, state, attempt, doc in stored
        ]

    async def get(
        self, conn: SqlConnection, execution_id: str
    ) -> tuple[ExecutionRow, list[StepRow]] | None:
        """Returns the execution with its steps (one statement: one snapshot), or None."""
        found = await self._with_steps(
            conn, "SELECT * FROM executions WHERE id = ?", [execution_id], order=""
        )
        return found[0] if found else None

    async def list_page(
        self,
        conn: SqlConnection,
        *,
        before_seq: int,
        limit: int,
        where: ExecutionFilter,
    ) -> list[tuple[ExecutionRow, list[StepRow]]]:
        """Up to `limit` executions with seq < `before_seq` (0: no bound), newest first."""
        clauses: list[str] = []
        params: list[Any] = []
        if before_seq:
            clauses.append("seq < ?")
            params.append(before_seq)
        for clause, value in (
            ("workflow_id = ?", where.workflow_id),
            ("state = ?", where.state),
            ("create_time >= ?", where.created_from),
            ("create_time < ?", where.created_to),
        ):
            if value:
                clauses.append(clause)
                params.append(value)
        for key, value in where.labels:
            clauses.append(
                "seq IN (SELECT execution_seq FROM execution_labels WHERE key = ? AND value = ?)"
            )
            params += [key, value]
        if where.waiting:
            clauses.append("seq IN (SELECT execution_seq FROM step_runs WHERE state = 'WAITING')")
        where_sql = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return await self._with_steps(
            conn,
            f"SELECT * FROM executions {where_sql} ORDER BY seq DESC LIMIT ?",
            [*params, limit],
            order="DESC",
        )

    async def delete_ended(self, conn: SqlConnection, execution_id: str) -> bool:
        """Deletes an ended execution with its steps, events and labels; False when there is
        no such ended execution."""
        rows = await conn.execute_fetchall(
            f"DELETE FROM executions WHERE id = ? AND state NOT IN ({_ACTIVE}) RETURNING seq",
            (execution_id, *ACTIVE_STATES),
        )
        return bool(list(rows))

    async def delete_ended_before(
        self, conn: SqlConnection, before: float, limit: int
    ) -> list[tuple[str, int]]:
        """Deletes up to `limit` executions that ended before `before` (oldest first), with
        their steps, events and labels; returns their ids and last event sequences."""
        rows = await conn.execute_fetchall(
            "DELETE FROM executions WHERE seq IN (SELECT seq FROM executions "
            f"WHERE end_time IS NOT NULL AND end_time < ? AND state NOT IN ({_ACTIVE}) "
            "ORDER BY end_time LIMIT ?) RETURNING id, last_sequence",
            (before, *ACTIVE_STATES, limit),
        )
        return [(row[0], row[1]) for row in rows]

    async def outcomes(
        self, conn: SqlConnection, workflow_id: str, start: float, end: float
    ) -> list[tuple[str, float, float]]:
        """(state, start_time, end_time) of the workflow's executions created in [start, end)."""
        rows = await conn.execute_fetchall(
            "SELECT state, start_time, end_time FROM executions "
            "WHERE workflow_id = ? AND create_time >= ? AND create_time < ?",
            (workflow_id, start, end),
        )
        return [(r[0], r[1] or 0.0, r[2] or 0.0) for r in rows]

    async def step_blobs_overlapping(
        self, conn: SqlConnection, start: float, end: float
    ) -> list[bytes]:
        """The stored (encoded) step-run documents of executions that were alive at some
        time in [start, end); decode them with `Codec.decode`, off the event loop."""
        rows = await conn.execute_fetchall(
            "SELECT s.doc FROM step_runs s JOIN executions e ON e.seq = s.execution_seq "
            "WHERE e.create_time < ? AND (e.end_time IS NULL OR e.end_time >= ?)",
            (end, start),
        )
        return [bytes(r[0]) for r in rows]

    async def has_active(self, conn: SqlConnection, workflow_id: str) -> bool:
        """True while an execution of the workflow is QUEUED or RUNNING."""
        rows = await conn.execute_fetchall(
            f"SELECT 1 FROM executions WHERE workflow_id = ? AND state IN ({_ACTIVE}) LIMIT 1",
            (workflow_id, *ACTIVE_STATES),
        )
        return bool(list(rows))

    async def attempt_events(
        self,
        conn: SqlConnection,
        execution_seq: int,
        step_id: str,
        attempt: int,
        types: Sequence[str],
    ) -> list[EventRow]:
        """One step attempt's events of the given types, in order."""
        rows = await conn.execute_fetchall(
            "SELECT sequence, type, time, step_id, attempt, doc FROM events "
            "WHERE execution_seq = ? AND step_id = ? AND attempt = ? "
            f"AND type IN ({','.join('?' * len(types))}) ORDER BY sequence",
            [execution_seq, step_id, attempt, *types],
        )
        return [self._event_row(r) for r in rows]

    async def events(
        self,
        conn: SqlConnection,
        execution_seq: int,
        *,
        after_sequence: int,
        limit: int,
        types: Sequence[str] = (),
    ) -> list[EventRow]:
        """Events with sequence > `after_sequence`, in order, of the given types (all if
        empty)."""
        type_sql = ""
        params: list[Any] = [execution_seq, after_sequence]
        if types:
            type_sql = f" AND type IN ({','.join('?' * len(types))})"
            params += list(types)
        rows = await conn.execute_fetchall(
            "SELECT sequence, type, time, step_id, attempt, doc FROM events "
            f"WHERE execution_seq = ? AND sequence > ?{type_sql} ORDER BY sequence LIMIT ?",
            [*params, limit],
        )
        return [self._event_row(r) for r in rows]

    def _event_row(self, r: Any) -> EventRow:
        return EventRow(
            r["type"],
            r["time"],
            r["step_id"],
            r["attempt"],
            self.codec.decode(r["doc"]),
            sequence=r["sequence"],
        )

    async def _with_steps(
        self, conn: SqlConnection, select: str, params: list[Any], *, order: str
    ) -> list[tuple[ExecutionRow, list[StepRow]]]:
        """Executions chosen by `select` (a SELECT * FROM executions ...) with their steps,
        read by one statement so that both come from the same snapshot."""
        rows = await conn.execute_fetchall(
            f"WITH chosen AS ({select}) "
            "SELECT chosen.*, s.position AS s_position, s.step_id AS s_step_id, "
            "s.state AS s_state, s.attempt AS s_attempt, s.doc AS s_doc "
            "FROM chosen LEFT JOIN step_runs s ON s.execution_seq = chosen.seq "
            f"ORDER BY chosen.seq {order}, s.position",
            params,
        )
        result: dict[int, tuple[ExecutionRow, list[StepRow]]] = {}
        for r in rows:
            entry = result.get(r["seq"])
            if entry is None:
                entry = result[r["seq"]] = (self._execution(r), [])
            if r["s_position"] is not None:
                entry[1].append(
                    StepRow(
                        r["s_position"],
                        r["s_step_id"],
                        r["s_state"],
                        r["s_attempt"],
                        self.codec.decode(r["s_doc"]),
                    )
                )
        return list(result.values())

    def _execution(self, row: aiosqlite.Row) -> ExecutionRow:
        return ExecutionRow(
            seq=row["seq"],
            id=row["id"],
            workflow_id=row["workflow_id"],
            workflow_revision=row["workflow_revision"],
            state=row["state"],
            priority=row["priority"],
            create_time=row["create_time"],
            start_time=row["start_time"] or 0.0,
            end_time=row["end_time"] or 0.0,
            last_sequence=row["last_sequence"],
            input=self.codec.decode(row["input"]),
            doc=self.codec.decode(row["doc"]),
            owner=row["owner"],
            fence=row["fence"],
        )
