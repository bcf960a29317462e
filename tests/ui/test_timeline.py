"""Timeline: lanes like the trace exporter's, live growth, hit-testing, fast painting."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from helpers import graph_of, registry_of
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from loom import node
from loom.engine import ExecutionManager, RunStatus
from loom.engine.trace import ChromeTrace
from loom.ui.timeline import Timeline, nice_step, scope_text, tick_text


@node(id="t.nap")
async def nap(x: Any = None, seconds: float = 0.1) -> Any:
    await asyncio.sleep(seconds)
    return x


REG = registry_of(nap, builtins=True)


def started(node_id: str, t: float, scope: Any = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "node_started", "node": node_id, "t": t}
    if scope is not None:
        event["scope"] = scope
    return event


def ended(node_id: str, t: float, kind: str = "node_finished",
          scope: Any = None) -> dict[str, Any]:
    event = started(node_id, t, scope)
    event["type"] = kind
    return event


def make(qtbot: Any, width: int = 800, height: int = 300) -> Timeline:
    timeline = Timeline()
    qtbot.addWidget(timeline)
    timeline.resize(width, height)
    timeline.show()
    return timeline


def test_two_overlapping_async_nodes_get_different_lanes(qloop: Any, qtbot: Any) -> None:
    timeline = make(qtbot)
    graph = graph_of([("a", "t.nap"), ("b", "t.nap"), ("c", "t.nap", {"seconds": 0.01})],
                     ["a.out -> c.x"], max_concurrency=2)
    manager = ExecutionManager(graph, REG)
    trace = ChromeTrace().attach(manager.bus)
    manager.bus.subscribe(timeline.add_events)
    task = asyncio.ensure_future(manager.run())
    qtbot.waitUntil(task.done, timeout=5000)
    assert task.result().status is RunStatus.SUCCEEDED
    lanes = {bar.node: bar.lane for bar in timeline.bars()}
    assert lanes["a"] != lanes["b"]
    assert lanes["c"] in (lanes["a"], lanes["b"])  # a freed its lane before c started
    assert all(bar.state == "done" and bar.end is not None for bar in timeline.bars())
    # The same lanes as the Chrome trace exporter assigns.
    traced = {e["args"]["node"]: e["tid"] - 1 for e in trace.events if e.get("ph") == "X"}
    assert traced == lanes


def test_bars_grow_live_and_keep_scopes_apart(qtbot: Any) -> None:
    timeline = make(qtbot)
    timeline.add_events([{"type": "run_started", "t": 0.0}, started("loop", 0.0),
                         started("body", 0.01, [["loop", 0]]),
                         started("body", 0.012, [["loop", 1]])])
    open_bars = timeline.bars()
    assert [b.lane for b in open_bars] == [0, 1, 2]
    assert all(b.end is None and b.state == "running" for b in open_bars)
    timeline.add_events([ended("body", 0.05, scope=[["loop", 1]]),
                         ended("body", 0.06, "node_failed", [["loop", 0]])])
    body0, body1 = open_bars[1], open_bars[2]
    assert body0.state == "failed" and body0.end == 0.06
    assert body1.state == "done" and body1.end == 0.05
    # A new execution takes the lowest free lane.
    timeline.add_events([started("body", 0.07, [["loop", 2]])])
    assert timeline.bars()[-1].lane == 1
    timeline.add_events([{"type": "run_finished", "t": 0.1}])
    assert all(b.end is not None for b in timeline.bars())
    assert timeline.bars()[-1].state == "stopped"  # still open when the run ended
    assert timeline.lane_count == 3 and timeline.duration == 0.1
    timeline.clear()
    assert timeline.bars() == [] and timeline.lane_count == 0


def test_clicking_a_bar_emits_its_node_and_tooltips_say_what_it_was(qtbot: Any) -> None:
    timeline = make(qtbot)
    timeline.set_labels({"fetch": "Fetch page"})
    timeline.add_events([started("fetch", 0.0, [["loop", 3], ["par", "b"]]),
                         ended("fetch", 0.2, scope=[["loop", 3], ["par", "b"]]),
                         started("next", 0.2), ended("next", 0.4)])
    bar = timeline.bars()[0]
    rect = timeline.bar_rect(bar)
    assert rect.width() > 100
    assert timeline.bar_at(rect.center()) is bar
    with qtbot.waitSignal(timeline.node_clicked, timeout=1000) as signal:
        qtbot.mouseClick(timeline.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert signal.args == ["fetch"]
    tip = timeline.tooltip(bar)
    assert "Fetch page (fetch)" in tip and "200 ms" in tip and "done" in tip
    assert "loop[3] › par[b]" in tip
    assert timeline.bar_at(QPoint(rect.center().x(), 3)) is None  # the axis


def test_ctrl_wheel_zooms_around_the_pointer_and_double_click_fits(qtbot: Any) -> None:
    timeline = make(qtbot)
    timeline.add_events([started("a", 0.0), ended("a", 1.0), started("b", 1.0), ended("b", 2.0)])
    before = timeline.bar_rect(timeline.bars()[0]).width()
    wheel(timeline, 480, Qt.KeyboardModifier.ControlModifier)
    after = timeline.bar_rect(timeline.bars()[0]).width()
    assert after > 2 * before
    assert timeline.horizontalScrollBar().maximum() > 0  # now it scrolls in time
    qtbot.mouseDClick(timeline.viewport(), Qt.MouseButton.LeftButton,
                      pos=QPoint(200, timeline.viewport().height() - 5))
    assert timeline.bar_rect(timeline.bars()[0]).width() == before


def wheel(timeline: Timeline, dy: int, modifiers: Any = Qt.KeyboardModifier.NoModifier) -> None:
    pos = QPointF(200, 50)
    event = QWheelEvent(pos, timeline.viewport().mapToGlobal(pos), QPoint(0, 0), QPoint(0, dy),
                        Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(timeline.viewport(), event)


def test_scrolling_and_dragging_pan(qtbot: Any) -> None:
    timeline = make(qtbot, 400, 120)
    events: list[dict[str, Any]] = []
    for lane in range(12):  # 12 overlapping executions: more lanes than fit
        events.append(started(f"n{lane}", lane * 0.01))
    events += [ended(f"n{lane}", 1.0) for lane in range(12)]
    timeline.add_events(events)
    timeline.zoom(8.0, 0)
    h_bar, v_bar = timeline.horizontalScrollBar(), timeline.verticalScrollBar()
    assert h_bar.maximum() > 0 and v_bar.maximum() > 0
    wheel(timeline, -120)  # plain wheel: lanes
    assert v_bar.value() > 0 and h_bar.value() == 0
    wheel(timeline, -120, Qt.KeyboardModifier.ShiftModifier)  # Shift: time
    assert h_bar.value() > 0
    h_before, v_before = h_bar.value(), v_bar.value()
    # Drag on empty space (below the last lane is empty when scrolled; use the axis).
    viewport = timeline.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=QPoint(300, 5))
    qtbot.mouseMove(viewport, QPoint(250, 5))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=QPoint(250, 5))
    assert h_bar.value() == h_before + 50 and v_bar.value() == v_before


def test_painting_ten_thousand_bars_is_fast(qtbot: Any) -> None:
    timeline = make(qtbot, 1200, 400)
    events: list[dict[str, Any]] = []
    t = 0.0
    for k in range(9000):  # a long chain: one lane of thin bars
        events += [started(f"n{k}", t), ended(f"n{k}", t + 0.0004)]
        t += 0.0005
    for k in range(1000):  # and 1,000 loop items, 20 at a time
        start = (k // 20) * 0.09
        scope = [["loop", k]]
        events += [started("item", start, scope), ended("item", start + 0.08, scope=scope)]
    events.sort(key=lambda e: (e["t"], e["type"] == "node_started"))
    timeline.add_events(events)
    assert len(timeline.bars()) == 10_000
    assert timeline.lane_count > 10

    def paint_ms() -> float:
        best = float("inf")
        for _ in range(3):
            began = time.perf_counter()
            timeline.viewport().grab()
            best = min(best, (time.perf_counter() - began) * 1000)
        return best

    fitted = paint_ms()
    timeline.zoom(40.0, 600)
    zoomed = paint_ms()
    assert fitted < 100, fitted
    assert zoomed < 100, zoomed


def test_a_failure_among_thousands_of_thin_bars_still_shows(qtbot: Any) -> None:
    timeline = make(qtbot, 600, 120)
    events: list[dict[str, Any]] = []
    for k in range(5000):
        t = k * 0.001
        kind = "node_failed" if k == 2500 else "node_finished"
        events += [started(f"n{k}", t), ended(f"n{k}", t + 0.0009, kind)]
    timeline.add_events(events)
    image = timeline.viewport().grab().toImage()
    y = 22 + 7  # the middle of lane 0, under the axis
    red = {image.pixelColor(x, y).name() for x in range(image.width())}
    assert "#e5534b" in red and "#3fa66b" in red


def test_axis_steps_and_labels() -> None:
    assert nice_step(1.0, 800) == 0.1
    assert nice_step(0.01, 800) == 0.001
    assert tick_text(0.25, 0.05) == "250 ms"
    assert tick_text(2.0, 1.0) == "2 s"
    assert scope_text(None) == "" and scope_text([["l", 1]]) == "l[1]"


def test_a_bar_is_as_long_as_the_duration_its_end_event_reports(qtbot: Any) -> None:
    # Issue 11, bug 11: the failure event comes after the traceback is formatted; the
    # bar must show the node's duration (what its badge says), not the event's lateness.
    timeline = make(qtbot)
    failed = ended("a", 0.0050, "node_failed")
    failed["duration_ms"] = 0.02
    stopped = ended("b", 0.0100, "node_stopped")
    stopped["duration_ms"] = 3.0
    timeline.add_events([started("a", 0.0010), failed, started("b", 0.0060), stopped,
                         started("c", 0.0101), ended("c", 0.0120)])
    bars = {bar.node: bar for bar in timeline.bars()}
    assert bars["a"].duration_ms is not None and bars["b"].duration_ms is not None
    assert abs(bars["a"].duration_ms - 0.02) < 1e-9
    assert abs(bars["b"].duration_ms - 3.0) < 1e-9
    assert (bars["a"].state, bars["b"].state) == ("failed", "stopped")
    c = bars["c"].duration_ms
    assert c is not None and abs(c - 1.9) < 1e-9, "no duration_ms: the events' times"
    assert "3.0 ms" in timeline.tooltip(bars["b"])
