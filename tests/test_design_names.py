"""The design document's own names (issue 10, point 7): ``loop_type: "infinite"``,
``condition_func`` and Blok's ``fail-fast`` / ``continue-partial``, all accepted and
written back as they were read."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import graph_of, registry_of, run_graph, states

from loom import node, predicate
from loom.engine import RunStatus, validate
from loom.graph.fileformat import dumps_graph, loads_graph


@node(id="t.value", cheap=True)
def value(value: Any = None) -> Any:
    return value


@node(id="t.dec", cheap=True)
def dec(x: float) -> float:
    return x - 1


@node(id="t.boom", cheap=True)
def boom(value: Any = None) -> Any:
    raise ValueError("boom")


@predicate(name="big")
def is_big(value: Any) -> bool:
    return isinstance(value, (int, float)) and value > 100


REG = registry_of(value, dec, boom, builtins=True)
REG.add_predicate(is_big, origin="tests")


def messages(graph: Any) -> list[str]:
    return [str(issue) for issue in validate(graph, REG)]


# ------------------------------------------------------------------ loop_type infinite


def infinite_graph(start: int, **meta: Any) -> Any:
    return graph_of(
        [("start", "t.value", {"value": start}),
         ("w", "control.while", {}, {"loop_type": "infinite", "body": ["d"], **meta}),
         ("d", "t.dec"), ("after", "t.value")],
        ["start.out -> w.value", "w.out -> d.x", "d.out -> w.value", "w.out -> after.value"])


async def test_infinite_loop_is_a_while_without_an_iteration_limit() -> None:
    graph = infinite_graph(1200, max_iterations=5)  # the limit does not apply
    # ...and validation says so: a setting the loop does not read is a warning (issue 10,
    # point 3), which never blocks the run.
    assert messages(graph) == ["w: metadata.max_iterations is not read by execution mode "
                               "'loop' (infinite): it is kept in the file but has no effect"]
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    assert result.outputs["after"] == {"out": 0}
    assert result.nodes["w"].iterations == 1200


def test_infinite_loop_is_checked_as_a_while() -> None:
    graph = graph_of([("w", "control.while", {"value": 1},
                       {"loop_type": "infinite", "body": ["d"]}), ("d", "t.dec")],
                     ["w.out -> d.x"])
    assert messages(graph) == ["w: a while loop needs a value carried back: wire a body "
                               "node's output into the loop node, or set metadata.loop_back_to"]


# ------------------------------------------------------------------ condition_func


def decide_graph(x: Any, name: str) -> Any:
    return graph_of(
        [("v", "t.value", {"value": x}),
         ("c", "t.value", {}, {"execution_mode": "conditional", "condition_func": name}),
         ("yes", "t.value"), ("no", "t.value")],
        ["v.out -> c.value", "c.true -> yes.value", "c.false -> no.value"])


@pytest.mark.parametrize(("x", "name", "taken"), [
    ([], "is_empty", "yes"), ([0], "is_empty", "no"), (0, "not_none", "yes"),
    (None, "not_none", "no"), (0, "truthy", "no"), (500, "big", "yes"), (5, "big", "no")])
async def test_condition_func_applies_a_registered_predicate_to_the_result(
        x: Any, name: str, taken: str) -> None:
    result, rec = await run_graph(decide_graph(x, name), REG)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    other = "no" if taken == "yes" else "yes"
    assert states(result)[other] == "skipped"
    assert result.outputs[taken] == {"out": x}, "the result itself is the value passed on"
    assert [e["port"] for e in rec.of("branch_taken")] == ["true" if taken == "yes" else "false"]


def test_condition_func_must_name_a_registered_predicate() -> None:
    problems = messages(decide_graph(1, "is_hug"))
    assert len(problems) == 1
    assert problems[0].startswith("c: metadata.condition_func 'is_hug' is not a registered "
                                  "predicate (known: big, is_empty, is_none, not_empty")
    graph = decide_graph(1, "x")
    graph.nodes["c"].metadata["condition_func"] = 3
    assert messages(graph) == ["c: metadata.condition_func must be a string, not 3"]


async def test_a_failing_predicate_fails_the_node() -> None:
    reg = registry_of(value, builtins=True)

    @predicate(name="broken")
    def broken(value: Any) -> bool:
        raise KeyError(value)

    reg.add_predicate(broken, origin="tests")
    result, _ = await run_graph(decide_graph(7, "broken"), reg)
    assert result.status is RunStatus.FAILED
    assert result.nodes["c"].error == "KeyError: 7"


# ------------------------------------------------------------------ Blok's on_error names


def parallel_graph(on_error: str) -> Any:
    return graph_of(
        [("p", "control.parallel", {}, {"parallel_branches": {"ok": ["ok"], "bad": ["bad"]},
                                        "on_error": on_error}),
         ("ok", "t.value", {"value": 1}), ("bad", "t.boom")], [])


async def test_continue_partial_keeps_partial_results_as_continue_does() -> None:
    graph = parallel_graph("continue-partial")
    assert messages(graph) == []
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    assert result.outputs["p"]["results"] == {"ok": 1, "bad": None}
    assert [e["branch"] for e in result.outputs["p"]["errors"]] == ["bad"]


async def test_fail_fast_fails_the_parallel_node_as_fail_fast_does() -> None:
    result, _ = await run_graph(parallel_graph("fail-fast"), REG)
    assert result.status is RunStatus.FAILED
    assert states(result)["p"] == "failed"


async def test_blok_names_work_as_a_nodes_own_on_error_policy() -> None:
    graph = graph_of([("b", "t.boom", {}, {"on_error": "continue-partial"}),
                      ("after", "t.value")], ["b.out -> after.value"])
    assert messages(graph) == []
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED and result.outputs["after"] == {"out": None}
    graph.nodes["b"].metadata["on_error"] = "fail-fast"
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.FAILED and states(result)["after"] == "skipped"


# ------------------------------------------------------------------ written back as read


def test_the_design_names_are_written_back_as_they_were_read() -> None:
    graph = infinite_graph(3)
    graph.add_node(decide_graph(1, "is_empty").nodes["c"])
    graph.add_node(parallel_graph("continue-partial").nodes["p"])
    graph.nodes["start"].metadata["on_error"] = "fail-fast"
    text = dumps_graph(graph)
    for written in ('"loop_type": "infinite"', '"condition_func": "is_empty"',
                    '"on_error": "continue-partial"', '"on_error": "fail-fast"'):
        assert written in text
    again = loads_graph(text)
    assert dumps_graph(again) == text
    assert again.nodes["w"].metadata["loop_type"] == "infinite"
