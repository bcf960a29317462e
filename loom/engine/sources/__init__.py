"""Event sources: what starts the waves of an ``event`` node.

:data:`SOURCES` maps a node's ``metadata.event_type`` to the class that builds
its source (``Cls(settings, trigger, node_id, services)``, an
:class:`~.base.EventSource`); :data:`SOURCE_SETTINGS` lists each type's settings
for the inspector and :func:`check_settings` checks them before a run.
:class:`RunServices` is what one run shares between its sources.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..strategies.base import Setting
from .base import EventSource, SourceFactory, SourceServices, Trigger, WaveResult
from .files import FILE_CHANGE_SETTINGS, FileChangeSource, check_file_change
from .http import HTTP_REQUEST_SETTINGS, HttpRequestSource, check_http_request
from .services import RunServices
from .timer import TIMER_SETTINGS, TimerSource, check_timer

SOURCES: dict[str, SourceFactory] = {
    "timer": TimerSource,
    "file_change": FileChangeSource,
    "http_request": HttpRequestSource,
}

#: the settings of each event type, in the order the inspector shows them
SOURCE_SETTINGS: dict[str, tuple[Setting, ...]] = {
    "timer": TIMER_SETTINGS,
    "file_change": FILE_CHANGE_SETTINGS,
    "http_request": HTTP_REQUEST_SETTINGS,
}

_CHECKS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "timer": check_timer,
    "file_change": check_file_change,
    "http_request": check_http_request,
}


def check_settings(event_type: Any, metadata: Mapping[str, Any]) -> list[str]:
    """Messages about an event node's source settings, each naming its key.

    For example ``metadata.interval must be a number above 0, not 'x'``. An
    empty list means the source can be built. Keys that are not source settings
    (``execution_mode``, ``max_concurrent_waves``, …) are not looked at.
    """
    check = _CHECKS.get(event_type) if isinstance(event_type, str) else None
    if check is None:
        return [f"metadata.event_type must be one of {', '.join(SOURCES)}, not {event_type!r}"]
    return check(metadata)


__all__ = [
    "FILE_CHANGE_SETTINGS",
    "HTTP_REQUEST_SETTINGS",
    "SOURCES",
    "SOURCE_SETTINGS",
    "TIMER_SETTINGS",
    "EventSource",
    "FileChangeSource",
    "HttpRequestSource",
    "RunServices",
    "SourceFactory",
    "SourceServices",
    "TimerSource",
    "Trigger",
    "WaveResult",
    "check_settings",
]
