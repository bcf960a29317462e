"""Event sources: a timer, a cron schedule, a file watcher and an HTTP endpoint.

Each starts a wave through the nodes downstream of it per trigger, with the
trigger's payload on its ``event`` port. Their settings live in the node's
metadata (``interval``; ``cron``, ``timezone``; ``watch_path``, ``patterns``; ``port``,
``path``, …), like every mode's settings. Loading a graph never starts them: only running does.
"""

from __future__ import annotations

from loom import node


@node(category="Events", outputs=[], mode="event", cheap=True,
      metadata={"event_type": "timer", "interval": 1.0})
def timer() -> None:
    """Fire every ``interval`` seconds (``count`` times, if set); ``event`` says which fire."""


@node(category="Events", outputs=[], mode="event", cheap=True,
      metadata={"event_type": "schedule", "cron": "0 * * * *", "timezone": "UTC"})
def schedule() -> None:
    """Fire at the times the cron expression ``cron`` names in ``timezone`` (IANA name)."""


@node(category="Events", outputs=[], mode="event", cheap=True,
      metadata={"event_type": "file_change", "watch_path": ".", "patterns": ["*"],
                "debounce_ms": 200})
def file_change() -> None:
    """Fire when files under ``watch_path`` matching ``patterns`` change (debounced)."""


@node(category="Events", outputs=[], mode="event", cheap=True,
      metadata={"event_type": "http_request", "host": "127.0.0.1", "port": 0, "path": "/",
                "method": "POST"})
def http_request() -> None:
    """Fire per HTTP request (token required by default); the wave's result is the answer."""
