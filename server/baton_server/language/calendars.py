"""When a schedule fires: the slots of a cron expression read in a time zone (parsed by
cronsim), or of a fixed interval counted from an origin. Slots are whole epoch seconds."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

MAX_CRON_CHARS = 200
MAX_TIME_ZONE_CHARS = 64
MIN_INTERVAL = 1.0
MAX_INTERVAL = 366 * 24 * 3600.0


class CalendarError(ValueError):
    """A cron expression or time zone that cannot be used."""


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone `name` ('' is UTC)."""
    if len(name) > MAX_TIME_ZONE_CHARS:
        raise CalendarError(f"is longer than {MAX_TIME_ZONE_CHARS} characters")
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CalendarError(f"{name!r} is not an IANA time zone (such as Europe/Paris)") from exc


def check_cron(expression: str) -> None:
    """Raises CalendarError unless `expression` is a five-field cron expression."""
    if len(expression) > MAX_CRON_CHARS:
        raise CalendarError(f"is longer than {MAX_CRON_CHARS} characters")
    try:
        CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise CalendarError(f"{expression!r} is not a cron expression: {exc}") from exc


@dataclass(frozen=True)
class Calendar:
    """The slots of one schedule: `cron` in `zone`, or every `interval` from `origin`."""

    cron: str = ""
    zone: str = ""
    interval: float = 0.0
    origin: float = 0.0

    def after(self, moment: float) -> float:
        """The first slot strictly after `moment`."""
        return next(self._slots(moment))

    def between(self, start: float, end: float, limit: int) -> tuple[list[float], int]:
        """The last `limit` slots in (start, end], in order, and how many came before them."""
        if self.interval:
            first = self._interval_index(start) + 1
            last = math.floor((end - self.origin) / self.interval)
            count = max(0, last - first + 1)
            kept = range(max(first, last - limit + 1), last + 1)
            return [self.origin + k * self.interval for k in kept], max(0, count - len(kept))
        slots: list[float] = []
        before = 0
        for slot in self._slots(start):
            if slot > end:
                break
            slots.append(slot)
            if len(slots) > limit:
                slots.pop(0)
                before += 1
        return slots, before

    def _interval_index(self, moment: float) -> int:
        return math.floor((moment - self.origin) / self.interval)

    def _slots(self, moment: float) -> Iterator[float]:
        if self.interval:
            k = max(self._interval_index(moment) + 1, 1)
            while True:
                yield self.origin + k * self.interval
                k += 1
        start = datetime.fromtimestamp(moment, time_zone(self.zone))
        for slot in CronSim(self.cron, start):
            yield slot.timestamp()
