"""Chrome trace-event export of a run (open the file in Perfetto or chrome://tracing).

A :class:`ChromeTrace` subscribes to the event bus and turns node executions into
complete (``X``) events. Each node execution gets the lowest free lane (a "thread"
row), so nodes that overlap, such as parallel branches, appear side by side.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from .events import Event, EventBus

_END = {"node_finished": "done", "node_failed": "failed", "node_stopped": "stopped"}
_INSTANT = ("run_started", "run_finished", "branch_taken", "loop_iteration", "branch_completed",
            "event_triggered", "wave_failed", "log")


class ChromeTrace:
    """Collects a run's events as Chrome trace events."""

    def __init__(self, labels: Mapping[str, str] | None = None) -> None:
        self.labels = dict(labels or {})
        self.events: list[dict[str, Any]] = []
        self._open: dict[tuple[str, str], tuple[float, int]] = {}
        self._lanes: list[bool] = []

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
                self.events.append({"name": kind, "ph": "i", "s": "g", "pid": 1, "tid": 0,
                                    "ts": _us(event["t"]), "args": _args(event)})

    def _take_lane(self) -> int:
        for lane, busy in enumerate(self._lanes):
            if not busy:
                self._lanes[lane] = True
                return lane
        self._lanes.append(True)
        return len(self._lanes) - 1

    def _close(self, event: Event, state: str) -> None:
        node = event["node"]
        start, lane = self._open.pop(_key(event))
        self._lanes[lane] = False
        self.events.append({
            "name": self.labels.get(node, node), "cat": state, "ph": "X", "pid": 1,
            "tid": lane + 1, "ts": _us(start), "dur": max(_us(event["t"]) - _us(start), 1),
            "args": {"node": node, **_args(event)},
        })

    def document(self) -> dict[str, Any]:
        """The whole trace as the JSON object the trace viewers load."""
        names = [{"name": "thread_name", "ph": "M", "pid": 1, "tid": lane + 1,
                  "args": {"name": f"lane {lane + 1}"}} for lane in range(len(self._lanes))]
        names.append({"name": "thread_name", "ph": "M", "pid": 1, "tid": 0,
                      "args": {"name": "run"}})
        names.append({"name": "process_name", "ph": "M", "pid": 1, "args": {"name": "loom"}})
        return {"traceEvents": names + self.events, "displayTimeUnit": "ms"}

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the trace as JSON."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.document(), f)


def _key(event: Event) -> tuple[str, str]:
    # The same node runs once per loop item or branch: its scope tells the runs apart.
    return event["node"], repr(event.get("scope"))


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _args(event: Event) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in ("type", "run", "t", "node")}
