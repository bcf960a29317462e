"""The @node authoring API and the registry of node packs."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Literal

import pytest

from loom import node
from loom.registry import REQUIRED, Registry, builtin_pack_dir, port_names, spec_of


def test_signature_becomes_ports() -> None:
    @node(category="Text")
    def upper(text: str, suffix: str = "", count: int | None = None) -> str:
        """Shout it."""
        return text.upper() + suffix

    spec = spec_of(upper)
    assert spec is not None
    assert spec.type_id == f"{__name__}.upper"
    assert spec.name == "Upper" and spec.category == "Text" and spec.description == "Shout it."
    text, suffix, count = spec.inputs
    assert (text.name, text.type, text.required) == ("text", "str", True)
    assert (suffix.type, suffix.default, suffix.required) == ("str", "", False)
    assert (count.type, count.nullable) == ("int", True)
    assert [(p.name, p.type) for p in spec.outputs] == [("out", "str")]
    assert spec.executor == "thread" and spec.kind == "function" and not spec.wants_ctx
    assert upper("a", "!") == "A!", "the decorated function stays a plain function"


def test_options_and_kinds() -> None:
    @node(id="x.split", outputs={"head": str, "rest": list}, cheap=True)
    def split(items: list, ctx: Any = None) -> Any:
        return items[0], items[1:]

    @node
    async def fetch(url: str) -> bytes:
        return b""

    @node
    def count(n: int = 3):
        yield from range(n)

    @node(executor="process")
    def crunch(x: float) -> float:
        return x

    s = spec_of(split)
    assert s is not None and s.type_id == "x.split" and s.wants_ctx
    assert [(p.name, p.type) for p in s.outputs] == [("head", "str"), ("rest", "list")]
    assert [p.name for p in s.inputs] == ["items"], "ctx is not a port"
    assert s.executor == "inline"
    f = spec_of(fetch)
    assert f is not None and (f.kind, f.executor) == ("async", "async")
    c = spec_of(count)
    assert c is not None and c.kind == "generator" and c.outputs[0].type == "any"
    assert spec_of(crunch).executor == "process"  # type: ignore[union-attr]


def test_literal_hint_gives_choices() -> None:
    @node
    def compare(a: float, b: float, op: Literal["<", ">"] = "<") -> bool:
        return a < b if op == "<" else a > b

    op = spec_of(compare).inputs[2]  # type: ignore[union-attr]
    assert (op.type, op.choices) == ("str", ("<", ">"))


def test_bad_signatures_are_refused_at_decoration() -> None:
    with pytest.raises(TypeError, match="passable by name"):
        @node
        def star(*items: Any) -> None: ...
    with pytest.raises(TypeError, match="kwargs"):
        @node(join="first")
        def merge(a: Any) -> None: ...
    with pytest.raises(TypeError, match="function"):
        node(int)
    with pytest.raises(TypeError, match="without a ctx parameter"):
        @node(executor="process")
        def remote(x: int, ctx: Any = None) -> int: ...
    with pytest.raises(TypeError, match="runs on the event loop"):
        @node(executor="process")
        async def coro(x: int) -> int: ...


def test_dynamic_ports_from_properties() -> None:
    @node(params=["inputs", "outputs"], dynamic_inputs="inputs", dynamic_outputs="outputs")
    def code(inputs: str = "a", outputs: str = "out", **values: Any) -> Any:
        return None

    spec = spec_of(code)
    assert spec is not None and spec.inputs == ()
    ins, outs = spec.ports_for({"inputs": "x, y", "outputs": ["p", "q"]})
    assert [p.name for p in ins] == ["x", "y"] and all(p.default is REQUIRED for p in ins)
    assert [p.name for p in outs] == ["p", "q"]
    ins, outs = spec.ports_for({})
    assert [p.name for p in ins] == ["a"] and [p.name for p in outs] == ["out"]
    assert port_names("a, , b, a, 1bad") == ["a", "b"]


def _write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def test_folder_pack_ids_broken_module_reported(tmp_path: Path) -> None:
    _write(tmp_path, "shapes.py", """
        from loom import node

        @node
        def area(w: float, h: float) -> float:
            return w * h
    """)
    _write(tmp_path, "broken.py", "raise RuntimeError('boom at import')\n")
    _write(tmp_path, "_private.py", "raise RuntimeError('never imported')\n")
    registry = Registry()
    registry.load_dir(tmp_path)
    assert "shapes.area" in registry, "id is <file stem>.<function>"
    assert registry.origin("shapes.area") == str((tmp_path / "shapes.py").resolve())
    assert len(registry.problems) == 1
    problem = registry.problems[0]
    assert problem.source.endswith("broken.py")
    assert "RuntimeError: boom at import" in problem.error
    assert "boom at import" in problem.traceback


def test_imported_nodes_are_not_registered_twice(tmp_path: Path) -> None:
    _write(tmp_path, "base.py", """
        from loom import node

        @node
        def one() -> int:
            return 1
    """)
    _write(tmp_path, "user.py", """
        import importlib.util, sys
        from loom import node
        one = sys.modules["loom_nodes.base"].one

        @node
        def two() -> int:
            return 2
    """)
    registry = Registry()
    registry.load_dir(tmp_path)
    assert sorted(s.type_id for s in registry) == ["base.one", "user.two"]
    assert registry.problems == []


def test_duplicate_type_id_is_a_problem_and_first_wins(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        _write(tmp_path / folder, "text.py", f"""
            from loom import node

            @node
            def upper(text: str) -> str:
                return {folder!r}
        """)
    registry = Registry()
    registry.load_dir(tmp_path / "a")
    registry.load_dir(tmp_path / "b")
    assert registry["text.upper"].func(text="") == "a"
    assert any("already defined" in p.error for p in registry.problems)


def test_reloading_a_file_replaces_its_nodes(tmp_path: Path) -> None:
    path = _write(tmp_path, "pack.py", """
        from loom import node

        @node
        def old() -> int:
            return 1
    """)
    registry = Registry()
    registry.load_file(path)
    _write(tmp_path, "pack.py", """
        from loom import node

        @node
        def new() -> int:
            return 2
    """)
    registry.load_file(path)
    assert "pack.new" in registry and "pack.old" not in registry
    assert registry.problems == []


def test_reload_file_reports_changed_types_and_keeps_the_last_good_version(
        tmp_path: Path) -> None:
    path = _write(tmp_path, "pack.py", """
        from loom import node

        @node
        def one() -> int:
            return 1
    """)
    registry = Registry()
    registry.load_file(path)
    _write(tmp_path, "pack.py", """
        from loom import node

        @node
        def two() -> int:
            return 2
    """)
    assert registry.reload_file(path) == (["pack.one", "pack.two"], [])
    assert "pack.two" in registry and "pack.one" not in registry

    path.write_text("raise RuntimeError('half-typed edit')\n")
    changed, problems = registry.reload_file(path)
    assert changed == ["pack.two"]
    assert len(problems) == 1 and "half-typed edit" in problems[0]
    assert "previous version" in problems[0]
    assert registry["pack.two"].func() == 2, "a broken save keeps the working nodes"

    path.unlink()
    assert registry.reload_file(path) == (["pack.two"], [])
    assert "pack.two" not in registry and registry.problems == []


def test_entry_points_are_loaded_and_failures_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata
    import types

    module = types.ModuleType("fake_pack")

    @node(id="fake.hello")
    def hello() -> str:
        return "hi"

    hello.__module__ = "fake_pack"
    module.hello = hello  # type: ignore[attr-defined]

    class EP:
        def __init__(self, name: str, target: Any) -> None:
            self.name, self.value, self._target = name, f"{name}:x", target

        def load(self) -> Any:
            if isinstance(self._target, Exception):
                raise self._target
            return self._target

    eps = [EP("good", module), EP("bad", ImportError("no such module"))]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: eps)
    registry = Registry()
    registry.load_entry_points()
    assert "fake.hello" in registry
    assert [p.error for p in registry.problems] == ["ImportError: no such module"]


def test_builtin_packs_load_cleanly() -> None:
    assert (builtin_pack_dir() / "control.py").is_file()
    registry = Registry.standard(entry_points=False)
    assert registry.problems == []
    for type_id in ("control.if", "control.switch", "control.merge", "control.code"):
        assert type_id in registry
    assert registry["control.if"].mode == "conditional"
    assert list(registry.by_category()) == sorted(registry.by_category())


def test_missing_folder_is_reported() -> None:
    registry = Registry()
    registry.load_dir("/no/such/folder")
    assert registry.problems and "not a folder" in registry.problems[0].error


def test_migrations_declared_by_specs_run_on_load(tmp_path: Path) -> None:
    from loom.graph import Graph, Node, dumps_graph, loads_graph

    def rename(n: Node) -> None:
        n.properties["text"] = n.properties.pop("txt")

    @node(id="t.upper", version=2, migrations={1: rename})
    def upper(text: str) -> str:
        return text.upper()

    registry = Registry()
    registry.add_function(upper)
    old = Graph()
    old.add_node(Node("n1", "t.upper", properties={"txt": "a"}))
    graph = loads_graph(dumps_graph(old), migrations=registry.migrations)
    assert graph.nodes["n1"].properties == {"text": "a"}
    assert graph.nodes["n1"].type_version == 2
