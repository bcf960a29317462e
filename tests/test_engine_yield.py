"""Issue 9 finding 1: loops of cheap nodes give the loop a turn and hear a stop.

Every flow, however nested, yields to the event loop every few milliseconds of
loop time; loops check for a stop before each item or iteration; an unlimited
while loop of cheap nodes runs in constant memory. Bounds are generous ("returns
at all", "another task got a turn within 0.25 s"): no speed is asserted.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from typing import Any

from helpers import graph_of, registry_of, states

from loom import node
from loom.engine import EventBus, ExecutionManager, RunStatus


@node(id="y.value", cheap=True)
def value(value: Any = None) -> Any:
    return value


@node(id="y.inc", cheap=True)
def inc(x: float) -> float:
    return x + 1


@node(id="y.range", cheap=True)
def make_range(n: int) -> list[int]:
    return list(range(n))


@node(id="y.after", cheap=True)
def after(x: Any = None) -> str:
    return "ran"


REG = registry_of(value, inc, make_range, after, builtins=True)


def endless_while() -> Any:
    meta = {"execution_mode": "loop", "loop_type": "while", "body": ["i"],
            "max_iterations": -1}
    return graph_of([("start", "y.value", {"value": 1}), ("w", "control.while", {}, meta),
                     ("i", "y.inc"), ("down", "y.after")],
                    ["start.out -> w.value", "w.out -> i.x", "i.out -> w.value",
                     "w.out -> down.x"])


def big_for_each(n: int, *, parallel: bool = False) -> Any:
    meta = {"execution_mode": "loop", "loop_type": "for_each", "body": ["i"],
            "parallel": parallel}
    return graph_of([("r", "y.range", {"n": n}), ("f", "control.for_each", {}, meta),
                     ("i", "y.inc"), ("down", "y.after")],
                    ["r.out -> f.items", "f.item -> i.x", "f.results -> down.x"])


class Gaps:
    """The longest time another task waited for a turn while it was running."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.turns = 0
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            self.turns += 1
            last = now

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def _stop_after(manager: ExecutionManager, graph_task: asyncio.Task[Any],
                      seconds: float) -> Any:
    await asyncio.sleep(seconds)
    manager.request_stop()
    # Generous: "returns at all", far below what a loop that never yields takes (forever).
    return await asyncio.wait_for(graph_task, 10)


async def test_unlimited_while_of_cheap_nodes_yields_and_stops_on_request() -> None:
    bus = EventBus()
    seen: list[str] = []
    bus.subscribe(lambda batch: seen.extend(e["type"] for e in batch))
    manager = ExecutionManager(endless_while(), REG, bus=bus)
    gaps = Gaps()
    gaps.start()
    task = asyncio.create_task(manager.run())
    try:
        result = await _stop_after(manager, task, 0.5)
    finally:
        await gaps.stop()
    assert result.status is RunStatus.STOPPED
    assert states(result)["w"] == "stopped"
    assert states(result)["down"] == "skipped", "nothing downstream starts after a stop"
    assert result.nodes["w"].iterations > 10
    assert gaps.turns > 10 and gaps.longest < 0.25, f"another task waited {gaps.longest:.3f} s"
    assert seen[-1] == "run_finished"


async def test_big_for_each_stops_promptly_and_nothing_downstream_starts() -> None:
    for parallel in (False, True):
        manager = ExecutionManager(big_for_each(300_000, parallel=parallel), REG)
        gaps = Gaps()
        gaps.start()
        task = asyncio.create_task(manager.run())
        try:
            result = await _stop_after(manager, task, 0.3)
        finally:
            await gaps.stop()
        assert result.status is RunStatus.STOPPED
        assert states(result)["f"] == "stopped", parallel
        assert states(result)["down"] == "skipped"
        assert 0 < result.nodes["f"].iterations < 300_000, "it stopped before the end"
        assert gaps.longest < 0.25, f"another task waited {gaps.longest:.3f} s"


async def test_unlimited_while_runs_in_constant_memory() -> None:
    """Nothing is kept per iteration: memory after 10,000 more iterations is about the same."""
    bus = EventBus()
    count = [0]
    bus.subscribe(lambda batch: count.__setitem__(0, count[0] + len(batch)))
    manager = ExecutionManager(endless_while(), REG, bus=bus)
    tracemalloc.start()
    try:
        task = asyncio.create_task(manager.run())
        record = None
        while record is None or record.iterations < 3_000:
            await asyncio.sleep(0.01)
            record = manager.records.get("w")
        first = tracemalloc.get_traced_memory()[0]
        start_iterations = record.iterations
        while record.iterations < start_iterations + 10_000:
            await asyncio.sleep(0.01)
        grown = tracemalloc.get_traced_memory()[0] - first
        manager.request_stop(grace=0)
        result = await asyncio.wait_for(task, 10)
    finally:
        tracemalloc.stop()
    assert result.status is RunStatus.STOPPED
    # A few hundred bytes an iteration would be 10,000 * 300 = 3 MB; allow 1 MB of noise.
    assert grown < 1_000_000, f"grew {grown} bytes over 10,000 iterations"


@node(id="y.nap")
async def nap(x: Any = None, seconds: float = 0.1) -> Any:
    await asyncio.sleep(seconds)
    return x


async def test_a_stop_starts_no_more_parallel_branches() -> None:
    """Branches under way finish in the grace period; those not started never start."""
    branches = {f"b{k}": [f"n{k}"] for k in range(6)}
    meta = {"execution_mode": "parallel", "parallel_branches": branches, "max_concurrency": 2}
    graph = graph_of([("p", "control.parallel", {}, meta), ("down", "y.after"),
                      *[(f"n{k}", "y.nap") for k in range(6)]], ["p.results -> down.x"])
    manager = ExecutionManager(graph, registry_of(nap, after, builtins=True), stop_grace=5)
    task = asyncio.create_task(manager.run())
    await asyncio.sleep(0.05)  # b0 and b1 are under way
    manager.request_stop()
    result = await asyncio.wait_for(task, 10)
    got = states(result)
    assert result.status is RunStatus.STOPPED
    assert got["n0"] == got["n1"] == "done", "under way: finished within the grace period"
    assert all(got[f"n{k}"] == "skipped" for k in range(2, 6)), got
    assert got["p"] == "stopped" and got["down"] == "skipped"
