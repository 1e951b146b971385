"""Which slots of a schedule fire: the pure planning function and the calendars, without a
server or real time."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from baton_server.domain.ids import is_resource_id
from baton_server.domain.schedules import (
    CatchUpPolicy,
    Firing,
    OverlapPolicy,
    Schedule,
    ScheduleState,
    execution_id_for,
)
from baton_server.language.calendars import Calendar, CalendarError, check_cron, time_zone
from baton_server.schedules.planning import plan

T0 = 1_800_000_000.0  # a whole second


def every(seconds: float, **fields: object) -> Schedule:
    return Schedule(id="s", workflow_id="w", interval=seconds, create_time=T0, **fields)  # type: ignore[arg-type]


def test_on_time_slots_fire_once_and_the_next_is_the_following_slot() -> None:
    decided = plan(every(10), Firing(cursor=T0), T0 + 10.3, running=False)
    assert decided.fire == [T0 + 10]
    assert decided.cursor == T0 + 10.3 and decided.next_fire == T0 + 20
    again = plan(every(10), Firing(cursor=decided.cursor), T0 + 10.4, running=False)
    assert again.fire == [] and again.skipped == 0  # the slot is not fired twice


@pytest.mark.parametrize(
    ("policy", "fired", "skipped"),
    [
        (CatchUpPolicy.NONE, [T0 + 100], 9),
        (CatchUpPolicy.LAST, [T0 + 90, T0 + 100], 8),
        (CatchUpPolicy.ALL, [T0 + 10 * k for k in range(4, 11)], 3),
    ],
)
def test_missed_slots_follow_the_catch_up_policy(
    policy: CatchUpPolicy, fired: list[float], skipped: int
) -> None:
    schedule = every(
        10, catch_up_policy=policy, catch_up_limit=6, overlap_policy=OverlapPolicy.ALLOW_ALL
    )
    decided = plan(schedule, Firing(cursor=T0), T0 + 100.5, running=False)  # down 100 s
    assert decided.fire == fired  # slot 100 is on time (0.5 s late); 10..90 were missed
    assert decided.skipped == skipped


def test_overlap_skip_buffer_one_and_allow_all() -> None:
    skip = plan(every(10), Firing(cursor=T0), T0 + 10.1, running=True)
    assert skip.fire == [] and skip.skipped == 1

    buffer = every(10, overlap_policy=OverlapPolicy.BUFFER_ONE)
    held = plan(buffer, Firing(cursor=T0), T0 + 10.1, running=True)
    assert held.fire == [] and held.buffered == T0 + 10 and held.next_fire == T0 + 11.1
    later = plan(buffer, Firing(cursor=held.cursor, buffered=held.buffered), T0 + 20.1, True)
    assert later.buffered == T0 + 10 and later.skipped == 1  # one waits; the next is skipped
    ended = plan(buffer, Firing(cursor=later.cursor, buffered=later.buffered), T0 + 21, False)
    assert ended.fire == [T0 + 10] and ended.buffered is None

    both = plan(
        every(10, overlap_policy=OverlapPolicy.ALLOW_ALL), Firing(cursor=T0), T0 + 10.1, True
    )
    assert both.fire == [T0 + 10]


def test_a_paused_schedule_fires_nothing_and_needs_no_attention() -> None:
    decided = plan(every(10, state=ScheduleState.PAUSED), Firing(cursor=T0), T0 + 50, False)
    assert decided.fire == [] and decided.next_fire is None


def test_cron_slots_are_read_in_their_time_zone_across_daylight_saving() -> None:
    paris = ZoneInfo("Europe/Paris")
    calendar = Calendar(cron="30 2 * * *", zone="Europe/Paris")
    before = datetime(2026, 3, 28, 12, 0, tzinfo=paris).timestamp()
    slots, earlier = calendar.between(before, before + 3 * 86400, 10)
    shown = [datetime.fromtimestamp(s, paris).strftime("%m-%d %H:%M") for s in slots]
    # 02:30 does not exist on 29 March (clocks go 02:00 -> 03:00): cronsim runs it at 03:00.
    assert shown == ["03-29 03:00", "03-30 02:30", "03-31 02:30"] and earlier == 0
    with pytest.raises(CalendarError):
        check_cron("61 * * * *")
    with pytest.raises(CalendarError):
        time_zone("Mars/Olympus")


def test_long_gaps_are_bounded_and_execution_ids_are_valid_and_distinct() -> None:
    calendar = Calendar(interval=1.0, origin=T0)
    slots, earlier = calendar.between(T0, T0 + 86400 * 30, 5)  # a month of seconds
    assert slots == [T0 + 86400 * 30 - k for k in (4, 3, 2, 1, 0)]
    assert earlier == 86400 * 30 - 5
    long_id = "a" * 30 + "-" + "b" * 32
    ids = {execution_id_for(s, T0) for s in ("nightly", long_id, long_id[:-1] + "c")}
    assert len(ids) == 3 and all(is_resource_id(i) for i in ids)
