"""Loops: for_each (order, batches, parallel items, errors, retries) and while (carried values)."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest
from helpers import graph_of, registry_of, run_graph, states

from loom import node
from loom.engine import EventBus, ExecutionManager, NodeState, RunStatus, validate


@node(id="t.value", cheap=True)
def value(value: Any = None) -> Any:
    return value


@node(id="t.square", cheap=True)
def square(x: float) -> float:
    return x * x


@node(id="t.random_sleep")
async def random_sleep(x: Any, index: int = 0) -> Any:
    await asyncio.sleep(random.uniform(0.0, 0.03))
    return (index, x)


@node(id="t.fail_on", cheap=True)
def fail_on(x: Any, bad: Any = None) -> Any:
    if x == bad:
        raise ValueError(f"item {x!r} is bad")
    return x


@node(id="t.scale", cheap=True)
def scale(x: float, factor: float = 1.0) -> float:
    return x * factor


@node(id="t.sum", cheap=True)
def total(items: list) -> float:
    return sum(items)


@node(id="t.dec", cheap=True)
def dec(x: float) -> float:
    return x - 1


@node(id="t.lt", cheap=True)
def lt(x: float, limit: float = 10) -> bool:
    return x < limit


@node(id="t.inc", cheap=True)
def inc(x: float) -> float:
    return x + 1


running = 0
peak = 0
finally_ran: list[Any] = []


@node(id="t.tracked")
async def tracked(x: Any, seconds: float = 0.02) -> Any:
    global running, peak
    running += 1
    peak = max(peak, running)
    try:
        await asyncio.sleep(seconds)
    finally:
        running -= 1
        finally_ran.append(x)
    return x


attempts: dict[Any, int] = {}


@node(id="t.flaky", cheap=True)
def flaky(x: Any, failures: int = 2) -> Any:
    attempts[x] = attempts.get(x, 0) + 1
    if attempts[x] <= failures:
        raise RuntimeError(f"flaky {x} attempt {attempts[x]}")
    return x


@node(id="t.vars")
def use_vars(item: Any, ctx: Any = None) -> Any:
    ctx.vars["config"]["seen"].append(item)
    ctx.vars["last"] = item
    time.sleep(0.01)  # let parallel items interleave
    return list(ctx.vars["config"]["seen"]), ctx.vars["last"]


@node(id="t.accumulate", cheap=True)
def accumulate(item: Any, ctx: Any = None) -> int:
    ctx.vars["total"] = ctx.vars.get("total", 0) + item
    return int(ctx.vars["total"])


REG = registry_of(value, square, random_sleep, fail_on, scale, total, dec, lt, inc, tracked,
                  flaky, use_vars, accumulate, builtins=True)


def loop_graph(items: list[Any], body: list[tuple[Any, ...]], wires: list[str],
               outside: list[tuple[Any, ...]] = (), **settings: Any) -> Any:  # type: ignore[assignment]
    """A for_each over ``items`` with ``body`` nodes (listed in order) and ``outside`` ones."""
    meta = {"execution_mode": "loop", "loop_type": "for_each",
            "body": [entry[0] for entry in body], **settings}
    return graph_of([("items", "t.value", {"value": items}), ("loop", "control.for_each", {}, meta),
                     *body, *outside], ["items.out -> loop.items", *wires])


async def test_for_each_results_keep_item_order_whatever_the_completion_order() -> None:
    items = list(range(30))
    graph = loop_graph(items, [("s", "t.random_sleep")], ["loop.item -> s.x",
                                                         "loop.index -> s.index"],
                       parallel=True, max_concurrent=10)
    result, rec = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED
    assert result.outputs["loop"]["results"] == [(i, i) for i in items]
    finished = [e["scope"][-1][1] for e in rec.of("node_finished") if e["node"] == "s"]
    assert sorted(finished) == items and finished != items, "completion order was shuffled"
    info = result.outputs["loop"]["execution_info"]
    assert info["total"] == 30 and info["completed"] == 30 and info["failed"] == 0
    assert 1 < info["concurrent_peak"] <= 10
    assert len(rec.of("loop_iteration")) == 30
    assert result.nodes["loop"].iterations == 30


async def test_sequential_for_each_runs_items_in_order_one_at_a_time() -> None:
    global peak, running
    peak = running = 0
    graph = loop_graph([1, 2, 3], [("t", "t.tracked")], ["loop.item -> t.x"])
    result, rec = await run_graph(graph, REG)
    assert result.outputs["loop"]["results"] == [1, 2, 3]
    assert peak == 1
    assert [e["iteration"] for e in rec.of("loop_iteration")] == [0, 1, 2]


async def test_parallel_items_overlap_up_to_max_concurrent() -> None:
    global peak, running
    peak = running = 0
    graph = loop_graph(list(range(12)), [("t", "t.tracked", {"seconds": 0.05})],
                       ["loop.item -> t.x"], parallel=True, max_concurrent=4)
    started = time.perf_counter()
    result, _ = await run_graph(graph, REG)
    elapsed = time.perf_counter() - started
    assert peak == 4 == result.outputs["loop"]["execution_info"]["concurrent_peak"]
    assert elapsed < 0.4, "12 items x 50 ms, 4 at a time: ~150 ms"


async def test_batches_feed_lists_and_give_one_result_per_batch() -> None:
    graph = loop_graph(list(range(7)), [("sum", "t.sum"), ("idx", "t.value")],
                       ["loop.item -> sum.items", "loop.index -> idx.value"], batch_size=3)
    graph.nodes["loop"].metadata["body"] = ["idx", "sum"]
    result, rec = await run_graph(graph, REG)
    assert result.outputs["loop"]["results"] == [0 + 1 + 2, 3 + 4 + 5, 6]
    assert [e["iteration"] for e in rec.of("loop_iteration")] == [0, 1, 2]


async def test_result_is_the_last_listed_node_and_none_when_it_was_skipped() -> None:
    graph = loop_graph([1, 0, 2], [("if", "control.if"), ("sq", "t.square")],
                       ["loop.item -> if.value", "if.true -> sq.x"])
    result, _ = await run_graph(graph, REG)
    assert result.outputs["loop"]["results"] == [1, None, 4]


async def test_captured_values_from_outside_reach_every_item() -> None:
    graph = loop_graph([1, 2, 3], [("s", "t.scale")], ["loop.item -> s.x", "k.out -> s.factor"],
                       outside=[("k", "t.value", {"value": 10})], parallel=True)
    result, _ = await run_graph(graph, REG)
    assert result.outputs["loop"]["results"] == [10, 20, 30]


async def test_failing_item_fails_the_loop_naming_item_and_node() -> None:
    graph = loop_graph([1, 2, 3], [("f", "t.fail_on", {"bad": 2})],
                       ["loop.item -> f.x", "loop.results -> after.value"],
                       outside=[("after", "t.value")])
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.FAILED
    loop = result.nodes["loop"]
    assert loop.state is NodeState.FAILED
    assert loop.error == "item 1: f: ValueError: item 2 is bad"
    assert "raise ValueError" in (loop.traceback or ""), "the body node's traceback is shown"
    assert states(result)["after"] == "skipped"


async def test_parallel_failure_cancels_running_items_and_their_finally_runs() -> None:
    finally_ran.clear()
    # f fails for item 2 at once while the other items sleep 5 s: the loop must end quickly.
    graph = loop_graph([0, 1, 2, 3], [("f", "t.fail_on", {"bad": 2}),
                                      ("t", "t.tracked", {"seconds": 5.0})],
                       ["loop.item -> f.x", "f.out -> t.x"], parallel=True, max_concurrent=4)
    started = time.perf_counter()
    result, _ = await run_graph(graph, REG)
    assert time.perf_counter() - started < 1.0
    assert result.status is RunStatus.FAILED
    assert sorted(finally_ran) == [0, 1, 3], "every cancelled item ran its finally"


async def test_continue_on_error_leaves_null_slots_and_an_errors_list() -> None:
    graph = loop_graph([1, 2, 3, 2], [("f", "t.fail_on", {"bad": 2})], ["loop.item -> f.x"],
                       continue_on_error=True, parallel=True)
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED
    out = result.outputs["loop"]
    assert out["results"] == [1, None, 3, None]
    assert out["errors"] == [{"index": 1, "node": "f", "error": "ValueError: item 2 is bad"},
                             {"index": 3, "node": "f", "error": "ValueError: item 2 is bad"}]
    assert out["execution_info"]["failed"] == 2 and out["execution_info"]["completed"] == 2


async def test_item_retries_rerun_the_body_with_backoff() -> None:
    attempts.clear()
    graph = loop_graph(["a", "b"], [("f", "t.flaky", {"failures": 2})], ["loop.item -> f.x"],
                       max_retries=3, retry_wait=0.05)
    started = time.perf_counter()
    result, rec = await run_graph(graph, REG)
    elapsed = time.perf_counter() - started
    assert result.outputs["loop"]["results"] == ["a", "b"]
    assert attempts == {"a": 3, "b": 3}
    assert [e["attempt"] for e in rec.of("loop_iteration")] == [1, 2, 3, 1, 2, 3]
    assert elapsed >= 2 * (0.05 + 0.1), "waits of 0.05 s then 0.1 s per item"

    attempts.clear()
    graph = loop_graph(["a"], [("f", "t.flaky", {"failures": 5})], ["loop.item -> f.x"],
                       max_retries=2)
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.FAILED and attempts == {"a": 2}


async def test_parallel_items_are_isolated_even_for_nested_values() -> None:
    graph = loop_graph([1, 2, 3], [("v", "t.vars")], ["loop.item -> v.item"], parallel=True)
    manager = ExecutionManager(graph, REG, variables={"config": {"seen": []}})
    result = await manager.run()
    assert result.outputs["loop"]["results"] == [([1], 1), ([2], 2), ([3], 3)]
    assert manager.variables == {"config": {"seen": []}}, "the run's variables are untouched"


async def test_sequential_items_share_the_context() -> None:
    graph = loop_graph([1, 2, 3], [("a", "t.accumulate")], ["loop.item -> a.item"])
    result, _ = await run_graph(graph, REG)
    assert result.outputs["loop"]["results"] == [1, 3, 6]


async def test_nested_loops_reset_on_every_outer_iteration() -> None:
    graph = graph_of(
        [("rows", "t.value", {"value": [[1, 2], [3], [4, 5, 6]]}),
         ("outer", "control.for_each", {}, {"body": ["inner", "sq"]}),
         ("inner", "control.for_each", {}, {"body": ["sq"]}),
         ("sq", "t.square")],
        ["rows.out -> outer.items", "outer.item -> inner.items", "inner.item -> sq.x"])
    graph.nodes["outer"].metadata["body"] = ["sq", "inner"]
    result, rec = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    assert result.outputs["outer"]["results"] == [[1, 4], [9], [16, 25, 36]]
    inner_iterations = [e["iteration"] for e in rec.of("loop_iteration") if e["node"] == "inner"]
    assert inner_iterations == [0, 1, 0, 0, 1, 2], "the inner loop starts over each time"


async def test_code_node_in_a_loop_sees_inputs_and_context_and_reports_its_line() -> None:
    code = "ctx.vars['n'] = ctx.vars.get('n', 0) + 1\nreturn item * ctx.vars['n']"
    graph = loop_graph([5, 5, 5], [("c", "control.code", {"code": code, "inputs": "item"})],
                       ["loop.item -> c.item"])
    result, _ = await run_graph(graph, REG)
    assert result.outputs["loop"]["results"] == [5, 10, 15]

    graph = loop_graph([1, 0], [("c", "control.code", {"code": "x = 1\nreturn 1 / item",
                                                       "inputs": "item"})],
                       ["loop.item -> c.item"])
    result, _ = await run_graph(graph, REG)
    assert 'File "<code node c>", line 2' in (result.nodes["loop"].traceback or "")


# ------------------------------------------------------------------ while


def while_graph(start: float, body: list[tuple[Any, ...]], wires: list[str],
                **settings: Any) -> Any:
    meta = {"execution_mode": "loop", "loop_type": "while", "body": [b[0] for b in body],
            **settings}
    return graph_of([("start", "t.value", {"value": start}), ("w", "control.while", {}, meta),
                     *body, ("after", "t.value")],
                    ["start.out -> w.value", "w.out -> after.value", *wires])


async def test_while_counts_down_along_the_back_edge() -> None:
    graph = while_graph(5, [("d", "t.dec")], ["w.out -> d.x", "d.out -> w.value"])
    result, rec = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    assert result.outputs["after"] == {"out": 0}
    assert [e["value"] for e in rec.of("loop_iteration")] == [5, 4, 3, 2, 1]
    assert result.nodes["w"].iterations == 5


async def test_while_condition_carried_on_its_own_back_edge() -> None:
    graph = while_graph(0, [("i", "t.inc"), ("check", "t.lt", {"limit": 4})],
                        ["w.out -> i.x", "i.out -> check.x", "i.out -> w.value",
                         "check.out -> w.condition"])
    graph.nodes["w"].properties["condition"] = True
    result, _ = await run_graph(graph, REG)
    assert result.outputs["after"] == {"out": 4}


async def test_loop_back_to_is_the_seed_form_of_the_back_edge() -> None:
    graph = while_graph(3, [("d", "t.dec")], ["w.out -> d.x"], loop_back_to="d")
    result, _ = await run_graph(graph, REG)
    assert result.outputs["after"] == {"out": 0}


async def test_while_guard_fails_naming_the_node() -> None:
    graph = while_graph(1, [("i", "t.inc")], ["w.out -> i.x", "i.out -> w.value"],
                        max_iterations=50)
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.FAILED
    assert result.nodes["w"].error == ("LoopLimitError: w ran 50 iterations (max_iterations) "
                                       "and its condition still holds")
    assert result.nodes["w"].iterations == 50


async def test_while_unbounded_runs_past_the_default_limit() -> None:
    graph = while_graph(1500, [("d", "t.dec")], ["w.out -> d.x", "d.out -> w.value"],
                        max_iterations=-1)
    result, _ = await run_graph(graph, REG)
    assert result.outputs["after"] == {"out": 0}
    graph.nodes["w"].metadata["max_iterations"] = 1000
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.FAILED, "the default guard is 1000"


async def test_while_body_failure_fails_the_loop_with_the_iteration() -> None:
    graph = while_graph(3, [("f", "t.fail_on", {"bad": 2}), ("d", "t.dec")],
                        ["w.out -> f.x", "f.out -> d.x", "d.out -> w.value"])
    result, _ = await run_graph(graph, REG)
    assert result.nodes["w"].error == "iteration 1: f: ValueError: item 2 is bad"


# ------------------------------------------------------------------ validation


def errors_of(graph: Any) -> list[str]:
    return [str(i) for i in validate(graph, REG) if i.severity == "error"]


def test_a_cycle_is_valid_only_through_a_while_loop() -> None:
    graph = while_graph(3, [("d", "t.dec")], ["w.out -> d.x", "d.out -> w.value"])
    assert errors_of(graph) == []
    graph.nodes["w"].metadata["loop_type"] = "for_each"
    assert any("only a while loop's body may wire back" in e for e in errors_of(graph))


def test_body_nodes_cannot_feed_nodes_outside() -> None:
    graph = loop_graph([1], [("s", "t.square")], ["loop.item -> s.x", "s.out -> leak.x"],
                       outside=[("leak", "t.square")])
    assert any("cannot feed leak outside it" in e for e in errors_of(graph))


def test_a_node_in_two_unrelated_bodies_is_an_error() -> None:
    graph = graph_of([("a", "control.for_each", {"items": [1]}, {"body": ["s"]}),
                      ("b", "control.for_each", {"items": [1]}, {"body": ["s"]}),
                      ("s", "t.square", {"x": 1})])
    assert any("which do not nest" in e for e in errors_of(graph))


def test_while_needs_a_carried_value_and_a_body() -> None:
    graph = while_graph(3, [("d", "t.dec")], ["w.out -> d.x"])
    assert any("needs a value carried back" in e for e in errors_of(graph))
    graph.nodes["w"].metadata["body"] = []
    assert any("metadata.body must list" in e for e in errors_of(graph))


def test_loop_item_port_cannot_feed_a_node_inside_from_a_wrong_port() -> None:
    graph = loop_graph([1], [("s", "t.square")], ["loop.results -> s.x"])
    assert any("output 'results' cannot feed s inside its own body" in e
               for e in errors_of(graph))


@pytest.mark.parametrize("parallel", [False, True])
async def test_stop_during_a_for_each_leaves_nothing_running(parallel: bool) -> None:
    finally_ran.clear()
    graph = loop_graph(list(range(6)), [("t", "t.tracked", {"seconds": 5.0})],
                       ["loop.item -> t.x"], parallel=parallel, max_concurrent=3)
    bus = EventBus()
    manager = ExecutionManager(graph, REG, bus=bus)
    task = asyncio.create_task(manager.run())
    await asyncio.sleep(0.1)
    manager.request_stop(grace=0)
    result = await asyncio.wait_for(task, 2)
    assert result.status is RunStatus.STOPPED
    assert result.nodes["loop"].state is NodeState.STOPPED
    assert sorted(finally_ran) == ([0, 1, 2] if parallel else [0])


async def test_body_of_a_skipped_loop_is_skipped_with_the_same_reason() -> None:
    graph = loop_graph([1], [("s", "t.square")], ["loop.item -> s.x", "gate.false -> items.value"],
                       outside=[("gate", "control.if", {"value": True})])
    result, rec = await run_graph(graph, REG)
    assert states(result)["loop"] == "skipped"
    assert states(result)["s"] == "skipped"
    assert result.nodes["s"].reason == result.nodes["loop"].reason == "gate took 'true'"
    assert ("node_skipped", "s") in [(e["type"], e.get("node")) for e in rec.events]
