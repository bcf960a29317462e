"""What a run leaves on the canvas, driven as a user does: F5, Shift+F5, edits.

Badges never hide titles; Stop cuts a long delay short; validation marks go when the
graph is fixed; run colours dim (stale) after an edit.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from loom.engine import Issue
from loom.graph import Graph, Node
from loom.ui.canvas import Canvas
from loom.ui.canvas.node_item import LoomNodeItem
from loom.ui.main_window import MainWindow
from loom.ui.problem_marks import problem_nodes

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "resources" / "examples"


def item(canvas: Canvas, node_id: str) -> LoomNodeItem:
    """The node item that draws a node on the canvas."""
    view = canvas.node_graph.get_node_by_id(
        next(n.id for n in canvas.node_graph.all_nodes() if n.loom_id == node_id)).view
    assert isinstance(view, LoomNodeItem)
    return view


def press(window: MainWindow, key: Qt.Key,
          modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    """A key press through the window's shortcuts, with the canvas focused."""
    window.canvas.widget.setFocus()
    QTest.keyClick(window.canvas.widget, key, modifier)


def f5_and_wait(window: MainWindow, qtbot: Any, timeout: int = 10_000) -> Any:
    """Run with F5 and wait for the result and the last canvas frame."""
    results: list[Any] = []
    window.runner.finished.connect(results.append)
    press(window, Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: bool(results), timeout=timeout)
    qtbot.waitUntil(lambda: window.runner.backlog == 0, timeout=timeout)
    window.runner.finished.disconnect(results.append)
    return results[0]


# ----------------------------------------------------------------------------- bug 9
def test_a_badge_never_hides_the_node_title(window: MainWindow, qtbot: Any,
                                            tmp_path: Path) -> None:
    window.resize(1200, 700)
    assert window.open_path(str(EXAMPLES / "timer.loom"))
    result = f5_and_wait(window, qtbot)
    assert result.status.value == "succeeded"
    window.canvas.fit_view()
    window.grab().save(str(tmp_path / "timer-badges.png"))
    for node_id in window.canvas.node_ids():
        view = item(window.canvas, node_id)
        badge = window.canvas.badge(node_id)
        assert badge, f"{node_id} shows a badge after the run"
        assert view.shown_title == window.canvas.node(node_id).name, (
            f"{node_id}: the title is shown whole beside its badge {badge!r}")
        assert not view.badge_rect().intersects(view.title_rect()), (
            f"{node_id}: the badge {view.badge_rect()} covers the title {view.title_rect()}")
        assert any(child.isVisible() and child.boundingRect() == view.badge_rect()
                   for child in view.childItems()), "the badge is drawn where it says"
        assert view.boundingRect().top() == 0.0, "the node's own rect ignores the badge"


# ----------------------------------------------------------------------------- bug 8
def test_shift_f5_stops_a_long_delay_well_within_the_grace_period(
        window: MainWindow, qtbot: Any) -> None:
    graph = Graph()
    graph.add_node(Node("wait", "time.delay", name="Wait a minute",
                        properties={"seconds": 60}))
    window.canvas.load(graph)
    grace = 30.0
    window.run_options = {**window.run_options, "stop_grace": grace}
    results: list[Any] = []
    window.runner.finished.connect(results.append)
    press(window, Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: window.canvas.state("wait") == "running", timeout=10_000)
    asked = time.monotonic()
    press(window, Qt.Key.Key_F5, Qt.KeyboardModifier.ShiftModifier)
    # Generous: a stop that waited for the delay or the grace period takes 30 s or more.
    qtbot.waitUntil(lambda: bool(results), timeout=int(grace * 1000 / 3))
    took = time.monotonic() - asked
    assert took < grace / 3, f"the stop took {took:.1f} s"
    assert results[0].status.value == "stopped"
    qtbot.waitUntil(lambda: window.runner.backlog == 0, timeout=5000)
    assert window.canvas.state("wait") == "stopped"
    assert window.actions_by_name["run"].isEnabled()


# ----------------------------------------------------------------------------- bug 10
def _port_point(window: MainWindow, node_id: str, port: str, side: str) -> Any:
    view = window.canvas.widget
    center = item(window.canvas, node_id).port_item(port, side).sceneBoundingRect().center()
    return view.mapFromScene(center)


def _node_point(window: MainWindow, node_id: str) -> Any:
    """A point on a node's title bar, in viewport coordinates."""
    view = item(window.canvas, node_id)
    return window.canvas.widget.mapFromScene(view.mapToScene(view.title_rect().center()))


def _drag(qtbot: Any, window: MainWindow, start: Any, end: Any) -> None:
    port = window.canvas.widget.viewport()
    qtbot.mousePress(port, Qt.MouseButton.LeftButton, pos=start)
    for step in range(1, 6):
        qtbot.mouseMove(port, start + (end - start) * step / 5)
    qtbot.mouseRelease(port, Qt.MouseButton.LeftButton, pos=end)


def _problem_rows(window: MainWindow) -> list[str]:
    tree = window.run_dock.problems
    return [tree.topLevelItem(i).text(0) for i in range(tree.topLevelItemCount())]


def _shown(window: MainWindow, qtbot: Any, graph: Graph) -> None:
    window.resize(1200, 760)
    window.canvas.load(graph)
    qtbot.waitExposed(window.canvas.widget)
    window.canvas.fit_view()


def test_a_wire_drag_that_fixes_the_graph_clears_its_outline_and_problem(
        window: MainWindow, qtbot: Any, tmp_path: Path) -> None:
    graph = Graph()
    graph.add_node(Node("number", "values.number", name="Number", position=(0.0, 0.0),
                        properties={"value": 1.0}))
    graph.add_node(Node("add", "math.add", name="Add", position=(300.0, 0.0),
                        properties={"b": 2.0}))
    _shown(window, qtbot, graph)
    press(window, Qt.Key.Key_F7)
    assert any("'a'" in row for row in _problem_rows(window)), _problem_rows(window)
    assert window.canvas.problem("add") == "error", "the node with the problem is outlined"
    assert window.canvas.problem("number") is None
    window.grab().save(str(tmp_path / "outlined.png"))
    _drag(qtbot, window, _port_point(window, "number", "out", "out"),
          _port_point(window, "add", "a", "in"))
    assert ("number", "out", "add", "a") in {
        (c.src_node, c.src_port, c.dst_node, c.dst_port) for c in window.canvas.connections()}
    qtbot.waitUntil(lambda: window.canvas.problem("add") is None, timeout=3000)
    assert _problem_rows(window) == [], "the fixed problem left the list"
    window.grab().save(str(tmp_path / "fixed.png"))


def test_an_inspector_edit_that_fixes_the_graph_clears_its_problem(
        window: MainWindow, qtbot: Any) -> None:
    graph = Graph()
    graph.add_node(Node("up", "text.upper", name="Shout", position=(0.0, 0.0)))
    _shown(window, qtbot, graph)
    press(window, Qt.Key.Key_F7)
    assert window.canvas.problem("up") == "error"
    assert len(_problem_rows(window)) == 1
    qtbot.mouseClick(window.canvas.widget.viewport(), Qt.MouseButton.LeftButton,
                     pos=_node_point(window, "up"))
    qtbot.waitUntil(lambda: window.inspector.editor_for("properties.text") is not None,
                    timeout=3000)
    edit = window.inspector.editor_for("properties.text")
    qtbot.mouseClick(edit, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(edit, "hello")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert window.canvas.node("up").properties == {"text": "hello"}
    qtbot.waitUntil(lambda: window.canvas.problem("up") is None, timeout=3000)
    assert _problem_rows(window) == []


def _border_pixel(window: MainWindow, node_id: str) -> Any:
    """The colour drawn on a node's bottom border, half-way along it."""
    view = item(window.canvas, node_id)
    scene = view.mapToScene(view.width / 2, view.height - 1.0)
    point = window.canvas.widget.mapFromScene(scene)
    return window.canvas.widget.viewport().grab().toImage().pixelColor(point)


def test_an_edit_after_a_run_dims_its_colours_until_the_next_run(
        window: MainWindow, qtbot: Any, tmp_path: Path) -> None:
    graph = Graph()
    graph.add_node(Node("up", "text.upper", name="Shout", position=(0.0, 0.0),
                        properties={"text": "hi"}))
    graph.add_node(Node("low", "text.lower", name="Whisper", position=(300.0, 0.0),
                        properties={"text": "HO"}))
    _shown(window, qtbot, graph)
    assert f5_and_wait(window, qtbot).status.value == "succeeded"
    assert not window.canvas.stale("up")
    fresh = _border_pixel(window, "low")
    window.grab().save(str(tmp_path / "fresh.png"))
    qtbot.mouseClick(window.canvas.widget.viewport(), Qt.MouseButton.LeftButton,
                     pos=_node_point(window, "up"))
    qtbot.waitUntil(lambda: window.inspector.editor_for("properties.text") is not None,
                    timeout=3000)
    edit = window.inspector.editor_for("properties.text")
    qtbot.mouseClick(edit, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(edit, "!")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert window.canvas.node("up").properties == {"text": "hi!"}
    assert window.canvas.state("up") == "done", "the states stay, dimmed"
    assert window.canvas.stale("up") and window.canvas.stale("low")
    window.canvas.select([])
    stale = _border_pixel(window, "low")
    window.grab().save(str(tmp_path / "stale.png"))
    assert stale.value() < fresh.value() * 0.7, (fresh.name(), stale.name())
    assert f5_and_wait(window, qtbot).status.value == "succeeded"
    assert not window.canvas.stale("up") and not window.canvas.stale("low")


def test_moving_a_node_after_a_run_keeps_its_colours_fresh(window: MainWindow,
                                                           qtbot: Any) -> None:
    graph = Graph()
    graph.add_node(Node("up", "text.upper", name="Shout", position=(0.0, 0.0),
                        properties={"text": "hi"}))
    _shown(window, qtbot, graph)
    assert f5_and_wait(window, qtbot).status.value == "succeeded"
    start = _node_point(window, "up")
    _drag(qtbot, window, start, start + type(start)(60, 40))
    assert window.canvas.node("up").position != (0.0, 0.0), "the node moved"
    assert not window.canvas.stale("up")


def test_problem_nodes_names_nodes_by_id_or_label_and_keeps_the_worst() -> None:
    graph = Graph()
    graph.add_node(Node("a", "values.number", name="First"))
    graph.add_node(Node("b", "values.number"))
    issues = [Issue("warning", "w", "First (a)"), Issue("error", "e", "First (a)"),
              Issue("warning", "w", "First (a)"), Issue("warning", "w", "b"),
              Issue("error", "the graph has a cycle"), Issue("error", "gone", "nobody")]
    assert problem_nodes(issues, graph) == {"a": "error", "b": "warning"}
    by_id = [Issue("error", "e", "Renamed since", node_id="b")]
    assert problem_nodes(by_id, graph) == {"b": "error"}, "the id wins over the label"
