"""Issue 10 point 4 in the editor: a code node whose body does not compile is a problem
shown as the file is opened (File > Open by Ctrl+O), with its line, before any run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from loom.graph import Graph, Node, save_graph
from loom.ui import main_window
from loom.ui.main_window import MainWindow


def _open_by_keys(window: MainWindow, qtbot: Any, monkeypatch: pytest.MonkeyPatch,
                  path: Path) -> None:
    """Ctrl+O, the file dialog answers ``path``."""
    monkeypatch.setattr(main_window.QFileDialog, "getOpenFileName",
                        lambda *_a, **_k: (str(path), main_window.FILE_FILTER))
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    QTest.keyClick(window, Qt.Key.Key_O, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.document.path == str(path), timeout=5_000)


def _problem_rows(window: MainWindow) -> list[tuple[str, str]]:
    tree = window.run_dock.problems
    return [(tree.topLevelItem(i).text(0), tree.topLevelItem(i).text(1))
            for i in range(tree.topLevelItemCount())]


def test_opening_a_file_shows_a_code_node_syntax_error(window: MainWindow, qtbot: Any,
                                                       tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "broken_code.loom"
    body = "x = 1\nreturn x +\n"
    save_graph(Graph(nodes={
        "ok": Node("ok", "control.code", name="Fine",
                   properties={"code": "await ctx.sleep(0)\nreturn 1", "inputs": ""}),
        "bad": Node("bad", "control.code", name="Broken", properties={"code": body,
                                                                     "inputs": ""})}),
        path, backup=False)
    _open_by_keys(window, qtbot, monkeypatch, path)

    rows = _problem_rows(window)
    assert len(rows) == 1, rows  # the awaiting body compiles: only the broken one
    message, where = rows[0]
    assert message.startswith("error: code does not compile: line 2: "), message
    assert where.startswith("Broken")
    assert window.run_dock.tabs.currentWidget() is window.run_dock.problems
    assert window.canvas.problem("bad") == "error"
    assert window.canvas.problem("ok") is None
