"""Issue 10, points 2 and 3: failures keep their numbers, and no setting is silently ignored."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import graph_of, registry_of, run_graph, states

from loom import cli, node
from loom.engine import RunStatus, validate
from loom.graph import dumps_graph, loads_graph, save_graph


@node(id="t.value", cheap=True)
def value(value: Any = None) -> Any:
    return value


@node(id="t.fail_on", cheap=True)
def fail_on(x: Any, bad: Any = None) -> Any:
    if x == bad or (isinstance(x, list) and bad in x):
        raise ValueError(f"item {x!r} is bad")
    return x


@node(id="t.nap")
async def nap(x: Any = None, seconds: float = 0.3) -> Any:
    await asyncio.sleep(seconds)
    return x


@node(id="t.boom")
async def boom(x: Any = None) -> Any:
    raise ValueError("branch broke")


tries: dict[str, int] = {}


@node(id="t.flaky")
async def flaky(x: Any = None, tag: str = "", failures: int = 1) -> Any:
    tries[tag] = tries.get(tag, 0) + 1
    if tries[tag] <= failures:
        raise ConnectionError(f"{tag}: attempt {tries[tag]} failed")
    return tag


REG = registry_of(value, fail_on, nap, boom, flaky, builtins=True)


def loop_graph(items: list[Any], body: list[tuple[Any, ...]], wires: list[str],
               **settings: Any) -> Any:
    meta = {"execution_mode": "loop", "loop_type": "for_each",
            "body": [entry[0] for entry in body], **settings}
    return graph_of([("items", "t.value", {"value": items}),
                     ("loop", "control.for_each", {}, meta), *body],
                    ["items.out -> loop.items", *wires])


def while_graph(body: list[tuple[Any, ...]], wires: list[str], **settings: Any) -> Any:
    meta = {"execution_mode": "loop", "loop_type": "while", "body": [b[0] for b in body],
            **settings}
    return graph_of([("start", "t.value", {"value": 1}), ("w", "control.while", {}, meta),
                     *body], ["start.out -> w.value", *wires])


def parallel_graph(branches: list[list[tuple[Any, ...]]], **settings: Any) -> Any:
    meta = {"parallel_branches": [[n[0] for n in branch] for branch in branches], **settings}
    nodes: list[tuple[Any, ...]] = [("v", "t.value", {"value": 1}),
                                    ("p", "control.parallel", {}, meta)]
    links = ["v.out -> p.value"]
    for branch in branches:
        nodes += branch
        links.append(f"p.value -> {branch[0][0]}.x")
    return graph_of(nodes, links)


# ------------------------------------------------------------------ 2: failures keep numbers


async def test_a_failed_for_each_keeps_its_execution_info_in_record_error_and_json() -> None:
    graph = loop_graph([1, 2, 3, 4], [("f", "t.fail_on", {"bad": 3})], ["loop.item -> f.x"])
    result, events = await run_graph(graph, REG)
    assert result.status is RunStatus.FAILED
    info = result.nodes["loop"].execution_info
    assert info is not None
    assert {k: info[k] for k in ("total", "completed", "failed", "concurrent_peak")} == {
        "total": 4, "completed": 2, "failed": 1, "concurrent_peak": 1}
    assert info["duration_ms"] >= 0
    doc = json.loads(json.dumps(result.to_json()))
    assert doc["nodes"]["loop"]["execution_info"]["failed"] == 1
    [loop_error] = [e for e in doc["errors"] if e["node"] == "loop"]
    assert loop_error["execution_info"]["completed"] == 2
    [failed] = [e for e in events.of("node_failed") if e["node"] == "loop"]
    assert failed["execution_info"]["total"] == 4  # the error's own execution_info


async def test_batched_loops_count_items_as_well_as_batches() -> None:
    graph = loop_graph([1, 2, 3, 4, 5], [("f", "t.fail_on", {"bad": 3})], ["loop.item -> f.x"],
                       batch_size=2, continue_on_error=True)
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED
    info = result.outputs["loop"]["execution_info"]
    assert {k: info[k] for k in ("total", "completed", "failed", "batch_size", "items_total",
                                 "items_completed", "items_failed")} == {
        "total": 3, "completed": 2, "failed": 1, "batch_size": 2, "items_total": 5,
        "items_completed": 3, "items_failed": 2}
    assert result.nodes["loop"].execution_info == info


async def test_a_failed_parallel_node_keeps_its_execution_info() -> None:
    graph = parallel_graph([[("ok", "t.nap", {"seconds": 0.0})], [("bad", "t.boom")]],
                           strategy="sequential")
    result, events = await run_graph(graph, REG)
    assert result.status is RunStatus.FAILED
    info = result.nodes["p"].execution_info
    assert info is not None
    assert {k: info[k] for k in ("total", "completed", "failed", "concurrent_peak")} == {
        "total": 2, "completed": 1, "failed": 1, "concurrent_peak": 1}
    assert result.to_json()["nodes"]["p"]["execution_info"]["failed"] == 1
    [failed] = [e for e in events.of("node_failed") if e["node"] == "p"]
    assert failed["execution_info"]["completed"] == 1


async def test_a_failed_while_loop_reports_its_iterations() -> None:
    graph = while_graph([("n", "t.value")], ["w.out -> n.value", "n.out -> w.value"],
                        max_iterations=3)
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.FAILED
    info = result.nodes["w"].execution_info
    assert info is not None and info["iterations"] == 3


# ------------------------------------------------------------------ 3: no setting ignored


async def test_a_for_each_timeout_is_a_deadline_for_the_whole_loop() -> None:
    graph = loop_graph([1, 2, 3], [("s", "t.nap", {"seconds": 0.3})], ["loop.item -> s.x"],
                       timeout=0.5)
    result, _ = await asyncio.wait_for(run_graph(graph, REG), 30)
    assert result.status is RunStatus.FAILED, "three items of 0.3 s cannot fit in 0.5 s"
    rec = result.nodes["loop"]
    assert rec.error is not None and "LoopTimeout" in rec.error and "0.5 s" in rec.error
    assert rec.execution_info is not None and rec.execution_info["completed"] == 1
    assert result.nodes["s"].state.value == "stopped"
    assert result.nodes["s"].reason == "cancelled: timeout of 0.5 s"


async def test_a_while_timeout_ends_an_unbounded_loop() -> None:
    graph = while_graph([("n", "t.nap", {"seconds": 0.01})], ["w.out -> n.x", "n.out -> w.value"],
                        max_iterations=-1, timeout=0.3)
    result, _ = await asyncio.wait_for(run_graph(graph, REG), 30)
    assert result.status is RunStatus.FAILED
    rec = result.nodes["w"]
    assert rec.error is not None and "timeout of 0.3 s" in rec.error
    assert rec.execution_info is not None and rec.execution_info["iterations"] >= 1


async def test_a_timeout_on_a_loop_that_fits_changes_nothing() -> None:
    graph = loop_graph([1, 2], [("s", "t.nap", {"seconds": 0.0})], ["loop.item -> s.x"],
                       timeout=30)
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED
    assert result.outputs["loop"]["results"] == [1, 2]


async def test_parallel_max_retries_retries_each_failed_branch() -> None:
    tries.clear()
    graph = parallel_graph([[("a", "t.flaky", {"tag": "a", "failures": 1})],
                            [("b", "t.flaky", {"tag": "b", "failures": 0})]],
                           max_retries=2, retry_wait=0.01)
    result, events = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    assert result.outputs["p"]["results"] == {"a": "a", "b": "b"}
    assert tries == {"a": 2, "b": 1}
    [retry] = events.of("node_retrying")
    assert (retry["node"], retry["branch"], retry["attempt"]) == ("p", "a", 2)
    assert result.outputs["p"]["execution_info"]["failed"] == 0

    tries.clear()
    graph = parallel_graph([[("a", "t.flaky", {"tag": "a", "failures": 5})]], max_retries=3,
                           on_error="continue")
    result, _ = await run_graph(graph, REG)
    assert tries == {"a": 3}
    assert result.outputs["p"]["errors"][0]["error"].endswith("a: attempt 3 failed")


def _warnings(graph: Any) -> list[str]:
    return [str(i) for i in validate(graph, REG) if i.severity == "warning"]


def test_metadata_keys_the_mode_does_not_read_are_warnings_naming_node_and_key() -> None:
    graph = graph_of([("a", "t.value", {"value": 1}, {"parallel": True, "timeout": 1}),
                      ("b", "t.value", {}, {"max_retries": 2, "retry_wait": 0.1})],
                     ["a.out -> b.value"])
    assert _warnings(graph) == [
        "a: metadata.parallel is not read by execution mode 'sequential': it is kept in "
        "the file but has no effect"]
    loop = while_graph([("n", "t.value")], ["w.out -> n.value", "n.out -> w.value"],
                       batch_size=4, timeout=2)
    assert _warnings(loop) == [
        "w: metadata.batch_size is not read by execution mode 'loop' (while): it is kept "
        "in the file but has no effect"]
    each = loop_graph([1], [("f", "t.fail_on")], ["loop.item -> f.x"], max_iterations=5,
                      parallel=True)
    assert [w.split(" is ")[0] for w in _warnings(each)] == ["loop: metadata.max_iterations"]
    clean = parallel_graph([[("a", "t.nap")]], max_retries=2, timeout=1, global_timeout=2)
    assert _warnings(clean) == []
    timer = graph_of([("t", "event.timer", {}, {"interval": 0.1, "count": 2,
                                                "max_concurrent_waves": 1})])
    assert _warnings(timer) == []


async def test_unread_keys_warn_but_never_block_and_stay_in_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    graph = graph_of([("a", "t.value", {"value": 7}, {"frobnicate": 3})])
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED and states(result) == {"a": "done"}
    assert [i.message for i in result.issues if i.severity == "warning"] == [
        "metadata.frobnicate is not read by execution mode 'sequential': it is kept in the "
        "file but has no effect"]
    assert loads_graph(dumps_graph(graph)).nodes["a"].metadata == {"frobnicate": 3}
    real = graph_of([("a", "time.delay", {"seconds": 0}, {"frobnicate": 3})])
    path = tmp_path / "g.loom"
    save_graph(real, path)
    assert cli.main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "warning: a: metadata.frobnicate is not read" in out and "valid" in out
