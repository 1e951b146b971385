"""The schedule service: schedules as definitions with their firing state, and the loop that
fires their slots in the replica that leads (the live one with the smallest id).

Each slot starts its execution under an id made from the schedule and the slot, so a slot
fired twice (after a crash between starting the execution and recording the firing, or by
two replicas while the replicas change) starts one execution. The firing state
lives in its own table, written after the executions start: a crash in between only means
the slot is decided again, and finds its execution there.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from baton_server.definitions.service import Definitions
from baton_server.domain.paging import Page
from baton_server.domain.schedules import (
    SCHEDULE_LABEL,
    Firing,
    Schedule,
    ScheduleState,
    execution_id_for,
)
from baton_server.errors import BatonError, Code, invalid_field, raise_if_invalid
from baton_server.executions.service import Executions, StartOptions
from baton_server.idempotency import RequestInfo
from baton_server.language.plan import build_plan
from baton_server.language.validation import validate_schedule
from baton_server.schedules.planning import Plan, calendar_of, plan
from baton_server.storage.database import Database, SqlConnection
from baton_server.storage.schedules import FiringRepository

log = logging.getLogger(__name__)

NEXT_RUN_TIMES = 5
IDLE_WAIT = 1.0
"""The longest the loop sleeps: schedules written by other processes are seen this soon."""
DUE_BATCH = 100


@dataclass
class ScheduleView:
    """A schedule with what firing it has done and its next slots, as the API shows it."""

    schedule: Schedule
    firing: Firing
    next_run_times: list[float]


class Schedules:
    """Schedule CRUD (through the definition store) and the firing loop."""

    def __init__(
        self,
        db: Database,
        definitions: Definitions,
        firings: FiringRepository,
        executions: Executions,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.definitions = definitions
        self.firings = firings
        self.executions = executions
        self.clock = clock
        self._wake = asyncio.Event()

    # Definitions ----------------------------------------------------------------------

    async def create(self, schedule: Schedule, request: RequestInfo) -> ScheduleView:
        """Stores a new schedule; its first slot is the first after now."""
        raise_if_invalid(validate_schedule(schedule))  # its fields first, then its input
        await self._check_input(schedule)

        async def first_firing(conn: SqlConnection, seq: int, created: Schedule) -> None:
            now = created.create_time
            firing = Firing(cursor=now, next_fire=calendar_of(created).after(now))
            await self._save(conn, created.id, firing)

        created = await self.definitions.create_schedule(schedule, request, first_firing)
        self._wake.set()
        return await self._view(created)

    async def get(self, schedule_id: str) -> ScheduleView:
        """A schedule with its firing; SCHEDULE_NOT_FOUND when there is none."""
        return await self._view(await self.definitions.get_schedule(schedule_id))

    async def list(
        self, *, after: int, limit: int, workflow_id: str, state: ScheduleState | None
    ) -> Page[ScheduleView]:
        """Lists schedules with their firings."""
        page = await self.definitions.list_schedules(
            after=after, limit=limit, workflow_id=workflow_id, state=state
        )
        ids = [s.id for s in page.items]
        firings = await self.db.read(lambda conn: self.firings.get_many(conn, ids))
        views = [self._viewed(s, _firing(firings.get(s.id))) for s in page.items]
        return Page(views, page.cursors, page.more)

    async def update(
        self, patch: Schedule, fields: set[str], etag: str, request: RequestInfo
    ) -> ScheduleView:
        """Replaces `fields` of the schedule; slots already decided stay decided."""

        def mutate(current: Schedule) -> Schedule:
            return dataclasses.replace(current, **{f: getattr(patch, f) for f in fields})

        if fields & {"input", "workflow_id", "workflow_revision"}:
            merged = mutate(await self.definitions.get_schedule(patch.id))
            raise_if_invalid(validate_schedule(merged))
            await self._check_input(merged)

        updated = await self.definitions.update_schedule(
            patch.id, mutate, etag, request, self._refire
        )
        self._wake.set()
        return await self._view(updated)

    async def delete(self, schedule_id: str, etag: str, request: RequestInfo) -> None:
        """Deletes a schedule; the executions it started stay."""
        await self.definitions.delete_schedule(schedule_id, etag, request)

    async def pause(self, schedule_id: str, reason: str, request: RequestInfo) -> ScheduleView:
        """Stops a schedule firing; the slots that pass meanwhile are not caught up."""

        def mutate(current: Schedule) -> Schedule:
            return dataclasses.replace(current, state=ScheduleState.PAUSED, pause_reason=reason)

        paused = await self.definitions.update_schedule(
            schedule_id, mutate, "", request, self._refire
        )
        return await self._view(paused)

    async def unpause(self, schedule_id: str, request: RequestInfo) -> ScheduleView:
        """Lets a paused schedule fire again, from its next slot."""

        def mutate(current: Schedule) -> Schedule:
            return dataclasses.replace(current, state=ScheduleState.ACTIVE, pause_reason="")

        unpaused = await self.definitions.update_schedule(
            schedule_id, mutate, "", request, self._refire
        )
        self._wake.set()
        return await self._view(unpaused)

    async def _refire(self, conn: SqlConnection, seq: int, schedule: Schedule) -> None:
        """After a change: when the schedule next fires (from now, for a paused one)."""
        found = await self.firings.get_many(conn, [schedule.id])
        now = self.clock()
        firing = Firing(**found[schedule.id]) if schedule.id in found else Firing(cursor=now)
        if schedule.state is ScheduleState.PAUSED:
            firing = dataclasses.replace(firing, next_fire=None, buffered=None)
        else:
            cursor = max(firing.cursor, now) if firing.next_fire is None else firing.cursor
            firing = dataclasses.replace(
                firing, cursor=cursor, next_fire=calendar_of(schedule).after(max(cursor, now))
            )
            if firing.buffered is not None:
                firing.next_fire = now
        await self._save(conn, schedule.id, firing)

    async def _save(
        self, conn: SqlConnection, schedule_id: str, firing: Firing, version: int = 0
    ) -> bool:
        doc = dataclasses.asdict(firing)
        return await self.firings.save(conn, schedule_id, firing.next_fire, doc, version)

    async def _check_input(self, schedule: Schedule) -> None:
        """The input must fit the workflow's input schema, as StartExecution would check."""
        try:
            workflow = await self.definitions.get_workflow(
                schedule.workflow_id, schedule.workflow_revision
            )
        except BatonError as exc:
            if exc.code is Code.NOT_FOUND:
                raise invalid_field("schedule.workflow", exc.message, "UNKNOWN_WORKFLOW") from None
            raise
        checked = build_plan(workflow)
        if checked.input_schema:
            problems = await asyncio.to_thread(checked.check_input, schedule.input)
            if problems:
                raise invalid_field(
                    "schedule.input",
                    "does not match the workflow's input_schema: " + "; ".join(problems[:5]),
                    "INPUT_SCHEMA_MISMATCH",
                )

    async def _view(self, schedule: Schedule) -> ScheduleView:
        found = await self.db.read(lambda conn: self.firings.get_many(conn, [schedule.id]))
        return self._viewed(schedule, _firing(found.get(schedule.id)))

    def _viewed(self, schedule: Schedule, firing: Firing | None) -> ScheduleView:
        firing = firing or Firing(cursor=schedule.create_time)
        upcoming: list[float] = []
        if schedule.state is ScheduleState.ACTIVE:
            calendar = calendar_of(schedule)
            moment = max(firing.cursor, self.clock())
            for _ in range(NEXT_RUN_TIMES):
                moment = calendar.after(moment)
                upcoming.append(moment)
        return ScheduleView(schedule, firing, upcoming)

    # Firing ---------------------------------------------------------------------------

    async def run(self) -> None:
        """The firing loop, until cancelled: it fires only while this process leads the
        replicas (a slot's execution id is the same wherever it fires, so a slot two fired
        at once starts once), and sleeps until the soonest schedule is due (at most
        IDLE_WAIT)."""
        while True:
            wait = IDLE_WAIT
            try:
                if self.executions.membership.leads and not self.executions.scheduler.stopping:
                    await self.fire_due()
                    soonest = await self.db.read(self.firings.next_fire)
                    if soonest is not None:
                        wait = min(max(soonest - self.clock(), 0.0), IDLE_WAIT)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bad moment (storage away): try again on the next turn
                log.exception("firing schedules failed; trying again")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def fire_due(self) -> None:
        """Fires the slots of every schedule that is due now."""
        now = self.clock()
        due = await self.db.read(lambda conn: self.firings.due(conn, now, DUE_BATCH))
        for doc, firing in due:
            await self._fire(Schedule.from_doc(doc), Firing(**firing), now)

    async def _fire(self, schedule: Schedule, firing: Firing, now: float) -> None:
        running = False
        if firing.last_execution:
            with contextlib.suppress(BatonError):
                last = await self.executions.get(firing.last_execution)
                running = not last.state.terminal
        decided = plan(schedule, firing, now, running)
        firing = self._carry_out(firing, decided)
        for slot in decided.fire:
            execution_id = execution_id_for(schedule.id, slot)
            try:
                await self.executions.start(
                    schedule.workflow_id,
                    schedule.workflow_revision,
                    schedule.input,
                    StartOptions(
                        labels={**schedule.labels, SCHEDULE_LABEL: schedule.id},
                        execution_id=execution_id,
                    ),
                    RequestInfo("StartExecution"),
                )
            except BatonError as exc:
                if exc.code is Code.UNAVAILABLE:  # shutting down: decided again at restart
                    return
                if exc.reason != "EXECUTION_ALREADY_EXISTS":  # else: it fired before
                    log.warning("schedule %s could not start slot %s: %s", schedule.id, slot, exc)
                    firing.skipped += 1
                    firing.last_error = exc.message[:1000]
                    continue
            firing.fired += 1
            firing.last_slot = slot
            firing.last_execution = execution_id
        # Unless the schedule changed meanwhile (paused, updated): then it is decided again.
        await self.db.write(lambda conn: self._save(conn, schedule.id, firing, schedule.version))

    @staticmethod
    def _carry_out(firing: Firing, decided: Plan) -> Firing:
        return dataclasses.replace(
            firing,
            cursor=decided.cursor,
            next_fire=decided.next_fire,
            buffered=decided.buffered,
            skipped=firing.skipped + decided.skipped,
        )


def _firing(doc: dict[str, Any] | None) -> Firing | None:
    return Firing(**doc) if doc is not None else None
