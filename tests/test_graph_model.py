"""The graph model's bookkeeping helpers (loom.graph.model)."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import pytest

import loom.graph
from loom.graph import (
    DEFAULT_EXECUTION_MODE,
    Connection,
    Graph,
    GraphSettings,
    Node,
    dumps_graph,
    loads_graph,
)


def _graph(*ids: str) -> Graph:
    graph = Graph()
    for node_id in ids:
        graph.add_node(Node(node_id, "t"))
    return graph


# --------------------------------------------------------------------------- add / remove


def test_add_node_returns_node_and_keeps_file_order() -> None:
    graph = Graph()
    b = graph.add_node(Node("b", "t"))
    a = graph.add_node(Node("a", "t"))
    assert b.id == "b"
    assert [n.id for n in graph] == ["b", "a"]
    assert len(graph) == 2
    assert graph.node("a") is a


def test_add_node_duplicate_id_raises_and_keeps_original() -> None:
    graph = Graph()
    first = graph.add_node(Node("n1", "first"))
    with pytest.raises(ValueError, match="n1"):
        graph.add_node(Node("n1", "second"))
    assert graph.node("n1") is first
    assert len(graph) == 1


def test_node_lookup_missing_raises_keyerror_naming_id() -> None:
    graph = _graph("a")
    with pytest.raises(KeyError, match="zz"):
        graph.node("zz")


def test_remove_node_removes_every_wire_touching_it() -> None:
    graph = _graph("a", "b", "c")
    graph.connect("a", "out", "b", "in")
    graph.connect("b", "out", "c", "in")
    graph.connect("a", "out", "c", "other")
    removed = graph.remove_node("b")
    assert removed.id == "b"
    assert "b" not in graph.nodes
    assert [c.key for c in graph.connections] == [("a", "out", "c", "other")]


def test_remove_node_self_loop_wire_removed() -> None:
    graph = _graph("a")
    graph.connect("a", "out", "a", "in")
    graph.remove_node("a")
    assert graph.connections == []
    assert len(graph) == 0


def test_remove_missing_node_raises_keyerror() -> None:
    graph = _graph("a")
    with pytest.raises(KeyError):
        graph.remove_node("nope")
    assert len(graph) == 1


# --------------------------------------------------------------------------- connect


@pytest.mark.parametrize(("src", "dst"), [("zz", "a"), ("a", "zz"), ("zz", "yy")])
def test_connect_to_missing_node_raises_keyerror(src: str, dst: str) -> None:
    graph = _graph("a", "b")
    with pytest.raises(KeyError, match=r"zz|yy"):
        graph.connect(src, "out", dst, "in")
    assert graph.connections == []


def test_connect_returns_connection_with_fields() -> None:
    graph = _graph("a", "b")
    conn = graph.connect("a", "out", "b", "in")
    assert conn == Connection("a", "out", "b", "in")
    assert conn.key == ("a", "out", "b", "in")
    assert graph.connections == [conn]


def test_connect_leaves_wiring_rules_to_validation() -> None:
    # connect() is O(1); a repeated wire is reported by validation, which knows ports.
    graph = _graph("a", "b")
    graph.connect("a", "out", "b", "in")
    graph.connect("a", "out", "b", "in")
    assert len(graph.connections) == 2


def test_graph_built_with_connect_always_loads_back() -> None:
    graph = _graph("a", "b")
    graph.connect("a", "out", "b", "in")
    with contextlib.suppress(ValueError):
        graph.connect("a", "out", "b", "in")
    assert loads_graph(dumps_graph(graph)) == graph


def test_connect_same_nodes_different_ports_is_allowed() -> None:
    graph = _graph("a", "b")
    graph.connect("a", "out", "b", "in")
    graph.connect("a", "out", "b", "in2")
    graph.connect("a", "out2", "b", "in")
    assert len(graph.connections) == 3


def test_connection_key_ignores_extra() -> None:
    plain = Connection("a", "o", "b", "i")
    rich = Connection("a", "o", "b", "i", extra={"color": "red"})
    assert plain.key == rich.key
    assert plain != rich


# --------------------------------------------------------------------------- new_node_id


def test_new_node_id_empty_graph_is_n1() -> None:
    assert Graph().new_node_id() == "n1"


def test_new_node_id_sequence() -> None:
    graph = Graph()
    ids = []
    for _ in range(12):
        node_id = graph.new_node_id()
        graph.add_node(Node(node_id, "t"))
        ids.append(node_id)
    assert ids == [f"n{i}" for i in range(1, 13)]


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        (["n1", "n2"], "n3"),
        (["n1", "n3"], "n4"),
        (["n9", "n10"], "n11"),  # numeric, not lexicographic
        (["n2", "x9", "node7", "n"], "n3"),  # other prefixes ignored
        (["x1", "x2"], "n1"),
        (["n007"], "n8"),
    ],
)
def test_new_node_id_skips_used_ids(existing: list[str], expected: str) -> None:
    graph = _graph(*existing)
    new = graph.new_node_id()
    assert new == expected
    assert new not in graph.nodes


def test_new_node_id_custom_prefix() -> None:
    graph = _graph("text1", "text4", "n9")
    assert graph.new_node_id("text") == "text5"
    assert graph.new_node_id() == "n10"


def test_new_node_id_prefix_ending_in_digit_is_unused() -> None:
    graph = _graph("n11")
    assert graph.new_node_id("n1") not in graph.nodes


# --------------------------------------------------------------------------- Node


def test_node_label_with_name() -> None:
    assert Node("n1", "text.upper", name="Upper").label == "Upper (n1)"


def test_node_label_without_name_is_id() -> None:
    assert Node("n1", "text.upper").label == "n1"


def test_node_label_name_equal_to_id_is_not_repeated() -> None:
    assert Node("n1", "text.upper", name="n1").label == "n1"


def test_node_version_defaults_to_one() -> None:
    assert Node("a", "t").type_version is None
    assert Node("a", "t").version == 1
    assert Node("a", "t", type_version=4).version == 4


def test_node_defaults_are_not_shared() -> None:
    a, b = Node("a", "t"), Node("b", "t")
    a.properties["x"] = 1
    a.metadata["execution_mode"] = "parallel"
    a.extra["k"] = 1
    assert b.properties == {} and b.metadata == {} and b.extra == {}
    assert a.position == (0.0, 0.0) and a.name == ""


def test_graph_defaults() -> None:
    graph = Graph()
    assert graph.settings == GraphSettings(max_concurrency=1)
    assert graph.name == "" and graph.ui == {} and graph.extra == {} and graph.graph_extra == {}
    assert DEFAULT_EXECUTION_MODE == "sequential"


# --------------------------------------------------------------------------- package surface


def test_public_names_are_pinned() -> None:
    assert set(loom.graph.__all__) == {
        "DEFAULT_EXECUTION_MODE", "Connection", "Graph", "GraphSettings", "LoomFileError",
        "Migration", "MigrationError", "MigrationRegistry", "Node", "dumps_graph",
        "graph_document", "load_graph", "loads_graph", "save_graph",
    }
    for name in loom.graph.__all__:
        assert hasattr(loom.graph, name)


def test_graph_package_imports_no_qt() -> None:
    code = (
        "import sys, loom.graph\n"
        "bad = [m for m in sys.modules if m.startswith(('PySide6', 'shiboken6'))]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=30)
    assert out.stdout.strip() == ""
