"""Sequential execution: dataflow order, values, executors, concurrency, context."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from helpers import Ticker, graph_of, registry_of, run_graph, states

from loom import node
from loom.engine import ExecutionManager, NodeState, RunStatus


@node(id="t.value", cheap=True)
def value(value: Any = None) -> Any:
    return value


@node(id="t.add", cheap=True)
def add(a: float, b: float = 1.0) -> float:
    return a + b


@node(id="t.pair", outputs=["left", "right"], cheap=True)
def pair(x: Any) -> tuple[Any, Any]:
    return x, [x]


@node(id="t.pick", outputs=["small", "big"], cheap=True)
def pick(x: float) -> dict[str, float]:
    return {"small": x} if x < 10 else {"big": x}


@node(id="t.collect", cheap=True)
def collect(a: Any = None, b: Any = None, c: Any = None) -> list[Any]:
    return [a, b, c]


@node(id="t.blocking")
def blocking(x: Any = None, seconds: float = 0.3) -> Any:
    time.sleep(seconds)
    return threading.current_thread().name


@node(id="t.sleepy")
async def sleepy(x: Any = None, seconds: float = 0.1) -> Any:
    await asyncio.sleep(seconds)
    return x


@node(id="t.gen")
def gen(n: int = 3):
    yield from range(n)


@node(id="t.agen")
async def agen(n: int = 3):
    for i in range(n):
        await asyncio.sleep(0)
        yield i * 10


@node(id="t.ctx", cheap=True)
def uses_ctx(x: Any = None, ctx: Any = None) -> Any:
    ctx.progress(0.5, "half")
    ctx.log("hello")
    ctx.vars["seen"] = ctx.vars.get("seen", 0) + 1
    return ctx.node_id


@node(id="t.mutate", cheap=True)
def mutate(items: list = [1]) -> list:  # noqa: B006 - the engine must protect this default
    items.append(2)
    return items


REG = registry_of(value, add, pair, pick, collect, blocking, sleepy, gen, agen, uses_ctx, mutate)


async def test_chain_and_fan_in_route_values() -> None:
    graph = graph_of(
        [("v", "t.value", {"value": 1}), ("a", "t.add"), ("b", "t.add", {"b": 10}),
         ("c", "t.collect")],
        ["v.out -> a.a", "v.out -> b.a", "a.out -> c.a", "b.out -> c.c"])
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED
    assert result.outputs["c"] == {"out": [2.0, None, 11.0]}
    assert result.nodes["a"].inputs == {"a": 1, "b": 1.0}, "wire + default both reach the call"
    assert all(r.state is NodeState.DONE for r in result.nodes.values())


async def test_deterministic_order_in_file_order_with_limit_one() -> None:
    graph = graph_of([("z", "t.value", {"value": 1}), ("y", "t.value", {"value": 2}),
                      ("x", "t.add"), ("w", "t.add")], ["z.out -> x.a", "y.out -> w.a"])
    _, rec = await run_graph(graph, REG)
    started = [e["node"] for e in rec.of("node_started")]
    assert started == ["z", "y", "x", "w"]


async def test_several_outputs_from_tuple_and_dict() -> None:
    graph = graph_of([("p", "t.pair", {"x": 5}), ("k", "t.pick", {"x": 3}),
                      ("s", "t.add"), ("g", "t.add")],
                     ["k.small -> s.a", "k.big -> g.a"])
    result, _ = await run_graph(graph, REG)
    assert result.outputs["p"] == {"left": 5, "right": [5]}
    assert result.outputs["k"] == {"small": 3}
    assert states(result)["g"] == "skipped"
    assert result.nodes["g"].reason == "k gave no value on 'big'"
    assert result.status is RunStatus.SUCCEEDED, "a port without value is not a failure"


async def test_wrong_shape_of_several_outputs_fails_the_node() -> None:
    @node(id="t.bad_outputs", outputs=["a", "b"], cheap=True)
    def bad() -> Any:
        return 1

    result, _ = await run_graph(graph_of([("n", "t.bad_outputs")]), registry_of(bad))
    assert result.nodes["n"].state is NodeState.FAILED
    assert "expected a tuple of 2 values (a, b)" in (result.nodes["n"].error or "")


async def test_sync_node_runs_in_worker_thread_and_loop_stays_free() -> None:
    async with Ticker(0.01) as ticker:
        result, _ = await run_graph(graph_of([("b", "t.blocking", {"seconds": 0.3})]), REG)
    assert result.outputs["b"]["out"].startswith("loom-node")
    assert ticker.ticks >= 15, f"the loop was blocked: only {ticker.ticks} ticks in 0.3 s"


async def test_cheap_node_runs_on_the_loop_thread() -> None:
    @node(id="t.where", cheap=True)
    def where() -> str:
        return threading.current_thread().name

    result, _ = await run_graph(graph_of([("w", "t.where")]), registry_of(where))
    assert result.outputs["w"]["out"] == threading.current_thread().name


async def test_async_and_generator_nodes() -> None:
    graph = graph_of([("s", "t.sleepy", {"x": "z", "seconds": 0.01}), ("g", "t.gen", {"n": 4}),
                      ("ag", "t.agen")])
    result, rec = await run_graph(graph, REG)
    assert result.outputs == {"s": {"out": "z"}, "g": {"out": [0, 1, 2, 3]},
                              "ag": {"out": [0, 10, 20]}}
    progress = [e["items"] for e in rec.of("node_progress") if e["node"] == "g"]
    assert progress == [1, 2, 3, 4], "each yielded item is reported as it comes"


async def test_max_concurrency_overlaps_independent_nodes_within_the_limit() -> None:
    running = peak = 0

    @node(id="t.track")
    async def track(i: int = 0) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return i

    nodes = [(f"n{i}", "t.track", {"i": i}) for i in range(9)]
    result, events = await run_graph(graph_of(nodes, max_concurrency=3), registry_of(track))
    assert result.status is RunStatus.SUCCEEDED
    assert peak == 3
    # Overlap from the events, not the clock: three start before the first one ends.
    order = [(e["type"], e["node"]) for e in events.events
             if e["type"] in ("node_started", "node_finished")]
    first_end = next(k for k, (kind, _) in enumerate(order) if kind == "node_finished")
    assert [node for kind, node in order[:first_end]] == ["n0", "n1", "n2"]

    running = peak = 0
    await run_graph(graph_of(nodes), registry_of(track))
    assert peak == 1, "the default limit of 1 runs one node at a time"


async def test_manager_limit_overrides_graph_setting() -> None:
    running = peak = 0

    @node(id="t.track2")
    async def track() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1

    graph = graph_of([(f"n{i}", "t.track2") for i in range(6)], max_concurrency=1)
    await run_graph(graph, registry_of(track), max_concurrency=6)
    assert peak == 6


async def test_ctx_gives_progress_log_and_run_variables() -> None:
    graph = graph_of([("a", "t.ctx"), ("b", "t.ctx")], ["a.out -> b.x"])
    bus_result, rec = await run_graph(graph, REG, variables={"seen": 10})
    assert bus_result.outputs["b"] == {"out": "b"}
    progress = rec.of("node_progress")
    assert progress[0]["progress"] == 0.5 and progress[0]["message"] == "half"
    assert [e["message"] for e in rec.of("log")] == ["hello", "hello"]


async def test_variables_are_shared_by_the_run_and_fresh_per_run() -> None:
    @node(id="t.count")
    def count(x: Any = None, ctx: Any = None) -> int:  # in a thread: ctx works there too
        ctx.vars["n"] = ctx.vars.get("n", 0) + 1
        ctx.progress(message="from a thread")
        return int(ctx.vars["n"])

    graph = graph_of([("a", "t.count"), ("b", "t.count")], ["a.out -> b.x"])
    manager = ExecutionManager(graph, registry_of(count))
    first = await manager.run()
    second = await manager.run()
    assert first.outputs["b"] == {"out": 2} and second.outputs["b"] == {"out": 2}


async def test_list_defaults_are_copied_per_call() -> None:
    graph = graph_of([("m", "t.mutate"), ("p", "t.mutate", {"items": [7]})])
    await run_graph(graph, REG)
    result, _ = await run_graph(graph, REG)
    assert result.outputs == {"m": {"out": [1, 2]}, "p": {"out": [7, 2]}}
    assert graph.nodes["p"].properties == {"items": [7]}, "the graph's property is untouched"


async def test_100k_node_chain_runs_without_recursion_limit() -> None:
    n = 100_000
    graph = graph_of([("n0", "t.value", {"value": 0})] + [(f"n{i}", "t.add") for i in range(1, n)],
                     [f"n{i - 1}.out -> n{i}.a" for i in range(1, n)])
    result, _ = await run_graph(graph, REG)
    assert result.outputs[f"n{n - 1}"] == {"out": float(n - 1)}


async def test_100k_node_chain_skip_propagates_without_recursion() -> None:
    @node(id="t.fail", cheap=True)
    def fail() -> int:
        raise ValueError("no")

    n = 100_000
    graph = graph_of([("n0", "t.fail")] + [(f"n{i}", "t.add") for i in range(1, n)],
                     [f"n{i - 1}.out -> n{i}.a" for i in range(1, n)])
    result, _ = await run_graph(graph, registry_of(fail, add))
    assert result.nodes[f"n{n - 1}"].reason == "upstream failed: n0"


async def test_long_inline_stretches_give_the_loop_turns() -> None:
    n = 30_000
    graph = graph_of([("n0", "t.value", {"value": 0})] + [(f"n{i}", "t.add") for i in range(1, n)],
                     [f"n{i - 1}.out -> n{i}.a" for i in range(1, n)])
    async with Ticker() as ticker:
        await run_graph(graph, REG)
    assert ticker.ticks > 3, "a run of 30,000 inline nodes must still let other tasks run"


@pytest.mark.parametrize("limit", [1, 4])
async def test_run_twice_concurrently_is_refused(limit: int) -> None:
    graph = graph_of([("s", "t.sleepy", {"seconds": 0.05})], max_concurrency=limit)
    manager = ExecutionManager(graph, REG)
    first = asyncio.create_task(manager.run())
    await asyncio.sleep(0.01)
    with pytest.raises(RuntimeError, match="already running"):
        await manager.run()
    assert (await first).status is RunStatus.SUCCEEDED


async def test_runs_do_not_change_the_variables_they_start_with() -> None:
    @node(id="t.append")
    def append(ctx: Any = None) -> list:
        ctx.vars["log"].append("ran")
        return list(ctx.vars["log"])

    manager = ExecutionManager(graph_of([("a", "t.append")]), registry_of(append),
                               variables={"log": []})
    assert (await manager.run()).outputs["a"] == {"out": ["ran"]}
    assert (await manager.run()).outputs["a"] == {"out": ["ran"]}, "a fresh copy each run"
    assert manager.variables == {"log": []}


async def test_run_accepts_a_plan_made_beforehand_but_only_of_its_graph() -> None:
    graph = graph_of([("a", "t.value", {"value": 2}), ("b", "t.add")], ["a.out -> b.a"])
    manager = ExecutionManager(graph, REG)
    plan = manager.plan()  # the editor compiles in a worker thread, then runs
    result = await manager.run(plan)
    assert result.status is RunStatus.SUCCEEDED
    other = ExecutionManager(graph_of([("a", "t.value")]), REG)
    with pytest.raises(ValueError, match="another graph"):
        await other.run(plan)
