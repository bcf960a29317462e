"""One duration per node execution: the badge, the timeline bar and the Run panel agree.

Issue 11, bug 11: a failed node's badge said "<0.1 ms" while its timeline bar was
~1.4 ms long (the bar ran to the failure event, which comes after the traceback is
formatted). The engine's ``duration_ms`` is the one source of truth.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from loom.graph import Graph, Node, save_graph
from loom.ui.main_window import MainWindow
from loom.ui.run_controller import format_duration

SHOTS = Path("/tmp/uia")


def _graph() -> Graph:
    graph = Graph(name="fails fast")
    graph.add_node(Node("start", "values.integer", name="Start", position=(0.0, 0.0),
                        properties={"value": 3}))
    graph.add_node(Node("double", "math.multiply", name="Double", position=(220.0, 0.0),
                        properties={"b": 2}))
    # Deep recursion makes a long traceback: formatting it is the engine's time,
    # not the node's.
    code = ("def deep(n):\n    if n == 0:\n        raise ValueError('boom')\n"
            "    return deep(n - 1)\nreturn deep(60)")
    graph.add_node(Node("boom", "control.code", name="Boom", position=(440.0, 0.0),
                        properties={"code": code, "inputs": "x"}))
    graph.connect("start", "out", "double", "a")
    graph.connect("double", "out", "boom", "x")
    return graph


def _click_node(window: MainWindow, qtbot: Any, node_id: str) -> None:
    view = window.canvas.widget
    item = next(i for i in view.scene().items() if getattr(i, "loom_id", None) == node_id)
    point = view.mapFromScene(item.sceneBoundingRect().topLeft() + QPointF(30.0, 8.0))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=point)
    qtbot.waitUntil(lambda: window.canvas.selected_ids() == [node_id], timeout=5_000)
    qtbot.waitUntil(lambda: window.run_dock.node_view.node_id == node_id, timeout=5_000)


def test_badge_timeline_and_run_panel_show_one_duration(window: MainWindow, qtbot: Any,
                                                        tmp_path: Path) -> None:
    path = tmp_path / "fails.loom"
    save_graph(_graph(), path, backup=False)
    assert window.open_path(str(path), ask=False)
    results: list[Any] = []
    window.runner.finished.connect(results.append)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    QTest.keyClick(window, Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: bool(results), timeout=10_000)
    qtbot.waitUntil(lambda: window.runner.backlog == 0, timeout=10_000)
    assert results[0].status.value == "failed"
    _click_node(window, qtbot, "boom")
    if SHOTS.is_dir():  # a look at the badge and the Node tab, then the timeline
        window.grab().save(str(SHOTS / "bug11-node-tab.png"))
        tabs = window.run_dock.tabs
        tab_bar = tabs.tabBar()
        where = tab_bar.tabRect(tabs.indexOf(window.run_dock.timeline)).center()
        qtbot.mouseClick(tab_bar, Qt.MouseButton.LeftButton, pos=where)
        qtbot.waitUntil(lambda: tabs.currentWidget() is window.run_dock.timeline)
        window.grab().save(str(SHOTS / "bug11-timeline.png"))

    timeline = window.run_dock.timeline
    bars = {bar.node: bar for bar in timeline.bars()}
    assert set(bars) == {"start", "double", "boom"}
    assert bars["boom"].state == "failed"
    for node_id, bar in bars.items():
        record = window.runner.records[node_id]
        assert record.duration_ms is not None
        assert bar.duration_ms == pytest.approx(record.duration_ms, rel=1e-9, abs=1e-9), \
            f"{node_id}: the bar is not the node's duration"
        shown = format_duration(record.duration_ms)
        assert shown in (window.canvas.badge(node_id) or ""), f"{node_id}: badge"
        assert shown in timeline.tooltip(bar), f"{node_id}: bar tooltip"
    header = re.sub(r"<[^>]+>", "", window.run_dock.node_view.header.text())
    assert format_duration(window.runner.records["boom"].duration_ms) in header
