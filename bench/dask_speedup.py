"""A for-each of CPU-bound items: sequential vs the process executor vs Dask, one run each way.

The graph: a list of ``--items`` numbers into a for-each whose body is one node, a
pure-Python loop calibrated to ``--seconds`` per call (it holds the GIL throughout).
Every way is a real ``ExecutionManager.run()`` of that graph:

- sequential: the loop runs its items one after the other, each in a worker thread;
- process: a parallel loop of an ``executor="process"`` node (2 worker processes);
- Dask, cold: ``executor="dask"`` with no scheduler, so the run starts a LocalCluster
  of 2 worker processes on 127.0.0.1 and closes it at the end (both in the time);
- Dask, warm: the same on a LocalCluster already running, reached by address
  (``loom run --scheduler``).

The machine's speed drifts, so each way is timed right next to a sequential run and
scored by that pair's ratio (median over ``--repeat``). The per-item overhead of the
Dask path, on the warm cluster with ``--overhead-items`` no-op items: the round trip of
one item at a time (sequential loop), and the time per item with all in flight.

Usage: python bench/dask_speedup.py [--items 8] [--seconds 0.5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

from loom import node
from loom.engine import ExecutionManager, RunStatus
from loom.graph import Connection, Graph, Node
from loom.registry import Registry


def burn(n: int) -> int:
    """Pure-Python CPU work."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


@node(id="bench.burn")
def burn_here(x: int, n: int = 0) -> int:
    return burn(n) + x


@node(id="bench.burn_process", executor="process")
def burn_process(x: int, n: int = 0) -> int:
    return burn(n) + x


@node(id="bench.noop")
def noop(x: int) -> int:
    return x


def registry() -> Registry:
    reg = Registry.standard(entry_points=False)
    for func in (burn_here, burn_process, noop):
        reg.add_function(func, origin="bench")
    return reg


def calibrate(seconds: float) -> int:
    n = 200_000
    while True:
        start = time.perf_counter()
        burn(n)
        took = time.perf_counter() - start
        if took > 0.1:
            return int(n * seconds / took)
        n *= 4


def for_each(items: int, body_type: str, n: int, *, parallel: bool) -> Graph:
    graph = Graph(name="dask speed-up")
    graph.add_node(Node("items", "values.list", properties={"value": list(range(items))}))
    # Every item in flight at once: the executor (the process pool's slots, the Dask
    # scheduler) decides what runs when, without a round trip through the loop per item.
    meta = {"execution_mode": "loop", "loop_type": "for_each", "body": ["b"],
            "parallel": parallel, "max_concurrent": items}
    graph.add_node(Node("loop", "control.for_each", metadata=meta))
    graph.add_node(Node("b", body_type, properties={"n": n} if n else {}))
    graph.connections += [Connection("items", "out", "loop", "items"),
                          Connection("loop", "item", "b", "x")]
    return graph


async def timed_run(graph: Graph, reg: Registry, **options: Any) -> float:
    start = time.perf_counter()
    result = await ExecutionManager(graph, reg, **options).run()
    took = time.perf_counter() - start
    if result.status is not RunStatus.SUCCEEDED:
        raise RuntimeError(f"the run {result.status.value}: {result.errors}")
    return took


def main() -> None:
    import distributed

    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=0.5, help="length of one item")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--overhead-items", type=int, default=200)
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
          f"distributed {distributed.__version__}")
    n = calibrate(args.seconds)
    reg = registry()
    sequential = for_each(args.items, "bench.burn", n, parallel=False)
    process = for_each(args.items, "bench.burn_process", n, parallel=True)
    dask = for_each(args.items, "bench.burn", n, parallel=True)
    overhead = for_each(args.overhead_items, "bench.noop", 0, parallel=True)

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                       silence_logs=40)
    address = cluster.scheduler_address
    ways: dict[str, Callable[[], float]] = {
        "process executor": lambda: asyncio.run(timed_run(process, reg)),
        "Dask, cold (LocalCluster per run)": lambda: asyncio.run(
            timed_run(dask, reg, executor="dask")),
        "Dask, warm (--scheduler)": lambda: asyncio.run(
            timed_run(dask, reg, executor="dask", scheduler=address)),
    }
    reference = []
    times: dict[str, list[float]] = {k: [] for k in ways}
    ratios: dict[str, list[float]] = {k: [] for k in ways}
    try:
        asyncio.run(timed_run(dask, reg, executor="dask", scheduler=address))  # warm-up
        for i in range(args.repeat):
            for name, way in ways.items():
                # Alternate the order of each pair so drift does not favour one side.
                if i % 2:
                    took = way()
                    seq = asyncio.run(timed_run(sequential, reg))
                else:
                    seq = asyncio.run(timed_run(sequential, reg))
                    took = way()
                reference.append(seq)
                times[name].append(took)
                ratios[name].append(seq / took)
        one_by_one = for_each(args.overhead_items, "bench.noop", 0, parallel=False)
        per_item: dict[str, list[float]] = {"round trip": [], "all in flight": [],
                                            "threads here": []}
        for _ in range(args.repeat):
            for name, graph, options in (
                    ("round trip", one_by_one, {"executor": "dask", "scheduler": address}),
                    ("all in flight", overhead, {"executor": "dask", "scheduler": address}),
                    ("threads here", one_by_one, {})):
                took = asyncio.run(timed_run(graph, reg, **options))
                per_item[name].append(took / args.overhead_items * 1000)
    finally:
        cluster.close()

    print(f"{args.items} items of {args.seconds:.2f} s each ({n:,} iterations); "
          f"median / min over {args.repeat}")
    print("| way | time s | speed-up vs sequential (paired median) |\n|---|---|---|")
    print(f"| sequential | {statistics.median(reference):.2f} / {min(reference):.2f} | 1.00 |")
    for name in ways:
        print(f"| {name} | {statistics.median(times[name]):.2f} / {min(times[name]):.2f} | "
              f"{statistics.median(ratios[name]):.2f} |")
    print(f"per-item overhead, {args.overhead_items} no-op items, ms per item (median / min): "
          + ", ".join(f"{name} {statistics.median(v):.2f} / {min(v):.2f}"
                      for name, v in per_item.items()))


if __name__ == "__main__":
    main()
