"""Parallel branches and parallel for-each: Loom next to the floor and to running one by one.

1. 8 branches that each await 0.2 s: a Loom ``parallel`` node; the same node with
   ``strategy: sequential`` (branches one after another, as ComfyUI and n8n run
   them); and ``asyncio.gather`` of the same 8 sleeps (the floor).
2. A for-each over 10,000 trivial items with ``parallel: true, max_concurrent: 100``,
   next to the sequential for-each and a bare semaphore-bounded ``asyncio.gather``:
   per-item overhead.

Usage: python bench/parallel_overhead.py [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from loom import node
from loom.engine import ExecutionManager
from loom.graph import Graph, Node
from loom.registry import Registry


@node(id="bench.nap")
async def nap(x: Any = None, seconds: float = 0.2) -> Any:
    await asyncio.sleep(seconds)
    return x


@node(id="bench.double", cheap=True)
def double(x: float) -> float:
    return x * 2


REGISTRY = Registry.standard(entry_points=False)
REGISTRY.add_function(nap)
REGISTRY.add_function(double)


def branches_graph(n: int, strategy: str) -> Graph:
    g = Graph(name="branches")
    g.add_node(Node("p", "control.parallel", metadata={
        "parallel_branches": [[f"b{i}"] for i in range(n)], "strategy": strategy}))
    for i in range(n):
        g.add_node(Node(f"b{i}", "bench.nap"))
        g.connect("p", "value", f"b{i}", "x")
    return g


def for_each_graph(n: int, parallel: bool) -> Graph:
    g = Graph(name="for each")
    g.add_node(Node("loop", "control.for_each", properties={"items": list(range(n))},
                    metadata={"body": ["d"], "parallel": parallel, "max_concurrent": 100}))
    g.add_node(Node("d", "bench.double"))
    g.connect("loop", "item", "d", "x")
    return g


async def run(g: Graph) -> float:
    t0 = time.perf_counter()
    result = await ExecutionManager(g, REGISTRY).run()
    elapsed = time.perf_counter() - t0
    assert result.status.value == "succeeded", result.errors
    return elapsed


async def gather_sleeps(n: int) -> float:
    t0 = time.perf_counter()
    await asyncio.gather(*(asyncio.sleep(0.2) for _ in range(n)))
    return time.perf_counter() - t0


async def bounded_gather(n: int, limit: int) -> float:
    semaphore = asyncio.Semaphore(limit)
    func = double.__wrapped__ if hasattr(double, "__wrapped__") else double

    async def one(x: int) -> float:
        async with semaphore:
            return func(x)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - t0


def measure(label: str, make: Callable[[], Awaitable[float]], repeat: int) -> tuple[float, float]:
    samples = [asyncio.run(make()) for _ in range(repeat)]  # type: ignore[arg-type]
    return statistics.median(samples), min(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}; repeat={args.repeat} "
          "(median / min)")

    print("\n8 branches awaiting 0.2 s each, seconds:")
    rows = [("Loom parallel", lambda: run(branches_graph(8, "parallel"))),
            ("Loom strategy: sequential", lambda: run(branches_graph(8, "sequential"))),
            ("asyncio.gather floor", lambda: gather_sleeps(8))]
    for label, make in rows:
        med, low = measure(label, make, args.repeat)
        print(f"  {label:<28} {med:.4f} / {low:.4f}")

    n = 10_000
    print(f"\nfor-each over {n:,} trivial items, µs per item:")
    rows = [("Loom parallel, max_concurrent=100", lambda: run(for_each_graph(n, True))),
            ("Loom sequential", lambda: run(for_each_graph(n, False))),
            ("asyncio.gather + Semaphore(100)", lambda: bounded_gather(n, 100))]
    for label, make in rows:
        med, low = measure(label, make, args.repeat)
        print(f"  {label:<34} {med / n * 1e6:7.2f} / {low / n * 1e6:7.2f}")


if __name__ == "__main__":
    main()
