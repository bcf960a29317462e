"""A whole-run timeout for any graph: ``graph.settings.timeout`` and ``loom run --timeout``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import graph_of, registry_of, run_graph, states

from loom import node
from loom.engine import RunStatus
from loom.graph import Graph, LoomFileError, Node, dumps_graph, load_graph, loads_graph, save_graph

CLEANED: list[str] = []


@node(id="t.long_wait")
async def long_wait(seconds: float = 10.0) -> str:
    try:
        await asyncio.sleep(seconds)
    finally:
        CLEANED.append("wait")
    return "woke"


@node(id="t.after", cheap=True)
def after(x: str) -> str:
    return x


def _slow_graph() -> Graph:
    return graph_of([("w", "t.long_wait"), ("a", "t.after")], ["w.out -> a.x"])


async def test_manager_timeout_stops_the_run_and_fails_it_with_the_reason() -> None:
    CLEANED.clear()
    result, events = await run_graph(_slow_graph(), registry_of(long_wait, after),
                                     timeout=0.3, stop_grace=0.1)
    assert result.status is RunStatus.FAILED
    assert result.reason == "run timeout of 0.3 s"
    assert states(result) == {"w": "stopped", "a": "skipped"}
    assert result.nodes["w"].reason == "run timeout of 0.3 s"
    assert result.nodes["a"].reason == "run timeout of 0.3 s"
    assert CLEANED == ["wait"]  # the node's finally ran: it stopped like a stop
    assert result.to_json()["reason"] == "run timeout of 0.3 s"
    finished = events.of("run_finished")[0]
    assert finished["status"] == "failed" and finished["reason"] == "run timeout of 0.3 s"


async def test_graph_settings_timeout_applies_and_the_manager_overrides_it() -> None:
    graph = _slow_graph()
    graph.settings.timeout = 0.2
    result, _ = await run_graph(graph, registry_of(long_wait, after), stop_grace=0.1)
    assert (result.status, result.reason) == (RunStatus.FAILED, "run timeout of 0.2 s")
    quick = graph_of([("w", "t.long_wait", {"seconds": 0.01}), ("a", "t.after")],
                     ["w.out -> a.x"])
    quick.settings.timeout = 0.001
    result, _ = await run_graph(quick, registry_of(long_wait, after), timeout=30.0)
    assert (result.status, result.reason) == (RunStatus.SUCCEEDED, None)
    assert "reason" not in result.to_json()


def test_settings_timeout_is_read_checked_and_saved_back(tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        {"format": "loom", "version": 1,
         "graph": {"name": "g", "settings": {"max_concurrency": 2, "timeout": 5, "x": 1}},
         "nodes": [], "connections": [], "ui": {}}""")
    graph = loads_graph(text)
    assert graph.settings.timeout == 5 and graph.settings.extra == {"x": 1}
    again = loads_graph(dumps_graph(graph))
    assert again.settings.timeout == 5 and again.settings.extra == {"x": 1}
    assert json.loads(dumps_graph(graph))["graph"]["settings"] == {
        "max_concurrency": 2, "timeout": 5, "x": 1}
    # No timeout: nothing is written (old files save back unchanged); null is kept as read.
    assert "timeout" not in json.loads(dumps_graph(Graph(name="g")))["graph"]["settings"]
    nulled = loads_graph(text.replace('"timeout": 5', '"timeout": null'))
    assert nulled.settings.timeout is None
    assert json.loads(dumps_graph(nulled))["graph"]["settings"]["timeout"] is None
    for bad in ('"slow"', "0", "-1", "true"):
        with pytest.raises(LoomFileError, match=r"\$\.graph\.settings\.timeout"):
            loads_graph(text.replace('"timeout": 5', f'"timeout": {bad}'))
    path = tmp_path / "g.loom"
    save_graph(graph, path)
    assert load_graph(path).settings.timeout == 5


def test_loom_run_timeout_ends_an_ordinary_graph_with_exit_1(tmp_path: Path) -> None:
    folder = tmp_path / "pack"
    folder.mkdir()
    (folder / "slowpack.py").write_text(textwrap.dedent("""
        import asyncio
        from loom import node

        @node
        async def wait(seconds: float = 10.0) -> str:
            try:
                await asyncio.sleep(seconds)
            finally:
                print("cleanup ran", flush=True)
            return "woke"
    """))
    graph = Graph(name="slow")
    graph.add_node(Node("w", "slowpack.wait"))
    path = tmp_path / "slow.loom"
    save_graph(graph, path)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "loom", "run", str(path), "--nodes",
                           str(folder), "--timeout", "0.5", "--json"],
                          capture_output=True, text=True, timeout=60, check=False)
    took = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    assert "cleanup ran" in proc.stdout
    doc = json.loads(proc.stdout.splitlines()[-1])
    assert doc["status"] == "failed" and doc["reason"] == "run timeout of 0.5 s"
    assert doc["nodes"]["w"]["state"] == "stopped"
    assert took < 9.0  # a 10 s node: only "returns at all" long before it would finish
    bad = subprocess.run([sys.executable, "-m", "loom", "run", str(path), "--nodes",
                          str(folder), "--timeout", "0"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert bad.returncode == 2 and "--timeout" in bad.stderr
