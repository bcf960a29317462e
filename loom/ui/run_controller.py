"""One run at a time on the qasync loop, shown live on the canvas and in the run dock.

The engine can publish tens of thousands of events a second; the window must not
try to show each one. The controller's bus subscriber only appends the batch it is
given to a list. A Qt timer at frame rate (~30 Hz) drains that list: it reduces
the frame's events to the *last* state and badge per node, calls the canvas once
per node whose look changed, and emits :attr:`RunController.events` once with the
whole frame for the dock (which keeps only a bounded log). Canvas work per frame
is therefore bounded by the number of distinct nodes touched in that frame, not by
the number of events, and never exceeds ``max_updates_per_frame`` calls: nodes
beyond that wait for the next frame (still one call each, with their latest look).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from PySide6.QtCore import QObject, QTimer, Signal

from loom.engine import (
    Event,
    ExecutionManager,
    ExecutorUnavailableError,
    GraphValidationError,
    Issue,
    NodeRecord,
    RunResult,
    RunStatus,
)
from loom.engine.plan import Plan
from loom.graph import Graph
from loom.registry import Registry

T = TypeVar("T")
log = logging.getLogger("loom.ui.run")

#: Milliseconds between two canvas/dock updates during a run (~30 frames a second).
FRAME_MS = 33
#: Canvas calls one frame may make at most; the rest carry over to the next frame.
MAX_UPDATES_PER_FRAME = 1000
#: Seconds :meth:`RunController.shutdown` waits for a run to end before giving up.
SHUTDOWN_TIMEOUT = 5.0

# The node states the canvas knows (DEVELOPERS.md, "The Canvas API").
_STATE_OF = {
    "node_queued": "queued", "node_started": "running", "node_finished": "done",
    "node_failed": "failed", "node_skipped": "skipped", "node_stopped": "stopped",
}
_ENDED = frozenset({"done", "failed", "stopped"})


class StateSink(Protocol):
    """What the controller draws on: the Canvas live-state API (or a test fake)."""

    def set_state(self, node_id: str, state: str | None, badge: str | None = None) -> None:
        """Show a node's state and a short badge; None clears it."""

    def set_port_taken(self, node_id: str, port: str) -> None:
        """Mark the output port a conditional or switch took."""

    def clear_states(self) -> None:
        """Remove every live state from the view."""


def format_duration(ms: float | None) -> str:
    """A duration as a badge shows it: "<0.1 ms", "0.4 ms", "12 ms", "1.25 s", "3 min 05 s"."""
    if ms is None:
        return ""
    if ms < 0.05:
        return "<0.1 ms"
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s"


async def _in_thread(func: Callable[[], T]) -> T:
    """Run ``func`` in a thread of its own, ended when it returns.

    Not the loop's default executor: qasync's starts ten QThreads that live on.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def work() -> None:
        try:
            value = func()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            loop.call_soon_threadsafe(_settle, future, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, future, value, None)

    thread = threading.Thread(target=work, name="loom-compile", daemon=True)
    thread.start()
    try:
        return await future
    finally:
        thread.join()


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class RunController(QObject):
    """Runs a graph with an :class:`ExecutionManager` on the running (qasync) loop.

    ``state_sink`` is anything with the Canvas live-state methods (see
    :class:`StateSink`). Signals:

    - ``started(str)``: the run id, once the run has begun;
    - ``events(object)``: a list, the engine events of one frame (at most ~30
      emissions a second); declared ``object`` because a ``list`` signal would make
      PySide convert every event dict (80 ms for 10,000 events);
    - ``finished(object)``: the :class:`RunResult` (also for a run that crashed: it
      is then ``failed`` with the reason in its ``issues``);
    - ``status_changed(str)``: ``idle running stopping succeeded failed stopped``;
    - ``invalid(list)``: the :class:`Issue` list when a graph cannot run.

    After a run, :attr:`records` and :attr:`result` stay available.
    """

    started = Signal(str)
    finished = Signal(object)
    events = Signal(object)
    status_changed = Signal(str)
    invalid = Signal(list)

    def __init__(self, registry: Registry, state_sink: StateSink,
                 parent: QObject | None = None, *, frame_ms: int = FRAME_MS,
                 max_updates_per_frame: int = MAX_UPDATES_PER_FRAME,
                 freeze_gc: bool = True) -> None:
        super().__init__(parent)
        #: hide the objects alive at start from the cyclic collector during a run
        #: (``gc.freeze``/``gc.unfreeze``: process-wide, so off if the app uses them)
        self.freeze_gc = freeze_gc
        self._frozen = False
        #: canvas calls one frame may make; the rest wait for the next frame
        self.max_updates_per_frame = max_updates_per_frame
        self.registry = registry
        self.sink = state_sink
        self._status = "idle"
        self._manager: ExecutionManager | None = None
        self._task: asyncio.Task[None] | None = None
        self._result: RunResult | None = None
        self._issues: list[Issue] = []
        self._graph: Graph | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._stop_asked = False
        self._run_id = ""
        #: batches as the bus delivered them, waiting for the next frame
        self._pending: list[list[Event]] = []
        self._reset_live()
        #: frames that showed something (events or held-back canvas updates), and the
        #: canvas calls made in all (for tests and benches)
        self.frames = 0
        self.sink_calls = 0
        #: largest number of canvas calls made in one frame
        self.max_calls_per_frame = 0
        self._timer = QTimer(self)
        self._timer.setInterval(frame_ms)
        self._timer.timeout.connect(self._drain)

    # ------------------------------------------------------------------ properties
    @property
    def running(self) -> bool:
        """True from :meth:`start` until the run has ended and ``finished`` was emitted."""
        return self._task is not None

    @property
    def status(self) -> str:
        """The last status emitted by ``status_changed``."""
        return self._status

    @property
    def records(self) -> Mapping[str, NodeRecord]:
        """Node id -> record of the current or last run (empty before any run)."""
        return self._manager.records if self._manager is not None else {}

    @property
    def result(self) -> RunResult | None:
        """The last run's result (None before the first run ends)."""
        return self._result

    @property
    def issues(self) -> list[Issue]:
        """What validation found before the last start (warnings included)."""
        return list(self._issues)

    @property
    def run_id(self) -> str:
        """Id of the current or last run ("" before one starts)."""
        return self._run_id

    @property
    def backlog(self) -> int:
        """Nodes whose latest look the canvas has not been given yet (the frame budget
        was spent); the frame timer keeps running after the run until this is 0."""
        return len(self._dirty)

    @property
    def labels(self) -> dict[str, str]:
        """Node id -> display name for the graph of the current or last run."""
        if self._graph is None:
            return {}
        return {nid: node.name or nid for nid, node in self._graph.nodes.items()}

    # ------------------------------------------------------------------ control
    def start(self, graph: Graph, **manager_options: Any) -> bool:
        """Run ``graph`` in the background; False when a run is already under way.

        The graph is compiled (validated) in a worker thread first, so a 10,000-node
        graph does not hold the window up; one with errors then emits ``invalid`` and
        does not run. ``manager_options`` go to :class:`ExecutionManager`
        (``max_concurrency``, ``variables``, ``stop_grace``, ``max_waves``…).
        """
        if self.running:
            log.warning("a run is already under way; start() ignored")
            return False
        manager = ExecutionManager(graph, self.registry, **manager_options)
        self._graph = graph
        self._manager = manager
        self._result = None
        self._run_id = ""
        self._stop_asked = False
        self._pending = []
        self._reset_live()
        self._set_status("running")
        self._task = asyncio.get_running_loop().create_task(self._prepare_and_drive(manager))
        return True

    async def _prepare_and_drive(self, manager: ExecutionManager) -> None:
        plan = await _in_thread(manager.plan)
        self._issues = sorted(plan.issues, key=lambda i: i.severity != "error")
        if plan.errors or self._stop_asked:
            self._task = None
            self._manager = None
            self._set_status("idle")
            if plan.errors:
                self.invalid.emit(list(self._issues))
            return
        # Modes decide the badges; a parallel node's badge needs its number of branches.
        for planned in plan.nodes:
            if planned.mode in ("loop", "parallel", "event"):
                self._modes[planned.id] = planned.mode
                if planned.mode == "parallel":
                    self._branch_total[planned.id] = len(planned.strategy.scopes(planned.node))
        self._unsubscribe = manager.bus.subscribe(self._receive)
        if self.freeze_gc:
            # Everything alive now (the editor, the canvas, the plan) is moved out of
            # the collector's sight until the run ends: a full collection in the middle
            # of a run would otherwise rescan the whole editor heap (~100 ms at 10,000
            # nodes, measured) while the window waits. Refcounting still frees as usual.
            gc.freeze()
            self._frozen = True
        self._call_sink(self.sink.clear_states)
        self._timer.start()
        await self._drive(manager, plan)

    def stop(self, grace: float | None = None) -> None:
        """Stop the run: gracefully the first time (``grace`` seconds, default the
        manager's ``stop_grace``), at once when asked again."""
        manager = self._manager
        if not self.running or manager is None:
            return
        if self._stop_asked:
            grace = 0.0
        self._stop_asked = True
        manager.request_stop(grace)
        if self._status == "running":
            self._set_status("stopping")

    async def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """Stop any run at once and wait for it to end (for window close).

        Bounded: after ``timeout`` seconds the run's task is cancelled and left.
        """
        task = self._task
        if task is None:
            return
        self._stop_asked = True
        self.stop(0.0)
        _, pending = await asyncio.wait({task}, timeout=timeout)
        if pending:
            log.warning("the run did not end within %.1f s of the window closing", timeout)
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)

    # ------------------------------------------------------------------ the run
    async def _drive(self, manager: ExecutionManager, plan: Plan) -> None:
        """The run's task. Never lets an exception reach the event loop."""
        result: RunResult | None = None
        started = time.perf_counter()
        try:
            result = await manager.run(plan)
        except asyncio.CancelledError:
            result = self._crashed(manager, started, RunStatus.STOPPED, None)
            raise
        except ExecutorUnavailableError as exc:  # no Dask cluster: say why, in the result
            result = self._crashed(manager, started, RunStatus.FAILED, str(exc))
        except GraphValidationError as exc:  # the graph changed under us; unlikely
            self.invalid.emit(list(exc.issues))
            result = self._crashed(manager, started, RunStatus.FAILED,
                                   "the graph cannot run: see Problems")
        except Exception as exc:  # the editor outlives any run
            log.exception("the run crashed")
            result = self._crashed(manager, started, RunStatus.FAILED,
                                   f"the run crashed: {type(exc).__name__}: {exc}")
        finally:
            self._end(result or self._crashed(manager, started, RunStatus.FAILED,
                                              "the run was interrupted"))

    def _crashed(self, manager: ExecutionManager, started: float, status: RunStatus,
                 message: str | None) -> RunResult:
        """A result for a run that ended without the manager giving one."""
        issues = [] if message is None else [Issue("error", message)]
        return RunResult(self._run_id, status, (time.perf_counter() - started) * 1000.0,
                         dict(manager.records), issues)

    def _end(self, result: RunResult) -> None:
        # The manager flushed its bus before returning: the pending list is complete.
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._task = None
        if self._frozen:
            gc.unfreeze()  # cyclic garbage from before the run becomes collectable again
            self._frozen = False
        try:
            self._drain()  # stops the timer unless canvas updates are still waiting
        except Exception:  # showing the last frame must not lose the result
            log.exception("could not show the last events of the run")
            self._timer.stop()
        self._result = result
        self._set_status(result.status.value)
        self.finished.emit(result)

    def _set_status(self, status: str) -> None:
        if status != self._status:
            self._status = status
            self.status_changed.emit(status)

    # ------------------------------------------------------------------ frames
    def _reset_live(self) -> None:
        #: last state per node, as the engine reported it
        self._state: dict[str, str] = {}
        self._duration: dict[str, float] = {}
        #: what the canvas shows now: (state, badge) per node
        self._shown: dict[str, tuple[str, str | None]] = {}
        self._ports_shown: dict[str, str] = {}
        #: nodes whose look may have changed since the canvas last heard of them
        self._dirty: dict[str, None] = {}
        self._modes: dict[str, str] = {}
        self._branch_total: dict[str, int] = {}
        self._branches_done: dict[str, int] = {}
        self._waves: dict[str, int] = {}
        self._iterations: dict[str, int] = {}
        self._retries: dict[str, int] = {}

    def _receive(self, batch: list[Event]) -> None:
        # The bus subscriber: runs once per loop turn with many events; it only queues
        # them (the bus hands each subscriber a fresh list, so keeping it is safe).
        self._pending.append(batch)

    def _drain(self) -> None:
        """One frame: reduce the pending events to one canvas update per node."""
        batches, self._pending = self._pending, []
        if batches:
            events = batches[0] if len(batches) == 1 else [e for b in batches for e in b]
            ports, started_run = self._reduce(events)
            if started_run is not None:
                self._run_id = started_run
                self.started.emit(started_run)
        elif not self._dirty:
            if self._task is None:
                self._timer.stop()  # the run is over and the canvas has caught up
            return
        calls = self._apply()
        if batches:
            for node, port in ports.items():
                if self._ports_shown.get(node) != port:
                    self._ports_shown[node] = port
                    calls += 1
                    self._call_sink(self.sink.set_port_taken, node, port)
        self.frames += 1
        self.sink_calls += calls
        self.max_calls_per_frame = max(self.max_calls_per_frame, calls)
        if self._task is None and not self._dirty:
            self._timer.stop()
        elif not self._timer.isActive():
            self._timer.start()  # the run ended with canvas updates still waiting
        if batches:
            self.events.emit(events)

    def _apply(self) -> int:
        """Show the latest look of the nodes touched since the last frame, up to the
        frame's budget of canvas calls; returns the calls made."""
        dirty = list(self._dirty)
        budget = self.max_updates_per_frame
        records, shown, state = self.records, self._shown, self._state
        calls = k = 0
        while k < len(dirty) and calls < budget:
            node = dirty[k]
            k += 1
            now = state.get(node, "running")
            look = (now, self._badge(node, now, records.get(node)))
            if shown.get(node) != look:  # an unchanged look costs the canvas nothing
                shown[node] = look
                calls += 1
                self._call_sink(self.sink.set_state, node, *look)
        self._dirty = dict.fromkeys(dirty[k:])
        return calls

    def _reduce(self, events: list[Event]) -> tuple[dict[str, str], str | None]:
        """Fold a frame's events into the per-node state and mark the nodes touched
        dirty; returns the ports taken and the run id if the run started now."""
        state, duration = self._state, self._duration
        touched = self._dirty  # an ordered set: nodes to show, first touched first
        ports: dict[str, str] = {}
        started_run: str | None = None
        for event in events:
            kind = event["type"]
            new = _STATE_OF.get(kind)
            if new is not None:  # the common case, first
                node = event["node"]
                state[node] = new
                touched[node] = None
                if new == "running":  # a new execution: its counters start again
                    self._retries.pop(node, None)
                    self._branches_done.pop(node, None)
                    self._iterations.pop(node, None)
                elif new in _ENDED and "duration_ms" in event:
                    duration[node] = event["duration_ms"]
                continue
            if kind == "run_started":
                started_run = str(event.get("run", ""))
                continue
            node = event.get("node")
            if node is None:
                continue
            if kind == "loop_iteration":
                self._iterations[node] = self._iterations.get(node, 0) + 1
            elif kind == "branch_completed":
                self._branches_done[node] = self._branches_done.get(node, 0) + 1
            elif kind == "event_triggered":
                self._waves[node] = int(event.get("wave") or self._waves.get(node, 0) + 1)
            elif kind == "node_retrying":
                self._retries[node] = int(event.get("attempt", 2)) - 1
            elif kind == "branch_taken":
                ports[node] = event["port"]
                continue
            else:
                continue
            touched[node] = None
        return ports, started_run

    def _badge(self, node: str, state: str, record: NodeRecord | None) -> str | None:
        """The short text beside a node: duration, iterations, waves, branches, retries."""
        ended = state in _ENDED
        text = format_duration(self._duration.get(node)) if ended else ""
        mode = self._modes.get(node)
        extra = ""
        if mode == "loop":
            # The record counts this node's current run only (a loop inside a loop).
            count = record.iterations if record is not None else self._iterations.get(node, 0)
            extra = f"×{count}" if count or ended else ""
        elif mode == "parallel":
            done = self._branches_done.get(node, 0)
            if done or state == "running":
                extra = f"{done}/{self._branch_total.get(node, '?')}"
        elif mode == "event":
            waves = self._waves.get(node, 0)
            extra = f"{waves} wave" if waves == 1 else f"{waves} waves"
        retries = self._retries.get(node)
        if retries:
            extra = (f"{extra} · " if extra else "") + (
                f"retry {retries}" if not ended else
                f"{retries} retr{'y' if retries == 1 else 'ies'}")
        if state in ("queued", "skipped"):
            return None
        parts = [p for p in (extra, text) if p]
        return " · ".join(parts) or None

    def _call_sink(self, method: Callable[..., Any], *args: Any) -> None:
        # A canvas edited during a run (a node deleted) must not break the run's display.
        try:
            method(*args)
        except Exception:  # a view problem is logged, never raised into Qt
            log.exception("the canvas refused %s%r", getattr(method, "__name__", method), args)
