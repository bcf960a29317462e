"""Chrome trace-event export of a run (open the file in Perfetto or chrome://tracing).

A :class:`ChromeTrace` subscribes to the event bus and turns node executions into
complete (``X``) events. Each node execution gets the lowest free lane (a "thread"
row), so nodes that overlap, such as parallel branches, appear side by side.

Two ways to keep the trace:

- :meth:`ChromeTrace.to_file` streams each trace event to a file as it comes, in
  the trace format's bare JSON array form (``[ {...}, {...}``). Memory stays flat
  however long the run (``loom run --trace``: an event source may run for days).
  :meth:`close` ends the array; a file cut short by a crash still loads, as Chrome
  and Perfetto accept an array without its closing ``]``.
- Without a file, events are kept in :attr:`ChromeTrace.events` (tests, short runs)
  and :meth:`write` saves them as the JSON object form.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import IO, Any

from .events import Event, EventBus

_END = {"node_finished": "done", "node_failed": "failed", "node_stopped": "stopped"}
_INSTANT = ("run_started", "run_finished", "branch_taken", "loop_iteration", "branch_completed",
            "event_triggered", "wave_failed", "log")


class ChromeTrace:
    """Turns a run's events into Chrome trace events, kept in memory or streamed."""

    def __init__(self, labels: Mapping[str, str] | None = None,
                 out: IO[str] | None = None) -> None:
        self.labels = dict(labels or {})
        #: the trace events so far (only without ``out``: streamed events are not kept)
        self.events: list[dict[str, Any]] = []
        self._out = out
        self._first = True
        self._open: dict[tuple[str, str], tuple[float, int]] = {}
        self._lanes: list[bool] = []
        if out is not None:
            out.write("[")
            for event in _process_names():
                self._emit(event)

    @classmethod
    def to_file(cls, path: str | os.PathLike[str],
                labels: Mapping[str, str] | None = None) -> ChromeTrace:
        """A trace streamed to ``path`` (created or truncated now; raises OSError)."""
        out = open(path, "w", encoding="utf-8")  # noqa: SIM115 - close() closes it
        try:
            return cls(labels, out)
        except BaseException:
            out.close()
            raise

    def attach(self, bus: EventBus) -> ChromeTrace:
        """Subscribe to a bus; returns self."""
        bus.subscribe(self.handle)
        return self

    def handle(self, batch: list[Event]) -> None:
        """Bus subscriber: turn a batch of engine events into trace events."""
        for event in batch:
            kind = event["type"]
            if kind == "node_started":
                self._open[_key(event)] = (event["t"], self._take_lane())
            elif kind in _END and _key(event) in self._open:
                self._close(event, _END[kind])
            elif kind in _INSTANT:
                self._emit({"name": kind, "ph": "i", "s": "g", "pid": 1, "tid": 0,
                            "ts": _us(event["t"]), "args": _args(event)})
        if self._out is not None:
            # One write per batch reaches the file, so a killed run keeps its trace.
            self._out.flush()

    def close(self) -> None:
        """End the streamed array and close the file. Idempotent."""
        out, self._out = self._out, None
        if out is not None:
            try:
                out.write("\n]\n")
            finally:
                out.close()

    def _emit(self, event: dict[str, Any]) -> None:
        if self._out is None:
            self.events.append(event)
            return
        try:
            text = json.dumps(event)
        except (TypeError, ValueError):
            # Bus events are JSON-safe, but an int over Python's 4,300-digit str limit
            # is not printable: keep the event, say its details could not be written.
            text = json.dumps({**event, "args": {"note": "details not printable"}})
        self._out.write(("\n" if self._first else ",\n") + text)
        self._first = False

    def _take_lane(self) -> int:
        for lane, busy in enumerate(self._lanes):
            if not busy:
                self._lanes[lane] = True
                return lane
        self._lanes.append(True)
        lane = len(self._lanes) - 1
        if self._out is not None:
            # Streamed: name each lane when it first appears (metadata may come anywhere).
            self._emit(_lane_name(lane))
        return lane

    def _close(self, event: Event, state: str) -> None:
        node = event["node"]
        start, lane = self._open.pop(_key(event))
        self._lanes[lane] = False
        # The node's own duration when the event has it (what the editor shows too); a
        # failure's event comes later, after its traceback was formatted.
        ms = event.get("duration_ms")
        end = event["t"] if ms is None else start + ms / 1000.0
        self._emit({
            "name": self.labels.get(node, node), "cat": state, "ph": "X", "pid": 1,
            "tid": lane + 1, "ts": _us(start), "dur": max(_us(end) - _us(start), 1),
            "args": {"node": node, **_args(event)},
        })

    def document(self) -> dict[str, Any]:
        """The whole trace as the JSON object the trace viewers load (kept events only)."""
        names = [_lane_name(lane) for lane in range(len(self._lanes))]
        return {"traceEvents": names + _process_names() + self.events, "displayTimeUnit": "ms"}

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the kept trace as JSON (for a trace made without a file)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.document(), f)


def _lane_name(lane: int) -> dict[str, Any]:
    return {"name": "thread_name", "ph": "M", "pid": 1, "tid": lane + 1,
            "args": {"name": f"lane {lane + 1}"}}


def _process_names() -> list[dict[str, Any]]:
    return [{"name": "thread_name", "ph": "M", "pid": 1, "tid": 0, "args": {"name": "run"}},
            {"name": "process_name", "ph": "M", "pid": 1, "args": {"name": "loom"}}]


def _key(event: Event) -> tuple[str, str]:
    # The same node runs once per loop item or branch: its scope tells the runs apart.
    return event["node"], repr(event.get("scope"))


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _args(event: Event) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in ("type", "run", "t", "node")}
