"""Event sources: what starts the waves of an ``event`` node.

:data:`SOURCES` maps a node's ``metadata.event_type`` to the class that builds
its source (``Cls(settings, trigger, node_id, services)``, an
:class:`~.base.EventSource`); :data:`SOURCE_SETTINGS` lists each type's settings
for the inspector and :func:`check_settings` checks them before a run.
:class:`RunServices` is what one run shares between its sources.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from ..strategies.base import Setting, shown
from .base import EventSource, SourceFactory, SourceServices, Trigger, WaveResult
from .files import FILE_CHANGE_SETTINGS, FileChangeSource, check_file_change
from .files import QUEUE_SIZE as FILE_CHANGE_QUEUE_SIZE
from .files import coalesce as coalesce_file_change
from .files import coalesce_key as file_change_key
from .http import HTTP_REQUEST_SETTINGS, HttpRequestSource, check_http_request
from .schedule import SCHEDULE_SETTINGS, ScheduleSource, check_schedule
from .services import RunServices
from .timer import TIMER_SETTINGS, TimerSource, check_timer

SOURCES: dict[str, SourceFactory] = {
    "timer": TimerSource,
    "file_change": FileChangeSource,
    "http_request": HttpRequestSource,
    "schedule": ScheduleSource,
}

#: the settings of each event type, in the order the inspector shows them
SOURCE_SETTINGS: dict[str, tuple[Setting, ...]] = {
    "timer": TIMER_SETTINGS,
    "file_change": FILE_CHANGE_SETTINGS,
    "http_request": HTTP_REQUEST_SETTINGS,
    "schedule": SCHEDULE_SETTINGS,
}

#: an event type's default ``queue_size`` where it differs from the event node's
QUEUE_SIZES: dict[str, int] = {"file_change": FILE_CHANGE_QUEUE_SIZE}


@dataclass(frozen=True)
class Coalescer:
    """How a source's triggers still waiting for a wave slot merge with later ones."""

    #: what a trigger is about (None: never merged)
    key: Callable[[Mapping[str, Any]], Hashable | None]
    #: merges the later payload into the queued one, in place
    merge: Callable[[dict[str, Any], Mapping[str, Any]], None]


#: event types whose queued triggers merge by key (file changes, by path)
COALESCERS: dict[str, Coalescer] = {
    "file_change": Coalescer(file_change_key, coalesce_file_change),
}

_CHECKS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "timer": check_timer,
    "file_change": check_file_change,
    "http_request": check_http_request,
    "schedule": check_schedule,
}


def check_settings(event_type: Any, metadata: Mapping[str, Any]) -> list[str]:
    """Messages about an event node's source settings, each naming its key.

    For example ``metadata.interval must be a number above 0, not 'x'``. An
    empty list means the source can be built. Keys that are not source settings
    (``execution_mode``, ``max_concurrent_waves``, …) are not looked at.
    """
    check = _CHECKS.get(event_type) if isinstance(event_type, str) else None
    if check is None:
        return [f"metadata.event_type must be one of {', '.join(SOURCES)}, not {shown(event_type)}"]
    return check(metadata)


__all__ = [
    "COALESCERS",
    "FILE_CHANGE_SETTINGS",
    "HTTP_REQUEST_SETTINGS",
    "QUEUE_SIZES",
    "SCHEDULE_SETTINGS",
    "SOURCES",
    "SOURCE_SETTINGS",
    "TIMER_SETTINGS",
    "Coalescer",
    "EventSource",
    "FileChangeSource",
    "HttpRequestSource",
    "RunServices",
    "ScheduleSource",
    "SourceFactory",
    "SourceServices",
    "TimerSource",
    "Trigger",
    "WaveResult",
    "check_settings",
]
