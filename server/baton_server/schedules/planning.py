"""Which of a schedule's slots fire now: a pure function of the schedule, what firing it has
done, its calendar, the time, and whether the execution it started last still runs.

Slots up to `now` that were not decided yet are due. Those more than MISSED_AFTER seconds
late are missed (no server ran the schedule, or it could not keep up): the catch-up policy
keeps none, the last, or the last `catch_up_limit` of them, from the last CATCH_UP_WINDOW.
Then the overlap policy: while an execution the schedule started runs, a slot is skipped
(SKIP), waits as the one buffered slot (BUFFER_ONE), or fires anyway (ALLOW_ALL).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from baton_server.domain.schedules import (
    CATCH_UP_WINDOW,
    MISSED_AFTER,
    CatchUpPolicy,
    Firing,
    OverlapPolicy,
    Schedule,
    ScheduleState,
)
from baton_server.language.calendars import Calendar

BUFFER_POLL = 1.0
"""How often a buffered slot checks whether the running execution has ended."""
MAX_DUE = 1000
"""At most this many due slots are looked at in one go (more are counted as skipped)."""


@dataclass
class Plan:
    """The slots to fire now, in order, and the schedule's firing state once they have."""

    fire: list[float] = field(default_factory=list)
    skipped: int = 0
    buffered: float | None = None
    cursor: float = 0.0
    next_fire: float | None = None


def calendar_of(schedule: Schedule) -> Calendar:
    """The schedule's calendar; an interval counts from the schedule's creation."""
    if schedule.interval:
        return Calendar(interval=schedule.interval, origin=float(int(schedule.create_time)))
    return Calendar(cron=schedule.cron, zone=schedule.time_zone)


def plan(schedule: Schedule, firing: Firing, now: float, running: bool) -> Plan:
    """What to do for `schedule` at `now` (`running`: its last execution has not ended)."""
    if schedule.state is ScheduleState.PAUSED:
        return Plan(cursor=firing.cursor, next_fire=None)
    calendar = calendar_of(schedule)
    start = max(firing.cursor, now - CATCH_UP_WINDOW)
    due, uncounted = calendar.between(start, now, MAX_DUE)
    late = [s for s in due if s < now - MISSED_AFTER]
    on_time = due[len(late) :]
    kept = _caught_up(schedule, late)
    result = Plan(skipped=uncounted + len(late) - len(kept), buffered=firing.buffered, cursor=now)
    candidates = kept + on_time
    if result.buffered is not None and not running:
        candidates.insert(0, result.buffered)
        result.buffered = None
    for slot in candidates:
        if running and schedule.overlap_policy is OverlapPolicy.SKIP:
            result.skipped += 1
        elif running and schedule.overlap_policy is OverlapPolicy.BUFFER_ONE:
            if result.buffered is None:
                result.buffered = slot
            elif slot != result.buffered:
                result.skipped += 1
        else:
            result.fire.append(slot)
            running = True
    result.next_fire = calendar.after(now)
    if result.buffered is not None:
        result.next_fire = min(result.next_fire, now + BUFFER_POLL)
    return result


def _caught_up(schedule: Schedule, late: list[float]) -> list[float]:
    if not late or schedule.catch_up_policy is CatchUpPolicy.NONE:
        return []
    if schedule.catch_up_policy is CatchUpPolicy.LAST:
        return late[-1:]
    return late[-max(schedule.catch_up_limit, 1) :]
