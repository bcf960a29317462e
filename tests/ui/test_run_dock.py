"""RunDock: log (capped, red failures, clickable), node details, problems, wiring."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from helpers import graph_of, registry_of
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from loom import node
from loom.engine import Issue, RunStatus
from loom.ui import theme
from loom.ui.run_controller import RunController
from loom.ui.run_dock import RunDock


@node(id="t.shape")
async def shape(x: Any = None, label: str = "item") -> Any:
    await asyncio.sleep(0.01)
    return {"label": label, "values": [x, x], "nested": {"ok": True}}


@node(id="t.explode", cheap=True)
def explode(data: Any = None, ctx: Any = None) -> Any:
    ctx.log("about to fail")
    raise KeyError("missing field 'id'")


REG = registry_of(shape, explode, builtins=True)


class NullSink:
    def set_state(self, node_id: str, state: str | None, badge: str | None = None) -> None:
        pass

    def set_port_taken(self, node_id: str, port: str) -> None:
        pass

    def clear_states(self) -> None:
        pass


@pytest.fixture
def dock(qtbot: Any) -> RunDock:
    widget = RunDock()
    qtbot.addWidget(widget)
    widget.resize(800, 400)
    widget.show()
    return widget


def tab(dock: RunDock, title: str) -> int:
    for k in range(dock.tabs.count()):
        if dock.tabs.tabText(k).startswith(title):
            return k
    raise AssertionError(title)


def run_with_dock(qtbot: Any, dock: RunDock, graph: Any) -> RunController:
    controller = RunController(REG, NullSink())
    dock.attach(controller)
    assert controller.start(graph)
    qtbot.waitUntil(lambda: not controller.running, timeout=5000)
    return controller


FAILING = [("v", "values.number", {"value": 3.0}), ("s", "t.shape", {"label": "first"}),
           ("boom", "t.explode")]
FAILING_WIRES = ["v.out -> s.x", "s.out -> boom.data"]


def test_the_node_tab_shows_the_last_execution(qloop: Any, qtbot: Any, dock: RunDock) -> None:
    graph = graph_of(FAILING, FAILING_WIRES)
    graph.nodes["s"].name = "Shape it"
    controller = run_with_dock(qtbot, dock, graph)
    assert controller.result is not None and controller.result.status is RunStatus.FAILED
    dock.select_node("s", controller.records["s"])
    view = dock.node_view
    header = view.header.text()
    assert "Shape it" in header and "(s)" in header and "done" in header and " ms" in header
    tree = view.values
    inputs, outputs = tree.topLevelItem(0), tree.topLevelItem(1)
    assert inputs.text(0) == "Inputs" and outputs.text(0) == "Outputs"
    ports = {inputs.child(k).text(0): inputs.child(k).text(1) for k in range(inputs.childCount())}
    assert ports["x"] == "3.0" and ports["label"] == '"first"'
    out = outputs.child(0)
    assert out.text(0) == "out" and out.text(1) == "{3 keys}" and out.isExpanded()
    children = {out.child(k).text(0): out.child(k).text(1) for k in range(out.childCount())}
    assert children == {"label": '"first"', "values": "[2 items]", "nested": "{1 key}"}
    assert view.error.isHidden()
    # Copying a value gives JSON.
    tree.setCurrentItem(out)
    tree.copy_selected()
    assert '"label": "first"' in QGuiApplication.clipboard().text()

    dock.select_node("boom", controller.records["boom"])
    assert "failed" in view.header.text() and "KeyError" in view.header.text()
    assert not view.error.isHidden()
    text = view.error.toPlainText()
    assert "Traceback" in text and "missing field" in text
    # A node id shown in the header is a link to it.
    with qtbot.waitSignal(dock.node_clicked, timeout=1000) as signal:
        view.header.linkActivated.emit("node:boom")
    assert signal.args == ["boom"]

    dock.select_node("ghost", None)
    assert "Not run" in view.header.text() and view.values.isHidden()


def test_log_and_problems_after_a_failed_run(qloop: Any, qtbot: Any, dock: RunDock) -> None:
    run_with_dock(qtbot, dock, graph_of(FAILING, FAILING_WIRES))
    lines = dock.log.toPlainText().splitlines()
    assert lines[0].strip().endswith("run started: test (3 nodes)")
    assert any("[boom] about to fail" in line for line in lines)
    failed = [k for k, line in enumerate(lines) if "[boom] failed: KeyError" in line]
    assert failed
    block = dock.log.document().findBlockByNumber(failed[0])
    colour = block.begin().fragment().charFormat().foreground().color().name()
    assert colour == theme.ERROR.name(), "failures are in the theme's red"
    assert "run failed in" in lines[-1] and "1 node(s) failed" in lines[-1]
    # Problems: the failure, with its traceback beneath; the tab says how many.
    problems = dock.problems
    assert dock.tabs.tabText(tab(dock, "Problems")) == "Problems (1)"
    item = problems.topLevelItem(0)
    assert item.text(0).startswith("failed: KeyError") and item.text(1) == "boom"
    assert "Traceback" in item.child(0).text(0)
    with qtbot.waitSignal(dock.node_clicked, timeout=1000) as signal:
        problems.itemClicked.emit(item, 0)
    assert signal.args == ["boom"]
    # The timeline has a bar per execution.
    assert sorted(b.node for b in dock.timeline.bars()) == ["boom", "s", "v"]


def test_validation_issues_show_and_click_through(qtbot: Any, dock: RunDock) -> None:
    dock.set_labels({"x": "Extract"})
    dock.show_issues([Issue("error", "required input 'a' is not connected", "Extract (x)", "x"),
                      Issue("warning", "metadata names no body", None)])
    assert dock.tabs.currentIndex() == tab(dock, "Problems")
    tree = dock.problems
    assert tree.topLevelItemCount() == 2
    first = tree.topLevelItem(0)
    assert first.text(0) == "error: required input 'a' is not connected"
    assert first.text(1) == "Extract (x)"
    rect = tree.visualItemRect(first)
    with qtbot.waitSignal(dock.node_clicked, timeout=1000) as signal:
        qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert signal.args == ["x"]
    dock.clear()
    assert tree.topLevelItemCount() == 0 and dock.tabs.tabText(tab(dock, "Problems")) == "Problems"


def test_the_log_is_capped_and_keeps_the_newest_lines(qtbot: Any) -> None:
    dock = RunDock(max_log_lines=200, max_lines_per_frame=150)
    qtbot.addWidget(dock)
    dock.show()
    for frame in range(10):
        dock.show_events([{"type": "log", "node": "n", "t": frame + k / 1000, "level": "info",
                           "message": f"frame {frame} line {k}"} for k in range(1000)])
    doc = dock.log.document()
    assert doc.blockCount() <= 200
    assert dock.log.toPlainText().splitlines()[-1].endswith("frame 9 line 999")
    assert "lines left out" in dock.log.toPlainText()
    # Newest visible: the view follows the end.
    bar = dock.log.verticalScrollBar()
    assert bar.value() == bar.maximum()


def test_clicking_a_log_line_about_a_node_emits_it(qtbot: Any, dock: RunDock) -> None:
    dock.show_events([{"type": "run_started", "t": 0.0, "graph": "g", "nodes": 2},
                      {"type": "log", "node": "alpha", "t": 0.1, "level": "warning",
                       "message": "careful"}])
    log = dock.log
    block = log.document().findBlockByNumber(1)
    rect = log.blockBoundingGeometry(block).translated(log.contentOffset()).toRect()
    with qtbot.waitSignal(log.node_clicked, timeout=1000) as signal:
        qtbot.mouseClick(log.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert signal.args == ["alpha"]
    assert log.node_at(log.blockBoundingGeometry(log.document().firstBlock()).toRect()
                       .center()) is None
    with qtbot.assertNotEmitted(dock.node_clicked):
        first = log.blockBoundingGeometry(log.document().firstBlock()).translated(
            log.contentOffset()).toRect()
        qtbot.mouseClick(log.viewport(), Qt.MouseButton.LeftButton, pos=first.center())


def test_events_without_times_or_nodes_are_fine(qtbot: Any, dock: RunDock) -> None:
    # The main window reports its own problems (a broken node pack) through the log.
    dock.show_events([{"type": "log", "level": "error", "node": None,
                       "message": "node pack: bad.py: SyntaxError"}])
    assert "node pack: bad.py" in dock.log.toPlainText()
    dock.show_events([{"type": "node_started", "node": "a"}, {"type": "node_finished",
                                                              "node": "a"}])
    assert len(dock.timeline.bars()) == 1


def test_a_failed_wave_is_logged_with_its_error_id() -> None:
    """The id an HTTP client got in its 500 leads to the full error in the log."""
    from loom.ui.run_dock import _log_line

    line = _log_line({"type": "wave_failed", "t": 1.5, "node": "hook", "wave": 3,
                      "error_id": "abc123", "error": "r: RuntimeError: db down",
                      "traceback": "Traceback …"})
    assert line is not None
    text, node_id, _colour = line
    assert "[hook] wave 3 failed (error id abc123): r: RuntimeError: db down" in text
    assert node_id == "hook"
