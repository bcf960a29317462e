"""Run variables: ``Variables`` roots, O(1) child layers, copy-on-read isolation."""

from __future__ import annotations

import collections
import copy
import pickle
import threading
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from loom.engine.variables import Variables

# -- helpers ----------------------------------------------------------------------------


class Counted:
    """A mutable value that counts how often it is deep-copied (optionally slowly)."""

    copies = 0
    delay = 0.0

    def __init__(self, payload: Any = None) -> None:
        self.payload = payload

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Counted) and other.payload == self.payload

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"Counted({self.payload!r})"

    def __deepcopy__(self, memo: dict[int, Any]) -> Counted:
        type(self).copies += 1
        if self.delay:
            time.sleep(self.delay)
        return type(self)(copy.deepcopy(self.payload, memo))


class Uncopyable:
    """A value whose deepcopy fails, like a lock or a socket."""

    def __deepcopy__(self, memo: dict[int, Any]) -> Uncopyable:
        raise RuntimeError("refusing to be copied")


@pytest.fixture(autouse=True)
def _reset_counted() -> None:
    Counted.copies = 0
    Counted.delay = 0.0


def nested() -> dict[str, Any]:
    return {
        "n": 1,
        "s": "text",
        "cfg": {"x": 0, "inner": {"deep": [1, 2]}},
        "items": [1, 2],
        "tags": {"a", "b"},
        "buf": bytearray(b"ab"),
        "rows": [{"id": 1}, {"id": 2}],
        "pair": (1, [2]),
    }


# -- a root is a dict -------------------------------------------------------------------


def test_root_is_a_shallow_copy_of_initial_and_behaves_like_a_dict() -> None:
    initial = {"a": 1, "b": [1]}
    root = Variables(initial)
    root["c"] = 3
    assert "c" not in initial
    assert root["b"] is initial["b"]  # shallow, like dict(initial)
    del root["a"]
    assert list(root) == ["b", "c"] and len(root) == 2 and root == {"b": [1], "c": 3}
    with pytest.raises(KeyError):
        root["a"]
    with pytest.raises(KeyError):
        del root["a"]
    assert root.get("a") is None and root.get("a", 5) == 5
    assert Variables() == {} and not Variables() and len(Variables()) == 0
    assert Variables(None).to_dict() == {}


# -- isolation --------------------------------------------------------------------------


def test_nested_mutation_in_a_child_is_invisible_to_parent_and_siblings() -> None:
    root = Variables(nested())
    before = copy.deepcopy(root.to_dict())
    a, b = root.child(), root.child()

    a["cfg"]["x"] = 1
    a["cfg"]["inner"]["deep"].append(3)
    a["items"].append(3)
    a["tags"].add("c")
    a["buf"].extend(b"c")
    a["rows"][0]["id"] = 99
    a["pair"][1].append(3)
    a["n"] = 2

    assert root.to_dict() == before
    assert b.to_dict() == before
    assert a["cfg"] == {"x": 1, "inner": {"deep": [1, 2, 3]}}
    assert a["items"] == [1, 2, 3] and a["tags"] == {"a", "b", "c"}
    assert a["buf"] == bytearray(b"abc") and a["rows"][0] == {"id": 99}
    assert a["pair"] == (1, [2, 3]) and a["n"] == 2

    # and the other way round: the sibling's own changes stay with it
    b["items"].append(4)
    assert a["items"] == [1, 2, 3] and root["items"] == [1, 2]


def test_child_reads_return_one_private_copy_of_mutable_values() -> None:
    root = Variables(nested())
    child = root.child()
    for key in ("cfg", "items", "tags", "buf", "rows", "pair"):
        assert child[key] == root[key]
        assert child[key] is not root[key]
        assert child[key] is child[key]  # copied once, then the same object
        assert child.get(key) is child[key]


def test_immutable_values_are_shared_not_copied() -> None:
    values = {"none": None, "big": 10**30, "f": 1.5, "s": "x" * 100, "b": b"bytes",
              "t": (1, ("a", 2.0), frozenset({1})), "fs": frozenset({1, 2}), "yes": True}
    root = Variables(values)
    child = root.child()
    for key, value in values.items():
        assert child[key] is value


def test_tuples_and_frozensets_holding_mutables_are_copied() -> None:
    inner = Counted([1])
    root = Variables({"t": (1, [2]), "fs": frozenset({inner})})
    child = root.child()
    child["t"][1].append(3)
    assert root["t"] == (1, [2])
    assert child["fs"] != root["fs"] and Counted.copies == 1


def test_writes_and_deletes_stay_in_the_child() -> None:
    root = Variables({"a": 1, "b": 2})
    child = root.child()
    child["a"] = 10
    child["c"] = 3
    del child["b"]
    assert root.to_dict() == {"a": 1, "b": 2}
    assert child.to_dict() == {"a": 10, "c": 3}


def test_aliasing_between_keys_is_kept_like_deepcopy() -> None:
    shared = [1]
    root = Variables({"a": shared, "b": {"x": shared}})
    child = root.child()
    assert child["a"] is child["b"]["x"]
    child["a"].append(2)
    assert child["b"]["x"] == [1, 2] and shared == [1]
    expected = copy.deepcopy(root.to_dict())
    assert expected["a"] is expected["b"]["x"]  # the same shape as a full deepcopy


def _mutable_ids(value: Any, seen: set[int] | None = None) -> set[int]:
    """Ids of every mutable object reachable from ``value`` (dicts, lists, sets, objects)."""
    seen = set() if seen is None else seen
    if value is None or isinstance(value, (bool, int, float, str, bytes, frozenset)):
        return seen
    if not isinstance(value, tuple):
        if id(value) in seen:
            return seen
        seen.add(id(value))
    if isinstance(value, dict):
        for key, item in value.items():
            _mutable_ids(key, seen)
            _mutable_ids(item, seen)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            _mutable_ids(item, seen)
    elif hasattr(value, "__dict__"):
        _mutable_ids(vars(value), seen)
    return seen


@settings(max_examples=200, deadline=None)
@given(value=st.recursive(
    st.none() | st.integers() | st.text(max_size=3) | st.sets(st.integers(0, 5), max_size=3)
    | st.binary(max_size=2).map(bytearray),
    lambda inner: (st.lists(inner, max_size=4)
                   | st.dictionaries(st.text(max_size=2) | st.integers(0, 3), inner, max_size=4)
                   | st.tuples(inner, inner)
                   | inner.map(lambda v: collections.OrderedDict(x=v))
                   | inner.map(Counted)),
    max_leaves=12))
def test_copy_on_read_equals_deepcopy_and_shares_nothing_mutable(value: Any) -> None:
    child = Variables({"v": value}).child()
    copied = child["v"]
    assert copied == value == copy.deepcopy(value)
    assert type(copied) is type(value)
    assert not _mutable_ids(copied) & _mutable_ids(value)


def test_copies_keep_cycles_aliases_and_types() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    me: dict[str, Any] = {}
    me["self"] = me
    shared = {"n": [1]}
    default = collections.defaultdict(list, {"a": [1]})
    obj = Counted({"inner": shared})
    root = Variables({"loop": loop, "me": me, "x": [shared, shared], "obj": obj, "dd": default,
                      "od": collections.OrderedDict(a=shared)})
    child = root.child()
    assert child["loop"][1] is child["loop"] and child["loop"] is not loop
    assert child["me"]["self"] is child["me"] and child["me"] is not me
    x = child["x"]
    assert x[0] is x[1] and x[0] is not shared
    assert child["obj"].payload["inner"] is x[0]  # one memo for the whole layer
    assert type(child["dd"]) is collections.defaultdict and child["dd"]["new"] == []
    assert "new" not in default
    assert type(child["od"]) is collections.OrderedDict and child["od"]["a"] is x[0]


def test_mutable_objects_inside_sets_are_copied() -> None:
    item = Counted([1])
    root = Variables({"s": {item, 1}})
    copied = root.child()["s"]
    assert 1 in copied and len(copied) == 2
    (member,) = (m for m in copied if m != 1)
    assert member == item and member is not item  # an equal copy (hashed by identity)
    assert Counted.copies == 1


def test_an_original_freed_by_the_parent_is_never_mistaken_for_a_new_value() -> None:
    # The layer's deepcopy memo is keyed by id(); it must keep the originals alive,
    # or a new value allocated at a freed original's address would get its old copy.
    root = Variables({"a": [1], "d": {"k": 1}, "s": {1}})
    child = root.child()
    assert (child["a"], child["d"], child["s"]) == ([1], {"k": 1}, {1})
    for key in ("a", "d", "s"):
        root[key] = None  # the parent drops its originals
    for i in range(200):
        root[f"l{i}"] = [i, "new"]
        root[f"d{i}"] = {"k": i}
        root[f"s{i}"] = {i, -1}
        assert child[f"l{i}"] == [i, "new"]
        assert child[f"d{i}"] == {"k": i}
        assert child[f"s{i}"] == {i, -1}


# -- deleting parent keys ---------------------------------------------------------------


def test_deleting_a_parent_key_hides_it_in_the_child_only() -> None:
    root = Variables({"a": 1, "b": [2], "c": 3})
    child = root.child()
    sibling = root.child()
    del child["b"]
    assert "b" not in child and "b" in root and "b" in sibling
    assert list(child) == ["a", "c"] and len(child) == 2
    with pytest.raises(KeyError):
        child["b"]
    with pytest.raises(KeyError):
        del child["b"]
    assert child.get("b", "gone") == "gone"
    assert "b" not in child.child()  # hidden for the child's children too
    child["b"] = "back"
    assert list(child) == ["a", "c", "b"]  # re-added keys go to the end, as in a dict
    assert root["b"] == [2] and sibling["b"] == [2]


def test_deleting_a_key_the_parent_never_had_raises() -> None:
    child = Variables({"a": 1}).child()
    with pytest.raises(KeyError):
        del child["zzz"]
    child["new"] = 1
    del child["new"]
    assert "new" not in child
    with pytest.raises(KeyError):
        del child["new"]


# -- chains -----------------------------------------------------------------------------


def test_deep_chain_every_level_isolated() -> None:
    root = Variables({"log": [], "cfg": {"level": -1}})
    levels = [root]
    for i in range(200):
        layer = levels[-1].child()
        layer["log"].append(i)
        layer["cfg"]["level"] = i
        layer[f"k{i}"] = i
        if i >= 10 and i % 10 == 0:
            del layer[f"k{i - 5}"]  # a key an ancestor wrote
        levels.append(layer)
    assert root["log"] == [] and root["cfg"] == {"level": -1} and len(root) == 2
    for i, layer in enumerate(levels[1:]):
        assert layer["log"] == list(range(i + 1))
        assert layer["cfg"] == {"level": i}
        expected_keys = {f"k{j}" for j in range(i + 1)}
        expected_keys -= {f"k{j - 5}" for j in range(10, i + 1, 10)}
        assert set(layer) == {"log", "cfg"} | expected_keys
        assert len(layer) == 2 + len(expected_keys)


def test_very_deep_chain_has_no_recursion_limit() -> None:
    layer = Variables({"x": [1], "y": 2})
    for _ in range(5000):
        layer = layer.child()
    assert layer["y"] == 2 and "x" in layer and len(layer) == 2 and list(layer) == ["x", "y"]
    layer["x"].append(2)
    assert layer["x"] == [1, 2]
    assert "x" in repr(layer)


def test_grandchild_reads_do_not_install_anything_in_the_middle_layer() -> None:
    root = Variables({"cfg": Counted({"x": 1})})
    middle = root.child()
    leaf = middle.child()
    leaf["cfg"].payload["x"] = 2
    assert Counted.copies == 1
    assert middle["cfg"].payload == {"x": 1}  # middle copies on its own first read
    assert Counted.copies == 2
    assert root["cfg"].payload == {"x": 1}


# -- parent writes after the child was created (documented semantics) --------------------


def test_untouched_keys_follow_the_parent() -> None:
    root = Variables({"a": 1, "cfg": {"x": 1}, "gone": 0})
    child = root.child()
    assert "a" in child and list(child) == ["a", "cfg", "gone"]  # in / iteration: no touch
    root["a"] = 2
    root["cfg"]["x"] = 2  # in-place change before the child's first read
    root["later"] = [1]
    del root["gone"]
    assert child["a"] == 2
    assert child["cfg"] == {"x": 2}
    assert child["later"] == [1] and child["later"] is not root["later"]
    assert "gone" not in child
    assert list(child) == ["a", "cfg", "later"]


def test_touched_keys_are_frozen_at_first_touch() -> None:
    root = Variables({"read": 1, "cfg": {"x": 1}, "written": 1, "deleted": 1})
    child = root.child()
    assert child["read"] == 1
    assert child["cfg"] == {"x": 1}
    child["written"] = 10
    del child["deleted"]
    child["mine"] = "child"

    root["read"] = 2
    root["cfg"]["x"] = 2
    root["written"] = 2
    root["deleted"] = 2
    root["mine"] = "parent"

    assert child.to_dict() == {"read": 1, "cfg": {"x": 1}, "written": 10, "mine": "child"}


def test_a_key_the_parent_deletes_after_the_child_read_it_stays_in_the_child() -> None:
    root = Variables({"a": 1, "b": 2})
    child = root.child()
    assert child["a"] == 1
    del root["a"]
    assert child["a"] == 1 and "a" in child and len(child) == 2 and set(child) == {"a", "b"}


def test_keys_new_to_the_child_stay_the_childs_and_keep_their_place() -> None:
    root = Variables({"a": 1})
    child = root.child()
    child["j"] = "child"
    child["k"] = "child"
    root["j"] = "parent"  # the parent adds the same key later: the child keeps its own
    root["z"] = 0  # an untouched key the parent adds later shows up, among the parent's keys
    assert list(child) == ["a", "z", "j", "k"]
    assert child.to_dict() == {"a": 1, "z": 0, "j": "child", "k": "child"}
    del child["j"]
    assert "j" not in child and root["j"] == "parent"


# -- child() never reads the parent ----------------------------------------------------


def test_child_does_not_read_or_copy_parent_values() -> None:
    root = Variables({"bad": Uncopyable(), "counted": Counted([1]), "ok": {"x": 1}})
    child = root.child()
    grandchild = child.child()
    assert Counted.copies == 0
    # nothing that does not read a value copies it either
    assert len(grandchild) == 3 and "bad" in grandchild and list(grandchild) == list(root)
    assert "Variables(" in repr(grandchild)
    assert Counted.copies == 0
    assert grandchild["ok"] == {"x": 1}
    assert Counted.copies == 0
    with pytest.raises(TypeError, match=r"'bad'.*cannot be copied"):
        grandchild["bad"]
    with pytest.raises(TypeError, match="'bad'"):
        grandchild.to_dict()
    grandchild["bad"] = "replaced"  # writing it is fine
    assert grandchild["bad"] == "replaced"
    assert isinstance(root["bad"], Uncopyable) and isinstance(child.parent, Variables)


def test_a_failed_copy_leaves_no_half_built_value_behind() -> None:
    shared = [1]
    broken = [shared, Uncopyable()]
    root = Variables({"a": broken, "b": {"again": broken}, "c": shared})
    child = root.child()
    with pytest.raises(TypeError):
        child["a"]
    with pytest.raises(TypeError):  # must not reuse the half-built copy of `broken`
        child["b"]
    assert child["c"] == [1] and child["c"] is not shared
    assert "a" in child and root["a"] is broken


# -- dict API ---------------------------------------------------------------------------


def test_views_and_dict_methods() -> None:
    root = Variables({"a": 1, "b": [1], "c": 3})
    child = root.child()
    child["d"] = 4
    assert list(child.keys()) == ["a", "b", "c", "d"]
    assert list(child.values()) == [1, [1], 3, 4]
    assert list(child.items()) == [("a", 1), ("b", [1]), ("c", 3), ("d", 4)]
    assert list(reversed(child)) == ["d", "c", "b", "a"]
    assert child.keys() == {"a", "b", "c", "d"}
    assert ("b", [1]) in child.items()
    assert child == {"a": 1, "b": [1], "c": 3, "d": 4} and child != {"a": 1}

    assert child.popitem() == ("d", 4)  # last in, first out, like dict
    assert child.pop("b") == [1] and "b" not in child and root["b"] == [1]
    assert child.pop("b", "x") == "x"
    with pytest.raises(KeyError):
        child.pop("b")
    assert child.setdefault("a", 9) == 1 and child.setdefault("z", [0]) == [0]
    child.update({"a": 5}, e=6)
    assert child.to_dict() == {"a": 5, "c": 3, "z": [0], "e": 6}
    child.clear()
    assert len(child) == 0 and list(child) == [] and not child
    assert root.to_dict() == {"a": 1, "b": [1], "c": 3}
    with pytest.raises(KeyError):
        child.popitem()
    child["a"] = 1
    assert child.to_dict() == {"a": 1}


def test_to_dict_and_copy_are_plain_dicts_sharing_the_childs_values() -> None:
    root = Variables({"cfg": {"x": 1}, "n": 1})
    child = root.child()
    snapshot = child.to_dict()
    assert type(snapshot) is dict and type(child.copy()) is dict
    assert snapshot["cfg"] is child["cfg"]  # shallow, like dict.copy()
    assert snapshot["cfg"] is not root["cfg"]
    snapshot["cfg"]["x"] = 2
    assert root["cfg"] == {"x": 1}


def test_iterating_while_changing_does_not_raise() -> None:
    child = Variables({"a": 1, "b": 2}).child()
    for key in child:
        child[key + "2"] = 0
        del child[key]
    assert set(child) == {"a2", "b2"}


def test_repr_shows_the_merged_view_and_truncates() -> None:
    root = Variables({"a": 1, "b": [1, 2], "hidden": 0})
    child = root.child()
    del child["hidden"]
    child["c"] = "x"
    assert repr(child) == "Variables({'a': 1, 'b': [1, 2], 'c': 'x'})"
    big = Variables({f"k{i}": i for i in range(1000)}).child()
    text = repr(big)
    assert text.startswith("Variables({'k0': 0, 'k1': 1,") and "+980 more" in text
    assert len(text) < 600


def test_pickle_and_copy_module() -> None:
    root = Variables({"cfg": {"x": 1}})
    child = root.child()
    child["n"] = 2
    for clone in (pickle.loads(pickle.dumps(child)), copy.deepcopy(child), copy.copy(child)):
        assert isinstance(clone, Variables) and clone.parent is None
        assert clone == {"cfg": {"x": 1}, "n": 2}
        clone["cfg"]["x"] = 5
    assert root["cfg"] == {"x": 1}


# -- threads ----------------------------------------------------------------------------


def _run_threads(target: Any, count: int) -> None:
    threads = [threading.Thread(target=target, name=f"vars-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)


def test_concurrent_first_reads_install_exactly_one_copy() -> None:
    Counted.delay = 0.02  # widen the window in which a second copy could start
    root = Variables({"cfg": Counted({"x": [1]})})
    child = root.child()
    barrier = threading.Barrier(8)
    seen: list[Any] = []
    lock = threading.Lock()

    def read() -> None:
        barrier.wait()
        value = child["cfg"] if len(seen) % 2 else child.get("cfg")
        with lock:
            seen.append(value)

    _run_threads(read, 8)
    assert len(seen) == 8
    assert all(value is seen[0] for value in seen)
    assert Counted.copies == 1
    assert seen[0] is not root["cfg"]


def test_concurrent_writes_and_reads_smoke() -> None:
    root = Variables({f"k{i}": [i] for i in range(50)})
    child = root.child()
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            barrier.wait()
            for round_ in range(200):
                key = f"k{(offset + round_) % 50}"
                child[key].append(offset)  # copies on first read, then private
                child[f"w{offset}-{round_ % 7}"] = round_
                _ = len(child), list(child)
                if round_ % 5 == 0:
                    child.pop(f"w{offset}-{round_ % 7}", None)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert all(root[f"k{i}"] == [i] for i in range(50))  # the parent never changed
    total = sum(len(child[f"k{i}"]) - 1 for i in range(50))
    assert total == 4 * 200  # no append lost to a second copy


# -- a child behaves like a dict of its view (stateful model) ----------------------------

KEYS = st.sampled_from(list("abcdefgh"))
SCALARS = (st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=2)
           | st.tuples(st.integers(0, 3), st.text(max_size=1)) | st.frozensets(st.integers(0, 3)))
VALUES = st.recursive(
    SCALARS | st.sets(st.integers(0, 5), max_size=3) | st.binary(max_size=2).map(bytearray),
    lambda inner: (st.lists(inner, max_size=3)
                   | st.dictionaries(st.text("xyz", max_size=1), inner, max_size=3)
                   | st.tuples(inner, inner)),
    max_leaves=6,
)


def _mutate(value: Any, item: int) -> bool:
    """Mutate the first container found inside ``value``, depth first; False if none."""
    if isinstance(value, dict):
        for inner in value.values():
            if _mutate(inner, item):
                return True
        value[str(item)] = [item]
        return True
    if isinstance(value, list):
        for inner in value:
            if _mutate(inner, item):
                return True
        value.append(item)
        return True
    if isinstance(value, tuple):
        return any(_mutate(inner, item) for inner in value)
    if isinstance(value, set):
        value.add(item)
        return True
    if isinstance(value, bytearray):
        value.append(item % 256)
        return True
    return False


class ChildMatchesDict(RuleBasedStateMachine):
    """A leaf layer (root -> middle -> 0..2 empty layers -> leaf) against a plain dict.

    The middle layer gets writes and deletes at the start; a sibling of the leaf is
    never used. The root is changed now and then (parent writes after spawning); a
    key follows the parent until the leaf (or middle) touched it, as documented.
    """

    @initialize(initial=st.dictionaries(KEYS, VALUES, max_size=6),
                mid_deletes=st.sets(KEYS, max_size=3),
                mid_writes=st.dictionaries(KEYS, VALUES, max_size=3),
                empty_layers=st.integers(0, 2))
    def spawn(self, initial: dict[str, Any], mid_deletes: set[str],
              mid_writes: dict[str, Any], empty_layers: int) -> None:
        self.root = Variables(initial)
        self.root_model = copy.deepcopy(initial)
        self.mid = self.root.child()
        self.mid_model = copy.deepcopy(initial)
        for key in sorted(mid_deletes):
            if key in self.mid_model:
                del self.mid[key]
                del self.mid_model[key]
        for key, value in mid_writes.items():
            self.mid[key] = value
            self.mid_model[key] = copy.deepcopy(value)
        self.mid_touched = (mid_deletes & set(initial)) | set(mid_writes)
        layer = self.mid
        for _ in range(empty_layers):
            layer = layer.child()
        self.sibling = layer.child()
        self.leaf = layer.child()
        self.model = copy.deepcopy(self.mid_model)
        self.touched: set[str] = set()
        self.exact_order = True

    # leaf operations

    @rule(key=KEYS, value=VALUES)
    def set_item(self, key: str, value: Any) -> None:
        self.leaf[key] = value
        self.model[key] = copy.deepcopy(value)
        self.touched.add(key)

    @rule(key=KEYS)
    def del_item(self, key: str) -> None:
        if key in self.model:
            del self.leaf[key]
            del self.model[key]
            self.touched.add(key)
        else:  # a failed delete changes nothing, so it does not touch the key
            with pytest.raises(KeyError):
                del self.leaf[key]

    @rule(key=KEYS)
    def get_item(self, key: str) -> None:
        if key in self.model:
            value = self.leaf[key]
            assert value == self.model[key]
            assert self.leaf[key] is value and self.leaf.get(key) is value
            if key in self.root and not _immutable_like(value):
                assert value is not self.root[key]
            self.touched.add(key)
        else:
            with pytest.raises(KeyError):
                self.leaf[key]
            assert self.leaf.get(key, "absent") == "absent"

    @rule(key=KEYS, item=st.integers(0, 9))
    def mutate_in_place(self, key: str, item: int) -> None:
        if key in self.model:
            self.touched.add(key)
            assert _mutate(self.leaf[key], item) == _mutate(self.model[key], item)

    @rule(key=KEYS)
    def pop(self, key: str) -> None:
        if key in self.model:
            self.touched.add(key)
        assert self.leaf.pop(key, "absent") == self.model.pop(key, "absent")

    @rule(key=KEYS, value=SCALARS)
    def setdefault(self, key: str, value: Any) -> None:
        assert self.leaf.setdefault(key, value) == self.model.setdefault(key, value)
        self.touched.add(key)

    @precondition(lambda self: self.model)
    @rule()
    def popitem(self) -> None:
        key, value = self.leaf.popitem()
        if self.exact_order:
            assert (key, value) == self.model.popitem()
        else:
            assert value == self.model.pop(key)
        self.touched.add(key)

    @rule(values=st.dictionaries(KEYS, SCALARS, max_size=3))
    def update(self, values: dict[str, Any]) -> None:
        self.leaf.update(values)
        self.model.update(values)
        self.touched |= set(values)

    @rule()
    def to_dict(self) -> None:
        snapshot = self.leaf.to_dict()
        assert snapshot == self.model
        if self.exact_order:
            assert list(snapshot) == list(self.model)
        self.touched |= set(self.model)

    # parent changes after spawning

    def _follows_root(self, key: str) -> tuple[bool, bool]:
        """Does the middle layer / the leaf still follow the root for this key?"""
        mid = key not in self.mid_touched
        return mid, mid and key not in self.touched

    @rule(key=KEYS, value=VALUES)
    def root_write(self, key: str, value: Any) -> None:
        self.root[key] = value
        self.root_model[key] = copy.deepcopy(value)
        mid, leaf = self._follows_root(key)
        if mid:
            self.mid_model[key] = copy.deepcopy(value)
        if leaf:
            if key not in self.model:
                self.exact_order = False  # appended among the parent's keys
            self.model[key] = copy.deepcopy(value)

    @rule(key=KEYS)
    def root_delete(self, key: str) -> None:
        if key not in self.root_model:
            return
        del self.root[key]
        del self.root_model[key]
        mid, leaf = self._follows_root(key)
        if mid:
            self.mid_model.pop(key, None)
        if leaf:
            self.model.pop(key, None)
        if not leaf:
            self.exact_order = False  # a touched key leaves the parent's order

    @rule(key=KEYS, item=st.integers(0, 9))
    def root_mutate_in_place(self, key: str, item: int) -> None:
        if key not in self.root_model:
            return
        assert _mutate(self.root[key], item) == _mutate(self.root_model[key], item)
        mid, leaf = self._follows_root(key)
        if mid:
            _mutate(self.mid_model[key], item)
        if leaf:
            _mutate(self.model[key], item)

    # checks that read nothing through the leaf (a grandchild reads without touching)

    @invariant()
    def leaf_matches_model(self) -> None:
        keys = list(self.leaf)
        if self.exact_order:
            assert keys == list(self.model)
        else:
            assert sorted(keys) == sorted(self.model)
        assert len(self.leaf) == len(self.model)
        assert bool(self.leaf) == bool(self.model)
        for key in "abcdefgh":
            assert (key in self.leaf) == (key in self.model)
        assert dict(self.leaf.child().items()) == self.model

    @invariant()
    def others_are_untouched(self) -> None:
        assert self.root.to_dict() == self.root_model
        assert list(self.root) == list(self.root_model)
        assert dict(self.mid.child().items()) == self.mid_model
        assert dict(self.sibling.child().items()) == self.mid_model


def _immutable_like(value: Any) -> bool:
    if isinstance(value, (tuple, frozenset)):
        return all(_immutable_like(item) for item in value)
    return value is None or isinstance(value, (bool, int, float, str, bytes))


TestChildMatchesDict = ChildMatchesDict.TestCase
TestChildMatchesDict.settings = settings(
    max_examples=200, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
