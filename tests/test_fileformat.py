"""Reading and writing the .loom format (loom.graph.fileformat), without touching save_graph."""

from __future__ import annotations

import builtins
import copy
import difflib
import json
import os
import pickle
import re
from pathlib import Path
from typing import Any

import pytest

from loom.graph import (
    Connection,
    Graph,
    GraphSettings,
    LoomFileError,
    MigrationError,
    MigrationRegistry,
    Node,
    dumps_graph,
    graph_document,
    load_graph,
    loads_graph,
)

# The exact text dumps_graph produces for sample_graph(); written out by hand.
CANONICAL = """\
{
  "format": "loom",
  "version": 1,
  "graph": {"name": "Démo", "settings": {"max_concurrency": 8}},
  "nodes": [
    {
      "id": "n0",
      "type": "values.text",
      "name": "Text",
      "position": [0.0, 0.0],
      "properties": {"value": "héllo wörld ✓ 日本"},
      "metadata": {}
    },
    {
      "id": "n1",
      "type": "text.upper",
      "type_version": 2,
      "name": "Upper",
      "position": [120.0, 40.5],
      "properties": {
        "suffix": "!",
        "items": [1, 2, 3],
        "long": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "nested": {"a": [1, {"b": null}], "c": true, "d": -2.5}
      },
      "metadata": {"execution_mode": "sequential"}
    },
    {
      "id": "n2",
      "type": "text.print",
      "name": "",
      "position": [-10.0, 0.0],
      "properties": {},
      "metadata": {}
    }
  ],
  "connections": [
    {"from": ["n0", "out"], "to": ["n1", "text"]},
    {"from": ["n1", "out"], "to": ["n2", "value"]}
  ],
  "ui": {"zoom": 1.5}
}
"""

# A file written by a "newer" Loom: unknown keys at every level, already in canonical order.
CANONICAL_WITH_EXTRAS = """\
{
  "format": "loom",
  "version": 1,
  "graph": {
    "name": "future",
    "settings": {"max_concurrency": 2, "scheduler": "fair", "budget": {"cpu": 4}},
    "description": "from Loom 1.9"
  },
  "nodes": [
    {
      "id": "a",
      "type": "acme.widgets.Frobnicate",
      "type_version": 7,
      "name": "Frob",
      "position": [1.25, -3.0],
      "properties": {"level": 11, "ports": [{"name": "in", "kind": "int"}]},
      "metadata": {"execution_mode": "quantum", "retries": 3},
      "ports": {"inputs": ["in"], "outputs": ["out"]},
      "color": "#ff00ff"
    },
    {
      "id": "b",
      "type": "acme.widgets.Sink",
      "name": "",
      "position": [0.0, 0.0],
      "properties": {},
      "metadata": {},
      "locked": true
    }
  ],
  "connections": [
    {"from": ["a", "out"], "to": ["b", "in"], "label": "main", "style": {"dash": [2, 3]}}
  ],
  "ui": {"viewport": [0, 0, 800, 600]},
  "plugins": ["acme"],
  "signature": null
}
"""


def sample_graph() -> Graph:
    graph = Graph(name="Démo", settings=GraphSettings(max_concurrency=8))
    graph.add_node(Node("n0", "values.text", name="Text",
                        properties={"value": "héllo wörld ✓ 日本"}))
    graph.add_node(Node(
        "n1", "text.upper", name="Upper", position=(120.0, 40.5), type_version=2,
        properties={"suffix": "!", "items": [1, 2, 3], "long": "x" * 60,
                    "nested": {"a": [1, {"b": None}], "c": True, "d": -2.5}},
        metadata={"execution_mode": "sequential"},
    ))
    graph.add_node(Node("n2", "text.print", position=(-10.0, 0.0)))
    graph.connect("n0", "out", "n1", "text")
    graph.connect("n1", "out", "n2", "value")
    graph.ui = {"zoom": 1.5}
    return graph


def base_doc() -> dict[str, Any]:
    """A small valid document to corrupt one piece at a time."""
    return {
        "format": "loom",
        "version": 1,
        "graph": {"name": "g", "settings": {"max_concurrency": 2}},
        "nodes": [
            {"id": "n1", "type": "t.src", "name": "", "position": [0.0, 0.0],
             "properties": {"x": 1}, "metadata": {}},
            {"id": "n2", "type": "t.dst", "name": "", "position": [1.0, 2.0],
             "properties": {}, "metadata": {}},
        ],
        "connections": [{"from": ["n1", "out"], "to": ["n2", "in"]}],
        "ui": {},
    }


def with_change(path: tuple[Any, ...], value: Any = None, *, delete: bool = False) -> str:
    doc = base_doc()
    target: Any = doc
    for step in path[:-1]:
        target = target[step]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(doc)


def load_error(data: str | bytes, source: str = "broken.loom", **kw: Any) -> LoomFileError:
    """Load data that must fail; fails the test if any other exception escapes."""
    with pytest.raises(LoomFileError) as info:
        loads_graph(data, source, **kw)
    assert type(info.value) is LoomFileError
    return info.value


# =========================================================================== 1. round trips


def test_base_doc_is_valid() -> None:
    graph = loads_graph(json.dumps(base_doc()))
    assert list(graph.nodes) == ["n1", "n2"]


def test_dumps_matches_handwritten_canonical_text() -> None:
    assert dumps_graph(sample_graph()) == CANONICAL


def test_handwritten_canonical_loads_and_dumps_back_byte_for_byte() -> None:
    graph = loads_graph(CANONICAL.encode("utf-8"), "canon.loom")
    assert graph == sample_graph()
    assert dumps_graph(graph).encode("utf-8") == CANONICAL.encode("utf-8")


def test_load_graph_from_file_round_trips_bytes(tmp_path: Path) -> None:
    path = tmp_path / "canon.loom"
    path.write_bytes(CANONICAL.encode("utf-8"))
    graph = load_graph(path)
    assert dumps_graph(graph).encode("utf-8") == path.read_bytes()


def empty_graph() -> Graph:
    return Graph()


def graph_with_everything() -> Graph:
    graph = sample_graph()
    graph.extra = {"future": {"a": [1, 2]}}
    graph.graph_extra = {"description": "d"}
    graph.settings.extra = {"scheduler": "fair"}
    graph.nodes["n0"].extra = {"color": "red"}
    graph.connections[0].extra = {"label": "x"}
    return graph


def graph_with_awkward_values() -> Graph:
    graph = Graph(name='quo"tes\\ and\nnewlines\ttabs \u2028 \x00')
    graph.add_node(Node("weird id/with spaces", "t", name="☃",
                        position=(1e-300, -1.7976931348623157e308),
                        properties={"": "", "a b": {"c.d": [[], {}, [[]]]},
                                    "big": 2**70, "neg": -0.0, "f": 0.1, "e": 1e16,
                                    "emoji": "🧵", "unicode_key_ü": None}))
    return graph


@pytest.mark.parametrize("make", [empty_graph, sample_graph, graph_with_everything,
                                  graph_with_awkward_values])
def test_round_trip_equal_and_byte_stable(make: Any) -> None:
    graph = make()
    text = dumps_graph(graph)
    loaded = loads_graph(text)
    assert loaded == graph
    assert dumps_graph(loaded) == text
    # also through bytes
    assert loads_graph(text.encode("utf-8")) == graph


def test_round_trip_keeps_types() -> None:
    graph = Graph()
    graph.add_node(Node("a", "t", properties={"i": 1, "f": 1.0, "b": True, "n": None, "s": "1"}))
    props = loads_graph(dumps_graph(graph)).node("a").properties
    assert [type(props[k]) for k in "ifbns"] == [int, float, bool, type(None), str]


def test_int_position_is_written_as_float() -> None:
    graph = Graph()
    graph.add_node(Node("a", "t", position=(3, -4)))  # type: ignore[arg-type]
    assert '"position": [3.0, -4.0]' in dumps_graph(graph)


def _keys(text: str) -> list[list[str]]:
    """Key order of the top level, of "graph" and of every node, as written."""
    doc = json.loads(text, object_pairs_hook=lambda pairs: pairs)
    top = [k for k, _ in doc]
    graph = dict(doc)["graph"]
    nodes = dict(doc)["nodes"]
    return [top, [k for k, _ in graph]] + [[k for k, _ in n] for n in nodes]


def test_key_order_is_stable() -> None:
    top, graph_keys, n0, n1, n2 = _keys(dumps_graph(sample_graph()))
    assert top == ["format", "version", "graph", "nodes", "connections", "ui"]
    assert graph_keys == ["name", "settings"]
    assert n0 == ["id", "type", "name", "position", "properties", "metadata"]
    assert n1 == ["id", "type", "type_version", "name", "position", "properties", "metadata"]
    assert n2 == n0


def test_key_order_does_not_depend_on_input_order() -> None:
    doc = base_doc()
    scrambled = {k: doc[k] for k in reversed(list(doc))}
    scrambled["nodes"] = [{k: n[k] for k in reversed(list(n))} for n in doc["nodes"]]
    scrambled["nodes"][0]["type_version"] = 3
    a = dumps_graph(loads_graph(json.dumps(scrambled)))
    doc["nodes"][0]["type_version"] = 3
    b = dumps_graph(loads_graph(json.dumps(doc)))
    assert a == b
    assert _keys(a)[2] == ["id", "type", "type_version", "name", "position", "properties",
                           "metadata"]


def test_two_space_indent_and_trailing_newline() -> None:
    text = dumps_graph(sample_graph())
    lines = text.split("\n")
    assert lines[0] == "{"
    assert lines[1] == '  "format": "loom",'
    assert "    {" in lines
    assert '      "id": "n0",' in lines
    assert '        "suffix": "!",' in lines
    assert "\t" not in text
    for line in lines:
        indent = len(line) - len(line.lstrip(" "))
        assert indent % 2 == 0, line
    assert text.endswith("}\n")
    assert not text.endswith("\n\n")
    assert "\r" not in text


def test_non_ascii_kept_as_utf8() -> None:
    text = dumps_graph(sample_graph())
    assert "héllo wörld ✓ 日本" in text
    assert '"name": "Démo"' in text
    assert "\\u" not in text
    raw = text.encode("utf-8")
    assert "日本".encode() in raw


def test_control_characters_are_escaped() -> None:
    graph = Graph(name="a\nb\x01")
    text = dumps_graph(graph)
    assert '"name": "a\\nb\\u0001"' in text
    assert text.count("\n") == len(text.splitlines())


def _diff(a: str, b: str) -> list[str]:
    lines = difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
    return [ln for ln in lines
            if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]


def test_one_property_change_is_a_one_line_diff() -> None:
    graph = sample_graph()
    before = dumps_graph(graph)
    graph.node("n1").properties["suffix"] = "?"
    after = dumps_graph(graph)
    assert _diff(before, after) == ['-        "suffix": "!",', '+        "suffix": "?",']


def test_one_small_property_change_is_a_one_line_diff() -> None:
    graph = sample_graph()
    before = dumps_graph(graph)
    graph.node("n0").properties["value"] = "bye"
    diff = _diff(before, dumps_graph(graph))
    assert diff == ['-      "properties": {"value": "héllo wörld ✓ 日本"},',
                    '+      "properties": {"value": "bye"},']


def test_moving_a_node_is_a_one_line_diff() -> None:
    graph = sample_graph()
    before = dumps_graph(graph)
    graph.node("n2").position = (-10.0, 99.0)
    diff = _diff(before, dumps_graph(graph))
    assert diff == ['-      "position": [-10.0, 0.0],', '+      "position": [-10.0, 99.0],']


def test_every_node_starts_on_its_own_line() -> None:
    text = dumps_graph(sample_graph())
    assert text.count('      "id": ') == 3


def test_graph_document_is_plain_json_in_order() -> None:
    doc = graph_document(sample_graph())
    assert list(doc) == ["format", "version", "graph", "nodes", "connections", "ui"]
    assert doc["nodes"][1]["type_version"] == 2
    assert "type_version" not in doc["nodes"][0]
    assert doc["connections"][0] == {"from": ["n0", "out"], "to": ["n1", "text"]}
    assert json.loads(json.dumps(doc)) == doc


def test_utf8_bom_is_accepted_in_bytes() -> None:
    graph = loads_graph(b"\xef\xbb\xbf" + CANONICAL.encode("utf-8"))
    assert graph == sample_graph()


# =========================================================================== 2. unknown keys


def test_unknown_keys_are_kept_at_every_level() -> None:
    graph = loads_graph(CANONICAL_WITH_EXTRAS)
    assert graph.extra == {"plugins": ["acme"], "signature": None}
    assert graph.graph_extra == {"description": "from Loom 1.9"}
    assert graph.settings.max_concurrency == 2
    assert graph.settings.extra == {"scheduler": "fair", "budget": {"cpu": 4}}
    a = graph.node("a")
    assert a.extra == {"ports": {"inputs": ["in"], "outputs": ["out"]}, "color": "#ff00ff"}
    assert a.metadata == {"execution_mode": "quantum", "retries": 3}
    assert graph.node("b").extra == {"locked": True}
    assert graph.connections[0].extra == {"label": "main", "style": {"dash": [2, 3]}}


def test_unknown_keys_are_written_back_byte_for_byte() -> None:
    graph = loads_graph(CANONICAL_WITH_EXTRAS.encode("utf-8"))
    assert dumps_graph(graph) == CANONICAL_WITH_EXTRAS


@pytest.mark.parametrize(
    ("where", "check"),
    [
        ((), lambda g: g.extra),
        (("graph",), lambda g: g.graph_extra),
        (("graph", "settings"), lambda g: g.settings.extra),
        (("nodes", 0), lambda g: g.node("n1").extra),
        (("connections", 0), lambda g: g.connections[0].extra),
    ],
    ids=["top", "graph", "settings", "node", "connection"],
)
def test_unknown_key_survives_at(where: tuple[Any, ...], check: Any) -> None:
    doc = base_doc()
    target: Any = doc
    for step in where:
        target = target[step]
    target["zz_future"] = {"v": [1, "two", None]}
    graph = loads_graph(json.dumps(doc))
    assert check(graph) == {"zz_future": {"v": [1, "two", None]}}
    again = json.loads(dumps_graph(graph))
    target = again
    for step in where:
        target = target[step]
    assert target["zz_future"] == {"v": [1, "two", None]}
    assert list(target)[-1] == "zz_future"  # unknown keys come after the known ones


def test_unknown_graph_and_settings_keys_work_when_graph_has_no_name() -> None:
    doc = base_doc()
    doc["graph"] = {"settings": {"future": 1}, "future_graph": 2}
    graph = loads_graph(json.dumps(doc))
    assert graph.settings.extra == {"future": 1}
    assert graph.graph_extra == {"future_graph": 2}


# =========================================================================== 3. unknown types


UNKNOWN_TYPE_FILE = """\
{
  "format": "loom",
  "version": 1,
  "graph": {"name": "", "settings": {"max_concurrency": 1}},
  "nodes": [
    {
      "id": "ghost",
      "type": "some.plugin.that.is.not.installed:Thing",
      "type_version": 42,
      "name": "Ghost",
      "position": [5.5, 6.5],
      "properties": {"code": "print('hi')", "table": [[1, 2], [3, 4]], "opt": null},
      "metadata": {"execution_mode": "thread", "timeout": 2.5},
      "dynamic_ports": {"in": ["a", "b"], "out": ["sum"]}
    },
    {
      "id": "n2",
      "type": "values.number",
      "name": "",
      "position": [0.0, 0.0],
      "properties": {"value": 3},
      "metadata": {}
    }
  ],
  "connections": [
    {"from": ["ghost", "sum"], "to": ["n2", "value"]},
    {"from": ["n2", "out"], "to": ["ghost", "a"]}
  ],
  "ui": {}
}
"""


def test_unknown_type_keeps_everything_and_round_trips_bytes() -> None:
    graph = loads_graph(UNKNOWN_TYPE_FILE.encode("utf-8"), "ghost.loom")
    ghost = graph.node("ghost")
    assert ghost.type == "some.plugin.that.is.not.installed:Thing"
    assert ghost.type_version == 42
    assert ghost.properties["table"] == [[1, 2], [3, 4]]
    assert ghost.metadata == {"execution_mode": "thread", "timeout": 2.5}
    assert ghost.extra == {"dynamic_ports": {"in": ["a", "b"], "out": ["sum"]}}
    assert [c.key for c in graph.connections] == [("ghost", "sum", "n2", "value"),
                                                 ("n2", "out", "ghost", "a")]
    assert dumps_graph(graph).encode("utf-8") == UNKNOWN_TYPE_FILE.encode("utf-8")


def test_unknown_type_with_migrations_registry_is_left_alone() -> None:
    reg = MigrationRegistry()
    reg.declare("values.number", 1)
    graph = loads_graph(UNKNOWN_TYPE_FILE, migrations=reg)
    assert dumps_graph(graph) == UNKNOWN_TYPE_FILE


# =========================================================================== 4. errors

# (id, text, JSON path that must be in the message, description fragment)
STRUCTURE_ERRORS: list[tuple[str, str, str, str]] = [
    ("top-array", "[]", "$", "expected a JSON object, found an array"),
    ("top-string", '"loom"', "$", "expected a JSON object, found a string"),
    ("top-number", "1", "$", "expected a JSON object, found an integer"),
    ("top-null", "null", "$", "expected a JSON object, found null"),
    ("format-missing", with_change(("format",), delete=True), "$.format",
     'expected "loom", found null'),
    ("format-wrong", with_change(("format",), "json"), "$.format", 'expected "loom"'),
    ("format-number", with_change(("format",), 1), "$.format", 'expected "loom", found 1'),
    ("version-2", with_change(("version",), 2), "$.version", "newer"),
    ("version-string", with_change(("version",), "1"), "$.version",
     "expected an integer format version, found a string"),
    ("version-float", with_change(("version",), 1.0), "$.version", "found a number"),
    ("version-bool", with_change(("version",), True), "$.version", "found a boolean"),
    ("version-missing", with_change(("version",), delete=True), "$.version", "found null"),
    ("version-0", with_change(("version",), 0), "$.version", "version 0 is not supported"),
    ("graph-not-object", with_change(("graph",), []), "$.graph", "expected an object"),
    ("graph-name", with_change(("graph", "name"), 5), "$.graph.name", "expected a string"),
    ("settings-not-object", with_change(("graph", "settings"), 8), "$.graph.settings",
     "expected an object of graph settings"),
    ("max-concurrency-0", with_change(("graph", "settings", "max_concurrency"), 0),
     "$.graph.settings.max_concurrency", "expected an integer >= 1, found 0"),
    ("max-concurrency-neg", with_change(("graph", "settings", "max_concurrency"), -3),
     "$.graph.settings.max_concurrency", ">= 1"),
    ("max-concurrency-str", with_change(("graph", "settings", "max_concurrency"), "8"),
     "$.graph.settings.max_concurrency", "expected an integer, found a string"),
    ("max-concurrency-bool", with_change(("graph", "settings", "max_concurrency"), True),
     "$.graph.settings.max_concurrency", "found a boolean"),
    ("max-concurrency-float", with_change(("graph", "settings", "max_concurrency"), 2.0),
     "$.graph.settings.max_concurrency", "found a number"),
    ("ui-not-object", with_change(("ui",), [1]), "$.ui", "expected an object"),
    ("nodes-object", with_change(("nodes",), {}), "$.nodes", "expected an array of nodes"),
    ("nodes-null", with_change(("nodes",), None), "$.nodes", "found null"),
    ("node-not-object", with_change(("nodes", 1), 7), "$.nodes[1]",
     "expected a node object, found an integer"),
    ("node-array", with_change(("nodes", 0), ["n1", "t"]), "$.nodes[0]", "found an array"),
    ("node-no-id", with_change(("nodes", 1, "id"), delete=True), "$.nodes[1]",
     "node has no 'id'"),
    ("node-no-type", with_change(("nodes", 0, "type"), delete=True), "$.nodes[0]",
     "node has no 'type'"),
    ("node-empty-id", with_change(("nodes", 0, "id"), ""), "$.nodes[0].id", "empty string"),
    ("node-int-id", with_change(("nodes", 0, "id"), 5), "$.nodes[0].id",
     "expected a node id string, found an integer"),
    ("node-null-id", with_change(("nodes", 0, "id"), None), "$.nodes[0].id", "found null"),
    ("node-empty-type", with_change(("nodes", 0, "type"), ""), "$.nodes[0].type",
     "empty string"),
    ("node-list-type", with_change(("nodes", 0, "type"), ["t"]), "$.nodes[0].type",
     "found an array"),
    ("node-name", with_change(("nodes", 0, "name"), None), "$.nodes[0].name",
     "expected a string, found null"),
    ("position-short", with_change(("nodes", 0, "position"), [1.0]), "$.nodes[0].position",
     "found 1 items"),
    ("position-long", with_change(("nodes", 0, "position"), [1.0, 2.0, 3.0]),
     "$.nodes[0].position", "found 3 items"),
    ("position-empty", with_change(("nodes", 0, "position"), []), "$.nodes[0].position",
     "found 0 items"),
    ("position-object", with_change(("nodes", 0, "position"), {"x": 1, "y": 2}),
     "$.nodes[0].position", "expected an array [x, y], found an object"),
    ("position-string-item", with_change(("nodes", 0, "position"), ["1", 0]),
     "$.nodes[0].position[0]", "expected a number, found a string"),
    ("position-null-item", with_change(("nodes", 0, "position"), [0, None]),
     "$.nodes[0].position[1]", "expected a number, found null"),
    ("position-bool-x", with_change(("nodes", 0, "position"), [True, 0]),
     "$.nodes[0].position[0]", "found a boolean"),
    ("position-bool-y", with_change(("nodes", 1, "position"), [0.0, False]),
     "$.nodes[1].position[1]", "found a boolean"),
    ("properties-array", with_change(("nodes", 0, "properties"), []),
     "$.nodes[0].properties", "expected an object, found an array"),
    ("properties-string", with_change(("nodes", 0, "properties"), "x=1"),
     "$.nodes[0].properties", "found a string"),
    ("metadata-array", with_change(("nodes", 1, "metadata"), [1]), "$.nodes[1].metadata",
     "expected an object"),
    ("execution-mode-empty", with_change(("nodes", 0, "metadata"), {"execution_mode": ""}),
     "$.nodes[0].metadata.execution_mode", "empty string"),
    ("execution-mode-int", with_change(("nodes", 0, "metadata"), {"execution_mode": 2}),
     "$.nodes[0].metadata.execution_mode", "found an integer"),
    ("type-version-0", with_change(("nodes", 0, "type_version"), 0),
     "$.nodes[0].type_version", "expected an integer >= 1, found 0"),
    ("type-version-neg", with_change(("nodes", 0, "type_version"), -1),
     "$.nodes[0].type_version", ">= 1"),
    ("type-version-str", with_change(("nodes", 0, "type_version"), "2"),
     "$.nodes[0].type_version", "expected an integer, found a string"),
    ("type-version-bool", with_change(("nodes", 0, "type_version"), True),
     "$.nodes[0].type_version", "found a boolean"),
    ("type-version-float", with_change(("nodes", 0, "type_version"), 2.0),
     "$.nodes[0].type_version", "found a number"),
    ("connections-object", with_change(("connections",), {}), "$.connections",
     "expected an array"),
    ("connection-not-object", with_change(("connections", 0), ["n1", "n2"]),
     "$.connections[0]", "expected a connection object"),
    ("connection-no-from", with_change(("connections", 0, "from"), delete=True),
     "$.connections[0]", "connection has no 'from'"),
    ("connection-no-to", with_change(("connections", 0, "to"), delete=True),
     "$.connections[0]", "connection has no 'to'"),
    ("connection-from-missing-node", with_change(("connections", 0, "from"), ["zz", "out"]),
     "$.connections[0].from[0]", "no node with id 'zz' in this file"),
    ("connection-to-missing-node", with_change(("connections", 0, "to"), ["yy", "in"]),
     "$.connections[0].to[0]", "no node with id 'yy' in this file"),
    ("endpoint-string", with_change(("connections", 0, "from"), "n1.out"),
     "$.connections[0].from", "expected an array [node id, port name], found a string"),
    ("endpoint-one-item", with_change(("connections", 0, "to"), ["n2"]),
     "$.connections[0].to", "found 1 items"),
    ("endpoint-three-items", with_change(("connections", 0, "to"), ["n2", "in", "x"]),
     "$.connections[0].to", "found 3 items"),
    ("endpoint-object", with_change(("connections", 0, "to"), {"node": "n2", "port": "in"}),
     "$.connections[0].to", "found an object"),
    ("endpoint-port-int", with_change(("connections", 0, "from"), ["n1", 0]),
     "$.connections[0].from[1]", "expected a port name string, found an integer"),
    ("endpoint-port-empty", with_change(("connections", 0, "from"), ["n1", ""]),
     "$.connections[0].from[1]", "empty string"),
    ("endpoint-node-int", with_change(("connections", 0, "from"), [1, "out"]),
     "$.connections[0].from[0]", "expected a node id string"),
]


@pytest.mark.parametrize(("text", "path", "fragment"),
                         [e[1:] for e in STRUCTURE_ERRORS], ids=[e[0] for e in STRUCTURE_ERRORS])
def test_structure_error(text: str, path: str, fragment: str) -> None:
    exc = load_error(text, "my graph.loom")
    message = str(exc)
    assert message.startswith("my graph.loom: ")
    assert exc.file == "my graph.loom"
    assert exc.json_path == path
    assert f": {path}: " in message
    assert fragment in message
    assert exc.problem in message


def test_error_json_path_attributes_on_a_few() -> None:
    exc = load_error(with_change(("nodes", 1, "position"), [0, "y"]), "a.loom")
    assert (exc.file, exc.json_path) == ("a.loom", "$.nodes[1].position[1]")
    assert exc.problem == "expected a number, found a string"
    assert str(exc) == "a.loom: $.nodes[1].position[1]: expected a number, found a string"

    exc = load_error(with_change(("version",), 2), "b.loom")
    assert (exc.file, exc.json_path) == ("b.loom", "$.version")
    assert "version 2 is not supported (written by a newer Loom)" in exc.problem
    assert "reads version 1" in exc.problem


def test_version_far_newer_also_says_newer() -> None:
    exc = load_error(with_change(("version",), 10**30))
    assert "newer" in str(exc)


def test_duplicate_node_ids_name_both_paths() -> None:
    doc = base_doc()
    doc["nodes"].append({"id": "n1", "type": "other"})
    exc = load_error(json.dumps(doc), "dup.loom")
    assert exc.json_path == "$.nodes[2].id"
    assert "$.nodes[2].id" in str(exc)
    assert "$.nodes[0]" in str(exc)
    assert "duplicate node id 'n1'" in str(exc)
    assert "dup.loom" in str(exc)


def test_duplicate_connection_loads_whole_for_validation_to_report() -> None:
    # A repeated wire is a wiring problem (validation names the node and port);
    # the file still loads and saves back with nothing lost.
    doc = base_doc()
    doc["nodes"].append({"id": "n3", "type": "t"})
    doc["connections"] += [{"from": ["n2", "out"], "to": ["n3", "in"]},
                           {"from": ["n1", "out"], "to": ["n2", "in"], "extra": "differs"}]
    graph = loads_graph(json.dumps(doc))
    assert [c.key for c in graph.connections].count(("n1", "out", "n2", "in")) == 2
    assert graph.connections[2].extra == {"extra": "differs"}


def test_wire_fan_out_and_fan_in_are_not_duplicates() -> None:
    doc = base_doc()
    doc["connections"] += [{"from": ["n1", "out"], "to": ["n2", "in2"]},
                           {"from": ["n1", "out2"], "to": ["n2", "in"]}]
    assert len(loads_graph(json.dumps(doc)).connections) == 3


def test_connection_may_reference_a_node_listed_later() -> None:
    doc = base_doc()
    doc["nodes"].reverse()
    assert loads_graph(json.dumps(doc)).connections[0].key == ("n1", "out", "n2", "in")


def test_duplicate_key_at_top_level() -> None:
    text = '{"format": "loom", "version": 1, "nodes": [], "version": 1}'
    exc = load_error(text, "dupkey.loom")
    assert exc.json_path == "$"
    assert "'version' appears more than once" in str(exc)
    assert str(exc).startswith("dupkey.loom: $: ")


def test_duplicate_key_nested_in_properties() -> None:
    text = json.dumps(base_doc()).replace('"properties": {"x": 1}',
                                          '"properties": {"x": 1, "y": {"k": 1, "k": 2}}')
    exc = load_error(text, "dupkey.loom")
    assert exc.json_path == "$.nodes[0].properties.y"
    assert "'k' appears more than once" in str(exc)
    assert "dupkey.loom" in str(exc)


def test_duplicate_key_with_different_values_is_not_silently_last_wins() -> None:
    text = json.dumps(base_doc()).replace('"properties": {"x": 1}',
                                          '"properties": {"x": 1, "x": 2}')
    exc = load_error(text)
    assert exc.json_path == "$.nodes[0].properties"
    assert "'x' appears more than once" in exc.problem


def test_duplicate_key_in_node_itself() -> None:
    text = json.dumps(base_doc()).replace('"id": "n2"', '"id": "n2", "id": "n9"')
    exc = load_error(text)
    assert exc.json_path == "$.nodes[1]"
    assert "'id'" in exc.problem


def _with_property_literal(literal: str) -> str:
    return json.dumps(base_doc()).replace('"properties": {"x": 1}',
                                          f'"properties": {{"x": {literal}}}')


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_rejected(literal: str) -> None:
    exc = load_error(_with_property_literal(literal), "nan.loom")
    assert "nan.loom" in str(exc)
    assert f"{literal.lstrip('-')} is not allowed" in str(exc) or literal in str(exc)
    assert "NaN or Infinity" in str(exc)


@pytest.mark.parametrize("literal", ["1e999", "-1e999", "1.5e400"])
def test_out_of_range_float_rejected(literal: str) -> None:
    exc = load_error(_with_property_literal(literal), "big.loom")
    assert "big.loom" in str(exc)
    assert f"{literal} is not a finite number" in str(exc)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_out_of_range_errors_name_the_json_path(literal: str) -> None:
    exc = load_error(_with_property_literal(literal), "nan.loom")
    assert exc.json_path == "$.nodes[0].properties.x"


def test_huge_integer_literal_is_a_loom_file_error() -> None:
    exc = load_error(_with_property_literal("1" * 5000), "digits.loom")
    assert "digits.loom" in str(exc)
    assert "invalid JSON" in str(exc)


def test_huge_integer_position_is_a_loom_file_error() -> None:
    text = with_change(("nodes", 0, "position"), [10**400, 0])
    exc = load_error(text, "pos.loom")
    assert exc.json_path == "$.nodes[0].position[0]"


def test_large_but_finite_position_is_fine() -> None:
    graph = loads_graph(with_change(("nodes", 0, "position"), [10**300, -1.5e308]))
    assert graph.node("n1").position == (1e300, -1.5e308)


def _nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return _with_property_literal(open_ * depth + close * depth)


def test_deep_nesting_100_lists() -> None:
    exc = load_error(_nested(100), "deep.loom")
    assert "nesting deeper than 64 levels" in str(exc)
    assert exc.json_path.startswith("$.nodes[0].properties.x[0][0]")
    assert "deep.loom" in str(exc)


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deep_nesting_huge_lists_is_not_recursion_error(depth: int) -> None:
    exc = load_error(_nested(depth), "deep.loom")
    assert "nesting deeper than" in str(exc)
    assert "deep.loom" in str(exc)


def test_deep_nesting_huge_objects_is_not_recursion_error() -> None:
    text = '{"a": ' * 100_000 + "1" + "}" * 100_000
    exc = load_error(text, "deep.loom")
    assert "nesting deeper than" in str(exc)


def test_nesting_just_under_the_limit_loads() -> None:
    # $ -> nodes -> [0] -> properties -> x is depth 4; 60 more list levels reach 64.
    graph = loads_graph(_nested(60))
    value = graph.node("n1").properties["x"]
    depth = 0
    while value:
        value = value[0]
        depth += 1
    assert depth == 59
    assert loads_graph(dumps_graph(graph)) == graph


def test_nesting_over_the_limit_in_ui_names_path() -> None:
    doc = base_doc()
    doc["ui"] = {"deep": json.loads("[" * 70 + "]" * 70)}
    exc = load_error(json.dumps(doc))
    assert exc.json_path.startswith("$.ui.deep[0]")


def test_truncated_json_at_several_points() -> None:
    text = CANONICAL
    cuts = [0, 1, 2, 20, 100, len(text) // 3, len(text) // 2, len(text) - 40, len(text) - 2]
    for cut in cuts:
        exc = load_error(text[:cut].encode("utf-8", "ignore"), "cut.loom")
        message = str(exc)
        assert message.startswith("cut.loom: "), cut
        assert "invalid JSON" in message, cut
        assert re.search(r"line \d+ column \d+", message), cut


def test_truncated_inside_multibyte_character_is_loom_error() -> None:
    raw = CANONICAL.encode("utf-8")
    cut = raw.index("é".encode()) + 1
    exc = load_error(raw[:cut], "cut.loom")
    assert "not UTF-8 text" in str(exc)


@pytest.mark.parametrize("text", ["", "   ", "hello", "{", "}", "{'format': 'loom'}",
                                  '{"format": "loom",}', "<xml/>", "format = 'loom'",
                                  '{"format": "loom"} trailing'])
def test_not_json(text: str) -> None:
    exc = load_error(text, "junk.loom")
    assert str(exc).startswith("junk.loom: invalid JSON at line ")
    assert exc.json_path == ""


@pytest.mark.parametrize("data", [b"\xff\xfe{}", b'{"format": "lo\xc3\x28m"}', b"\x80",
                                  b'{"format": "loom", "version": 1, "graph": {"name": "\xed'
                                  b'\xa0\x80"}}'])
def test_invalid_utf8(data: bytes) -> None:
    exc = load_error(data, "bytes.loom")
    assert str(exc).startswith("bytes.loom: not UTF-8 text (byte ")


def test_invalid_utf8_reports_offset() -> None:
    data = b'{"format": "lo\xffm"}'
    exc = load_error(data, "bytes.loom")
    offset = data.index(b"\xff")
    assert f"(byte {offset})" in str(exc)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.loom"
    with pytest.raises(LoomFileError) as info:
        load_graph(path)
    assert info.value.file == str(path)
    assert str(path) in str(info.value)
    assert "cannot read" in str(info.value)
    assert "No such file" in str(info.value)


def test_directory_path(tmp_path: Path) -> None:
    folder = tmp_path / "dir.loom"
    folder.mkdir()
    with pytest.raises(LoomFileError) as info:
        load_graph(folder)
    assert str(folder) in str(info.value)
    assert "cannot read" in str(info.value)


def test_load_graph_error_names_the_file_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.loom"
    path.write_text(with_change(("nodes", 0, "id"), ""), encoding="utf-8")
    with pytest.raises(LoomFileError) as info:
        load_graph(str(path))
    assert info.value.file == str(path)
    assert info.value.json_path == "$.nodes[0].id"
    assert str(info.value).startswith(f"{path}: $.nodes[0].id: ")


def test_loads_graph_default_source_name() -> None:
    with pytest.raises(LoomFileError, match=r"^<string>: "):
        loads_graph("[]")


def test_oversized_bytes_rejected_without_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    from loom.graph import fileformat

    monkeypatch.setattr(fileformat, "MAX_BYTES", 100)
    data = json.dumps(base_doc()).encode()
    assert len(data) > 100
    exc = load_error(data, "big.loom")
    assert "larger than 100 bytes" in str(exc)


# =========================================================================== 5. all or nothing


@pytest.mark.parametrize("text", [
    with_change(("connections", 0, "to"), ["missing", "in"]),  # fails after nodes parsed
    with_change(("nodes", 1, "id"), "n1"),  # fails after first node parsed
    "",
])
def test_load_returns_graph_or_raises_nothing_in_between(tmp_path: Path, text: str) -> None:
    path = tmp_path / "half.loom"
    path.write_text(text, encoding="utf-8")
    result: list[Graph] = []
    with pytest.raises(LoomFileError):
        result.append(load_graph(path))
    assert result == []


def test_failed_load_with_migrations_leaves_registry_unchanged() -> None:
    calls: list[str] = []
    reg = MigrationRegistry()
    reg.declare("t.src", 2)
    reg.register("t.src", 1, lambda n: calls.append(n.id))
    before = (dict(reg._current), dict(reg._steps))
    load_error(with_change(("connections", 0, "to"), ["missing", "in"]), migrations=reg)
    assert (reg._current, reg._steps) == before
    assert calls == []  # validation fails before any migration runs


def test_loading_twice_gives_independent_graphs() -> None:
    text = json.dumps(base_doc())
    a, b = loads_graph(text), loads_graph(text)
    a.node("n1").properties["x"] = 99
    assert b.node("n1").properties["x"] == 1


# =========================================================================== 6. executes nothing


def test_loading_executes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "X"
    monkeypatch.chdir(tmp_path)
    payloads = {
        "py": f"__import__('os').system('touch {marker}')",
        "yaml": f"!!python/object/apply:os.system ['touch {marker}']",
        "pickle": pickle.dumps(os.system).decode("latin-1"),
        "eval": f"eval(\"open('{marker}', 'w')\")",
        "reduce": {"__reduce__": ["os.system", [f"touch {marker}"]], "py/object": "os.system"},
    }
    doc = base_doc()
    doc["nodes"][0]["type"] = "os.system"
    doc["nodes"][0]["properties"] = payloads
    doc["nodes"][1]["metadata"] = {"execution_mode": f"__import__('os').system('touch {marker}')"}
    doc["graph"]["name"] = "{{7*7}} ${touch X} `touch X` $(touch X)"

    def forbidden(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("loading must not eval, exec or unpickle")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(os, "system", forbidden)

    graph = loads_graph(json.dumps(doc))
    monkeypatch.undo()

    assert not marker.exists()
    assert not (tmp_path / "X").exists()
    props = graph.node("n1").properties
    assert props == payloads
    assert all(isinstance(props[k], str) for k in ("py", "yaml", "pickle", "eval"))
    assert graph.node("n1").type == "os.system"
    assert graph.name == "{{7*7}} ${touch X} `touch X` $(touch X)"
    assert os.listdir(tmp_path) == []


# =========================================================================== 7. migrations


MIGRATION_DOC = {
    "format": "loom",
    "version": 1,
    "nodes": [
        {"id": "old", "type": "t", "type_version": 1, "properties": {"v": 1}},
        {"id": "implicit", "type": "t", "properties": {"v": 1}},
        {"id": "mid", "type": "t", "type_version": 2, "properties": {"v": 1}},
        {"id": "current", "type": "t", "type_version": 3, "properties": {"v": 1}},
        {"id": "future", "type": "t", "type_version": 9, "properties": {"v": 1}},
        {"id": "other", "type": "unrelated", "properties": {"v": 1}},
    ],
}


def _registry(calls: list[tuple[str, int]]) -> MigrationRegistry:
    def step12(node: Node) -> None:
        calls.append((node.id, 1))
        node.properties["v"] = node.properties["v"] * 10
        node.properties["history"] = ["1->2"]

    def step23(node: Node) -> None:
        calls.append((node.id, 2))
        node.properties["v"] = node.properties["v"] + 5
        node.properties.setdefault("history", []).append("2->3")

    reg = MigrationRegistry()
    reg.declare("t", 3)
    reg.register("t", 1, step12)
    reg.register("t", 2, step23)
    return reg


def test_migrations_upgrade_in_order_and_set_type_version() -> None:
    calls: list[tuple[str, int]] = []
    graph = loads_graph(json.dumps(MIGRATION_DOC), migrations=_registry(calls))
    assert calls == [("old", 1), ("old", 2), ("implicit", 1), ("implicit", 2), ("mid", 2)]
    # order matters: (1 * 10) + 5, not (1 + 5) * 10
    assert graph.node("old").properties == {"v": 15, "history": ["1->2", "2->3"]}
    assert graph.node("implicit").properties == {"v": 15, "history": ["1->2", "2->3"]}
    assert graph.node("mid").properties == {"v": 6, "history": ["2->3"]}
    for node_id in ("old", "implicit", "mid", "current"):
        assert graph.node(node_id).type_version == 3
    assert '"type_version": 3' in dumps_graph(graph)


def test_current_and_newer_nodes_are_untouched() -> None:
    calls: list[tuple[str, int]] = []
    graph = loads_graph(json.dumps(MIGRATION_DOC), migrations=_registry(calls))
    assert graph.node("current").properties == {"v": 1}
    future = graph.node("future")
    assert future.type_version == 9
    assert future.properties == {"v": 1}
    other = graph.node("other")
    assert other.type_version is None
    assert other.properties == {"v": 1}
    assert all(node_id not in ("current", "future", "other") for node_id, _ in calls)


def test_without_registry_nothing_is_upgraded() -> None:
    graph = loads_graph(json.dumps(MIGRATION_DOC))
    assert graph.node("old").type_version == 1
    assert graph.node("implicit").type_version is None
    assert graph.node("old").properties == {"v": 1}


def test_missing_step_means_no_change() -> None:
    calls: list[tuple[str, int]] = []
    reg = MigrationRegistry()
    reg.declare("t", 3)
    reg.register("t", 2, lambda n: calls.append((n.id, 2)))
    graph = loads_graph(json.dumps(MIGRATION_DOC), migrations=reg)
    assert calls == [("old", 2), ("implicit", 2), ("mid", 2)]
    assert graph.node("old").type_version == 3
    assert graph.node("old").properties == {"v": 1}


def test_declared_type_with_no_steps_just_bumps_version() -> None:
    reg = MigrationRegistry()
    reg.declare("t", 2)
    graph = loads_graph(json.dumps(MIGRATION_DOC), migrations=reg)
    assert graph.node("implicit").type_version == 2
    assert graph.node("old").type_version == 2
    assert graph.node("current").type_version == 3


def test_failing_step_is_loom_file_error_naming_node_path() -> None:
    def boom(node: Node) -> None:
        raise ValueError("bad data in " + node.id)

    reg = _registry([])
    reg.register("t", 2, boom)
    exc = load_error(json.dumps(MIGRATION_DOC), "mig.loom", migrations=reg)
    assert exc.file == "mig.loom"
    assert exc.json_path == "$.nodes[0]"
    message = str(exc)
    assert message.startswith("mig.loom: $.nodes[0]: ")
    assert "'old'" in message
    assert "from version 2" in message
    assert "ValueError: bad data in old" in message
    assert isinstance(exc.__cause__, MigrationError)


def test_failing_step_on_later_node_names_that_node() -> None:
    def boom(node: Node) -> None:
        if node.id == "mid":
            raise KeyError("missing")

    reg = MigrationRegistry()
    reg.declare("t", 3)
    reg.register("t", 2, boom)
    exc = load_error(json.dumps(MIGRATION_DOC), "mig.loom", migrations=reg)
    assert exc.json_path == "$.nodes[2]"
    assert "'mid'" in str(exc)


def test_load_graph_accepts_migrations(tmp_path: Path) -> None:
    path = tmp_path / "m.loom"
    path.write_text(json.dumps(MIGRATION_DOC), encoding="utf-8")
    graph = load_graph(path, migrations=_registry([]))
    assert graph.node("implicit").type_version == 3


def test_registry_upgrade_direct_api() -> None:
    reg = _registry([])
    assert reg.current_version("t") == 3
    assert reg.current_version("nope") is None
    graph = loads_graph(json.dumps(MIGRATION_DOC))
    changed = reg.upgrade_graph(graph)
    assert changed == ["old", "implicit", "mid"]
    assert reg.upgrade_graph(graph) == []


def test_migrated_graph_round_trips() -> None:
    graph = loads_graph(json.dumps(MIGRATION_DOC), migrations=_registry([]))
    text = dumps_graph(graph)
    assert loads_graph(text) == graph
    assert loads_graph(text, migrations=_registry([])) == graph


def test_migration_doc_is_not_mutated_by_loading() -> None:
    snapshot = copy.deepcopy(MIGRATION_DOC)
    loads_graph(json.dumps(MIGRATION_DOC), migrations=_registry([]))
    assert snapshot == MIGRATION_DOC


# =========================================================================== writing errors


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [
        (lambda g: g.node("n1").properties.update(bad={1, 2}), "$.nodes[1].properties.bad",
         "type set"),
        (lambda g: g.node("n1").properties.update(bad=object()), "$.nodes[1].properties.bad",
         "type object"),
        (lambda g: g.node("n1").properties.update(bad=float("nan")),
         "$.nodes[1].properties.bad", "NaN or Infinity"),
        (lambda g: g.node("n1").properties.update(bad=[1, float("-inf")]),
         "$.nodes[1].properties.bad[1]", "NaN or Infinity"),
        (lambda g: g.node("n0").metadata.update({"a b": {1: "x"}}),
         '$.nodes[0].metadata["a b"]', "object key 1 is not a string"),
        (lambda g: g.ui.update(when=b"bytes"), "$.ui.when", "type bytes"),
        (lambda g: setattr(g.node("n2"), "position", (float("nan"), 0.0)),
         "$.nodes[2].position[0]", "NaN"),
        (lambda g: g.extra.update(x=Connection), "$.x", "cannot be saved"),
    ],
)
def test_dumps_rejects_non_json_values(mutate: Any, path: str, fragment: str) -> None:
    graph = sample_graph()
    mutate(graph)
    with pytest.raises(LoomFileError) as info:
        dumps_graph(graph, "out.loom")
    assert info.value.file == "out.loom"
    assert info.value.json_path == path
    assert fragment in str(info.value)


def test_dumps_rejects_self_referencing_value() -> None:
    graph = sample_graph()
    loop: list[Any] = []
    loop.append(loop)
    graph.node("n1").properties["loop"] = loop
    with pytest.raises(LoomFileError, match="nesting deeper than 64"):
        dumps_graph(graph)
