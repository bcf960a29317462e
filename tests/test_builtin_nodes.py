"""The built-in node packs in nodes/: ids, ports, and what each node does.

Nodes are called directly (``registry[id].func(...)``): a node is a plain
function. A few tests run small graphs to check the packs under the engine.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import run_graph

from loom.engine import ExecutionManager, NodeState, RunStatus
from loom.graph import Graph, Node
from loom.registry import Registry, builtin_pack_dir

PACKS: dict[str, set[str]] = {
    "values": {"number", "integer", "text", "boolean", "list", "dict", "json"},
    "math": {"add", "subtract", "multiply", "divide", "power", "modulo", "negate", "abs",
             "round", "floor", "ceil", "min", "max", "sum", "mean", "compare", "clamp"},
    "text": {"upper", "lower", "strip", "concat", "format", "to_text", "split", "join",
             "replace", "length", "contains", "starts_with", "ends_with", "regex_findall"},
    "lists": {"range", "length", "get", "append", "concat", "slice", "reverse", "sort",
              "unique", "flatten", "filter_none", "zip", "collect"},
    "dicts": {"get", "set", "remove", "keys", "values", "merge", "from_pairs", "pick"},
    "data": {"parse_json", "to_json"},
    "files": {"read_text", "write_text", "read_json", "write_json", "list_dir", "exists"},
    "time": {"delay", "now", "timestamp"},
}
CATEGORIES = {"values": "Values", "math": "Math", "text": "Text", "lists": "Lists",
              "dicts": "Dicts", "data": "Data", "files": "Files", "time": "Time"}
ALL_IDS = {f"{pack}.{name}" for pack, names in PACKS.items() for name in names}
#: nodes that do I/O or may run long: never inline on the event loop
NOT_CHEAP = {f"files.{name}" for name in PACKS["files"]} | {"text.regex_findall"}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.standard(entry_points=False)


@pytest.fixture(scope="module")
def fn(registry: Registry) -> Callable[[str], Callable[..., Any]]:
    """``fn("text.upper")`` is the node's plain function."""
    return lambda type_id: registry[type_id].func


# --------------------------------------------------------------------------- the packs


def test_packs_load_without_problems(registry: Registry) -> None:
    assert registry.problems == []
    missing = ALL_IDS - {spec.type_id for spec in registry}
    assert not missing, f"node types not registered: {sorted(missing)}"


def test_each_pack_is_one_module_with_its_category(registry: Registry) -> None:
    folder = builtin_pack_dir()
    for pack, category in CATEGORIES.items():
        ids = {s.type_id for s in registry if s.type_id.startswith(pack + ".")}
        assert ids == {f"{pack}.{n}" for n in PACKS[pack]}, pack
        for type_id in ids:
            spec = registry[type_id]
            assert spec.category == category, type_id
            assert Path(registry.origin(type_id)) == (folder / f"{pack}.py").resolve()


def test_every_node_is_documented_and_typed(registry: Registry) -> None:
    for type_id in sorted(ALL_IDS):
        spec = registry[type_id]
        assert spec.description, f"{type_id} has no docstring"
        assert "\n" not in spec.description, f"{type_id}: the palette shows one line"
        assert [p.name for p in spec.outputs] == ["out"], type_id
        if type_id not in {"values.json", "data.parse_json", "files.read_json", "lists.get",
                           "dicts.get", "time.delay"}:
            assert spec.outputs[0].type != "any", f"{type_id} output is untyped"


def test_cheap_nodes_run_inline_and_io_nodes_do_not(registry: Registry) -> None:
    for type_id in sorted(ALL_IDS):
        spec = registry[type_id]
        if type_id == "time.delay":
            assert spec.kind == "async" and spec.executor == "async"
        elif type_id in NOT_CHEAP:
            assert spec.executor == "thread", type_id
        else:
            assert spec.executor == "inline", f"{type_id} should be cheap"


def test_packs_do_not_shadow_the_standard_library(registry: Registry) -> None:
    # nodes/math.py and nodes/time.py are loaded by path under private names, so the
    # stdlib modules of the same names stay what `import math` / `import time` give.
    assert str(builtin_pack_dir()) not in sys.path
    assert registry["math.add"].func.__module__ == "loom_nodes.math"
    assert registry["time.now"].func.__module__ == "loom_nodes.time"
    assert sys.modules["math"] is math and math.sqrt(4) == 2.0
    assert sys.modules["time"] is time and callable(time.perf_counter)
    assert registry["math.floor"].func.__globals__["math"] is math


# --------------------------------------------------------------------------- values


def test_values_return_their_value(fn: Any) -> None:
    assert fn("values.number")(value=2.5) == 2.5
    assert fn("values.number")() == 0.0
    assert fn("values.integer")(value=7) == 7
    assert fn("values.text")(value="hi") == "hi"
    assert fn("values.text")() == ""
    assert fn("values.boolean")(value=True) is True
    assert fn("values.list")(value=[1, [2]]) == [1, [2]]
    assert fn("values.list")() == []
    assert fn("values.dict")(value={"a": 1}) == {"a": 1}
    assert fn("values.json")(value={"x": [1, None]}) == {"x": [1, None]}
    assert fn("values.json")() is None


def test_value_ports_have_the_right_types(registry: Registry) -> None:
    types = {name: registry[f"values.{name}"].outputs[0].type for name in PACKS["values"]}
    assert types == {"number": "float", "integer": "int", "text": "str", "boolean": "bool",
                     "list": "list", "dict": "dict", "json": "any"}
    assert registry["values.list"].inputs[0].default == []


async def test_list_property_default_is_copied_per_call(registry: Registry) -> None:
    # Two constants with the default [] feed an append each: neither sees the other's item.
    graph = Graph(name="defaults")
    for nid, type_id, props in [("l1", "values.list", {}), ("l2", "values.list", {}),
                                ("a1", "lists.append", {"item": 1}),
                                ("a2", "lists.append", {"item": 2})]:
        graph.add_node(Node(nid, type_id, properties=props))
    graph.connect("l1", "out", "a1", "items")
    graph.connect("l2", "out", "a2", "items")
    result = await ExecutionManager(graph, registry).run()
    assert result.status is RunStatus.SUCCEEDED
    assert result.outputs["a1"]["out"] == [1] and result.outputs["a2"]["out"] == [2]
    assert registry["values.list"].inputs[0].default == []


# --------------------------------------------------------------------------- math


def test_arithmetic(fn: Any) -> None:
    assert fn("math.add")(a=2, b=3) == 5
    assert fn("math.add")(a=1.5) == 1.5
    assert fn("math.subtract")(a=2, b=5) == -3
    assert fn("math.multiply")(a=4, b=2.5) == 10.0
    assert fn("math.divide")(a=7, b=2) == 3.5
    assert fn("math.power")(base=2, exponent=10) == 1024
    assert fn("math.power")(base=3) == 9
    assert fn("math.modulo")(a=7, b=3) == 1
    assert fn("math.modulo")(a=-7, b=3) == 2
    assert fn("math.negate")(value=4) == -4
    assert fn("math.abs")(value=-2.5) == 2.5


def test_divide_by_zero_raises(fn: Any) -> None:
    with pytest.raises(ZeroDivisionError):
        fn("math.divide")(a=1, b=0)


def test_rounding(fn: Any) -> None:
    assert fn("math.round")(value=3.14159, ndigits=2) == 3.14
    assert fn("math.round")(value=2.5) == 2.0  # banker's rounding, as Python does
    assert fn("math.floor")(value=-1.5) == -2
    assert fn("math.ceil")(value=1.2) == 2
    assert isinstance(fn("math.floor")(value=2.7), int)


def test_min_max_sum_mean(fn: Any) -> None:
    assert fn("math.min")(a=3, b=-1) == -1
    assert fn("math.max")(a=3, b=-1) == 3
    assert fn("math.sum")(items=[1, 2, 3.5]) == 6.5
    assert fn("math.sum")(items=[]) == 0
    assert fn("math.mean")(items=[1, 2, 3, 4]) == 2.5
    with pytest.raises(ValueError, match="at least one"):  # StatisticsError is a ValueError
        fn("math.mean")(items=[])


def test_compare(fn: Any, registry: Registry) -> None:
    compare = fn("math.compare")
    assert compare(a=1, b=1) is True
    assert compare(a=1, b=2, op="!=") is True
    assert compare(a=1, b=2, op="<") is True
    assert compare(a=2, b=2, op="<=") is True
    assert compare(a=1, b=2, op=">") is False
    assert compare(a="b", b="a", op=">=") is True
    with pytest.raises(ValueError, match="unknown comparison"):
        compare(a=1, b=2, op="=~")
    op = registry["math.compare"].input("op")
    assert op is not None and op.type == "str" and op.default == "=="
    assert op.choices == ("==", "!=", "<", "<=", ">", ">=")


def test_clamp(fn: Any) -> None:
    clamp = fn("math.clamp")
    assert clamp(value=5, low=0, high=3) == 3
    assert clamp(value=-1, low=0, high=3) == 0
    assert clamp(value=0.5) == 0.5
    with pytest.raises(ValueError, match="greater than high"):
        clamp(value=1, low=2, high=1)


# --------------------------------------------------------------------------- text


def test_case_and_whitespace(fn: Any) -> None:
    assert fn("text.upper")(text="a", suffix="!") == "A!"
    assert fn("text.upper")(text="abc") == "ABC"
    assert fn("text.lower")(text="AbC") == "abc"
    assert fn("text.strip")(text="  hi \n") == "hi"
    assert fn("text.strip")(text="xxhixx", chars="x") == "hi"
    assert fn("text.strip")(text=" hi ", chars="") == "hi"


def test_concat_format_and_to_text(fn: Any) -> None:
    assert fn("text.concat")(a="a", b="b") == "ab"
    assert fn("text.concat")(a="a", b="b", separator=", ") == "a, b"
    values = {"name": "Loom", "n": 3}
    snapshot = copy.deepcopy(values)
    assert fn("text.format")(template="{name} has {n} nodes", values=values) == \
        "Loom has 3 nodes"
    assert values == snapshot
    assert fn("text.format")(template="no fields") == "no fields"
    with pytest.raises(KeyError):
        fn("text.format")(template="{missing}", values={})
    assert fn("text.to_text")(value=[1, 2]) == "[1, 2]"
    assert fn("text.to_text")(value=1.5) == "1.5"


def test_split_and_join(fn: Any) -> None:
    assert fn("text.split")(text="a  b\tc") == ["a", "b", "c"]
    assert fn("text.split")(text="a,b,,c", separator=",") == ["a", "b", "", "c"]
    assert fn("text.split")(text="a b", separator="") == ["a", "b"]
    assert fn("text.split")(text="a,b,c", separator=",", maxsplit=1) == ["a", "b,c"]
    items = ["x", 1, None]
    assert fn("text.join")(items=items, separator="-") == "x-1-None"
    assert items == ["x", 1, None]
    assert fn("text.join")(items=[]) == ""


def test_search_and_replace(fn: Any) -> None:
    assert fn("text.replace")(text="a-b-c", old="-", new="+") == "a+b+c"
    assert fn("text.replace")(text="a-b-c", old="-", count=1) == "ab-c"
    assert fn("text.length")(text="héllo") == 5
    assert fn("text.contains")(text="hello", part="ell") is True
    assert fn("text.contains")(text="hello", part="xyz") is False
    assert fn("text.starts_with")(text="hello", prefix="he") is True
    assert fn("text.ends_with")(text="hello", suffix="he") is False


def test_regex_findall(fn: Any) -> None:
    findall = fn("text.regex_findall")
    assert findall(text="a1 b22 c333", pattern=r"\d+") == ["1", "22", "333"]
    assert findall(text="x=1, y=2", pattern=r"(\w)=(\d)") == [["x", "1"], ["y", "2"]]
    assert findall(text="Aa", pattern="a", ignore_case=True) == ["A", "a"]
    assert findall(text="abc", pattern="z") == []


# --------------------------------------------------------------------------- lists


def test_range_length_get(fn: Any) -> None:
    assert fn("lists.range")(stop=4) == [0, 1, 2, 3]
    assert fn("lists.range")(start=10, stop=0, step=-3) == [10, 7, 4, 1]
    assert fn("lists.range")() == list(range(10))
    assert fn("lists.length")(items=[1, 2, 3]) == 3
    assert fn("lists.get")(items=["a", "b"], index=1) == "b"
    assert fn("lists.get")(items=["a", "b"], index=-1) == "b"
    assert fn("lists.get")(items=["a", "b"]) == "a"
    with pytest.raises(IndexError, match="index 5 is out of range for a list of 2"):
        fn("lists.get")(items=["a", "b"], index=5)


def test_list_nodes_never_mutate_their_inputs(fn: Any) -> None:
    items = [3, [1], 2]
    other = [9]
    snapshot = copy.deepcopy((items, other))
    out = fn("lists.append")(items=items, item=4)
    assert out == [3, [1], 2, 4] and out is not items
    assert fn("lists.concat")(a=items, b=other) == [3, [1], 2, 9]
    assert fn("lists.reverse")(items=items) == [2, [1], 3]
    assert fn("lists.slice")(items=items, start=1) == [[1], 2]
    assert fn("lists.sort")(items=[3, 1, 2]) == [1, 2, 3]
    assert fn("lists.flatten")(items=items) == [3, 1, 2]
    assert fn("lists.unique")(items=items + items) == items
    assert (items, other) == snapshot


def test_slice(fn: Any) -> None:
    items = list(range(6))
    assert fn("lists.slice")(items=items) == items
    assert fn("lists.slice")(items=items, start=1, stop=4) == [1, 2, 3]
    assert fn("lists.slice")(items=items, step=2) == [0, 2, 4]
    assert fn("lists.slice")(items=items, start=-2) == [4, 5]
    assert fn("lists.slice")(items=items, start=10) == []


def test_sort(fn: Any) -> None:
    data = [3, 1, 2]
    assert fn("lists.sort")(items=data) == [1, 2, 3]
    assert fn("lists.sort")(items=data, reverse=True) == [3, 2, 1]
    assert fn("lists.sort")(items=["b", "a"]) == ["a", "b"]
    assert data == [3, 1, 2]
    with pytest.raises(TypeError):
        fn("lists.sort")(items=[1, "a"])


def test_unique_flatten_filter_zip(fn: Any) -> None:
    assert fn("lists.unique")(items=[3, 1, 3, 2, 1]) == [3, 1, 2]
    assert fn("lists.unique")(items=[1, True, 1.0, [1], [1], {"a": 1}, {"a": 1}]) == \
        [1, True, [1], {"a": 1}]
    assert fn("lists.flatten")(items=[[1, 2], 3, [[4]], []]) == [1, 2, 3, [4]]
    assert fn("lists.filter_none")(items=[0, None, "", None, False]) == [0, "", False]
    assert fn("lists.zip")(a=[1, 2, 3], b=["a", "b"]) == [[1, "a"], [2, "b"]]
    assert fn("lists.zip")(a=[], b=[1]) == []


# --------------------------------------------------------------------------- dicts


def test_dict_get_keys_values(fn: Any) -> None:
    data = {"a": 1, "b": None}
    assert fn("dicts.get")(data=data, key="a") == 1
    assert fn("dicts.get")(data=data, key="b", default=5) is None
    assert fn("dicts.get")(data=data, key="z", default=5) == 5
    assert fn("dicts.keys")(data=data) == ["a", "b"]
    assert fn("dicts.values")(data=data) == [1, None]


def test_dict_nodes_never_mutate_their_inputs(fn: Any) -> None:
    a = {"x": 1, "nested": {"y": 2}}
    b = {"x": 10, "z": 3}
    snapshot = copy.deepcopy((a, b))
    out = fn("dicts.set")(data=a, key="w", value=0)
    assert out == {"x": 1, "nested": {"y": 2}, "w": 0} and out is not a
    assert fn("dicts.remove")(data=a, key="x") == {"nested": {"y": 2}}
    assert fn("dicts.remove")(data=a, key="absent") == a
    assert fn("dicts.merge")(a=a, b=b) == {"x": 10, "nested": {"y": 2}, "z": 3}
    assert fn("dicts.pick")(data=a, keys=["x", "absent"]) == {"x": 1}
    assert (a, b) == snapshot


def test_from_pairs(fn: Any) -> None:
    assert fn("dicts.from_pairs")(pairs=[["a", 1], ("b", 2), ["a", 3]]) == {"a": 3, "b": 2}
    assert fn("dicts.from_pairs")(pairs=[]) == {}
    with pytest.raises(ValueError, match="item 1 should be a"):
        fn("dicts.from_pairs")(pairs=[["a", 1], ["b"]])


def test_zip_then_from_pairs_round_trip(fn: Any) -> None:
    pairs = fn("lists.zip")(a=["k1", "k2"], b=[1, 2])
    assert fn("dicts.from_pairs")(pairs=pairs) == {"k1": 1, "k2": 2}


# --------------------------------------------------------------------------- data


def test_json_round_trip(fn: Any) -> None:
    value = {"name": "Lööm", "items": [1, 2.5, None, True], "nested": {"a": []}}
    text = fn("data.to_json")(value=value)
    assert "\n" not in text and "Lööm" in text
    assert fn("data.parse_json")(text=text) == value
    pretty = fn("data.to_json")(value={"b": 1, "a": 2}, indent=2, sort_keys=True)
    assert pretty == '{\n  "a": 2,\n  "b": 1\n}'
    assert fn("data.parse_json")(text="42") == 42
    with pytest.raises(json.JSONDecodeError):
        fn("data.parse_json")(text="{not json")
    with pytest.raises(TypeError):
        fn("data.to_json")(value={1, 2})


# --------------------------------------------------------------------------- files


def test_text_file_round_trip(fn: Any, tmp_path: Path) -> None:
    target = tmp_path / "hello.txt"
    assert fn("files.exists")(path=str(target)) is False
    assert fn("files.write_text")(path=str(target), text="héllo\n") == str(target)
    assert fn("files.exists")(path=str(target)) is True
    assert fn("files.read_text")(path=str(target)) == "héllo\n"
    fn("files.write_text")(path=str(target), text="ü", encoding="latin-1")
    assert target.read_bytes() == b"\xfc"
    assert fn("files.read_text")(path=str(target), encoding="latin-1") == "ü"


def test_json_file_round_trip(fn: Any, tmp_path: Path) -> None:
    target = tmp_path / "data.json"
    value = {"a": [1, 2], "b": None}
    assert fn("files.write_json")(path=str(target), value=value) == str(target)
    assert target.read_text(encoding="utf-8") == json.dumps(value, indent=2) + "\n"
    assert fn("files.read_json")(path=str(target)) == value
    fn("files.write_json")(path=str(target), value=[1], indent=None)
    assert target.read_text(encoding="utf-8") == "[1]\n"


def test_write_creates_folders_only_when_asked(fn: Any, tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.txt"
    with pytest.raises(FileNotFoundError):
        fn("files.write_text")(path=str(target), text="x")
    fn("files.write_text")(path=str(target), text="x", create_dirs=True)
    assert target.read_text(encoding="utf-8") == "x"
    fn("files.write_json")(path=str(tmp_path / "c" / "d.json"), value=1, create_dirs=True)
    assert (tmp_path / "c" / "d.json").is_file()


def test_list_dir(fn: Any, tmp_path: Path) -> None:
    for name in ("b.txt", "a.txt", "c.json"):
        (tmp_path / name).write_text("", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    assert fn("files.list_dir")(path=str(tmp_path)) == \
        [str(tmp_path / n) for n in ("a.txt", "b.txt", "c.json", "sub")]
    assert fn("files.list_dir")(path=str(tmp_path), pattern="*.txt") == \
        [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]
    with pytest.raises(NotADirectoryError):
        fn("files.list_dir")(path=str(tmp_path / "a.txt"))
    with pytest.raises(FileNotFoundError):
        fn("files.read_text")(path=str(tmp_path / "missing.txt"))


async def test_file_nodes_in_a_graph(registry: Registry, tmp_path: Path) -> None:
    graph = Graph(name="files")
    out = str(tmp_path / "out.json")
    graph.add_node(Node("data", "values.dict", properties={"value": {"n": 1}}))
    graph.add_node(Node("save", "files.write_json", properties={"path": out}))
    graph.add_node(Node("load", "files.read_json"))
    graph.connect("data", "out", "save", "value")
    graph.connect("save", "out", "load", "path")
    result = await ExecutionManager(graph, registry).run()
    assert result.status is RunStatus.SUCCEEDED, result.errors
    assert result.outputs["load"]["out"] == {"n": 1}


# --------------------------------------------------------------------------- time


def test_time_pack_uses_the_standard_library(registry: Registry) -> None:
    # The pack is nodes/time.py; its own `import time` must still be the stdlib module.
    module_globals = registry["time.timestamp"].func.__globals__
    assert module_globals["time"] is time
    assert module_globals["__name__"] != "time"
    before = time.time()
    stamp = registry["time.timestamp"].func()
    assert isinstance(stamp, float) and before <= stamp <= time.time()


def test_now_is_iso_utc(fn: Any) -> None:
    text = fn("time.now")()
    parsed = datetime.datetime.fromisoformat(text)
    assert parsed.utcoffset() == datetime.timedelta(0)
    assert abs((datetime.datetime.now(datetime.UTC) - parsed).total_seconds()) < 5


async def test_delay_waits_then_passes_value_on(fn: Any) -> None:
    delay = fn("time.delay")
    started = time.perf_counter()
    assert await delay(value={"x": 1}, seconds=0.05) == {"x": 1}
    assert time.perf_counter() - started >= 0.045
    assert await delay(seconds=0) is None
    with pytest.raises(ValueError, match="must not be negative"):
        await delay(value=1, seconds=-1)


async def test_delays_overlap_under_concurrency(registry: Registry) -> None:
    graph = Graph(name="delays")
    graph.settings.max_concurrency = 4
    for i in range(4):
        graph.add_node(Node(f"d{i}", "time.delay", properties={"value": i, "seconds": 0.2}))
    result, events = await run_graph(graph, registry)
    assert result.status is RunStatus.SUCCEEDED
    assert [result.outputs[f"d{i}"]["out"] for i in range(4)] == [0, 1, 2, 3]
    # Overlap from the events, not the clock: all four start before the first ends.
    order = [e["type"] for e in events.events if e["type"] in ("node_started", "node_finished")]
    assert order[:4] == ["node_started"] * 4, order


async def test_stop_interrupts_a_delay(registry: Registry) -> None:
    graph = Graph(name="stop")
    graph.add_node(Node("wait", "time.delay", properties={"seconds": 30}))
    manager = ExecutionManager(graph, registry)
    task = asyncio.ensure_future(manager.run())
    await asyncio.sleep(0.05)
    manager.request_stop(grace=0)
    result = await asyncio.wait_for(task, 5)
    assert result.status is RunStatus.STOPPED
    assert result.nodes["wait"].state is NodeState.STOPPED


async def test_stop_wakes_a_delay_without_waiting_out_the_grace_period(
        registry: Registry) -> None:
    """Issue 9 finding 6: a plain stop (grace 30 s) ends a 60 s delay at once."""
    graph = Graph(name="stop")
    graph.add_node(Node("wait", "time.delay", properties={"seconds": 60}))
    graph.add_node(Node("after", "time.delay", properties={"seconds": 0}))
    graph.connect("wait", "out", "after", "value")
    manager = ExecutionManager(graph, registry, stop_grace=30)
    task = asyncio.ensure_future(manager.run())
    await asyncio.sleep(0.05)
    manager.request_stop()
    # Generous: the grace period is 30 s; a delay that hears the stop ends in milliseconds.
    result = await asyncio.wait_for(task, 10)
    assert result.status is RunStatus.STOPPED
    assert result.nodes["wait"].state is NodeState.STOPPED
    assert result.nodes["after"].state is NodeState.SKIPPED
