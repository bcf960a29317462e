"""The ExecutionManager: validates a graph, runs it, and stops it on request.

It is the one entry point the editor and ``loom run`` share. It runs on
whatever asyncio loop is running (plain asyncio headless, qasync in the editor)
and never imports Qt. Observers follow a run through :attr:`bus` and read node
states from :attr:`records`; nothing else about a run is shared.

Stopping is one path for Ctrl+C, the editor's Stop button and ``request_stop()``,
in phases:

1. event sources stop (no new waves) and nodes see ``ctx.stop_requested``;
2. what is under way (waves, running nodes) may finish for ``stop_grace`` seconds;
3. what remains is cancelled: ``finally`` blocks and clean-up run, within
   :data:`CLEANUP_DEADLINE` (a node that ignores cancellation is reported, not awaited
   forever);
4. the run reports ``stopped``, which nodes were cancelled, and which were still
   running in worker threads (threads cannot be killed; processes are terminated).
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Mapping
from typing import Any

from loom.graph import Graph
from loom.registry import Registry

from .context import RunContext
from .dask_executor import DaskExecutor, ExecutorUnavailableError
from .events import EventBus
from .flow import Flow, RunState
from .invoke import EXECUTOR_FACTORIES, RUN_EXECUTORS, executor_name
from .plan import GraphValidationError, Issue, Plan, compile_plan
from .result import NodeRecord, RunResult
from .scopes import TOP
from .states import NodeState, RunStatus
from .strategies import Strategy

#: Seconds cancelled nodes get to finish their clean-up before the run stops waiting.
CLEANUP_DEADLINE = 2.0

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
    a run gracefully (see the module docstring for the phases).

    ``max_waves`` and ``duration`` end an event graph on their own: its sources stop
    after that many waves in all, or that many seconds, and the run finishes
    normally once the waves under way are done.

    ``timeout`` (seconds; default the graph's ``settings.timeout``) bounds any run: when
    it passes, the run stops as on :meth:`request_stop` (grace period, then cancel;
    ``finally`` blocks and clean-up run) and ends ``failed`` with the reason
    ``"run timeout of S s"`` (:attr:`RunResult.reason`; unfinished nodes carry it too).
    """

    def __init__(self, graph: Graph, registry: Registry, *, bus: EventBus | None = None,
                 max_concurrency: int | None = None, variables: Mapping[str, Any] | None = None,
                 stop_grace: float = 2.0, max_waves: int | None = None,
                 duration: float | None = None,
                 strategies: Mapping[str, Strategy] | None = None,
                 executor: str | None = None, scheduler: str | None = None,
                 timeout: float | None = None) -> None:
        self.graph = graph
        self.registry = registry
        self.bus = bus if bus is not None else EventBus()
        self.max_concurrency = max_concurrency
        self.variables = dict(variables or {})
        #: seconds a stopped run lets work under way finish before cancelling it
        self.stop_grace = stop_grace
        self.max_waves = max_waves
        self.duration = duration
        #: seconds the whole run may take (None: the graph's settings.timeout, if any)
        self.timeout = timeout
        self.status = RunStatus.IDLE
        #: node records of the current or last run, by node id
        self.records: dict[str, NodeRecord] = {}
        self.result: RunResult | None = None
        self._strategies = strategies
        if executor not in (None, *RUN_EXECUTORS):
            raise ValueError(f"unknown executor {executor!r} "
                             f"(choose from: {', '.join(RUN_EXECUTORS)})")
        #: where sync nodes run for this manager's runs (see ``invoke.RUN_EXECUTORS``);
        #: None: each node where its spec says
        self.executor = executor
        #: the Dask scheduler's address for Dask nodes; None: a LocalCluster per run
        self.scheduler = scheduler
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._state: RunState | None = None
        self._flow_task: asyncio.Task[None] | None = None
        self._grace_timer: asyncio.TimerHandle | None = None
        self._gave_up: asyncio.Event | None = None
        self._stop_requested = False
        #: why the current run fails though it was stopped ("run timeout of 5 s"), if so
        self._timed_out: str | None = None
        #: loop time until which a stopped run waits for calls in worker threads
        self._threads_until: float | None = None

    # ------------------------------------------------------------------ API
    def plan(self) -> Plan:
        """Compile the graph as it is now (no side effects)."""
        return compile_plan(self.graph, self.registry, self._strategies)

    def validate(self) -> list[Issue]:
        """Problems that would block or affect a run, errors first."""
        return sorted(self.plan().issues, key=lambda i: i.severity != "error")

    def request_stop(self, grace: float | None = None) -> None:
        """Stop the current run gracefully; safe from any thread and more than once.

        ``grace`` overrides :attr:`stop_grace` for this request; asking again with
        ``grace=0`` cancels at once what the first request was letting finish.
        """
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self.request_stop, grace)
            return
        state = self._state
        if state is None or self.status not in (RunStatus.RUNNING, RunStatus.STOPPING):
            return
        wait = self.stop_grace if grace is None else grace
        if self.status is RunStatus.RUNNING:
            self._stop_requested = True
            self.status = RunStatus.STOPPING
            state.ctx.stop_flag.set()
            state.stopping.set()  # phase 1: sources stop; nodes see stop_requested
            state.ctx.emit("run_stopping", grace=wait)
        elif wait > 0:
            return  # already stopping; only a request to stop at once changes anything
        else:
            # A second request to stop at once: stop waiting for worker threads too.
            self._threads_until = asyncio.get_running_loop().time()
        if self._grace_timer is not None:
            self._grace_timer.cancel()
        if wait <= 0:
            self._cancel_flow()
        else:  # phase 2: what is under way may finish meanwhile
            self._grace_timer = asyncio.get_running_loop().call_later(wait, self._cancel_flow)

    async def run(self, plan: Plan | None = None) -> RunResult:
        """Validate and run the graph; returns when every node has finished or been stopped.

        ``plan`` may be a plan this manager's :meth:`plan` made of the graph as it is
        (the editor compiles it off the UI thread first, and need not compile twice).
        """
        if self.status in (RunStatus.RUNNING, RunStatus.STOPPING):
            raise RuntimeError("this manager is already running a graph")
        if plan is None:
            plan = self.plan()
        elif plan.graph is not self.graph:
            raise ValueError("the plan is of another graph")
        if plan.errors:
            raise GraphValidationError(plan.issues)
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.bus.attach(self._loop)
        ctx = RunContext(self.bus, variables=self.variables)
        records = [NodeRecord() for _ in plan.nodes]
        self.records = dict(zip(plan.index, records, strict=True))
        state = RunState(plan, ctx, records, max_waves=self.max_waves,
                         executors={**EXECUTOR_FACTORIES,
                                    "dask": functools.partial(DaskExecutor, self.scheduler)},
                         executor_override=self.executor)
        self._state = state
        self._stop_requested = False
        self._timed_out = None
        self._threads_until = None
        self._gave_up = asyncio.Event()
        self.status = RunStatus.RUNNING
        ctx.emit("run_started", graph=self.graph.name, nodes=len(records))
        ending = (self._loop.call_later(self.duration, state.ending.set)
                  if self.duration is not None else None)
        limit = self.timeout if self.timeout is not None else self.graph.settings.timeout
        deadline = (self._loop.call_later(limit, self._time_out, state, limit)
                    if limit is not None else None)
        status = RunStatus.STOPPED
        try:
            status = await self._run_flow(state)
        except ExecutorUnavailableError:
            status = RunStatus.FAILED  # raised once the run has cleaned up and finished
            raise
        finally:
            if ending is not None:
                ending.cancel()
            if deadline is not None:
                deadline.cancel()
            status = self._outcome(status)
            if self._grace_timer is not None:
                self._grace_timer.cancel()
                self._grace_timer = None
            self.result = await self._finish(state, status, plan.issues)
        return self.result

    # ------------------------------------------------------------------ internals
    def _outcome(self, status: RunStatus) -> RunStatus:
        """A run stopped by its own timeout did not finish: it failed."""
        return RunStatus.FAILED if self._timed_out and status is RunStatus.STOPPED else status

    def _time_out(self, state: RunState, limit: float) -> None:
        """The run's timeout passed: stop it like a stop request, saying why."""
        if self.status is not RunStatus.RUNNING or self._state is not state:
            return  # already stopping (Ctrl+C, Stop): that stop decides the outcome
        self._timed_out = state.stop_reason = f"run timeout of {limit:g} s"
        self.request_stop()

    async def _start_cluster(self, state: RunState) -> None:
        """Connect to Dask before any node runs when some node will run there, so that
        an unreachable scheduler is one clear error (ExecutorUnavailableError, raised by
        :meth:`run`) rather than a failure of each of those nodes. A stop meanwhile
        cancels the connection like any other work of the run."""
        # Over the distinct node types, not every node: this runs before each run.
        specs = {p.spec for p in state.plan.nodes if p.spec is not None}
        if any(executor_name(spec, self.executor) == "dask" for spec in specs):
            executor = state.executor("dask")
            assert isinstance(executor, DaskExecutor)
            await executor.start()

    async def _start_and_run(self, state: RunState, flow: Flow) -> None:
        await self._start_cluster(state)
        await flow.run()

    def _cancel_flow(self) -> None:
        """Phase 3: cancel what is still running, and stop waiting for it after a deadline."""
        self._grace_timer = None
        loop = asyncio.get_running_loop()
        if self._threads_until is None:
            # Worker threads cannot be cancelled; they get one more grace period for
            # clean-up, bounded by the clean-up deadline, so that a stopped run (and
            # `loom run`'s process) ends within grace + deadline whatever they do.
            self._threads_until = loop.time() + min(self.stop_grace, CLEANUP_DEADLINE)
        task, gave_up = self._flow_task, self._gave_up
        if task is not None and not task.done():
            task.cancel()
            if gave_up is not None:
                loop.call_later(CLEANUP_DEADLINE, gave_up.set)

    async def _run_flow(self, state: RunState) -> RunStatus:
        limit = self.max_concurrency or self.graph.settings.max_concurrency
        top = [i for i, owner in enumerate(state.plan.owner) if owner == TOP]
        flow = Flow(state, top, limit)
        # The flow runs in a task of its own so a stop can cancel it and then stop
        # waiting for clean-up that never ends; an outside cancel of run() cancels it too.
        task = self._flow_task = asyncio.ensure_future(self._start_and_run(state, flow))
        try:
            await self._settle(task)
        except asyncio.CancelledError:
            task.cancel()
            self._cancel_flow()
            await asyncio.shield(self._settle(task))
            raise
        finally:
            self._flow_task = None
        if not task.done():
            state.abandoned_tasks.append(task)  # it ignored cancellation: reported below
            return RunStatus.STOPPED
        if task.cancelled() or self._stop_requested:
            return RunStatus.STOPPED
        # The flow itself never raises (if it did, that is a bug to surface); a cluster
        # that cannot be reached raises ExecutorUnavailableError.
        task.result()
        return RunStatus.FAILED if flow.failures or state.wave_failures else RunStatus.SUCCEEDED

    def _thread_wait(self) -> float:
        """Seconds a stopped run still waits for calls in worker threads."""
        if self._threads_until is None:  # stopped before the grace period ran out
            return self.stop_grace
        return max(0.0, self._threads_until - asyncio.get_running_loop().time())

    async def _settle(self, task: asyncio.Task[None]) -> None:
        """Wait for the flow task, or until the clean-up deadline after a cancel passed."""
        assert self._gave_up is not None
        gave_up = asyncio.ensure_future(self._gave_up.wait())
        try:
            await asyncio.wait({task, gave_up}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gave_up.cancel()
            await asyncio.gather(gave_up, return_exceptions=True)

    async def _finish(self, state: RunState, status: RunStatus, issues: list[Issue]) -> RunResult:
        ctx = state.ctx
        stopped = status is RunStatus.STOPPED
        abandoned = await state.close(self._thread_wait() if stopped else 0.0)
        plan = state.plan
        cancelled = [plan.nodes[i].id for i, rec in enumerate(state.records)
                     if rec.state is NodeState.STOPPED]
        for i, rec in enumerate(state.records):
            if rec.state in _UNFINISHED:
                rec.state = NodeState.SKIPPED
                rec.reason = state.stop_reason if stopped or self._timed_out else \
                    _why_not_run(plan, state, i)
                ctx.emit("node_skipped", node=plan.nodes[i].id, reason=rec.reason)
        duration_ms = (time.perf_counter() - ctx.started) * 1000.0
        self.status = status
        inside = {node.id: plan.nodes[owner].id
                  for node, owner in zip(plan.nodes, plan.owner, strict=True) if owner != TOP}
        result = RunResult(ctx.run_id, status, duration_ms, self.records,
                           [i for i in issues if i.severity != "error"], abandoned, inside,
                           cancelled, self._timed_out)
        ctx.emit("run_finished", status=status.value, duration_ms=round(duration_ms, 3),
                 reason=self._timed_out,
                 failed=[e["node"] for e in result.errors if not e["handled"]],
                 cancelled=cancelled, abandoned=abandoned)
        self.bus.flush()
        self._state = None
        return result
