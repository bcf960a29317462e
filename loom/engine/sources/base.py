"""The interface every event source implements, and what it hands the engine.

An event node (``execution_mode: "event"``) owns one source built from its
metadata. The source produces *triggers*; each trigger is handed to the engine
with ``trigger(payload)``, which starts a wave through the nodes downstream of
the event node (or queues or drops it) and returns a future for the wave's
outcome, or ``None`` when the trigger was dropped. Sources that answer someone
(the HTTP trigger) await that future; the others ignore it.

A trigger may also implement :class:`Admission` (the engine's does): a source that
must do work before it can build a payload (read and parse an HTTP body) asks
``refuse_if_full()`` first, so an overloaded run refuses for the price of a header
check and never spends time on triggers it would drop.

Stopping has two steps, so in-flight work can drain: ``stop_accepting()`` makes the
source produce no more triggers while what is under way continues (an HTTP server
closes its listening socket but still answers open requests); ``aclose()``
releases everything. Both are idempotent and bounded in time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class WaveResult:
    """How a wave ended, for the source that started it (the HTTP response)."""

    ok: bool
    #: the wave's result: the response node's value, or the sinks' values
    value: Any = None
    #: a short message when the wave failed ("node 'parse' failed: ValueError: …")
    error: str | None = None
    #: names the failure in the run's log (the ``wave_failed`` event), so an answer
    #: can point at it without showing the message itself
    error_id: str | None = None


#: Hands one trigger's payload to the engine; None means the trigger was dropped.
Trigger = Callable[[dict[str, Any]], "asyncio.Future[WaveResult] | None"]


@runtime_checkable
class Admission(Protocol):
    """A trigger that can say, before any payload exists, that it would drop one now."""

    def refuse_if_full(self) -> str | None:
        """Why a trigger now would be dropped (counted as dropped), or None if it would
        start or be queued. Cheap: called before a request's body is read."""


@runtime_checkable
class WaveWatch(Protocol):
    """A trigger that can pass on the events of one trigger's wave as they happen."""

    def watch(self, future: asyncio.Future[WaveResult],
              fn: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call ``fn`` with each ``branch_completed`` / ``item_completed`` event of the wave
        of ``future`` (none of other waves); returns the function that stops it."""


class SourceServices(Protocol):
    """What the run shares between its sources."""

    def observer(self) -> Any:
        """The run's one watchdog Observer (started on first use, stopped with the run)."""


class EventSource(Protocol):
    """One trigger source of an event node."""

    async def start(self) -> dict[str, Any]:
        """Begin producing triggers; returns what the ``event_source_ready`` event reports
        (for HTTP: host, port, path, method, url, and the token when one is required)."""

    async def wait_done(self) -> None:
        """Return once the source will produce nothing more on its own (a timer that
        reached its count); sources that run until stopped never return."""

    async def stop_accepting(self) -> None:
        """Produce no more triggers; work already started may finish."""

    async def aclose(self) -> None:
        """Release everything the source holds. Idempotent; bounded in time."""


SourceFactory = Callable[[Mapping[str, Any], Trigger, str, SourceServices], EventSource]
