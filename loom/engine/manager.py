"""The ExecutionManager: validates a graph, runs it, and stops it on request.

It is the one entry point the editor and ``loom run`` share. It runs on
whatever asyncio loop is running (plain asyncio headless, qasync in the editor)
and never imports Qt. Observers follow a run through :attr:`bus` and read node
states from :attr:`records`; nothing else about a run is shared.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from typing import Any

from loom.graph import Graph
from loom.registry import Registry

from .context import RunContext
from .events import EventBus
from .flow import Flow, RunState
from .plan import GraphValidationError, Issue, Plan, compile_plan
from .result import NodeRecord, RunResult
from .scopes import TOP
from .states import NodeState, RunStatus
from .strategies import Strategy

_UNFINISHED = frozenset({NodeState.PENDING, NodeState.QUEUED, NodeState.RUNNING})


def _why_not_run(plan: Plan, state: RunState, i: int) -> str:
    """Why a node inside a loop or parallel node never ran: its owner did not run it."""
    owner = plan.owner[i]
    if owner == TOP:
        return "not run"
    record = state.records[owner]
    if record.state is NodeState.SKIPPED and record.reason:
        return record.reason  # the same root reason as its owner
    return f"{plan.nodes[owner].label} {record.state.value} without running it"


class ExecutionManager:
    """Run a graph with the node types of a registry.

    ``await run()`` returns a :class:`RunResult` (or raises
    :class:`GraphValidationError` before anything runs); ``request_stop()`` ends
    a run gracefully: running nodes are cancelled, their ``finally`` blocks run,
    nodes not yet run are skipped, and the result's status is ``stopped``.
    """

    def __init__(self, graph: Graph, registry: Registry, *, bus: EventBus | None = None,
                 max_concurrency: int | None = None, variables: Mapping[str, Any] | None = None,
                 stop_grace: float = 2.0, strategies: Mapping[str, Strategy] | None = None) -> None:
        self.graph = graph
        self.registry = registry
        self.bus = bus if bus is not None else EventBus()
        self.max_concurrency = max_concurrency
        self.variables = dict(variables or {})
        #: seconds a stopped run waits for worker threads before reporting them abandoned
        self.stop_grace = stop_grace
        self.status = RunStatus.IDLE
        #: node records of the current or last run, by node id
        self.records: dict[str, NodeRecord] = {}
        self.result: RunResult | None = None
        self._strategies = strategies
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._ctx: RunContext | None = None
        self._flow_running = False
        self._stop_requested = False

    # ------------------------------------------------------------------ API
    def plan(self) -> Plan:
        """Compile the graph as it is now (no side effects)."""
        return compile_plan(self.graph, self.registry, self._strategies)

    def validate(self) -> list[Issue]:
        """Problems that would block or affect a run, errors first."""
        return sorted(self.plan().issues, key=lambda i: i.severity != "error")

    def request_stop(self) -> None:
        """Stop the current run gracefully. Safe to call from any thread, and more than once."""
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self.request_stop)
            return
        if self.status is not RunStatus.RUNNING:
            return
        self._stop_requested = True
        self.status = RunStatus.STOPPING
        if self._ctx is not None:
            self._ctx.stop_flag.set()
        if self._flow_running and self._task is not None:
            self._task.cancel()

    async def run(self) -> RunResult:
        """Validate and run the graph; returns when every node has finished or been stopped."""
        if self.status in (RunStatus.RUNNING, RunStatus.STOPPING):
            raise RuntimeError("this manager is already running a graph")
        plan = self.plan()
        if plan.errors:
            raise GraphValidationError(plan.issues)
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.bus.attach(self._loop)
        ctx = self._ctx = RunContext(self.bus, variables=self.variables)
        records = [NodeRecord() for _ in plan.nodes]
        self.records = dict(zip(plan.index, records, strict=True))
        state = RunState(plan, ctx, records)
        self._task = asyncio.current_task()
        self._stop_requested = False
        self.status = RunStatus.RUNNING
        ctx.emit("run_started", graph=self.graph.name, nodes=len(records))
        status = RunStatus.STOPPED
        try:
            status = await self._run_flow(state)
        finally:
            self.result = await self._finish(state, status, plan.issues)
        return self.result

    # ------------------------------------------------------------------ internals
    async def _run_flow(self, state: RunState) -> RunStatus:
        limit = self.max_concurrency or self.graph.settings.max_concurrency
        top = [i for i, owner in enumerate(state.plan.owner) if owner == TOP]
        flow = Flow(state, top, limit)
        self._flow_running = True
        try:
            await flow.run()
        except asyncio.CancelledError:
            task = self._task
            if not self._stop_requested or task is None or task.uncancel() > 0:
                raise  # cancelled from outside, not by request_stop: propagate
            return RunStatus.STOPPED
        finally:
            self._flow_running = False
        return RunStatus.FAILED if flow.failures else RunStatus.SUCCEEDED

    async def _finish(self, state: RunState, status: RunStatus, issues: list[Issue]) -> RunResult:
        ctx = state.ctx
        stopped = status is RunStatus.STOPPED
        abandoned = await state.close_executors(self.stop_grace if stopped else 0.0)
        plan = state.plan
        for i, rec in enumerate(state.records):
            if rec.state in _UNFINISHED:
                rec.state = NodeState.SKIPPED
                rec.reason = "run stopped" if stopped else _why_not_run(plan, state, i)
                ctx.emit("node_skipped", node=plan.nodes[i].id, reason=rec.reason)
        duration_ms = (time.perf_counter() - ctx.started) * 1000.0
        self.status = status
        inside = {node.id: plan.nodes[owner].id
                  for node, owner in zip(plan.nodes, plan.owner, strict=True) if owner != TOP}
        result = RunResult(ctx.run_id, status, duration_ms, self.records,
                           [i for i in issues if i.severity != "error"], abandoned, inside)
        ctx.emit("run_finished", status=status.value, duration_ms=round(duration_ms, 3),
                 failed=[e["node"] for e in result.errors if not e["handled"]],
                 abandoned=abandoned)
        self.bus.flush()
        self._task = None
        self._ctx = None
        return result
