"""Validation before a run names the nodes involved and blocks bad graphs."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from helpers import graph_of, registry_of

from loom import node
from loom.engine import ExecutionManager, GraphValidationError, validate


@node(id="t.num", cheap=True)
def num(value: float = 0.0) -> float:
    return value


@node(id="t.text", cheap=True)
def text(value: str = "") -> str:
    return value


@node(id="t.add", cheap=True)
def add(a: float, b: float = 1.0) -> float:
    return a + b


@node(id="t.upper", cheap=True)
def upper(text: str, mode: Literal["all", "first"] = "all") -> str:
    return text.upper()


@node(id="t.anything", cheap=True)
def anything(x: Any = None) -> Any:
    return x


@node(id="t.int", cheap=True)
def integer(value: int = 0) -> int:
    return value


REG = registry_of(num, text, add, upper, anything, integer, builtins=True)


def messages(graph: Any) -> list[str]:
    return [str(i) for i in validate(graph, REG) if i.severity == "error"]


def test_valid_graph_has_no_issues() -> None:
    graph = graph_of([("a", "t.num"), ("b", "t.add")], ["a.out -> b.a"])
    assert validate(graph, REG) == []


def test_cycle_is_named_node_by_node() -> None:
    graph = graph_of([("a", "t.add"), ("b", "t.add"), ("c", "t.add"), ("d", "t.num")],
                     ["a.out -> b.a", "b.out -> c.a", "c.out -> a.a", "d.out -> a.b"])
    [message] = messages(graph)
    assert "cycle" in message and "only a while loop may close a cycle" in message
    path = message.split(": ", 1)[1].split(" (")[0]
    assert path in ("a -> b -> c -> a", "b -> c -> a -> b", "c -> a -> b -> c")


def test_self_loop_is_a_cycle() -> None:
    graph = graph_of([("a", "t.add", {"a": 1})], ["a.out -> a.b"])
    assert any("cycle: a -> a" in m for m in messages(graph))


def test_required_input_unconnected_without_value() -> None:
    graph = graph_of([("u", "t.upper"), ("v", "t.upper", {"text": "given"})])
    assert messages(graph) == ["u: required input 'text' is not connected and has no value"]


def test_port_type_mismatch_names_both_ends() -> None:
    graph = graph_of([("n", "t.num"), ("u", "t.upper")], ["n.out -> u.text"])
    assert messages(graph) == ["u: input 'text' expects str but n output 'out' gives float"]


def test_compatible_types_any_and_int_to_float() -> None:
    graph = graph_of([("i", "t.int"), ("a", "t.add"), ("x", "t.anything"), ("u", "t.upper")],
                     ["i.out -> a.a", "a.out -> x.x", "x.out -> u.text"])
    assert messages(graph) == []


def test_metadata_naming_missing_nodes() -> None:
    graph = graph_of([("c", "t.num", {}, {"execution_mode": "conditional",
                                          "true_path": ["ghost"], "false_path": "nope"})])
    errors = messages(graph)
    assert "c: metadata.true_path names node(s) that do not exist: 'ghost'" in errors
    assert any("metadata.false_path must be a list of node ids" in m for m in errors)


def test_missing_node_type_blocks_run_with_its_name() -> None:
    graph = graph_of([("a", "t.num"), ("m", "plugin.fancy"), ("b", "t.add")],
                     ["a.out -> m.input", "m.result -> b.a"])
    assert messages(graph) == ["m: node type 'plugin.fancy' is not installed"]
    with pytest.raises(GraphValidationError) as info:
        import asyncio

        asyncio.run(ExecutionManager(graph, REG).run())
    assert "plugin.fancy" in str(info.value)


def test_unknown_mode_and_bad_port_names() -> None:
    graph = graph_of([("a", "t.num", {}, {"execution_mode": "telepathy"}), ("b", "t.add")],
                     ["a.result -> b.a", "a.out -> b.nope"])
    errors = messages(graph)
    assert any("unknown execution_mode 'telepathy'" in m for m in errors)
    assert "a: has no output port 'result' (outputs: out); wired to b.a" in errors
    assert "b: has no input port 'nope' (inputs: a, b); wired from a.out" in errors


def test_one_wire_per_input() -> None:
    graph = graph_of([("a", "t.num"), ("b", "t.num"), ("c", "t.add")],
                     ["a.out -> c.a", "b.out -> c.a"])
    assert messages(graph) == ["c: input 'a' has more than one wire"]


def test_params_are_not_ports() -> None:
    graph = graph_of([("t", "t.text", {"value": "x"}), ("c", "control.code")],
                     ["t.out -> c.code"])
    assert any("has no input port 'code'" in m for m in messages(graph))


def test_property_values_are_checked_against_port_types_and_choices() -> None:
    graph = graph_of([("a", "t.add", {"a": "three"}), ("u", "t.upper", {"text": "x",
                                                                         "mode": "loud"})])
    errors = messages(graph)
    assert "a: property 'a' should be float, not 'three'" in errors
    assert "u: property 'mode' must be one of 'all', 'first', not 'loud'" in errors


def test_unknown_property_is_a_warning_only() -> None:
    graph = graph_of([("a", "t.num", {"colour": "red"})])
    [issue] = validate(graph, REG)
    assert issue.severity == "warning" and "'colour' is not a port" in issue.message


def test_merge_needs_a_wire_but_not_all() -> None:
    graph = graph_of([("m", "control.merge")])
    assert messages(graph) == ["m: has no input wired (it passes on the first that arrives)"]


def test_newer_node_version_blocks() -> None:
    graph = graph_of([("a", "t.num")])
    graph.nodes["a"].type_version = 5
    assert messages(graph) == ["a: saved by version 5 of 't.num', newer than the installed "
                               "version 1"]


def test_switch_and_conditional_settings_checked() -> None:
    graph = graph_of([
        ("s", "control.switch", {"value": 1}, {"execution_mode": "switch",
                                               "cases": [{"values": 1}], "default": 3}),
        ("c", "t.num", {}, {"execution_mode": "conditional", "true_path": ["x"],
                            "false_path": ["x"]}),
        ("x", "t.num")])
    errors = messages(graph)
    assert 's: metadata.cases[0] must be {"values": [...], "port": "name"}' in errors
    assert "s: metadata.default must be a string, not 3" in errors
    assert "c: nodes on both true_path and false_path: x" in errors


def test_validate_never_runs_node_code(tmp_path: Any) -> None:
    marker = tmp_path / "ran"
    graph = graph_of([("c", "control.code", {"code": f"open({str(marker)!r}, 'w')",
                                              "inputs": ""})])
    assert validate(graph, REG) == []
    assert not marker.exists()


def test_an_ownership_cycle_through_two_owners_is_an_error_not_a_hang() -> None:
    # Found by test_validation_fuzz: a while loop whose body is a parallel node that lists
    # the loop in a branch used to leave owner links in a circle (validation never ended).
    graph = graph_of([("w", "control.while", {}, {"body": ["p"]}),
                      ("p", "control.parallel", {}, {"parallel_branches": [["w"]]}),
                      ("x", "time.delay", {"seconds": 0})], ["x.out -> w.value"])
    messages = [str(i) for i in validate(graph, registry_of(builtins=True))
                if i.severity == "error"]
    assert "w: is inside its own body or branches (through the nodes that list it)" in messages
    assert "p: is inside its own body or branches (through the nodes that list it)" in messages


def test_accepted_sources_name_every_type_an_input_takes() -> None:
    from loom.registry import accepted_sources, compatible

    assert accepted_sources("float") == ["int", "float"]
    assert accepted_sources("str") == ["str"]
    assert accepted_sources("any") == ["any"]
    for target in ("float", "str", "int", "list", "any"):
        for source in accepted_sources(target):
            assert compatible(source, target)
