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

from loom.graph import Graph, Node
from loom.ui.canvas import Canvas
from loom.ui.canvas.node_item import LoomNodeItem
from loom.ui.main_window import MainWindow

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
        assert view.boundingRect().contains(view.badge_rect()), "the badge is repainted"


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
