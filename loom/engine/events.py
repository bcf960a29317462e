"""The event bus: how the editor, the CLI, trace files and tests watch a run.

Events are plain dicts with a ``type`` (see :data:`EVENT_TYPES`), the run id,
``t`` (seconds since the run started) and type-specific fields; all values are
JSON-serialisable. Publishing appends to a buffer; subscribers receive batches
when the loop next gets control, so the engine never waits on a subscriber, and
a subscriber that raises is detached and reported instead of breaking the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

Event = dict[str, Any]
Subscriber = Callable[[list[Event]], None]

#: The events DESIGN.md lists, then Loom's additions: a node stopped while running, a
#: retry, an event source listening (its port and token), a trigger dropped by the
#: overflow policy, a stop requested (grace period under way), and a failed wave (its
#: full error under the ``error_id`` that an HTTP answer names), a for-each item's result.
EVENT_TYPES = (
    "run_started", "node_queued", "node_started", "node_progress", "node_finished",
    "node_failed", "node_skipped", "branch_taken", "loop_iteration", "branch_completed",
    "event_triggered", "log", "run_finished",
    "node_stopped", "node_retrying", "event_source_ready", "event_dropped", "run_stopping",
    "wave_failed", "item_completed",
)

log = logging.getLogger("loom.events")


class EventBus:
    """Fan-out of engine events to subscribers, batched per loop turn.

    ``subscribe(fn)`` registers ``fn(batch: list[Event])``; it runs on the event
    loop and should be quick (the editor only records and repaints on a timer).
    Events published from worker threads hop to the loop first.
    """

    def __init__(self) -> None:
        self._subscribers: list[tuple[Subscriber, frozenset[str] | None]] = []
        self._buffer: list[Event] = []
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.failures: list[str] = []
        #: True when someone listens; publishers skip building events otherwise
        #: (a plain attribute: it is read several times per node)
        self.active = False

    def subscribe(self, fn: Subscriber, types: Iterable[str] | None = None) -> Callable[[], None]:
        """Deliver batches of events (optionally only these types) to ``fn``.

        Returns a function that unsubscribes.
        """
        entry = (fn, frozenset(types) if types is not None else None)
        self._subscribers.append(entry)
        self.active = True

        def unsubscribe() -> None:
            if entry in self._subscribers:
                self._subscribers.remove(entry)
            self.active = bool(self._subscribers)

        return unsubscribe

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the loop a run executes on (done by the ExecutionManager)."""
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def publish(self, event: Event) -> None:
        """Queue an event for delivery; safe from any thread."""
        if not self._subscribers:
            return
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            # A closed loop means the run is over: late news from a thread is dropped.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self.publish, event)
            return
        self._buffer.append(event)
        if not self._scheduled:
            self._scheduled = True
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon(self.flush)
            else:
                self.flush()

    def flush(self) -> None:
        """Deliver everything buffered now (also called at the end of a run)."""
        self._scheduled = False
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        for entry in list(self._subscribers):
            fn, types = entry
            events = batch if types is None else [e for e in batch if e["type"] in types]
            if not events:
                continue
            try:
                fn(events)
            except Exception as exc:  # a broken subscriber must not break the run
                if entry in self._subscribers:
                    self._subscribers.remove(entry)
                self.active = bool(self._subscribers)
                message = f"event subscriber {fn!r} raised {type(exc).__name__}: {exc}; detached"
                self.failures.append(message)
                log.exception(message)
