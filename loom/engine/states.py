"""Run and node states: explicit enums, never ad-hoc booleans."""

from __future__ import annotations

from enum import StrEnum


class NodeState(StrEnum):
    """Where one node is in a run. Values are what events and JSON carry."""

    PENDING = "pending"  #: waiting for inputs
    QUEUED = "queued"  #: inputs complete, waiting for a concurrency slot
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  #: never ran: path not taken, upstream failed, or run stopped
    STOPPED = "stopped"  #: was running when the run was stopped

    @property
    def finished(self) -> bool:
        """True for the states a node ends a run in."""
        return self in _FINAL


_FINAL = frozenset({NodeState.DONE, NodeState.FAILED, NodeState.SKIPPED, NodeState.STOPPED})


class RunStatus(StrEnum):
    """How a run is doing, or how it ended."""

    IDLE = "idle"
    RUNNING = "running"
    STOPPING = "stopping"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
