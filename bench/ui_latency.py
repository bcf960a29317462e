"""How responsive the editor's event loop stays while graphs run, and what qasync costs.

A probe QTimer asks to fire every 5 ms (``Qt.PreciseTimer``); each tick records how
late it came (the gap since the previous tick minus 5 ms). Whatever blocks the Qt
loop (engine work between yields, the run view's frame updates) shows up as
lateness. Scenarios, each on the same qasync loop the editor uses:

- idle: nothing running (the floor on this machine);
- chain: a 10,000-node chain of cheap ``math.add`` nodes (they run inline on the
  loop), with a RunController feeding a counting sink (what the canvas would get)
  and a RunDock (log, timeline) shown offscreen;
- thread: one sync node (worker thread) that sleeps 5 s, with the same view.

Target: p99 lateness <= 50 ms in every scenario.

Then engine overhead: the same 10,000-node chain run by ``ExecutionManager.run()``
on plain asyncio and on qasync, alternated in the same process, without and with a
bus subscriber; medians and minima, and the qasync/asyncio ratio.

Usage: python bench/ui_latency.py [--repeat N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from loom import node
from loom.engine import EventBus, ExecutionManager
from loom.graph import Graph, Node
from loom.registry import Registry
from loom.ui import qasync_support
from loom.ui.run_controller import RunController
from loom.ui.run_dock import RunDock

PROBE_MS = 5
TARGET_P99_MS = 50.0


@node(id="bench.sleep5")
def sleep5(x: Any = None, seconds: float = 5.0) -> Any:
    """A sync (not cheap) node: runs in a worker thread and blocks it."""
    time.sleep(seconds)
    return x


REGISTRY = Registry.standard(entry_points=False)
REGISTRY.add_function(sleep5, origin="bench")


def chain(n: int) -> Graph:
    g = Graph(name=f"chain {n}")
    g.add_node(Node("n0", "values.number", properties={"value": 0.0}))
    for i in range(1, n):
        g.add_node(Node(f"n{i}", "math.add", properties={"b": 1.0}))
        g.connect(f"n{i - 1}", "out", f"n{i}", "a")
    return g


def sleeper(seconds: float) -> Graph:
    g = Graph(name="sleep")
    g.add_node(Node("s", "bench.sleep5", properties={"seconds": seconds}))
    return g


class CountingSink:
    """Stands in for the canvas: counts the live-state calls it would get."""

    def __init__(self) -> None:
        self.calls = 0

    def set_state(self, node_id: str, state: str | None, badge: str | None = None) -> None:
        self.calls += 1

    def set_port_taken(self, node_id: str, port: str) -> None:
        self.calls += 1

    def clear_states(self) -> None:
        self.calls += 1


class Probe:
    """A 5 ms Qt timer recording how late each tick is."""

    def __init__(self) -> None:
        self.late_ms: list[float] = []
        #: lateness of the ticks whose wait overlapped an ``excluded`` window
        self.excluded_ms: list[float] = []
        self._windows: list[tuple[float, float]] = []
        self._last = 0.0
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(PROBE_MS)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        late = max((now - self._last) * 1000.0 - PROBE_MS, 0.0)
        self.late_ms.append(late)
        if any(begin < now and end > self._last for begin, end in self._windows):
            self.excluded_ms.append(late)
        self._last = now

    def exclude(self, begin: float, end: float) -> None:
        """Mark a stretch (e.g. a blocking ``start()``) to leave out of ``summary(False)``."""
        self._windows.append((begin, end))

    def __enter__(self) -> Probe:
        self._last = time.perf_counter()
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.stop()

    def summary(self, everything: bool = True) -> dict[str, float]:
        data = list(self.late_ms)
        if not everything:
            for late in self.excluded_ms:
                data.remove(late)
        data = sorted(data) or [0.0]

        def pct(p: float) -> float:
            return data[min(int(p / 100 * len(data)), len(data) - 1)]

        return {"ticks": len(data), "p50": pct(50), "p99": pct(99), "max": data[-1]}


async def idle(seconds: float) -> dict[str, Any]:
    with Probe() as probe:
        await asyncio.sleep(seconds)
    return {**probe.summary(), "note": f"{seconds:g} s idle"}


async def with_view(make: Callable[[], Graph], dock: RunDock, runs: int) -> dict[str, Any]:
    """Run a graph ``runs`` times through a RunController with the dock attached (as
    the editor does), probing the loop all along; notes are per run (means)."""
    sink = CountingSink()
    controller = RunController(REGISTRY, sink)
    dock.attach(controller)
    events = [0]
    controller.events.connect(lambda batch: events.__setitem__(0, events[0] + len(batch)))
    took: list[float] = []
    blocked: list[float] = []  # how long start() held the loop (validation: compile_plan)
    statuses: set[str] = set()
    graphs = [make() for _ in range(runs)]  # the window has its graph ready: not probed
    with Probe() as probe:
        for graph in graphs:
            dock.clear()
            done = asyncio.Event()
            controller.finished.connect(done.set)
            started = time.perf_counter()
            assert controller.start(graph)
            blocked.append(time.perf_counter() - started)
            probe.exclude(started, time.perf_counter())
            await done.wait()
            took.append(time.perf_counter() - started)
            controller.finished.disconnect(done.set)
            while controller.backlog:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # the last frame's repaint
            assert controller.result is not None
            statuses.add(controller.result.status.value)
    controller.deleteLater()
    return {**probe.summary(), "after_start": probe.summary(everything=False),
            "note": f"{'/'.join(sorted(statuses))}, {statistics.mean(took):.2f} s a run, "
                    f"start() blocks {statistics.mean(blocked) * 1000:.0f} ms; "
                    f"a run: {events[0] // runs} events, {controller.frames // runs} frames, "
                    f"{sink.calls // runs} canvas calls (max {controller.max_calls_per_frame}"
                    f"/frame), {len(dock.timeline.bars())} bars"}


# ------------------------------------------------------------------ engine overhead

async def _run_once(graph: Graph, subscribed: bool) -> float:
    bus = EventBus()
    if subscribed:
        bus.subscribe(lambda batch: None)
    manager = ExecutionManager(graph, REGISTRY, bus=bus)
    started = time.perf_counter()
    result = await manager.run()
    took = time.perf_counter() - started
    assert result.status.value == "succeeded", result.errors
    return took


def overhead(loop: Any, graph: Graph, repeat: int) -> list[dict[str, Any]]:
    rows = []
    for subscribed in (False, True):
        plain: list[float] = []
        qt: list[float] = []
        for _ in range(repeat):  # alternate, so drift on a shared machine hits both
            plain.append(asyncio.run(_run_once(graph, subscribed)))
            asyncio.set_event_loop(loop)
            qt.append(loop.run_until_complete(_run_once(graph, subscribed)))
        rows.append({"subscriber": subscribed, "asyncio": plain, "qasync": qt})
    return rows


def _ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:8.1f} {min(samples) * 1000:8.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="engine overhead repeats")
    parser.add_argument("--runs", type=int, default=5, help="chain runs under the probe")
    parser.add_argument("--quick", action="store_true", help="smaller and shorter")
    args = parser.parse_args()
    n = 2000 if args.quick else 10_000
    sleep_s = 1.0 if args.quick else 5.0
    app = QApplication.instance() or QApplication(["ui-latency"])
    app.setQuitOnLastWindowClosed(False)
    loop = qasync_support.new_loop(app)
    asyncio.set_event_loop(loop)
    dock = RunDock()
    dock.resize(1000, 400)
    dock.show()
    dock.tabs.setCurrentWidget(dock.timeline)  # the busiest tab to keep painting

    scenarios: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]] = [
        ("idle", lambda: idle(2.0 if not args.quick else 1.0)),
        (f"chain {n} + view, {args.runs} runs",
         lambda: with_view(lambda: chain(n), dock, args.runs)),
        (f"thread node sleeps {sleep_s:g} s + view",
         lambda: with_view(lambda: sleeper(sleep_s), dock, 1)),
    ]
    print(f"Python {platform.python_version()}, PySide6 {pyside_version}, "
          f"{platform.machine()} x{os.cpu_count()}, QT_QPA_PLATFORM="
          f"{os.environ['QT_QPA_PLATFORM']}")
    print(f"\nUI loop latency: a {PROBE_MS} ms probe timer, lateness in ms "
          f"(target p99 <= {TARGET_P99_MS:g})")
    print(f"{'scenario':34} {'ticks':>6} {'p50':>7} {'p99':>7} {'max':>7}  ok  notes")
    worst = 0.0
    for name, make in scenarios:
        row = loop.run_until_complete(make())
        worst = max(worst, row["p99"])
        ok = "yes" if row["p99"] <= TARGET_P99_MS else "NO"
        print(f"{name:34} {row['ticks']:6d} {row['p50']:7.2f} {row['p99']:7.2f} "
              f"{row['max']:7.2f}  {ok:3} {row['note']}")
        if "after_start" in row:  # the same, leaving out the ticks start() delayed
            sub = row["after_start"]
            sub_ok = "yes" if sub["p99"] <= TARGET_P99_MS else "NO"
            print(f"{'  ... once start() has returned':34} {sub['ticks']:6d} {sub['p50']:7.2f} "
                  f"{sub['p99']:7.2f} {sub['max']:7.2f}  {sub_ok:3} (the run itself)")

    graph = chain(n)
    print(f"\nEngine: ExecutionManager.run() of the {n}-node chain, ms (median, min of "
          f"{args.repeat}), same process")
    print(f"{'bus subscriber':16} {'asyncio':>17} {'qasync':>17} {'ratio (median)':>15}")
    for row in overhead(loop, graph, args.repeat):
        ratio = statistics.median(row["qasync"]) / statistics.median(row["asyncio"])
        print(f"{'yes' if row['subscriber'] else 'no':16} {_ms(row['asyncio'])} "
              f"{_ms(row['qasync'])} {ratio:15.2f}")
    dock.close()
    loop.close()
    return 0 if worst <= TARGET_P99_MS else 1


if __name__ == "__main__":
    sys.exit(main())
