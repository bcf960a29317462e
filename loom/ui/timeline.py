"""A Gantt chart of a run's node executions, fed live from engine events.

Each execution (a node started and ended, keyed by node id and scope, so each loop
item or branch of the same node is its own bar) takes the lowest lane free when it
starts, as :mod:`loom.engine.trace` does: executions that overlap (parallel
branches, parallel loop items, a loop and its body) land in separate lanes. Lanes
hold their bars in start order and never overlap, so painting looks up the visible
time range per lane with a binary search and touches only the bars it draws; bars
narrower than a pixel are merged, so a run of 10,000 bars paints in milliseconds.
A bar is as long as the end event's ``duration_ms``: the one duration the node's
badge and the Run panel show too.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from typing import Any

from PySide6.QtCore import QEvent, QPoint, QRect, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QHelpEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QAbstractScrollArea, QToolTip, QWidget

from . import theme
from .run_controller import format_duration

#: Bar colours by final state (readable on dark and light palettes).
#: bar colour by how the execution ended (the theme's; the run view's Node tab uses it too)
STATE_COLOURS = theme.STATE_COLOURS
_END_STATE = {"node_finished": "done", "node_failed": "failed", "node_stopped": "stopped"}

AXIS_HEIGHT = 22
ROW_HEIGHT = 18
ROW_GAP = 3
MARGIN = 8
_MIN_LABEL_PX = 36  # narrower bars carry no text
_TEXT = QColor(theme.BAR_TEXT)
_MERGE_PX = 4  # thin bars merge into rectangles up to this wide


class Bar:
    """One execution of a node: when it ran, in which lane, how it ended."""

    __slots__ = ("end", "lane", "node", "scope", "start", "state")

    def __init__(self, node: str, scope: Any, start: float, lane: int) -> None:
        self.node = node
        #: the engine's scope path: ``[[owner id, item or branch], ...]`` or None
        self.scope = scope
        #: seconds since the run started
        self.start = start
        self.end: float | None = None
        self.lane = lane
        self.state = "running"

    @property
    def duration_ms(self) -> float | None:
        """Milliseconds, or None while it runs."""
        return None if self.end is None else (self.end - self.start) * 1000.0

    def __repr__(self) -> str:
        return f"Bar({self.node!r}, lane={self.lane}, {self.start:.4f}-{self.end}, {self.state})"


def scope_text(scope: Any) -> str:
    """``loop[3] › par[b]`` for an engine scope path; "" at the top level."""
    if not scope:
        return ""
    return " › ".join(f"{owner}[{where}]" for owner, where in scope)


def _scope_key(scope: Any) -> Any:
    if not scope:
        return None
    try:
        return tuple(tuple(pair) for pair in scope)
    except TypeError:  # an odd item name; a string tells runs apart as well
        return repr(scope)


def _mix(a: QColor, b: QColor, f: float) -> QColor:
    """``f`` of ``a`` over ``1 - f`` of ``b``, opaque."""
    def part(x: int, y: int) -> int:
        return round(x * f + y * (1 - f))

    return QColor(part(a.red(), b.red()), part(a.green(), b.green()), part(a.blue(), b.blue()))


def nice_step(span: float, pixels: float, min_px: float = 80.0) -> float:
    """A 1/2/5 × 10^k step (seconds) so axis ticks are at least ``min_px`` apart."""
    if span <= 0 or pixels <= 0:
        return 1.0
    raw = span * min_px / pixels
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def tick_text(seconds: float, step: float) -> str:
    """An axis label: ms below a second's step, s above."""
    if step < 1.0:
        ms = seconds * 1000.0
        return f"{ms:.0f} ms" if step >= 0.001 else f"{ms:.2f} ms"
    return f"{seconds:.0f} s" if step >= 1 and seconds == int(seconds) else f"{seconds:.1f} s"


class Timeline(QAbstractScrollArea):
    """Gantt chart of node executions; grows live during a run.

    Feed it with :meth:`add_events`; :meth:`clear` empties it. The wheel scrolls
    lanes (Shift+wheel, or the wheel when every lane fits: time), dragging pans,
    Ctrl+wheel zooms time around the pointer, a double-click fits the whole run.
    Hovering a bar shows its node, duration and scope; clicking it emits
    ``node_clicked(str)``.
    """

    node_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._labels: dict[str, str] = {}
        self.setMouseTracking(True)
        self.viewport().setMouseTracking(True)
        self.setMinimumHeight(AXIS_HEIGHT + 2 * ROW_HEIGHT)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self._colours = {state: QColor(c) for state, c in STATE_COLOURS.items()}
        self._drag_from: tuple[QPoint, int, int] | None = None
        self.clear()

    # ------------------------------------------------------------------ data
    def clear(self) -> None:
        """Forget every bar (a new run)."""
        self._bars: list[Bar] = []
        self._lanes: list[list[Bar]] = []
        self._lane_starts: list[list[float]] = []
        #: per lane, the start times of its failed bars (in order: lanes never overlap)
        self._lane_failed: list[list[float]] = []
        self._lane_busy: list[bool] = []
        self._open: dict[tuple[str, Any], Bar] = {}
        self._t_end = 0.0
        self._fit = True  # the scale follows the run until the user zooms
        self._px_per_s = 1000.0
        self.horizontalScrollBar().setValue(0)
        self.verticalScrollBar().setValue(0)
        self._update_scrollbars()
        self.viewport().update()

    def set_labels(self, labels: Mapping[str, str]) -> None:
        """Node id -> name shown on bars (ids are shown otherwise)."""
        self._labels = dict(labels)
        self.viewport().update()

    def add_events(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Take engine events; node_started opens a bar, node_finished/failed/stopped
        close it, run_finished closes what is left; other events are ignored."""
        changed = False
        t_end = self._t_end
        opened, bars = self._open, self._bars
        for event in events:  # the hot loop of a busy run: keep it lean
            kind = event.get("type")
            t = event.get("t", t_end)
            t_end = max(t_end, t)
            if kind == "node_started":
                scope = event.get("scope")
                key = (event["node"], _scope_key(scope) if scope else None)
                old = opened.pop(key, None)
                if old is not None:  # a start without an end: close it where the new begins
                    self._close(old, t, "stopped")
                lane = self._take_lane()
                bar = Bar(event["node"], scope, t, lane)
                opened[key] = bar
                bars.append(bar)
                self._lanes[lane].append(bar)
                self._lane_starts[lane].append(t)
                changed = True
            elif kind in _END_STATE:
                scope = event.get("scope")
                ending = opened.pop((event["node"], _scope_key(scope) if scope else None),
                                    None)
                if ending is not None:
                    # The node's own duration, as the badge and the Run panel show it:
                    # the end event comes later (a failure formats its traceback first).
                    ms = event.get("duration_ms")
                    self._close(ending, t if ms is None else ending.start + ms / 1000.0,
                                _END_STATE[kind])
                    changed = True
            elif kind == "run_finished":
                for bar in opened.values():
                    self._close(bar, t, "stopped")
                opened.clear()
                changed = True
        self._t_end = t_end
        if changed:
            self._update_scrollbars()
            self.viewport().update()

    def _take_lane(self) -> int:
        busy = self._lane_busy
        if busy and not busy[0]:  # the common case: a sequential run lives in lane 0
            busy[0] = True
            return 0
        for lane, taken in enumerate(busy):
            if not taken:
                busy[lane] = True
                return lane
        busy.append(True)
        self._lanes.append([])
        self._lane_starts.append([])
        self._lane_failed.append([])
        return len(busy) - 1

    def _close(self, bar: Bar, t: float, state: str) -> None:
        bar.end = max(t, bar.start)
        bar.state = state
        if state == "failed":
            self._lane_failed[bar.lane].append(bar.start)
        self._lane_busy[bar.lane] = False

    # ------------------------------------------------------------------ reading
    def bars(self) -> list[Bar]:
        """Every bar so far, in start order."""
        return list(self._bars)

    @property
    def lane_count(self) -> int:
        """Lanes in use."""
        return len(self._lanes)

    @property
    def duration(self) -> float:
        """Seconds from the run's start to the latest event seen."""
        return self._t_end

    def bar_at(self, pos: QPoint) -> Bar | None:
        """The bar under a viewport position (a few pixels of slack for thin bars)."""
        if pos.y() < AXIS_HEIGHT:
            return None  # the axis covers the lanes scrolled under it
        y = pos.y() - AXIS_HEIGHT + self.verticalScrollBar().value()
        lane = y // ROW_HEIGHT
        if lane >= len(self._lanes) or y % ROW_HEIGHT >= ROW_HEIGHT - ROW_GAP:
            return None
        t = self._time_at(pos.x())
        slack = 3.0 / self._px_per_s
        bars, starts = self._lanes[lane], self._lane_starts[lane]
        k = bisect.bisect_right(starts, t + slack) - 1
        best = None
        # Neighbours within the slack may be closer than the last bar starting before t.
        for j in range(max(k - 2, 0), min(k + 2, len(bars))):
            bar = bars[j]
            end = self._t_end if bar.end is None else bar.end
            if bar.start - slack <= t <= end + slack and (
                    best is None or abs(t - (bar.start + end) / 2)
                    < abs(t - (best.start + (best.end or self._t_end)) / 2)):
                best = bar
        return best

    def bar_rect(self, bar: Bar) -> QRect:
        """Where a bar is drawn, in viewport coordinates (at least a pixel wide)."""
        x0 = int(self._x_of(bar.start))
        x1 = int(self._x_of(self._t_end if bar.end is None else bar.end))
        y = AXIS_HEIGHT + bar.lane * ROW_HEIGHT - self.verticalScrollBar().value()
        return QRect(x0, y, max(x1 - x0, 1), ROW_HEIGHT - ROW_GAP)

    def label(self, node: str) -> str:
        """The node's name as the bars show it."""
        return self._labels.get(node) or node

    # ------------------------------------------------------------------ geometry
    def _time_at(self, x: float) -> float:
        return (x + self.horizontalScrollBar().value() - MARGIN) / self._px_per_s

    def _x_of(self, t: float) -> float:
        return t * self._px_per_s + MARGIN - self.horizontalScrollBar().value()

    def _fit_scale(self) -> float:
        width = max(self.viewport().width() - 2 * MARGIN, 10)
        return width / max(self._t_end, 0.001)

    def _update_scrollbars(self) -> None:
        if self._fit:
            self._px_per_s = self._fit_scale()
        view = self.viewport()
        content_w = int(self._t_end * self._px_per_s) + 2 * MARGIN
        h_bar = self.horizontalScrollBar()
        h_bar.setRange(0, max(content_w - view.width(), 0))
        h_bar.setPageStep(view.width())
        h_bar.setSingleStep(20)
        content_h = AXIS_HEIGHT + len(self._lanes) * ROW_HEIGHT
        v_bar = self.verticalScrollBar()
        v_bar.setRange(0, max(content_h - view.height(), 0))
        v_bar.setPageStep(view.height())
        v_bar.setSingleStep(ROW_HEIGHT)

    def zoom(self, factor: float, anchor_x: float | None = None) -> None:
        """Scale time by ``factor`` keeping the time under ``anchor_x`` (viewport px) put."""
        if anchor_x is None:
            anchor_x = self.viewport().width() / 2
        t = self._time_at(anchor_x)
        fit = self._fit_scale()
        # Zooming out past the whole run makes no sense; zooming in stops at 1 px per µs.
        self._px_per_s = min(max(self._px_per_s * factor, fit), 1e6)
        self._fit = self._px_per_s <= fit
        self._update_scrollbars()
        self.horizontalScrollBar().setValue(int(t * self._px_per_s + MARGIN - anchor_x))
        self.viewport().update()

    def fit(self) -> None:
        """Show the whole run in the width of the view."""
        self._fit = True
        self._update_scrollbars()
        self.horizontalScrollBar().setValue(0)
        self.viewport().update()

    # ------------------------------------------------------------------ painting
    def paintEvent(self, event: QPaintEvent) -> None:
        """Axis, then the bars of the visible lanes and time range only."""
        view = self.viewport()
        painter = QPainter(view)
        palette = self.palette()
        painter.fillRect(view.rect(), palette.color(QPalette.ColorRole.Base))
        width, height = view.width(), view.height()
        t0 = max(self._time_at(0), 0.0)
        t1 = self._time_at(width)
        self._paint_grid(painter, t0, t1, width, height)
        if not self._lanes:
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(QRect(0, AXIS_HEIGHT, width, height - AXIS_HEIGHT),
                             Qt.AlignmentFlag.AlignCenter, "No run yet: the timeline fills "
                             "while a graph runs")
            painter.end()
            return
        scroll_y = self.verticalScrollBar().value()
        first = max(scroll_y // ROW_HEIGHT, 0)
        last = min((scroll_y + height - AXIS_HEIGHT) // ROW_HEIGHT + 1, len(self._lanes))
        painter.setClipRect(0, AXIS_HEIGHT, width, height - AXIS_HEIGHT)
        for lane in range(first, last):
            self._paint_lane(painter, lane, AXIS_HEIGHT + lane * ROW_HEIGHT - scroll_y,
                             t0, t1, width)
        painter.end()

    def _paint_lane(self, painter: QPainter, lane: int, y: int, t0: float, t1: float,
                    width: int) -> None:
        bars, starts = self._lanes[lane], self._lane_starts[lane]
        failed = self._lane_failed[lane]
        # Bars in a lane never overlap and are in start order: the one that may
        # cover t0 is the last starting before it.
        j = max(bisect.bisect_right(starts, t0) - 1, 0)
        stop = bisect.bisect_right(starts, t1)
        scale, offset = self._px_per_s, MARGIN - self.horizontalScrollBar().value()
        colours, t_now = self._colours, self._t_end
        grey = colours["skipped"]
        metrics = painter.fontMetrics()
        bar_h = ROW_HEIGHT - ROW_GAP
        pending: list[Any] | None = None  # thin bars merged: [x0, x1, state]
        while j < stop:
            bar = bars[j]
            end = t_now if bar.end is None else bar.end
            x0 = max(int(bar.start * scale + offset), -2)
            x1 = min(int(end * scale + offset), width + 2)
            if x1 <= x0:
                x1 = x0 + 1
            if x1 - x0 < 3:
                # Bars a few pixels wide merge into rectangles of a few pixels (a
                # failure colours its merge): one fillRect per few pixels, however
                # many bars, and a failure still stands out where it happened.
                if pending is not None and x0 <= pending[1] + 1 and \
                        pending[1] - pending[0] < _MERGE_PX:
                    pending[1] = max(pending[1], x1)
                    if bar.state == "failed":
                        pending[2] = "failed"
                else:
                    if pending is not None:
                        painter.fillRect(pending[0], y, pending[1] - pending[0], bar_h,
                                         colours.get(pending[2], grey))
                    pending = [x0, x1, bar.state]
                # Jump over the bars that start inside the merge's last pixel (a zoomed-
                # out chain has hundreds per pixel): painting costs pixels, not bars.
                # The last of them may reach further, so it is visited; a failure
                # among the others is found in the lane's list of failed starts.
                t_next = (pending[1] + 1 - offset) / scale
                last = bisect.bisect_left(starts, t_next, j + 1, stop) - 1
                if last > j + 1:
                    f = bisect.bisect_right(failed, starts[j])
                    if f < len(failed) and failed[f] < starts[last]:
                        pending[2] = "failed"
                j = max(last, j + 1)
                continue
            if pending is not None:
                painter.fillRect(pending[0], y, pending[1] - pending[0], bar_h,
                                 colours.get(pending[2], grey))
                pending = None
            # A pixel of gap keeps back-to-back executions in a lane apart.
            painter.fillRect(x0, y, x1 - x0 - 1, bar_h, colours.get(bar.state, grey))
            if x1 - x0 >= _MIN_LABEL_PX:
                text = metrics.elidedText(self.label(bar.node), Qt.TextElideMode.ElideRight,
                                          x1 - x0 - 8)
                if text and text != "…":
                    painter.setPen(_TEXT)
                    painter.drawText(QRect(x0 + 4, y, x1 - x0 - 8, bar_h),
                                     Qt.AlignmentFlag.AlignVCenter, text)
            j += 1
        if pending is not None:
            painter.fillRect(pending[0], y, pending[1] - pending[0], bar_h,
                             colours.get(pending[2], grey))

    def _paint_grid(self, painter: QPainter, t0: float, t1: float, width: int,
                    height: int) -> None:
        palette = self.palette()
        step = nice_step(t1 - t0, width)
        painter.fillRect(0, 0, width, AXIS_HEIGHT, palette.color(QPalette.ColorRole.Window))
        text = palette.color(QPalette.ColorRole.Text)
        # Opaque on purpose: blending with alpha makes Qt's raster engine start pool
        # threads, and an opaque mix of text and background looks the same.
        grid = _mix(text, palette.color(QPalette.ColorRole.Base), 0.12)
        tick = math.floor(t0 / step) * step
        while tick <= t1 + step:
            x = int(self._x_of(tick))
            if 0 <= x <= width:
                painter.setPen(grid)
                painter.drawLine(x, AXIS_HEIGHT, x, height)
                painter.setPen(text)
                painter.drawLine(x, AXIS_HEIGHT - 5, x, AXIS_HEIGHT)
                painter.drawText(x + 3, AXIS_HEIGHT - 7, tick_text(tick, step))
            tick += step
        painter.setPen(grid)
        painter.drawLine(0, AXIS_HEIGHT, width, AXIS_HEIGHT)

    # ------------------------------------------------------------------ interaction
    def resizeEvent(self, event: QResizeEvent) -> None:
        """Keep a fitted run fitted."""
        super().resizeEvent(event)
        self._update_scrollbars()

    def wheelEvent(self, event: QWheelEvent) -> None:
        """Ctrl+wheel zooms around the pointer; Shift+wheel (or the wheel when all lanes
        fit) pans in time; the plain wheel scrolls lanes."""
        modifiers = event.modifiers()
        steps = event.angleDelta().y() / 120.0
        if modifiers & Qt.KeyboardModifier.ControlModifier:
            if steps:
                self.zoom(1.25 ** steps, event.position().x())
            event.accept()
            return
        v_bar, h_bar = self.verticalScrollBar(), self.horizontalScrollBar()
        if steps and (modifiers & Qt.KeyboardModifier.ShiftModifier or v_bar.maximum() == 0):
            h_bar.setValue(h_bar.value() - int(steps * self.viewport().width() / 8))
            event.accept()
            return
        super().wheelEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        """A click on a bar emits its node id; a drag elsewhere pans."""
        if event.button() == Qt.MouseButton.LeftButton:
            pos = event.position().toPoint()
            bar = self.bar_at(pos)
            if bar is not None:
                self.node_clicked.emit(bar.node)
            else:
                self._drag_from = (pos, self.horizontalScrollBar().value(),
                                   self.verticalScrollBar().value())
                self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        """Pan while dragging."""
        if self._drag_from is not None:
            origin, h_value, v_value = self._drag_from
            delta = event.position().toPoint() - origin
            self.horizontalScrollBar().setValue(h_value - delta.x())
            self.verticalScrollBar().setValue(v_value - delta.y())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        """End a pan."""
        if self._drag_from is not None:
            self._drag_from = None
            self.viewport().unsetCursor()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        """A double-click on empty space fits the whole run."""
        if self.bar_at(event.position().toPoint()) is None:
            self.fit()
        super().mouseDoubleClickEvent(event)

    def viewportEvent(self, event: QEvent) -> bool:
        """Tooltips: the bar's node, scope, duration and state."""
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            bar = self.bar_at(event.pos())
            if bar is None:
                QToolTip.hideText()
            else:
                QToolTip.showText(event.globalPos(), self.tooltip(bar), self.viewport())
            return True
        return super().viewportEvent(event)

    def tooltip(self, bar: Bar) -> str:
        """What hovering a bar says."""
        name = self.label(bar.node)
        lines = [f"{name} ({bar.node})" if name != bar.node else bar.node]
        ms = bar.duration_ms
        lines.append(f"{bar.state} · " + ("running" if ms is None else format_duration(ms))
                     + f" · from {format_duration(bar.start * 1000.0)}")
        where = scope_text(bar.scope)
        if where:
            lines.append(f"in {where}")
        return "\n".join(lines)
