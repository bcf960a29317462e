"""``timer``: a trigger every ``interval`` seconds, optionally ``count`` times.

Ticks are scheduled on the loop's monotonic clock at ``start + k * interval``,
never "interval after the last one", so a slow trigger does not make the timer
drift. When the loop falls behind (a blocking node, a paused debugger):

- overdue ticks are never fired back to back (no burst): only the latest tick
  already due may fire, and only if it is less than half an interval late;
- the others are skipped, and the timer waits for the next tick still ahead;
  the payload's ``missed`` counts the ticks skipped since the previous trigger.

So two triggers are never closer together than half an interval, and skipped
ticks do not count towards ``count``.

Payload: ``{"type": "timer", "count": n (1-based), "time": ISO-8601 UTC,
"missed": ticks skipped since the previous trigger}``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any

from ..strategies.base import Setting
from ._common import OneTaskSource, check_values, positive_number, resolve, utc_now
from .base import SourceServices, Trigger

TIMER_SETTINGS: tuple[Setting, ...] = (
    Setting("interval", "float", None, "seconds between triggers (a number above 0)"),
    Setting("count", "int", None, "stop after this many triggers (empty: run until stopped)",
            minimum=1),
    Setting("immediate", "bool", True, "trigger once at start (otherwise the first trigger "
            "comes after one interval)"),
)
_REQUIRED = frozenset({"interval"})
_VALIDATORS = {"interval": positive_number}


def check_timer(metadata: Mapping[str, Any]) -> list[str]:
    """Messages about a timer's settings."""
    return check_values(TIMER_SETTINGS, metadata, _REQUIRED, _VALIDATORS)


class TimerSource(OneTaskSource):
    """Triggers at a fixed rate on the loop's clock, without drift and without bursts."""

    def __init__(self, settings: Mapping[str, Any], trigger: Trigger, node_id: str,
                 services: SourceServices) -> None:
        values = resolve(TIMER_SETTINGS, settings, check_timer(settings))
        self._interval = float(values["interval"])
        self._count: int | None = values["count"]
        self._immediate = bool(values["immediate"])
        self._trigger = trigger
        self._node_id = node_id
        self._init_task_state()

    async def start(self) -> dict[str, Any]:
        """Start ticking; reports the effective settings."""
        if self._task is None and not self._finished.is_set():
            self._start_task(self._tick(asyncio.get_running_loop()),
                             f"loom timer {self._node_id}")
        return {"interval": self._interval, "count": self._count, "immediate": self._immediate}

    async def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        interval = self._interval
        start = loop.time()
        tick = 0 if self._immediate else 1
        fired = missed = 0
        while self._count is None or fired < self._count:
            due = start + tick * interval
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            late = loop.time() - due
            if late >= interval / 2:
                # Behind schedule: never fire the overdue ticks back to back. The
                # latest tick already due fires if it is less than half an interval
                # late; the ones before it (and it, if later than that) are skipped.
                skip = math.floor(late / interval)
                if late - skip * interval >= interval / 2:
                    skip += 1
                tick += skip
                missed += skip
                continue
            fired += 1
            self._trigger({"type": "timer", "count": fired, "time": utc_now(), "missed": missed})
            missed = 0
            tick += 1
