"""Conditional and switch strategies, skip propagation and merge joins."""

from __future__ import annotations

import asyncio
from typing import Any

from helpers import graph_of, registry_of, run_graph, states

from loom import Branch, node
from loom.engine import RunStatus


@node(id="t.value", cheap=True)
def value(value: Any = None) -> Any:
    return value


@node(id="t.inc", cheap=True)
def inc(x: float) -> float:
    return x + 1


@node(id="t.is_even", cheap=True)
def is_even(x: int) -> bool:
    return x % 2 == 0


@node(id="t.both", cheap=True)
def both(a: Any, b: Any) -> list[Any]:
    return [a, b]


@node(id="t.branch", mode="conditional", cheap=True)
def branch(x: Any) -> Branch:
    return Branch(x > 0, f"value {x}")


REG = registry_of(value, inc, is_even, both, branch, builtins=True)


async def test_if_ports_route_value_and_skip_the_other_path() -> None:
    graph = graph_of(
        [("v", "t.value", {"value": 4}), ("if", "control.if", {"condition": False}),
         ("t1", "t.inc"), ("t2", "t.inc"), ("f1", "t.inc"), ("f2", "t.inc")],
        ["v.out -> if.value", "if.true -> t1.x", "t1.out -> t2.x", "if.false -> f1.x",
         "f1.out -> f2.x"])
    result, rec = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED
    assert states(result) == {"v": "done", "if": "done", "t1": "skipped", "t2": "skipped",
                              "f1": "done", "f2": "done"}
    assert result.outputs["f2"] == {"out": 6}
    assert result.nodes["t2"].reason == "if took 'false'", "the root reason propagates"
    assert [e["port"] for e in rec.of("branch_taken")] == ["false"]


async def test_if_without_condition_tests_the_value_itself() -> None:
    graph = graph_of([("if", "control.if", {"value": 0}), ("t", "t.inc"), ("f", "t.inc")],
                     ["if.true -> t.x", "if.false -> f.x"])
    result, _ = await run_graph(graph, REG)
    assert states(result)["t"] == "skipped" and result.outputs["f"] == {"out": 1}


async def test_merge_joins_if_else_with_the_value_that_arrived() -> None:
    graph = graph_of(
        [("v", "t.value", {"value": 3}), ("even", "t.is_even"), ("if", "control.if"),
         ("yes", "t.inc"), ("no", "t.inc"), ("no2", "t.inc"), ("m", "control.merge"),
         ("after", "t.inc")],
        ["v.out -> even.x", "v.out -> if.value", "even.out -> if.condition",
         "if.true -> yes.x", "if.false -> no.x", "no.out -> no2.x",
         "yes.out -> m.a", "no2.out -> m.b", "m.out -> after.x"])
    result, _ = await run_graph(graph, REG)
    assert states(result)["yes"] == "skipped"
    assert result.outputs["m"] == {"out": 5}
    assert result.outputs["after"] == {"out": 6}


async def test_a_plain_node_after_both_branches_is_skipped() -> None:
    graph = graph_of([("if", "control.if", {"value": 1}), ("a", "t.inc"), ("b", "t.inc"),
                      ("join", "t.both")],
                     ["if.true -> a.x", "if.false -> b.x", "a.out -> join.a", "b.out -> join.b"])
    result, _ = await run_graph(graph, REG)
    assert states(result)["join"] == "skipped", "only a merge passes a half-skipped join"


async def test_merge_is_skipped_when_every_input_is() -> None:
    graph = graph_of([("if", "control.if", {"value": 1}), ("b", "t.inc"), ("c", "t.inc"),
                      ("m", "control.merge"), ("after", "t.inc")],
                     ["if.false -> b.x", "if.false -> c.x", "b.out -> m.a", "c.out -> m.b",
                      "m.out -> after.x"])
    result, _ = await run_graph(graph, REG)
    assert states(result)["m"] == "skipped" and states(result)["after"] == "skipped"


async def test_seed_form_true_path_false_path_control_dependencies() -> None:
    # The path nodes take their data from v, not from the condition: they must
    # still wait for the decision and follow it.
    graph = graph_of(
        [("v", "t.value", {"value": 2}), ("cond", "t.is_even", {}, {
            "execution_mode": "conditional", "true_path": ["yes"], "false_path": ["no"]}),
         ("yes", "t.inc"), ("no", "t.inc"), ("after_no", "t.inc")],
        ["v.out -> cond.x", "v.out -> yes.x", "v.out -> no.x", "no.out -> after_no.x"])
    result, rec = await run_graph(graph, REG)
    assert states(result) == {"v": "done", "cond": "done", "yes": "done", "no": "skipped",
                              "after_no": "skipped"}
    started = [e["node"] for e in rec.of("node_started")]
    assert started.index("yes") > started.index("cond"), "yes waited for the decision"
    assert result.nodes["no"].reason == "cond took 'true'"
    assert result.outputs["cond"] == {"out": True, "true": True}


async def test_both_forms_together_and_plain_function_passes_its_result() -> None:
    graph = graph_of(
        [("v", "t.value", {"value": 5}), ("cond", "t.is_even", {}, {
            "execution_mode": "conditional", "false_path": ["odd_meta"]}),
         ("odd_meta", "t.value", {"value": "meta"}), ("odd_port", "t.value"),
         ("even_port", "t.value")],
        ["v.out -> cond.x", "cond.false -> odd_port.value", "cond.true -> even_port.value"])
    result, _ = await run_graph(graph, REG)
    assert states(result)["even_port"] == "skipped"
    assert result.outputs["odd_meta"] == {"out": "meta"}
    assert result.outputs["odd_port"] == {"out": False}, "the function's result leaves by the port"


async def test_branch_return_separates_decision_and_value() -> None:
    graph = graph_of([("b", "t.branch", {"x": 3}), ("t", "t.value")], ["b.true -> t.value"])
    result, _ = await run_graph(graph, REG)
    assert result.outputs["t"] == {"out": "value 3"}


async def test_if_elif_else_chain() -> None:
    # x < 0 -> negative; x == 0 -> zero; else positive, written with two conditionals.
    for x, expected in ((-2, "negative"), (0, "zero"), (7, "positive")):
        graph = graph_of(
            [("v", "t.value", {"value": x}),
             ("c1", "t.value", {}, {"execution_mode": "conditional",
                                    "true_path": ["neg"], "false_path": ["c2"]}),
             ("c2", "t.value", {}, {"execution_mode": "conditional",
                                    "true_path": ["pos"], "false_path": ["zero"]}),
             ("neg", "t.value", {"value": "negative"}), ("pos", "t.value", {"value": "positive"}),
             ("zero", "t.value", {"value": "zero"}), ("m", "control.merge", {"inputs": "a, b, c"})],
            ["neg.out -> m.a", "pos.out -> m.b", "zero.out -> m.c"])
        graph.nodes["c1"].properties["value"] = x < 0
        graph.nodes["c2"].properties["value"] = x > 0
        result, _ = await run_graph(graph, REG)
        assert result.outputs["m"] == {"out": expected}, x


def _switch_graph(x: Any) -> Any:
    return graph_of(
        [("v", "t.value", {"value": x}),
         ("sw", "control.switch", {}, {"execution_mode": "switch", "cases": [
             {"values": [1, 2, 3], "port": "small"}, {"values": ["big", 100], "port": "big"},
             {"values": [True], "port": "yes"}], "default": "other"}),
         ("s", "t.value"), ("b", "t.value"), ("y", "t.value"), ("o", "t.value")],
        ["v.out -> sw.value", "sw.small -> s.value", "sw.big -> b.value", "sw.yes -> y.value",
         "sw.other -> o.value"])


async def test_switch_takes_the_matching_case_and_skips_the_rest() -> None:
    result, rec = await run_graph(_switch_graph(2), REG)
    assert states(result) == {"v": "done", "sw": "done", "s": "done", "b": "skipped",
                              "y": "skipped", "o": "skipped"}
    assert result.outputs["s"] == {"out": 2}
    assert result.nodes["b"].reason == "sw took 'small'"
    assert [e["port"] for e in rec.of("branch_taken")] == ["small"]

    result, _ = await run_graph(_switch_graph("big"), REG)
    assert result.outputs["b"] == {"out": "big"}


async def test_switch_default_and_bool_is_not_int() -> None:
    result, _ = await run_graph(_switch_graph(42), REG)
    assert result.outputs["o"] == {"out": 42}
    result, _ = await run_graph(_switch_graph(True), REG)
    assert result.outputs["y"] == {"out": True}, "True matches True, not the case holding 1"
    result, _ = await run_graph(_switch_graph(1), REG)
    assert result.outputs["s"] == {"out": 1}, "1 matches 1, not the case holding True"


async def test_switch_ports_default_names() -> None:
    graph = graph_of([("sw", "control.switch", {"value": "x"}, {
        "execution_mode": "switch", "cases": [{"values": ["x"]}]}), ("a", "t.value"),
        ("d", "t.value")], ["sw.case_0 -> a.value", "sw.default -> d.value"])
    result, _ = await run_graph(graph, REG)
    assert result.outputs["a"] == {"out": "x"} and states(result)["d"] == "skipped"


@node(id="t.slow_value")
async def slow_value(value: Any = None, delay: float = 0.05) -> Any:
    await asyncio.sleep(delay)
    return value


async def test_merge_mode_all_waits_for_every_input_and_keys_them_by_port() -> None:
    # n8n's "wait for both": a slow and a quick branch; the merge runs once, after both.
    reg = registry_of(value, inc, slow_value, builtins=True)
    graph = graph_of([("quick", "t.value", {"value": 1}),
                      ("slow", "t.slow_value", {"value": "late", "delay": 0.05}),
                      ("m", "control.merge", {"inputs": "a, b", "mode": "all"})],
                     ["slow.out -> m.a", "quick.out -> m.b"],
                     max_concurrency=4)  # so the quick branch is there first
    result, rec = await run_graph(graph, reg)
    assert result.status is RunStatus.SUCCEEDED
    assert result.outputs["m"] == {"out": {"a": "late", "b": 1}}
    assert [e["node"] for e in rec.of("node_started")].count("m") == 1


async def test_merge_mode_all_leaves_out_skipped_inputs_and_is_skipped_only_if_all_are() -> None:
    graph = graph_of([("if", "control.if", {"value": 5}), ("t", "t.inc"), ("f", "t.inc"),
                      ("v", "t.value", {"value": "x"}),
                      ("m", "control.merge", {"inputs": "a, b, c", "mode": "all"})],
                     ["if.true -> t.x", "if.false -> f.x", "t.out -> m.a", "f.out -> m.b",
                      "v.out -> m.c"])
    result, _ = await run_graph(graph, REG)
    assert result.outputs["m"] == {"out": {"a": 6, "c": "x"}}
    graph = graph_of([("if", "control.if", {"value": 1}), ("b", "t.inc"), ("c", "t.inc"),
                      ("m", "control.merge", {"mode": "all"}), ("after", "t.inc")],
                     ["if.false -> b.x", "if.false -> c.x", "b.out -> m.a", "c.out -> m.b",
                      "m.out -> after.x"])
    result, _ = await run_graph(graph, REG)
    assert states(result)["m"] == "skipped" and states(result)["after"] == "skipped"
