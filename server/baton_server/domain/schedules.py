"""Schedules: a workflow started at each slot of a calendar (cron in a time zone, or an
interval), with overlap and catch-up policies; and what firing them has done so far."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any


class OverlapPolicy(enum.StrEnum):
    """What happens to a slot while an execution the schedule started has not ended."""

    SKIP = "SKIP"
    BUFFER_ONE = "BUFFER_ONE"
    ALLOW_ALL = "ALLOW_ALL"


class CatchUpPolicy(enum.StrEnum):
    """What fires for missed slots (more than MISSED_AFTER seconds late)."""

    NONE = "NONE"
    LAST = "LAST"
    ALL = "ALL"


class ScheduleState(enum.StrEnum):
    """Whether a schedule fires."""

    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"


MISSED_AFTER = 2.0
"""A slot more than this many seconds late is missed: the catch-up policy decides it."""
CATCH_UP_WINDOW = 24 * 3600.0
"""Slots missed longer ago than this are never caught up."""
DEFAULT_CATCH_UP_LIMIT = 10
SCHEDULE_LABEL = "baton.schedule"


@dataclass
class Schedule:
    """A schedule definition; `cron` or `interval` (seconds) says when it fires."""

    id: str
    workflow_id: str = ""
    display_name: str = ""
    description: str = ""
    workflow_revision: int = 0
    input: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    cron: str = ""
    interval: float | None = None
    time_zone: str = ""
    overlap_policy: OverlapPolicy = OverlapPolicy.SKIP
    catch_up_policy: CatchUpPolicy = CatchUpPolicy.LAST
    catch_up_limit: int = DEFAULT_CATCH_UP_LIMIT
    state: ScheduleState = ScheduleState.ACTIVE
    pause_reason: str = ""
    create_time: float = 0.0
    update_time: float = 0.0
    version: int = 0

    def to_doc(self) -> dict[str, Any]:
        """The JSON document storage keeps."""
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Schedule:
        """Reverses `to_doc`."""
        return cls(
            **{
                **doc,
                "overlap_policy": OverlapPolicy(doc["overlap_policy"]),
                "catch_up_policy": CatchUpPolicy(doc["catch_up_policy"]),
                "state": ScheduleState(doc["state"]),
            }
        )


@dataclass
class Firing:
    """What firing a schedule has done: slots up to `cursor` are decided; `buffered` is a
    slot that waits for the running execution to end (BUFFER_ONE)."""

    cursor: float
    next_fire: float | None = None
    """When the schedule next needs attention; None while paused."""
    last_slot: float = 0.0
    last_execution: str = ""
    buffered: float | None = None
    fired: int = 0
    skipped: int = 0
    last_error: str = ""


def execution_id_for(schedule_id: str, slot: float) -> str:
    """The id of the execution a slot starts: one per (schedule, slot), so a slot that is
    fired twice (a crash, a second process) starts one execution."""
    prefix = schedule_id
    if len(prefix) > 40:
        digest = hashlib.sha256(schedule_id.encode()).hexdigest()[:8]
        prefix = f"{schedule_id[:31].rstrip('-')}-{digest}"
    return f"{prefix}-{int(slot)}"
