"""Output never crashes (issue 9 finding 10): values Python cannot print, markup in
values, strict JSON, and a reader that goes away."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from loom.engine.values import dumps, preview, short_repr, to_jsonable
from loom.graph import Graph, Node, save_graph

ROOT = Path(__file__).resolve().parent.parent
HUGE = 10 ** 5000  # over Python's 4,300-digit limit for int -> str


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class NoFullRepr(bytes):
    """Fails the test if anything renders all of it."""

    def __repr__(self) -> str:
        raise AssertionError("the whole value was rendered")


def _strict(text: str) -> Any:
    def refuse(token: str) -> Any:
        raise AssertionError(f"not strict JSON: {token}")
    return json.loads(text, parse_constant=refuse)


# --------------------------------------------------------------------------- values


def test_huge_ints_become_a_summary_everywhere() -> None:
    for convert in (to_jsonable, preview):
        assert convert(HUGE) == "<int of 16610 bits (~5001 digits)>"
        assert convert(-HUGE) == "<negative int of 16610 bits (~5001 digits)>"
        assert convert({HUGE: [HUGE]}) == {"<int of 16610 bits (~5001 digits)>":
                                           ["<int of 16610 bits (~5001 digits)>"]}
    assert to_jsonable(10 ** 4000) == 10 ** 4000, "ints Python can print stay ints"
    assert short_repr(HUGE) == short_repr(HUGE, None) == "<int of 16610 bits (~5001 digits)>"
    assert "16610 bits" in short_repr([HUGE, 1])


def test_failing_reprs_deep_and_recursive_values_never_raise() -> None:
    assert to_jsonable(BadRepr()) == "<BadRepr (repr failed: no repr for you)>"
    assert preview({"x": BadRepr()}) == {"x": "<BadRepr (repr failed: no repr for you)>"}
    assert short_repr([BadRepr()]) == "[<BadRepr (repr failed: no repr for you)>]"
    assert to_jsonable({BadRepr(): 1}) == {"<BadRepr (repr failed: no repr for you)>": 1}
    loop: list[Any] = []
    loop.append(loop)
    deep: list[Any] = []
    tip = deep
    for _ in range(100_000):
        tip.append([])
        tip = tip[0]
    for value in (loop, deep):
        assert isinstance(short_repr(value), str)
        assert isinstance(short_repr(value, None), str)
        json.dumps(to_jsonable(value))
        json.dumps(preview(value))


def test_json_is_strict_non_finite_floats_become_strings() -> None:
    assert to_jsonable([math.nan, math.inf, -math.inf, 1.5]) == ["nan", "inf", "-inf", 1.5]
    doc = _strict(dumps({"a": math.nan, "b": [HUGE], "c": BadRepr(), "d": {1, 2}}))
    assert doc == {"a": "nan", "b": ["<int of 16610 bits (~5001 digits)>"],
                   "c": "<BadRepr (repr failed: no repr for you)>", "d": "{1, 2}"}
    assert dumps({"plain": [1, "x", None]}) == '{"plain": [1, "x", null]}'


def test_previews_cut_big_bytes_and_strings_before_rendering_them() -> None:
    blob = NoFullRepr(b"x" * 50_000_000)
    for text in (preview(blob), preview([blob])[0], short_repr(blob), short_repr({"k": blob})):
        assert "50000000 bytes" in text and len(text) < 400, text[:80]
    assert len(preview("y" * 10_000_000)) == 201
    huge_set = preview(set(range(1_000_000)))
    assert huge_set.startswith("{0, 1, 2") and len(huge_set) < 400


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def graph_file(tmp_path: Path) -> Path:
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "outpack.py").write_text(textwrap.dedent("""
        import math
        from loom import node

        @node(cheap=True)
        def huge() -> int:
            return 10 ** 5000

        class BadRepr:
            def __repr__(self):
                raise RuntimeError("no repr")

        @node(cheap=True)
        def weird() -> dict:
            return {"nan": math.nan, "inf": -math.inf, "markup": "[red]x[/] [/bold]",
                    "bad": BadRepr()}

        @node(cheap=True)
        def fails() -> int:
            raise ValueError("bad [/] thing [bold]")

        @node(cheap=True)
        def big() -> str:
            return "z" * 1_000_000
    """))
    graph = Graph(name="output")
    graph.add_node(Node("h", "outpack.huge"))
    graph.add_node(Node("w", "outpack.weird", name="[/x] node"))
    path = tmp_path / "out.loom"
    save_graph(graph, path)
    graph.add_node(Node("f", "outpack.fails", name="[red]f"))
    save_graph(graph, tmp_path / "fails.loom")
    big = Graph(name="big")
    big.add_node(Node("b", "outpack.big"))
    save_graph(big, tmp_path / "big.loom")
    return path


def _loom(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loom", *args], capture_output=True,
                          text=True, check=False, timeout=60, cwd=ROOT, **kwargs)


def test_run_json_of_unprintable_values_is_strict_json(graph_file: Path) -> None:
    proc = _loom("run", str(graph_file), "--nodes", str(graph_file.parent / "pack"), "--json")
    assert proc.returncode == 0, proc.stderr
    outputs = _strict(proc.stdout)["outputs"]
    assert outputs["h"]["out"] == "<int of 16610 bits (~5001 digits)>"
    assert outputs["w"]["out"] == {"nan": "nan", "inf": "-inf", "markup": "[red]x[/] [/bold]",
                                   "bad": "<BadRepr (repr failed: no repr)>"}


def test_run_summary_prints_values_and_errors_as_they_are(graph_file: Path) -> None:
    proc = _loom("run", str(graph_file.parent / "fails.loom"), "--nodes",
                 str(graph_file.parent / "pack"))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr.split("node [red]f (f) failed")[0]
    assert "h.out = <int of 16610 bits (~5001 digits)>" in proc.stdout
    assert "[/x] node (w).out = " in proc.stdout and "'[red]x[/] [/bold]'" in proc.stdout
    assert "node [red]f (f) failed: ValueError: bad [/] thing [bold]" in proc.stderr


def test_events_stream_of_unprintable_values_ends_with_run_finished(graph_file: Path) -> None:
    proc = _loom("run", str(graph_file), "--nodes", str(graph_file.parent / "pack"),
                 "--events")
    assert proc.returncode == 0, proc.stderr
    events = [_strict(line) for line in proc.stdout.splitlines()]
    assert events[-1]["type"] == "run_finished"
    finished = {e["node"]: e["outputs"]["out"] for e in events if e["type"] == "node_finished"}
    assert finished["h"] == "<int of 16610 bits (~5001 digits)>"
    assert finished["w"]["nan"] == "nan"


def _closed_stdout(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``loom`` with a stdout whose reader has already gone (`| head` that exited)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "loom", *args], stdout=write,
                              stderr=subprocess.PIPE, text=True, check=False, timeout=60,
                              cwd=ROOT)
    finally:
        os.close(write)


@pytest.mark.parametrize("args", [("nodes",), ("nodes", "--json"), ("run", "{big}", "--json"),
                                  ("run", "{big}")])
def test_a_closed_stdout_exits_141_without_a_traceback(graph_file: Path,
                                                        args: tuple[str, ...]) -> None:
    big = str(graph_file.parent / "big.loom")
    argv = [a.format(big=big) for a in args]
    if argv[0] == "run":
        argv += ["--nodes", str(graph_file.parent / "pack")]
    proc = _closed_stdout(*argv)
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == ""
