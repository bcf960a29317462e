"""``ctx.break_loop()``: leaving a for-each or a while loop early (issue 10, point 10)."""

from __future__ import annotations

import asyncio
from typing import Any

from helpers import graph_of, registry_of, run_graph, states

from loom import node
from loom.engine import RunStatus


@node(id="t.value", cheap=True)
def value(value: Any = None) -> Any:
    return value


@node(id="t.inc", cheap=True)
def inc(x: float) -> float:
    return x + 1


@node(id="t.break_at", cheap=True)
def break_at(x: Any, at: Any = None, ctx: Any = None) -> Any:
    if x == at:
        ctx.break_loop()
    return x


@node(id="t.slow_break_at")
async def slow_break_at(x: Any, at: Any = None, ctx: Any = None) -> Any:
    await asyncio.sleep(0.02)
    if x == at:
        ctx.break_loop()
    await asyncio.sleep(0.02)  # items still running after the break finish
    return x


@node(id="t.break_now")
def break_now(x: Any = None, ctx: Any = None) -> Any:
    ctx.break_loop()  # in a worker thread: the request crosses to the loop
    return x


REG = registry_of(value, inc, break_at, slow_break_at, break_now, builtins=True)


def for_each(items: list[Any], body: list[tuple[Any, ...]], wires: list[str],
             **settings: Any) -> Any:
    meta = {"body": [entry[0] for entry in body], **settings}
    return graph_of([("items", "t.value", {"value": items}),
                     ("loop", "control.for_each", {}, meta), *body],
                    ["items.out -> loop.items", *wires])


async def test_break_ends_a_for_each_and_reports_the_rest_as_not_run() -> None:
    graph = for_each(list(range(10)), [("b", "t.break_at", {"at": 3}), ("i", "t.inc")],
                     ["loop.item -> b.x", "b.out -> i.x"])
    result, rec = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    out = result.outputs["loop"]
    # The item that asked still finishes its body (i ran for item 3).
    assert out["results"] == [1, 2, 3, 4]
    info = out["execution_info"]
    assert (info["total"], info["completed"], info["failed"], info["not_run"]) == (10, 4, 0, 6)
    assert [e["iteration"] for e in rec.of("loop_iteration")] == [0, 1, 2, 3]
    assert [(e["by"], e["not_run"]) for e in rec.of("loop_break")] == [("b", 6)]


async def test_break_in_a_thread_node_ends_the_loop() -> None:
    graph = for_each([5, 6, 7], [("b", "t.break_now")], ["loop.item -> b.x"])
    result, _ = await run_graph(graph, REG)
    assert result.outputs["loop"]["results"] == [5]
    assert result.outputs["loop"]["execution_info"]["not_run"] == 2


async def test_break_in_a_parallel_for_each_starts_no_new_items_and_lets_running_ones_finish(
        ) -> None:
    graph = for_each(list(range(40)), [("b", "t.slow_break_at", {"at": 1})],
                     ["loop.item -> b.x"], parallel=True, max_concurrent=4)
    result, rec = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    out = result.outputs["loop"]
    ran = len(out["results"])
    assert 2 <= ran < 40
    assert out["results"] == list(range(ran)), "every item started also finished"
    assert out["execution_info"]["not_run"] == 40 - ran
    started = sorted(e["iteration"] for e in rec.of("loop_iteration"))
    assert started == list(range(ran))
    assert not rec.of("node_stopped"), "running items finish; none is cancelled"


async def test_break_ends_a_while_after_the_current_iteration() -> None:
    # Counts up for ever (loop_type infinite); the body ends it at 5.
    graph = graph_of(
        [("start", "t.value", {"value": 1}),
         ("w", "control.while", {}, {"loop_type": "infinite", "body": ["i", "b"]}),
         ("i", "t.inc"), ("b", "t.break_at", {"at": 5}), ("after", "t.value")],
        ["start.out -> w.value", "w.out -> i.x", "i.out -> b.x", "b.out -> w.value",
         "w.out -> after.value"])
    result, rec = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    assert result.outputs["after"] == {"out": 5}, "the value carried back by the last iteration"
    assert result.nodes["w"].iterations == 4
    assert [e["by"] for e in rec.of("loop_break")] == ["b"]


async def test_break_ends_only_the_innermost_loop() -> None:
    graph = graph_of(
        [("rows", "t.value", {"value": [[1, 2, 3], [4, 2, 6]]}),
         ("outer", "control.for_each", {}, {"body": ["b", "inner"]}),
         ("inner", "control.for_each", {}, {"body": ["b"]}),
         ("b", "t.break_at", {"at": 2})],
        ["rows.out -> outer.items", "outer.item -> inner.items", "inner.item -> b.x"])
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    assert result.outputs["outer"]["results"] == [[1, 2], [4, 2]]
    assert result.outputs["outer"]["execution_info"]["not_run"] == 0


async def test_break_outside_a_loop_fails_the_node_saying_so() -> None:
    graph = graph_of([("b", "t.break_at", {"x": 1, "at": 1})], [])
    result, _ = await run_graph(graph, REG)
    assert states(result) == {"b": "failed"}
    assert result.nodes["b"].error == ("RuntimeError: node b: ctx.break_loop() called outside "
                                       "a loop body")
