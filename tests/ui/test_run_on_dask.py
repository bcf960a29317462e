"""The editor's Run > Run On choice: runs on a Dask cluster from the qasync loop."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

from leaks import start_dask_helpers

from loom.engine import dask_executor
from loom.graph import Graph, Node, save_graph
from loom.registry import Registry
from loom.ui.main_window import MainWindow

start_dask_helpers()


def _regex_graph(tmp_path: Path) -> Path:
    graph = Graph(name="find numbers")
    graph.add_node(Node("rx", "text.regex_findall",
                        properties={"text": "a1 b22 c333", "pattern": r"\d+"}))
    path = tmp_path / "numbers.loom"
    save_graph(graph, path, backup=False)
    return path


def _run(window: MainWindow, qtbot: Any, timeout: int) -> Any:
    results: list[Any] = []
    window.runner.finished.connect(results.append)
    window.actions_by_name["run"].trigger()
    qtbot.waitUntil(lambda: bool(results), timeout=timeout)
    return results[0]


@pytest.mark.slow
def test_a_run_on_a_local_dask_cluster_from_the_editor(window: MainWindow, qtbot: Any,
                                                       tmp_path: Path) -> None:
    window.open_path(str(_regex_graph(tmp_path)))
    window.run_on_actions["dask-local"].trigger()
    assert window.run_options == {"executor": "dask", "scheduler": None}
    assert "on Dask (local cluster)" in window._status.text()
    result = _run(window, qtbot, timeout=60_000)
    assert result.status.value == "succeeded", result.errors
    assert result.outputs["rx"]["out"] == ["1", "22", "333"]
    assert window.canvas.state("rx") == "done"
    qtbot.waitUntil(lambda: not multiprocessing.active_children(), timeout=10_000)


def test_an_unreachable_scheduler_fails_the_run_with_the_reason(
        window: MainWindow, qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT", 0.5)
    window.open_path(str(_regex_graph(tmp_path)))
    window.ask_scheduler = lambda current: "tcp://127.0.0.1:9"  # type: ignore[method-assign]
    window.run_on_actions["dask-scheduler"].trigger()
    assert window.run_options == {"executor": "dask", "scheduler": "tcp://127.0.0.1:9"}
    assert window.run_on_actions["dask-scheduler"].isChecked()
    result = _run(window, qtbot, timeout=30_000)
    assert result.status.value == "failed"
    assert any("cannot reach the Dask scheduler at tcp://127.0.0.1:9" in issue.message
               for issue in result.issues)
    window.run_on_actions["here"].trigger()
    assert window.run_options["executor"] is None
    assert "Dask" not in window._status.text()


def test_the_choice_is_kept_for_the_next_session(window: MainWindow, qtbot: Any) -> None:
    window.ask_scheduler = lambda current: "tcp://10.0.0.5:8786"  # type: ignore[method-assign]
    window.run_on_actions["dask-scheduler"].trigger()
    later = MainWindow(Registry.standard(entry_points=False))
    qtbot.addWidget(later)
    try:
        assert later.run_options == {"executor": "dask", "scheduler": "tcp://10.0.0.5:8786"}
        assert later.run_on_actions["dask-scheduler"].isChecked()
        later.run_preferences.file.write_text("{not json", encoding="utf-8")
        assert later.run_preferences.load() == {"executor": None, "scheduler": None}
    finally:
        later.watcher.stop()
        later.close()
