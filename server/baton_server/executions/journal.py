"""Where an execution's state change and its events are written: one transaction each,
committed before anyone is told. Also turns stored rows back into domain objects."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from baton_server.domain.executions import (
    Event,
    EventType,
    Execution,
    ExecutionState,
    Failure,
    ItemResult,
    StepRun,
    StepState,
)
from baton_server.errors import BatonError, Code, invalid_field
from baton_server.idempotency import RequestInfo
from baton_server.storage.cache import RedisCache
from baton_server.storage.database import INTEGRITY_ERRORS, Database, SqlConnection
from baton_server.storage.executions import (
    Change,
    EventRow,
    ExecutionFilter,
    ExecutionRepository,
    ExecutionRow,
    ItemRow,
    PreparedChanges,
    StepRow,
)
from baton_server.storage.idempotency import IdempotencyRepository

EXECUTION_COLUMNS = ("state", "start_time", "end_time")
_COLUMN_NAMES = frozenset(EXECUTION_COLUMNS)
_DECODE_ON_LOOP = 100
"""Most stored items decoded on the event loop; more are decoded in a thread."""


def step_row(run: StepRun) -> StepRow:
    """A step run as storage keeps it."""
    return StepRow(run.position, run.step_id, run.state.value, run.attempt, run.to_doc())


def event_row(event: Event) -> EventRow:
    """An event as storage keeps it."""
    return EventRow(
        event.type.value, event.time, event.step_id, event.attempt, event.payload, event.sequence
    )


def to_event(execution_id: str, row: EventRow) -> Event:
    """A stored event as a domain event."""
    return Event(
        EventType(row.type),
        row.step_id,
        row.attempt,
        row.doc,
        row.sequence,
        row.time,
        execution_id,
    )


def to_execution(row: ExecutionRow, steps: Sequence[StepRow]) -> Execution:
    """A stored execution as a domain object."""
    doc = row.doc
    return Execution(
        id=row.id,
        workflow_id=row.workflow_id,
        workflow_revision=row.workflow_revision,
        input=row.input,
        output=doc.get("output"),
        state=ExecutionState(row.state),
        error=Failure.from_doc(doc.get("error")),
        priority=row.priority,
        timeout=doc.get("timeout"),
        trace=doc.get("trace", False),
        traceparent=doc.get("traceparent", ""),
        run=doc.get("run", 0),
        signals=doc.get("signals", []),
        signal_requests=doc.get("signal_requests", []),
        labels=doc.get("labels", {}),
        parent=doc.get("parent", ""),
        depth=doc.get("depth", 0),
        steps=[StepRun.from_doc(s.doc) for s in steps],
        create_time=row.create_time,
        start_time=row.start_time,
        end_time=row.end_time,
        last_sequence=row.last_sequence,
        seq=row.seq,
        owner=row.owner,
        fence=row.fence,
    )


class ClaimLostError(Exception):
    """A state change was refused: another process claimed the execution since this one
    did (it runs it now)."""


class Journal:
    """Durable writes and reads of executions."""

    def __init__(
        self,
        db: Database,
        repo: ExecutionRepository,
        idempotency: IdempotencyRepository,
        clock: Callable[[], float],
        cache: RedisCache | None = None,
    ) -> None:
        self.db = db
        self.repo = repo
        self.idempotency = idempotency
        self.clock = clock
        self.cache = cache
        self.owner = uuid.uuid4().hex
        """Who this process is as the owner of the executions it claims."""
        self._pending: list[tuple[Change, asyncio.Future[None]]] = []
        self._flush_scheduled = False

    async def create(
        self,
        execution: Execution,
        events: list[Event],
        request: RequestInfo,
        *,
        claimed: bool = True,
        check: Callable[[SqlConnection], Awaitable[None]] | None = None,
    ) -> tuple[Execution, list[Event], bool]:
        """Stores a new execution with its first events, idempotently, `claimed` by this
        process (else for any replica to claim), after `check` (which may refuse it by
        raising) in the same transaction. Returns the execution
        as stored (the first one, for a repeated request id), its events, and whether this
        call created it. ALREADY_EXISTS when its id is taken."""
        now = self.clock()
        for event in events:
            event.time = event.time or now
        created = False
        prepared = self.repo.prepare_insert(
            ExecutionRow(
                0,
                execution.id,
                execution.workflow_id,
                execution.workflow_revision,
                execution.state.value,
                execution.priority,
                execution.create_time,
                execution.start_time,
                execution.end_time,
                0,
                execution.input,
                execution.mutable_doc(),
                owner=self.owner if claimed else "",
                fence=1 if claimed else 0,
            ),
            [step_row(s) for s in execution.steps],
            [event_row(e) for e in events],
        )

        async def job(conn: SqlConnection) -> Any:
            nonlocal created
            if check is not None:
                await check(conn)
            if request.request_id:
                # The answer (the new id) is known up front: claim the request id with it.
                key = f"{request.method}:{request.request_id}"
                answer = {"id": execution.id}
                if not await self.idempotency.claim(conn, key, request.fingerprint, answer, now):
                    remembered = await self.idempotency.get(conn, key)
                    assert remembered is not None
                    if remembered.fingerprint != request.fingerprint:
                        raise invalid_field(
                            "request_id",
                            "was already used for a different request",
                            "REQUEST_ID_REUSED",
                        )
                    return remembered.response
            try:
                execution.seq = await self.repo.insert(conn, prepared)
            except INTEGRITY_ERRORS:
                raise BatonError(
                    Code.ALREADY_EXISTS,
                    "EXECUTION_ALREADY_EXISTS",
                    f"execution {execution.id!r} already exists",
                    metadata={"name": f"executions/{execution.id}"},
                ) from None
            created = True
            return {"id": execution.id}

        answer = await self.db.write(job)
        if not created:
            stored = await self.get(answer["id"])
            assert stored is not None, "a remembered execution exists"
            return stored, [], False
        for sequence, event in enumerate(events, 1):
            event.sequence, event.execution_id = sequence, execution.id
        execution.last_sequence = len(events)
        execution.owner, execution.fence = (self.owner, 1) if claimed else ("", 0)
        return execution, events, True

    async def record(
        self,
        execution: Execution,
        *,
        fields: dict[str, Any] | None = None,
        steps: Sequence[StepRun] = (),
        events: Sequence[Event] = (),
        items: Sequence[ItemResult] = (),
        cleared: Sequence[int] = (),
    ) -> list[Event]:
        """Writes a state change of `execution` and its events in one transaction, then
        applies it to the in-memory object: `fields` (state, times, output, error) and the
        given step runs (which replace those at the same position).

        Callers serialise the changes of one execution (the run's lock), so its events are
        numbered here from the in-memory `last_sequence`. Changes of many executions that
        arrive together are written by one job with three statements."""
        fields = fields or {}
        now = self.clock()
        sequence = execution.last_sequence
        execution_id = execution.id
        for event in events:
            sequence += 1
            event.time = event.time or now
            event.sequence = sequence
            event.execution_id = execution_id
        doc = None
        if fields and not fields.keys() <= _COLUMN_NAMES:
            doc = {
                **execution.mutable_doc(),
                **{k: _plain(v) for k, v in fields.items() if k not in EXECUTION_COLUMNS},
            }
        change = Change(
            seq=execution.seq,
            fence=execution.fence,
            state=_plain(fields.get("state", execution.state)),
            start_time=fields.get("start_time", execution.start_time),
            end_time=fields.get("end_time", execution.end_time),
            doc=doc,
            last_sequence=sequence,
            steps=[step_row(s) for s in steps],
            events=[event_row(e) for e in events],
            items=[
                ItemRow(
                    i.position,
                    i.index,
                    i.state.value,
                    i.attempt,
                    {"output": i.output, "error": i.error.to_doc() if i.error else None},
                )
                for i in items
            ],
            cleared=cleared,
        )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((change, done))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._flush()
        await done
        for name, value in fields.items():
            setattr(execution, name, value)
        for run in steps:
            execution.steps[run.position] = run
        execution.last_sequence = change.last_sequence
        return list(events)

    async def items(
        self, execution_id: str, step_id: str, position: int, *, after: int = -1, limit: int
    ) -> list[ItemResult]:
        """Ended items of the `for_each` step at `position`, by index, after `after`."""
        stored = await self.db.read(
            lambda conn: self.repo.items(conn, execution_id, position, after, limit)
        )
        # A map's items are read whole after a restart: thousands to decode, off the loop.
        if len(stored) > _DECODE_ON_LOOP:
            rows = await asyncio.to_thread(self.repo.item_rows, stored)
        else:
            rows = self.repo.item_rows(stored)
        return [
            ItemResult(
                step_id,
                r.position,
                r.index,
                StepState(r.state),
                r.attempt,
                r.doc.get("output"),
                Failure.from_doc(r.doc.get("error")),
            )
            for r in rows
        ]

    def _flush(self) -> None:
        """Writes every change pending when the writer gets to it, in one job."""
        taken: list[tuple[Change, asyncio.Future[None]]] = []
        changes: list[Change] = []
        prepared: PreparedChanges | None = None

        def take() -> None:  # on the loop, just before the batch goes to the writer
            nonlocal prepared
            taken.extend(self._pending)
            self._pending = []
            self._flush_scheduled = False
            changes.extend(change for change, _ in taken)
            prepared = self.repo.prepare(changes)

        def settle(written: asyncio.Future[set[int]]) -> None:
            error = written.exception()
            lost = written.result() if error is None else set()
            for change, done in taken:
                if done.done():
                    continue
                if error is not None:
                    done.set_exception(error)
                elif change.seq in lost:
                    done.set_exception(
                        ClaimLostError("another process claimed the execution since")
                    )
                else:
                    done.set_result(None)

        async def apply(conn: SqlConnection) -> set[int]:
            # The changes of executions another process claimed since are left out (their
            # runs stop there); the others are written.
            claims = {(c.seq, c.fence) for c in changes}
            lost = await self.repo.lost_claims(conn, self.owner, sorted(claims))
            batch = prepared
            assert batch is not None, "taken before the batch runs"
            if lost:  # (rare: made again without them, here)
                batch = self.repo.prepare([c for c in changes if c.seq not in lost])
            await self.repo.apply(conn, batch)
            return lost

        job = self.db.submit(apply, before=take)
        job.add_done_callback(settle)

    async def claim(self, execution: Execution) -> None:
        """Claims an execution this process is to run (an ended one run again): its state
        changes from other processes are refused from now on."""
        claimed = await self._claimed(
            lambda conn: self.repo.claim(conn, self.owner, [execution.seq])
        )
        assert claimed, "a claimed execution exists"
        execution.owner, execution.fence = self.owner, claimed[0].fence

    async def claim_orphans(self, limit: int) -> list[Execution]:
        """Claims up to `limit` running or paused executions of replicas that are gone, and
        reads them back as claimed, oldest first."""
        now = self.clock()
        return await self._claimed(
            lambda conn: self.repo.claim_orphans(conn, self.owner, now, limit)
        )

    async def claim_queued(self, limit: int) -> list[Execution]:
        """Claims up to `limit` QUEUED executions no live replica holds, by priority."""
        now = self.clock()
        return await self._claimed(
            lambda conn: self.repo.claim_queued(conn, self.owner, now, limit)
        )

    async def _claimed(
        self, claim: Callable[[SqlConnection], Awaitable[list[int]]]
    ) -> list[Execution]:
        # Read after the claim commits: nobody else can change them any more, so what is
        # read is what this process runs on.
        seqs = await self.db.write(claim)
        rows = await self.db.read(lambda conn: self.repo.with_seqs(conn, seqs))
        return [to_execution(r, s) for r, s in rows]

    async def answered(self, request: RequestInfo) -> bool:
        """True when this request id was answered before (for commands whose answer is
        remembered after their own write); REQUEST_ID_REUSED for a different request."""
        key = f"{request.method}:{request.request_id}"
        remembered = await self.db.read(lambda conn: self.idempotency.get(conn, key))
        if remembered is None:
            return False
        if remembered.fingerprint != request.fingerprint:
            raise invalid_field(
                "request_id", "was already used for a different request", "REQUEST_ID_REUSED"
            )
        return True

    async def remember(self, request: RequestInfo, response: Any) -> None:
        """Remembers the answer to a request id (no-op without one)."""
        if not request.request_id:
            return
        key = f"{request.method}:{request.request_id}"

        async def job(conn: SqlConnection) -> None:
            if await self.idempotency.get(conn, key) is None:
                await self.idempotency.put(conn, key, request.fingerprint, response, self.clock())

        await self.db.write(job)

    async def get(self, execution_id: str) -> Execution | None:
        """Reads an execution with its steps from storage. Ended executions never change,
        so they are also cached in Redis (when there is one) and read from there."""
        if self.cache is not None:
            hit = await self.cache.get("execution", execution_id)
            if hit is not None and hit.doc is not None:
                return to_execution(
                    ExecutionRow(**hit.doc["row"]), [StepRow(**s) for s in hit.doc["steps"]]
                )
        found = await self.db.read(lambda conn: self.repo.get(conn, execution_id))
        if found is None:
            return None
        execution = to_execution(*found)
        if self.cache is not None and execution.state.terminal:
            row, steps = found
            doc = {"row": dataclasses.asdict(row), "steps": [dataclasses.asdict(s) for s in steps]}
            await self.cache.put("execution", execution_id, execution.last_sequence, doc)
        return execution

    async def forget_cached(self, execution: Execution) -> None:
        """An ended execution runs again: drops it from the cache of ended ones."""
        if self.cache is not None:
            await self.cache.put("execution", execution.id, execution.last_sequence, None)

    async def delete(self, execution: Execution) -> bool:
        """Deletes an ended execution with its steps, events and labels; False when it was
        not there (any more)."""
        deleted = await self.db.write(lambda conn: self.repo.delete_ended(conn, execution.id))
        if deleted and self.cache is not None:  # a tombstone newer than any cached copy
            await self.cache.put("execution", execution.id, execution.last_sequence + 1, None)
        return deleted

    async def delete_ended_before(self, before: float, limit: int) -> list[str]:
        """Deletes up to `limit` executions that ended before `before`; returns their ids."""
        deleted = await self.db.write(
            lambda conn: self.repo.delete_ended_before(conn, before, limit)
        )
        if self.cache is not None:
            for execution_id, last_sequence in deleted:
                await self.cache.put("execution", execution_id, last_sequence + 1, None)
        return [execution_id for execution_id, _ in deleted]

    async def list_executions(
        self, *, before: int, limit: int, where: ExecutionFilter
    ) -> list[Execution]:
        """Executions newest first, with seq below `before` (0: from the newest)."""
        rows = await self.db.read(
            lambda conn: self.repo.list_page(conn, before_seq=before, limit=limit, where=where)
        )
        return [to_execution(r, s) for r, s in rows]

    async def attempt_events(
        self, execution: Execution, step_id: str, attempt: int, types: Sequence[str]
    ) -> list[Event]:
        """The events of one step attempt of the given types, in order."""
        rows = await self.db.read(
            lambda conn: self.repo.attempt_events(conn, execution.seq, step_id, attempt, types)
        )
        return [to_event(execution.id, r) for r in rows]

    async def events(
        self, execution: Execution, *, after: int, limit: int, types: Sequence[str] = ()
    ) -> list[Event]:
        """A page of the execution's event log."""
        rows = await self.db.read(
            lambda conn: self.repo.events(
                conn, execution.seq, after_sequence=after, limit=limit, types=types
            )
        )
        return [to_event(execution.id, r) for r in rows]


def _plain(value: Any) -> Any:
    if isinstance(value, Failure):
        return value.to_doc()
    if isinstance(value, ExecutionState):
        return value.value
    return value
