"""Stop latency: from ``request_stop()`` to ``run_finished`` with 100 timers and 100 in-flight
async branches and no grace period (issue 4 target: <= 100 ms).

Usage: python bench/stop_latency.py [--repeat N] [--timers N] [--branches N]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
from typing import Any

from loom import node
from loom.engine import EventBus, ExecutionManager
from loom.graph import Graph, Node
from loom.registry import Registry


@node(id="bench.hang")
async def hang(x: Any = None) -> Any:
    try:
        await asyncio.sleep(60)
    finally:
        pass  # a finally that runs on cancel, like real clean-up
    return x


@node(id="bench.sink", cheap=True)
def sink(event: Any = None) -> Any:
    return event


REGISTRY = Registry.standard(entry_points=False)
REGISTRY.add_function(hang)
REGISTRY.add_function(sink)


def graph(timers: int, branches: int) -> Graph:
    g = Graph(name="stop latency")
    for i in range(timers):
        g.add_node(Node(f"t{i}", "event.timer", metadata={"event_type": "timer",
                                                          "interval": 0.05}))
        g.add_node(Node(f"s{i}", "bench.sink"))
        g.connect(f"t{i}", "event", f"s{i}", "event")
    g.add_node(Node("p", "control.parallel", metadata={
        "parallel_branches": [[f"b{i}"] for i in range(branches)]}))
    for i in range(branches):
        g.add_node(Node(f"b{i}", "bench.hang"))
        g.connect("p", "value", f"b{i}", "x")
    return g


async def once(timers: int, branches: int) -> float:
    bus = EventBus()
    started = asyncio.Event()
    finished: list[float] = []
    hanging = 0

    def watch(batch: list[dict[str, Any]]) -> None:
        nonlocal hanging
        for event in batch:
            if event["type"] == "node_started" and event["node"].startswith("b"):
                hanging += 1
                if hanging == branches:
                    started.set()
            elif event["type"] == "run_finished":
                finished.append(time.perf_counter())

    bus.subscribe(watch)
    manager = ExecutionManager(graph(timers, branches), REGISTRY, bus=bus, stop_grace=0)
    task = asyncio.create_task(manager.run())
    await asyncio.wait_for(started.wait(), 30)
    await asyncio.sleep(0.2)  # timers ticking, every branch waiting
    t0 = time.perf_counter()
    manager.request_stop()
    result = await task
    assert result.status.value == "stopped", result.status
    return finished[0] - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--timers", type=int, default=100)
    parser.add_argument("--branches", type=int, default=100)
    args = parser.parse_args()
    samples = [asyncio.run(once(args.timers, args.branches)) for _ in range(args.repeat)]
    print(f"Python {platform.python_version()} on {platform.machine()}; {args.timers} timers, "
          f"{args.branches} in-flight async branches, stop_grace=0, repeat={args.repeat}")
    print(f"request_stop() -> run_finished: median {statistics.median(samples) * 1000:.1f} ms, "
          f"min {min(samples) * 1000:.1f} ms, max {max(samples) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
