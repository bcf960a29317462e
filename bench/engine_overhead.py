"""Per-node cost of Loom's default execution path, next to bare asyncio baselines.

Shapes (all of trivial built-in nodes, which are ``cheap`` and run inline):
- chain: 10,000 ``math.add`` nodes, each fed by the previous one;
- fan: one source, 5,000 ``math.add`` nodes reading it, one ``lists.collect`` of all;
- lattice: 100 layers x 50 ``math.add`` nodes, each reading two of the layer before.

For each shape it reports, per node: planning (``compile_plan``: binding, wiring,
validation), the flow alone executing the compiled plan, the whole ``ExecutionManager.run()``,
how much of that CPython's cyclic garbage collector took, and ``run()`` with one bus
subscriber (as the editor and the CLI progress display have); then
two baselines measured in the same process on the same shape: a bare routed loop
(plain dicts, no events, no states) and an asyncio Task per node awaiting its
inputs' futures. Memory: tracemalloc peak of a run, and of the graph model, per
node. A 100,000-node chain is run once to show depth does not matter.

Usage: python bench/engine_overhead.py [--repeat N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from loom.engine import EventBus, ExecutionManager
from loom.engine.context import RunContext
from loom.engine.flow import Flow, RunState
from loom.engine.plan import Plan, compile_plan
from loom.engine.result import NodeRecord
from loom.graph import Graph, Node
from loom.registry import Registry

REGISTRY = Registry.standard(entry_points=False)
ADD = REGISTRY["math.add"].func


def chain(n: int) -> Graph:
    g = Graph(name=f"chain {n}")
    g.add_node(Node("n0", "values.number", properties={"value": 0.0}))
    for i in range(1, n):
        g.add_node(Node(f"n{i}", "math.add", properties={"b": 1.0}))
        g.connect(f"n{i - 1}", "out", f"n{i}", "a")
    return g


def fan(width: int) -> Graph:
    g = Graph(name=f"fan {width}")
    g.add_node(Node("src", "values.number", properties={"value": 1.0}))
    names = ", ".join(f"i{i}" for i in range(width))
    for i in range(width):
        g.add_node(Node(f"n{i}", "math.add", properties={"b": float(i)}))
        g.connect("src", "out", f"n{i}", "a")
    g.add_node(Node("sink", "lists.collect", properties={"inputs": names}))
    for i in range(width):
        g.connect(f"n{i}", "out", "sink", f"i{i}")
    return g


def lattice(layers: int, width: int) -> Graph:
    g = Graph(name=f"lattice {layers}x{width}")
    for j in range(width):
        g.add_node(Node(f"L0_{j}", "values.number", properties={"value": float(j)}))
    for k in range(1, layers):
        for j in range(width):
            g.add_node(Node(f"L{k}_{j}", "math.add"))
            g.connect(f"L{k - 1}_{j}", "out", f"L{k}_{j}", "a")
            g.connect(f"L{k - 1}_{(j + 1) % width}", "out", f"L{k}_{j}", "b")
    return g


# ------------------------------------------------------------------ baselines


def _topology(g: Graph) -> tuple[list[str], dict[str, list[tuple[str, str]]]]:
    inputs: dict[str, list[tuple[str, str]]] = {nid: [] for nid in g.nodes}
    for c in g.connections:
        inputs[c.dst_node].append((c.src_node, c.dst_port))
    return list(g.nodes), inputs  # the builders add nodes in dependency order


def bare_loop(g: Graph) -> float:
    """Seconds for a plain routed loop over the same graph: the floor."""
    order, inputs = _topology(g)
    funcs = {nid: REGISTRY[g.nodes[nid].type].func for nid in order}
    props = {nid: g.nodes[nid].properties for nid in order}
    t0 = time.perf_counter()
    values: dict[str, Any] = {}
    for nid in order:
        kwargs = dict(props[nid])
        for src, port in inputs[nid]:
            kwargs[port] = values[src]
        values[nid] = funcs[nid](**kwargs)
    return time.perf_counter() - t0


async def task_per_node(g: Graph) -> float:
    """Seconds for one asyncio Task per node, each awaiting its inputs' futures."""
    order, inputs = _topology(g)
    funcs = {nid: REGISTRY[g.nodes[nid].type].func for nid in order}
    props = {nid: g.nodes[nid].properties for nid in order}
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    futures = {nid: loop.create_future() for nid in order}

    async def run(nid: str) -> None:
        kwargs = dict(props[nid])
        for src, port in inputs[nid]:
            kwargs[port] = await futures[src]
        futures[nid].set_result(funcs[nid](**kwargs))

    await asyncio.gather(*(run(nid) for nid in order))
    return time.perf_counter() - t0


# ------------------------------------------------------------------ measuring


class GCTimer:
    """Time spent in CPython's cyclic garbage collector (via gc.callbacks)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._start

    def __enter__(self) -> GCTimer:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


async def flow_only(plan: Plan) -> float:
    """Seconds the flow alone takes to execute a compiled plan (what a run adds to planning
    is this, plus records, clean-up and the garbage collector's share)."""
    state = RunState(plan, RunContext(EventBus()), [NodeRecord() for _ in plan.nodes])
    t0 = time.perf_counter()
    await Flow(state, range(len(plan.nodes)), 1).run()
    return time.perf_counter() - t0


def median_min(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples), min(samples)


def measure(shape: str, g: Graph, repeat: int) -> dict[str, Any]:
    n = len(g)
    plan_s, flow_s, run_s, bare_s, task_s, sub_s, gc_s = [], [], [], [], [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        plan = compile_plan(g, REGISTRY)
        plan_s.append(time.perf_counter() - t0)
        assert not plan.errors, plan.errors
        flow_s.append(asyncio.run(flow_only(plan)))
        manager = ExecutionManager(g, REGISTRY)
        with GCTimer() as gc_time:
            t0 = time.perf_counter()
            result = asyncio.run(manager.run())
            run_s.append(time.perf_counter() - t0)
        gc_s.append(gc_time.total)
        assert result.status.value == "succeeded", result.errors
        bus = EventBus()
        bus.subscribe(lambda batch: None)  # as the editor and the CLI's progress display do
        t0 = time.perf_counter()
        asyncio.run(ExecutionManager(g, REGISTRY, bus=bus).run())
        sub_s.append(time.perf_counter() - t0)
        bare_s.append(bare_loop(g))
        task_s.append(asyncio.run(task_per_node(g)))
    us = 1e6 / n
    plan_med, plan_min = median_min(plan_s)
    run_med, run_min = median_min(run_s)
    return {
        "shape": shape, "nodes": n,
        "plan_us": (plan_med * us, plan_min * us),
        "flow_us": tuple(x * us for x in median_min(flow_s)),
        "run_us": (run_med * us, run_min * us),
        "events_us": tuple(x * us for x in median_min(sub_s)),
        "gc_us": tuple(x * us for x in median_min(gc_s)),
        "bare_us": tuple(x * us for x in median_min(bare_s)),
        "task_us": tuple(x * us for x in median_min(task_s)),
        "mem": memory(g),
    }


def memory(g: Graph) -> dict[str, float]:
    """Bytes per node: the graph model, and the peak of a run on top of it."""
    n = len(g)
    gc.collect()
    tracemalloc.start()
    copy = rebuild(g)
    model = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    asyncio.run(ExecutionManager(copy, REGISTRY).run())
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return {"model_b": model / n, "run_peak_b": peak / n}


def rebuild(g: Graph) -> Graph:
    copy = Graph(name=g.name)
    for node in g:
        copy.add_node(Node(node.id, node.type, properties=dict(node.properties)))
    for c in g.connections:
        copy.connect(c.src_node, c.src_port, c.dst_node, c.dst_port)
    return copy


def executor_cost(n: int, repeat: int) -> dict[str, float]:
    """µs per node of a chain of trivial nodes: inline (cheap), worker thread, async."""
    from loom import node

    @node(id="bench.inline", cheap=True)
    def inline(x: float = 0.0) -> float:
        return x + 1

    @node(id="bench.thread")
    def thread(x: float = 0.0) -> float:
        return x + 1

    @node(id="bench.coro")
    async def coro(x: float = 0.0) -> float:
        return x + 1

    registry = Registry()
    for func in (inline, thread, coro):
        registry.add_function(func)
    result = {}
    for kind in ("inline", "thread", "coro"):
        g = Graph()
        for i in range(n):
            g.add_node(Node(f"n{i}", f"bench.{kind}"))
            if i:
                g.connect(f"n{i - 1}", "out", f"n{i}", "x")
        samples = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            asyncio.run(ExecutionManager(g, registry).run())
            samples.append(time.perf_counter() - t0)
        result[kind] = statistics.median(samples) / n * 1e6
    return result


def timed(label: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    value = fn()
    print(f"  {label}: {time.perf_counter() - t0:.2f} s", flush=True)
    return value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="smaller shapes, fewer repeats")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    repeat = 3 if args.quick else args.repeat
    print(f"Python {platform.python_version()} on {platform.machine()}, "
          f"{platform.system()} {platform.release()}; repeat={repeat} (median / min)")
    shapes = [("chain 10,000", chain(10_000 // scale)), ("fan 5,000", fan(5_000 // scale)),
              ("lattice 100x50", lattice(100 // scale, 50))]
    rows = [measure(name, g, repeat) for name, g in shapes]
    header = (f"{'shape':<16}{'nodes':>7}  {'plan':>13}  {'flow':>13}  {'run()':>13}"
              f"  {'of it in gc':>13}  {'run()+events':>13}  {'bare loop':>13}"
              f"  {'task/node':>13}  {'model':>7}  {'run peak':>8}")
    print("\nper node, µs (median / min); memory in bytes per node")
    print(header)
    for r in rows:
        cells = [f"{r[k][0]:6.2f}/{r[k][1]:5.2f}" for k in
                 ("plan_us", "flow_us", "run_us", "gc_us", "events_us", "bare_us", "task_us")]
        print(f"{r['shape']:<16}{r['nodes']:>7}  " + "  ".join(f"{c:>13}" for c in cells)
              + f"  {r['mem']['model_b']:7.0f}  {r['mem']['run_peak_b']:8.0f}")
    cost = executor_cost(2_000 // scale, repeat)
    print("\nwhere a sync node runs, µs per node of a 2,000-node chain (median): "
          + ", ".join(f"{k} {v:.1f}" for k, v in cost.items()))
    if not args.quick:
        print("\n100,000-node chain (depth check):")
        big = timed("build", lambda: chain(100_000))
        result = timed("run", lambda: asyncio.run(ExecutionManager(big, REGISTRY).run()))
        print(f"  status {result.status.value}, last output {result.outputs['n99999']}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
