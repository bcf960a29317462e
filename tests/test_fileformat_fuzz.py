"""Property-based tests of the .loom reader and writer (Hypothesis).

The contract under test: ``loads_graph`` turns *any* input into either a whole Graph or
one LoomFileError, and whatever it accepts (or whatever valid Graph code builds) dumps
to canonical text that loads back equal and dumps again to the same bytes.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from loom.graph import (
    Connection,
    Graph,
    GraphSettings,
    LoomFileError,
    Node,
    dumps_graph,
    graph_document,
    loads_graph,
)

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SOURCE = "fuzz.loom"

TOP_KEYS = {"format", "version", "graph", "nodes", "connections", "ui"}
GRAPH_KEYS = {"name", "settings"}
SETTINGS_KEYS = {"max_concurrency"}
NODE_KEYS = {"id", "type", "type_version", "name", "position", "properties", "metadata"}
CONN_KEYS = {"from", "to"}


def load_or_error(data: str | bytes) -> Graph | None:
    """Graph or LoomFileError; any other exception propagates and fails the test."""
    try:
        graph = loads_graph(data, SOURCE)
    except LoomFileError as exc:
        assert exc.file == SOURCE
        assert str(exc).startswith(SOURCE + ": ")
        assert exc.problem
        event("LoomFileError")  # shown by --hypothesis-show-statistics
        return None
    assert isinstance(graph, Graph)
    event("Graph")
    return graph


def assert_canonical_round_trip(graph: Graph) -> None:
    text = dumps_graph(graph)
    again = loads_graph(text, SOURCE)
    assert again == graph
    assert dumps_graph(again) == text
    assert text.endswith("}\n")


# --------------------------------------------------------------------------- JSON strategies

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
)
any_json = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=20,
)

finite_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
)
finite_json = st.recursive(
    finite_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=6,
)
json_objects = st.dictionaries(st.text(max_size=8), finite_json, max_size=3)
#: cheaper, flat objects for metadata and ui (nesting is exercised through properties)
flat_objects = st.dictionaries(st.text(max_size=8), finite_scalars, max_size=2)


def extras(known: set[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Unknown keys a newer Loom might write: never one of the known ones."""
    keys = st.text(min_size=1, max_size=8).filter(lambda k: k not in known)
    return st.one_of(st.just({}), st.dictionaries(keys, finite_scalars, max_size=2))


# --------------------------------------------------------------------------- (a) raw input


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_give_graph_or_loom_error(data: bytes) -> None:
    graph = load_or_error(data)
    if graph is not None:
        assert_canonical_round_trip(graph)


@FUZZ
@given(st.text(max_size=400))
def test_random_text_gives_graph_or_loom_error(text: str) -> None:
    graph = load_or_error(text)
    if graph is not None:
        assert_canonical_round_trip(graph)


CANONICAL_SAMPLE = (
    '{\n  "format": "loom",\n  "version": 1,\n'
    '  "graph": {"name": "x", "settings": {"max_concurrency": 2}},\n'
    '  "nodes": [\n    {\n      "id": "a",\n      "type": "t",\n      "name": "",\n'
    '      "position": [1.0, 2.0],\n      "properties": {"k": [1, {"z": null}]},\n'
    '      "metadata": {}\n    },\n    {\n      "id": "b",\n      "type": "u",\n'
    '      "name": "B",\n      "position": [0.0, 0.0],\n      "properties": {},\n'
    '      "metadata": {"execution_mode": "sequential"}\n    }\n  ],\n'
    '  "connections": [{"from": ["a", "out"], "to": ["b", "in"]}],\n  "ui": {}\n}\n'
)


def test_canonical_sample_is_valid() -> None:
    assert dumps_graph(loads_graph(CANONICAL_SAMPLE)) == CANONICAL_SAMPLE


@FUZZ
@given(st.data())
def test_mutated_canonical_bytes_give_graph_or_loom_error(data: st.DataObject) -> None:
    raw = bytearray(CANONICAL_SAMPLE.encode("utf-8"))
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        start = data.draw(st.integers(0, len(raw)), label="start")
        stop = data.draw(st.integers(start, min(len(raw), start + 12)), label="stop")
        insert = data.draw(st.one_of(
            st.binary(max_size=6),
            st.sampled_from([b"", b"[", b"]", b"{", b"}", b",", b'"', b":", b"null", b"1e999",
                             b"NaN", b"-", b"\\u0000", b"\xff", b"true", b"0", b'"a"']),
        ), label="insert")
        raw[start:stop] = insert
    graph = load_or_error(bytes(raw))
    if graph is not None:
        assert_canonical_round_trip(graph)


# --------------------------------------------------------------------------- (b) any JSON


@FUZZ
@given(any_json)
def test_random_json_values_give_graph_or_loom_error(value: Any) -> None:
    graph = load_or_error(json.dumps(value, allow_nan=True))
    if graph is not None:
        assert_canonical_round_trip(graph)


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(TOP_KEYS | {"extra"})), any_json, max_size=7))
def test_random_json_under_loom_header(body: dict[str, Any]) -> None:
    doc = {"format": "loom", "version": 1, **body}
    graph = load_or_error(json.dumps(doc, allow_nan=True))
    if graph is not None:
        assert_canonical_round_trip(graph)


# --------------------------------------------------------------------------- (c) valid-ish docs

node_ids = st.sampled_from(["a", "b", "c", "d", "n1", "n2", "é"])
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
good_positions = st.lists(
    st.one_of(finite_floats, st.integers(min_value=-(10**15), max_value=10**15)),
    min_size=2, max_size=2,
)
type_names = st.text(min_size=1, max_size=10)
short_text = st.text(max_size=10)
type_versions = st.none() | st.integers(1, 1000)
modes = st.text(min_size=1, max_size=10)
picks = st.integers(0, 2**16)  # an index into a list built during the draw, modulo its length
ports = st.sampled_from(["in", "out", "x", "é ü", "a.b"])
NODE_EXTRAS, CONN_EXTRAS = extras(NODE_KEYS), extras(CONN_KEYS)
SETTINGS_EXTRAS, GRAPH_EXTRAS, TOP_EXTRAS = extras(SETTINGS_KEYS), extras(GRAPH_KEYS), \
    extras(TOP_KEYS)
wire_picks = st.lists(st.tuples(picks, ports, picks, ports), max_size=4)


def _metadata(draw: st.DrawFn) -> dict[str, Any]:
    metadata = draw(flat_objects)
    if "execution_mode" in metadata:  # must be a non-empty string when present
        metadata["execution_mode"] = draw(modes)
    return metadata


def _wires(draw: st.DrawFn, ids: list[str]) -> list[tuple[str, str, str, str]]:
    if not ids:
        return []
    wires = {(ids[a % len(ids)], sp, ids[b % len(ids)], dp) for a, sp, b, dp in draw(wire_picks)}
    return sorted(wires)


@st.composite
def valid_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document in canonical key order (every optional key present)."""
    ids = draw(st.lists(node_ids, unique=True, max_size=4))
    nodes = []
    for node_id in ids:
        node: dict[str, Any] = {"id": node_id, "type": draw(type_names)}
        version = draw(type_versions)
        if version is not None:
            node["type_version"] = version
        node.update(name=draw(short_text), position=draw(good_positions),
                    properties=draw(json_objects), metadata=_metadata(draw))
        node.update(draw(NODE_EXTRAS))
        nodes.append(node)
    connections = [{"from": [src, sp], "to": [dst, dp], **draw(CONN_EXTRAS)}
                   for src, sp, dst, dp in _wires(draw, ids)]
    settings_doc = {"max_concurrency": draw(st.integers(1, 64)), **draw(SETTINGS_EXTRAS)}
    doc = {
        "format": "loom",
        "version": 1,
        "graph": {"name": draw(short_text), "settings": settings_doc, **draw(GRAPH_EXTRAS)},
        "nodes": nodes,
        "connections": connections,
        "ui": draw(flat_objects),
    }
    doc.update(draw(TOP_EXTRAS))
    return doc


def _containers(value: Any, out: list[Any]) -> list[Any]:
    if isinstance(value, (dict, list)):
        out.append(value)
        for child in (value.values() if isinstance(value, dict) else value):
            _containers(child, out)
    return out


# deep-copied: a mutation may later append into a drawn list or dict
bad_values = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 1.5, "", "x", [], {}, [1], ["a", "b"],
                     ["a", "b", "c"], [True, 0], {"x": 1}, float("nan"), float("inf")]),
    any_json,
).map(copy.deepcopy)
new_keys = st.text(max_size=12) | st.sampled_from(sorted(NODE_KEYS | TOP_KEYS))
mutations = st.lists(st.tuples(picks, st.sampled_from(["set", "delete", "add"]), picks,
                               new_keys, bad_values), max_size=3)


@st.composite
def mutated_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document with up to three random edits (set, delete or add) anywhere."""
    doc = draw(valid_docs())
    for where, action, which, key, value in draw(mutations):
        containers = _containers(doc, [])
        target = containers[where % len(containers)]
        if action == "add" or not target:
            if isinstance(target, dict):
                target[key] = value
            else:
                target.append(value)
            continue
        index: Any = sorted(target)[which % len(target)] if isinstance(target, dict) \
            else which % len(target)
        if action == "delete":
            del target[index]
        else:
            target[index] = value
    return doc


@FUZZ
@given(valid_docs())
def test_valid_documents_load_exactly(doc: dict[str, Any]) -> None:
    text = json.dumps(doc, ensure_ascii=False)
    graph = loads_graph(text, SOURCE)
    assert graph_document(graph) == doc
    assert len(graph) == len(doc["nodes"])
    assert_canonical_round_trip(graph)
    assert json.loads(dumps_graph(graph)) == doc


@FUZZ
@given(mutated_docs())
def test_mutated_documents_give_graph_or_loom_error(doc: dict[str, Any]) -> None:
    graph = load_or_error(json.dumps(doc, allow_nan=True))
    if graph is not None:
        assert_canonical_round_trip(graph)


# --------------------------------------------------------------------------- (d) Graph objects

graph_ids = st.lists(st.text(alphabet="abcxyz019_-.", min_size=1, max_size=3),
                     unique=True, max_size=4)


@st.composite
def graphs(draw: st.DrawFn) -> Graph:
    """Valid Graph objects as code would build them (JSON-able values, finite positions)."""
    graph = Graph(
        name=draw(short_text),
        settings=GraphSettings(max_concurrency=draw(st.integers(1, 10**6)),
                               extra=draw(SETTINGS_EXTRAS)),
        ui=draw(flat_objects),
        graph_extra=draw(GRAPH_EXTRAS),
        extra=draw(TOP_EXTRAS),
    )
    ids = draw(graph_ids)
    for node_id in ids:
        graph.add_node(Node(
            id=node_id,
            type=draw(type_names),
            name=draw(short_text),
            position=(draw(finite_floats), draw(finite_floats)),
            properties=draw(json_objects),
            metadata=_metadata(draw),
            type_version=draw(type_versions),
            extra=draw(NODE_EXTRAS),
        ))
    for src, sp, dst, dp in _wires(draw, ids):
        graph.connections.append(Connection(src, sp, dst, dp, extra=draw(CONN_EXTRAS)))
    return graph


@FUZZ
@given(graphs())
def test_graph_round_trip_and_byte_stable(graph: Graph) -> None:
    text = dumps_graph(graph)
    loaded = loads_graph(text, SOURCE)
    assert loaded == graph
    assert dumps_graph(loaded) == text
    data = text.encode("utf-8")
    assert loads_graph(data, SOURCE) == graph
    assert text.endswith("\n") and "\t" not in text


@FUZZ
@given(graphs(), st.data())
def test_one_property_change_changes_few_lines(graph: Graph, data: st.DataObject) -> None:
    if not len(graph):
        return
    before = dumps_graph(graph)
    node = graph.node(data.draw(st.sampled_from(list(graph.nodes)), label="node"))
    node.properties[data.draw(st.text(max_size=6), label="key")] = data.draw(
        finite_scalars, label="value")
    after = dumps_graph(graph)
    old, new = before.splitlines(), after.splitlines()
    # Only this node's block may change: every line before and after it stays the same.
    start = old.index(f'      "id": {json.dumps(node.id, ensure_ascii=False)},')
    assert new[start] == old[start]
    old_end, new_end = _block_end(old, start), _block_end(new, start)
    assert old[:start] == new[:start]
    assert old[old_end:] == new[new_end:]
    assert loads_graph(after) == graph


def _block_end(lines: list[str], start: int) -> int:
    """Index of the line closing the node block that starts at ``start``."""
    return next(i for i in range(start, len(lines)) if lines[i] in ("    }", "    },"))
