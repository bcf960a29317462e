"""What a run leaves behind: a record per node and the run's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .plan import Issue
from .states import NodeState, RunStatus
from .values import to_jsonable


class NodeRecord:
    """One node's state in the current or last run (kept small: a run may have 100,000)."""

    __slots__ = ("attempts", "duration_ms", "error", "execution_info", "handled", "inputs",
                 "iterations", "outputs", "reason", "started", "state", "stats", "traceback")

    def __init__(self) -> None:
        self.state = NodeState.PENDING
        #: seconds since the run started, when the node started
        self.started: float | None = None
        self.duration_ms: float | None = None
        #: "ExceptionType: message" for a failed node
        self.error: str | None = None
        self.traceback: str | None = None
        #: why a node was skipped or stopped
        self.reason: str | None = None
        self.inputs: dict[str, Any] | None = None
        self.outputs: dict[str, Any] | None = None
        #: how many times the node's call was attempted (retries count)
        self.attempts = 0
        #: loop iterations or parallel branches run, for loop and parallel nodes
        self.iterations = 0
        #: a failure its ``on_error`` policy handled (continue, error_output)
        self.handled = False
        #: counters a strategy keeps (an event node's waves: started, failed, dropped…)
        self.stats: dict[str, Any] | None = None
        #: a loop's or parallel node's numbers (total, completed, failed, duration_ms,
        #: concurrent_peak…) as far as it got, kept when it failed or was stopped too
        self.execution_info: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``nodes`` entry of ``loom run --json``."""
        data: dict[str, Any] = {
            "state": self.state.value,
            "duration_ms": None if self.duration_ms is None else round(self.duration_ms, 3),
            "error": self.error,
        }
        if self.reason is not None:
            data["reason"] = self.reason
        if self.handled:
            data["handled"] = True
        if self.stats:
            data["stats"] = dict(self.stats)
        if self.execution_info is not None:
            data["execution_info"] = to_jsonable(self.execution_info)
        return data


@dataclass
class RunResult:
    """How a run ended: status, a record per node id, and the errors that occurred."""

    run_id: str
    status: RunStatus
    duration_ms: float
    nodes: dict[str, NodeRecord]
    issues: list[Issue] = field(default_factory=list)
    #: nodes still running in worker threads when the run ended (threads cannot be killed)
    abandoned: list[str] = field(default_factory=list)
    #: node id -> the loop or parallel node it runs inside (its records show its last run)
    inside: dict[str, str] = field(default_factory=dict)
    #: nodes that were running when the run was stopped and were cancelled
    cancelled: list[str] = field(default_factory=list)
    #: why a run that did not finish ended as it did ("run timeout of 5 s"); None otherwise
    reason: str | None = None

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        """Output values of every node that produced any, by node id and port."""
        return {nid: rec.outputs for nid, rec in self.nodes.items() if rec.outputs}

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Failed nodes with their message and traceback, in node order.

        ``handled`` is true for failures an ``on_error`` policy dealt with; only the
        others make a run ``failed``.
        """
        return [{"node": nid, "error": rec.error, "traceback": rec.traceback,
                 "handled": rec.handled,
                 **({} if rec.execution_info is None
                    else {"execution_info": dict(rec.execution_info)})}
                for nid, rec in self.nodes.items() if rec.state is NodeState.FAILED]

    def to_json(self) -> dict[str, Any]:
        """The object ``loom run --json`` prints (DESIGN.md, "Command line").

        ``cancelled`` and ``abandoned`` are the lists the terminal summary shows:
        nodes cancelled by a stop, and calls still running in worker threads.
        """
        data = {
            "status": self.status.value,
            "outputs": {nid: {port: to_jsonable(v) for port, v in outs.items()}
                        for nid, outs in self.outputs.items()},
            "nodes": {nid: rec.to_json() for nid, rec in self.nodes.items()},
            "errors": self.errors,
            "cancelled": list(self.cancelled),
            "abandoned": list(self.abandoned),
        }
        if self.reason is not None:
            data["reason"] = self.reason
        return data
