"""Parallel branches: concurrency, isolation, error policies, timeouts, merging, streaming."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from helpers import graph_of, registry_of, run_graph, states

from loom import node
from loom.engine import EventBus, ExecutionManager, NodeState, RunStatus, validate


@node(id="t.value", cheap=True)
def value(value: Any = None) -> Any:
    return value


@node(id="t.nap")
async def nap(x: Any = None, seconds: float = 0.2, tag: str = "") -> Any:
    await asyncio.sleep(seconds)
    return tag or x


cleanup: list[str] = []
running = 0
peak = 0


@node(id="t.sleeper")
async def sleeper(x: Any = None, seconds: float = 5.0, tag: str = "") -> Any:
    global running, peak
    running += 1
    peak = max(peak, running)
    try:
        await asyncio.sleep(seconds)
    finally:
        running -= 1
        cleanup.append(tag)
    return tag


@node(id="t.boom")
async def boom(x: Any = None, after: float = 0.0) -> Any:
    await asyncio.sleep(after)
    raise ValueError("branch broke")


@node(id="t.mutate")
def mutate(x: Any = None, tag: str = "", ctx: Any = None) -> Any:
    ctx.vars["shared"]["tags"].append(tag)
    ctx.vars["shared"]["owner"] = tag
    ctx.vars["top"] = tag
    time.sleep(0.02)  # overlap with the other branches
    return [list(ctx.vars["shared"]["tags"]), ctx.vars["shared"]["owner"], ctx.vars["top"]]


@node(id="t.add", cheap=True)
def add(a: float, b: float = 1.0) -> float:
    return a + b


REG = registry_of(value, nap, sleeper, boom, mutate, add, builtins=True)


def parallel_graph(branches: list[list[tuple[Any, ...]]], wires: list[str] = (),  # type: ignore[assignment]
                   value_in: Any = 1, **settings: Any) -> Any:
    """A control.parallel fed ``value_in``; each branch's nodes are wired from p.value in turn."""
    meta = {"parallel_branches": [[n[0] for n in branch] for branch in branches], **settings}
    nodes: list[tuple[Any, ...]] = [("v", "t.value", {"value": value_in}),
                                    ("p", "control.parallel", {}, meta)]
    links = ["v.out -> p.value"]
    for branch in branches:
        nodes += branch
        first = branch[0]
        links.append(f"p.value -> {first[0]}.x")
    return graph_of(nodes, [*links, *wires])


async def test_eight_branches_of_200ms_take_about_200ms() -> None:
    graph = parallel_graph([[(f"b{i}", "t.nap", {"tag": f"r{i}"})] for i in range(8)])
    started = time.perf_counter()
    result, _ = await run_graph(graph, REG)
    elapsed = time.perf_counter() - started
    assert result.status is RunStatus.SUCCEEDED
    assert result.outputs["p"]["results"] == {f"b{i}": f"r{i}" for i in range(8)}
    assert elapsed < 0.35, f"8 x 0.2 s in parallel took {elapsed:.2f} s"
    info = result.outputs["p"]["execution_info"]
    assert info == {**info, "total": 8, "completed": 8, "failed": 0, "concurrent_peak": 8}


async def test_value_and_captured_inputs_reach_branches_and_results_keep_order() -> None:
    graph = graph_of(
        [("v", "t.value", {"value": 5}), ("k", "t.value", {"value": 100}),
         ("p", "control.parallel", {}, {"parallel_branches": [["a"], ["b"], ["c1", "c2"]],
                                        "merge_strategy": "array"}),
         ("a", "t.add", {"b": 10}), ("b", "t.add"), ("c1", "t.add"), ("c2", "t.add")],
        ["v.out -> p.value", "p.value -> a.a", "p.value -> b.a", "k.out -> b.b",
         "p.value -> c1.a", "c1.out -> c2.a"])
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    assert result.outputs["p"]["results"] == [15, 105, 7]


async def test_branches_are_isolated_even_for_nested_values() -> None:
    graph = parallel_graph([[(f"m{i}", "t.mutate", {"tag": f"t{i}"})] for i in range(3)])
    manager = ExecutionManager(graph, REG, variables={"shared": {"tags": [], "owner": None},
                                                       "top": None})
    result = await manager.run()
    assert result.outputs["p"]["results"] == {f"m{i}": [[f"t{i}"], f"t{i}", f"t{i}"]
                                              for i in range(3)}
    assert manager.variables == {"shared": {"tags": [], "owner": None}, "top": None}


async def test_fail_fast_cancels_running_branches_quickly_and_runs_their_finally() -> None:
    cleanup.clear()
    graph = parallel_graph([[("slow", "t.sleeper", {"seconds": 5.0, "tag": "slow"})],
                            [("bad", "t.boom", {"after": 0.1})], [("after", "t.value")]])
    graph.nodes["p"].metadata["parallel_branches"] = [["slow"], ["bad"]]
    graph.connections = [c for c in graph.connections if c.dst_node != "after"]
    graph.connect("p", "results", "after", "value")
    bus = EventBus()
    failed_at: list[float] = []
    bus.subscribe(lambda batch: failed_at.extend(
        time.perf_counter() for e in batch if e["type"] == "branch_completed"
        and e["status"] == "failed"))
    started = time.perf_counter()
    result = await ExecutionManager(graph, REG, bus=bus).run()
    ended = time.perf_counter()
    assert result.status is RunStatus.FAILED
    assert result.nodes["p"].error == "branch 'bad': bad: ValueError: branch broke"
    assert cleanup == ["slow"], "the cancelled branch's finally ran"
    assert ended - failed_at[0] < 0.5, "the 5 s branch ended within 0.5 s of the failure"
    assert ended - started < 1.0
    assert states(result)["after"] == "skipped"


async def test_continue_keeps_partial_results_with_null_slots_and_errors() -> None:
    graph = parallel_graph([[("ok", "t.nap", {"seconds": 0.01, "tag": "fine"})],
                            [("bad", "t.boom")]], on_error="continue")
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED
    out = result.outputs["p"]
    assert out["results"] == {"ok": "fine", "bad": None}
    assert out["errors"] == [{"branch": "bad", "node": "bad",
                              "error": "branch 'bad': bad: ValueError: branch broke"}]
    assert out["execution_info"]["failed"] == 1 and out["execution_info"]["completed"] == 1
    graph.nodes["p"].metadata["merge_strategy"] = "array"
    result, _ = await run_graph(graph, REG)
    assert result.outputs["p"]["results"] == ["fine", None]


async def test_ignore_drops_failed_branches() -> None:
    graph = parallel_graph([[("ok", "t.nap", {"seconds": 0.01, "tag": "fine"})],
                            [("bad", "t.boom")]], on_error="ignore", merge_strategy="array")
    result, _ = await run_graph(graph, REG)
    assert result.outputs["p"]["results"] == ["fine"]
    assert result.outputs["p"]["errors"] == []
    assert result.outputs["p"]["execution_info"]["failed"] == 1


async def test_concurrent_peak_never_exceeds_max_concurrency_across_200_branches() -> None:
    global peak, running
    peak = running = 0
    graph = parallel_graph([[(f"s{i}", "t.sleeper", {"seconds": 0.01, "tag": str(i)})]
                            for i in range(200)], max_concurrency=7)
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED
    assert result.outputs["p"]["execution_info"]["concurrent_peak"] == 7
    assert peak == 7, "measured inside the nodes too"
    assert len(result.outputs["p"]["results"]) == 200


async def test_per_branch_timeout_and_global_timeout() -> None:
    graph = parallel_graph([[("quick", "t.nap", {"seconds": 0.01, "tag": "q"})],
                            [("stuck", "t.sleeper", {"seconds": 5.0, "tag": "stuck"})]],
                           timeout=0.1, on_error="continue")
    started = time.perf_counter()
    result, _ = await run_graph(graph, REG)
    assert time.perf_counter() - started < 1.0
    assert result.outputs["p"]["results"] == {"quick": "q", "stuck": None}
    assert result.outputs["p"]["errors"][0]["error"] == "branch 'stuck' timed out after 0.1 s"

    graph.nodes["p"].metadata.update(timeout=None, global_timeout=0.15)
    result, _ = await run_graph(graph, REG)
    assert result.outputs["p"]["results"] == {"quick": "q", "stuck": None}
    assert "global_timeout of 0.15 s reached" in result.outputs["p"]["errors"][0]["error"]

    graph.nodes["p"].metadata["on_error"] = "fail_fast"
    result, _ = await run_graph(graph, REG)
    assert result.nodes["p"].error == "BranchTimeout: p: global_timeout of 0.15 s reached"


async def test_sequential_strategy_runs_one_branch_at_a_time() -> None:
    graph = parallel_graph([[(f"b{i}", "t.nap", {"seconds": 0.05, "tag": str(i)})]
                            for i in range(4)], strategy="sequential")
    started = time.perf_counter()
    result, rec = await run_graph(graph, REG)
    assert time.perf_counter() - started >= 0.2
    assert result.outputs["p"]["execution_info"]["concurrent_peak"] == 1
    assert [e["branch"] for e in rec.of("branch_completed")] == ["b0", "b1", "b2", "b3"]


async def test_branch_results_stream_as_each_branch_finishes() -> None:
    graph = parallel_graph([[("slow", "t.nap", {"seconds": 0.3, "tag": "s"})],
                            [("fast", "t.nap", {"seconds": 0.05, "tag": "f"})]])
    _result, rec = await run_graph(graph, REG)
    completed = rec.of("branch_completed")
    assert [e["branch"] for e in completed] == ["fast", "slow"]
    assert [e["total"] for e in completed] == [2, 2], "progress needs the branch count"
    assert completed[0]["result"] == "f" and completed[0]["status"] == "done"
    finished = next(e for e in rec.of("node_finished") if e["node"] == "p")
    assert completed[0]["t"] < finished["t"] - 0.2, "the fast result came out long before the end"


async def test_named_branches_and_scope_on_events() -> None:
    graph = parallel_graph([[("x1", "t.nap", {"seconds": 0.01, "tag": "one"})],
                            [("x2", "t.nap", {"seconds": 0.01, "tag": "two"})]])
    graph.nodes["p"].metadata["parallel_branches"] = {"first": ["x1"], "second": ["x2"]}
    result, rec = await run_graph(graph, REG)
    assert result.outputs["p"]["results"] == {"first": "one", "second": "two"}
    scopes = {e["node"]: e["scope"] for e in rec.of("node_finished") if "scope" in e}
    assert scopes == {"x1": [["p", "first"]], "x2": [["p", "second"]]}


async def test_parallel_inside_a_loop_and_stop() -> None:
    cleanup.clear()
    graph = graph_of(
        [("items", "t.value", {"value": [1, 2, 3]}),
         ("loop", "control.for_each", {}, {"body": ["p", "a", "b"], "parallel": True}),
         ("p", "control.parallel", {}, {"parallel_branches": [["a"], ["b"]]}),
         ("a", "t.sleeper", {"seconds": 5.0, "tag": "a"}),
         ("b", "t.sleeper", {"seconds": 5.0, "tag": "b"})],
        ["items.out -> loop.items", "loop.item -> p.value", "p.value -> a.x", "p.value -> b.x"])
    graph.nodes["loop"].metadata["body"] = ["a", "b", "p"]
    assert [str(i) for i in validate(graph, REG) if i.severity == "error"] == []
    manager = ExecutionManager(graph, REG)
    task = asyncio.create_task(manager.run())
    await asyncio.sleep(0.1)
    manager.request_stop(grace=0)
    result = await asyncio.wait_for(task, 2)
    assert result.status is RunStatus.STOPPED
    assert sorted(cleanup) == ["a", "a", "a", "b", "b", "b"], "all six branches cleaned up"
    assert result.nodes["loop"].state is NodeState.STOPPED


def test_validation_of_branches() -> None:
    graph = parallel_graph([[("a", "t.nap")], [("a2", "t.nap")]])
    graph.nodes["p"].metadata["parallel_branches"] = [["a"], ["a", "a2"]]
    errors = [str(i) for i in validate(graph, REG) if i.severity == "error"]
    assert any("is in branches" in e for e in errors)
    graph.nodes["p"].metadata["parallel_branches"] = []
    errors = [str(i) for i in validate(graph, REG) if i.severity == "error"]
    assert any("at least one branch" in e for e in errors)
    graph.nodes["p"].metadata["parallel_branches"] = [["a"], ["ghost"]]
    errors = [str(i) for i in validate(graph, REG) if i.severity == "error"]
    assert any("'ghost'" in e for e in errors)


@pytest.mark.parametrize("merge", ["object", "array"])
async def test_branch_result_of_a_node_with_several_outputs_is_a_dict(merge: str) -> None:
    graph = parallel_graph([[("c", "control.code", {"code": "return x, x * 2", "inputs": "x",
                                                    "outputs": "one, two"})]],
                           merge_strategy=merge, value_in=4)
    result, _ = await run_graph(graph, REG)
    expected = {"one": 4, "two": 8}
    assert result.outputs["p"]["results"] == ({"c": expected} if merge == "object"
                                              else [expected])
