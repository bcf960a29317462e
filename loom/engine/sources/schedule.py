"""``schedule``: a trigger at the times a cron expression names, in an IANA time zone.

The expression has five fields (minute hour day-of-month month day-of-week) or six
with seconds first (``*/10 * * * * *``: every ten seconds), parsed by ``cronsim``
(Debian cron's rules, also ``L``, ``W`` and ``#``). Times are wall-clock times in
``timezone`` (``zoneinfo``; ``Europe/Berlin``, default ``UTC``). Across a DST change
a fire time that does not exist (02:30 when clocks jump from 02:00 to 03:00) fires
at the first moment after the gap, and one that happens twice fires once; an hourly
or finer schedule fires on every real hour (:func:`fire_times`).

Fire times are computed one after another from the schedule itself, never from
"now + interval", so waves do not drift. The source sleeps towards the next fire in
naps of at most :data:`MAX_NAP` seconds and re-reads the wall clock after each, so
a clock that jumps (NTP, a suspended laptop) is noticed, and Stop cancels the nap at
once. When the loop falls behind, overdue fire times are not fired back to back:
only the latest one already due fires, and only if it is less than half of the gap
to the fire time after it late; the others count as ``missed``.

Payload: ``{"type": "schedule", "count": n (1-based), "time": the scheduled time,
ISO-8601 with the zone's offset, "timezone": the zone's name, "missed": fire times
skipped since the previous trigger}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from ..strategies.base import Setting, shown
from ._common import OneTaskSource, check_values, resolve
from .base import SourceServices, Trigger

SCHEDULE_SETTINGS: tuple[Setting, ...] = (
    Setting("cron", "str", None, "when to trigger: a cron expression, 5 fields (minute hour "
            "day month weekday) or 6 with seconds first"),
    Setting("timezone", "str", "UTC", "the IANA time zone the expression's times are in "
            "(e.g. Europe/Berlin)"),
    Setting("count", "int", None, "stop after this many triggers (empty: run until stopped)",
            minimum=1),
)
_REQUIRED = frozenset({"cron"})

#: the longest single sleep (seconds) before the wall clock is read again
MAX_NAP = 30.0

#: fire times skipped between two yields to the loop while catching up (~6 µs each)
CATCH_UP_CHUNK = 10_000

#: a wall clock: the current time, timezone-aware
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _seconds(start: datetime, end: datetime) -> float:
    """Real seconds from ``start`` to ``end``. In UTC: Python subtracts two times
    of one zone as wall times, which is an hour off across a DST change."""
    return (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds()


def zone_of(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ValueError naming it if there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # ValueError: a path-like name
        raise ValueError(f"is not a known IANA time zone (e.g. Europe/Berlin, UTC), "
                         f"not {shown(name)}") from exc


def fire_times(expr: str, zone: tzinfo, after: datetime) -> Iterator[datetime]:
    """The fire times of ``expr`` in ``zone`` strictly after ``after``, in order.

    Each is timezone-aware in ``zone``. Raises ValueError for a bad expression;
    the iterator simply ends if the expression never matches again.
    """
    if not isinstance(expr, str):
        raise ValueError(f"must be a cron expression (text), not {shown(expr)}")
    try:
        return CronSim(expr, after.astimezone(zone))
    except CronSimError as exc:
        raise ValueError(f"is not a valid cron expression ({exc}): {shown(expr)}") from exc


def _check_cron(value: Any) -> str | None:
    try:
        times = fire_times(value, UTC, _utc_now())
    except ValueError as exc:
        return str(exc)
    if next(times, None) is None:
        return f"never fires (no match within 50 years): {shown(value)}"
    return None


def _check_zone(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"must be an IANA time zone name (text), not {shown(value)}"
    try:
        zone_of(value)
    except ValueError as exc:
        return str(exc)
    return None


_VALIDATORS = {"cron": _check_cron, "timezone": _check_zone}


def check_schedule(metadata: Mapping[str, Any]) -> list[str]:
    """Messages about a schedule's settings ("metadata.cron is not a valid …")."""
    return check_values(SCHEDULE_SETTINGS, metadata, _REQUIRED, _VALIDATORS)


class ScheduleSource(OneTaskSource):
    """Triggers at a cron expression's times, without drift and without bursts.

    ``clock`` (the wall clock, timezone-aware) is there for tests: the source
    computes its fire times from it and sleeps for the difference.
    """

    def __init__(self, settings: Mapping[str, Any], trigger: Trigger, node_id: str,
                 services: SourceServices, *, clock: Clock = _utc_now) -> None:
        values = resolve(SCHEDULE_SETTINGS, settings, check_schedule(settings))
        self._cron = str(values["cron"])
        self._zone_name = str(values["timezone"])
        self._zone = zone_of(self._zone_name)
        self._count: int | None = values["count"]
        self._clock = clock
        self._trigger = trigger
        self._node_id = node_id
        self._init_task_state()

    async def start(self) -> dict[str, Any]:
        """Start waiting for the first fire time; reports the settings and that time."""
        times = fire_times(self._cron, self._zone, self._clock())
        first = next(times, None)
        if self._task is None and not self._finished.is_set():
            self._start_task(self._run(times, first), f"loom schedule {self._node_id}")
        return {"cron": self._cron, "timezone": self._zone_name, "count": self._count,
                "next": first.isoformat() if first else None}

    async def _run(self, times: Iterator[datetime], due: datetime | None) -> None:
        fired = missed = 0
        while due is not None and (self._count is None or fired < self._count):
            wait = _seconds(self._clock(), due)
            if wait > 0:
                # Naps, not one long sleep: the wall clock may jump meanwhile.
                await asyncio.sleep(min(wait, MAX_NAP))
                continue
            now = self._clock().astimezone(UTC)
            following = next(times, None)
            # Behind schedule: skip to the latest fire time already due.
            walked = 0
            while following is not None and following <= now:
                due, following = following, next(times, None)
                missed += 1
                walked += 1
                if walked % CATCH_UP_CHUNK == 0:
                    # A long catch-up (a per-second schedule after a night asleep:
                    # 86,400 steps) must not hold the loop; the clock moved on meanwhile.
                    await asyncio.sleep(0)
                    now = self._clock().astimezone(UTC)
            gap = _seconds(due, following) if following else None
            if gap is not None and _seconds(due, now) >= gap / 2:
                missed += 1  # too late: it would come too close to the next one
            else:
                fired += 1
                self._trigger({"type": "schedule", "count": fired, "time": due.isoformat(),
                               "timezone": self._zone_name, "missed": missed})
                missed = 0
            due = following
