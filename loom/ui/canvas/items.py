"""Ports and wires: NodeGraphQt's items, made cheap to build and to paint.

They subclass NodeGraphQt's items, so its viewer (selection, dragging, live
connections, slicing) keeps working. Every Python override of ``itemChange`` makes Qt
call into Python for each flag, z-value, tooltip and child change (measured: 3x slower
item construction), so both keep Qt's own; the node (``node_item.py``) redraws its
wires when it moves and paints its ports' circles itself.
"""

from __future__ import annotations

import warnings
from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPathItem,
    QStyleOptionGraphicsItem,
    QWidget,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from NodeGraphQt.constants import Z_VAL_PIPE, PortTypeEnum
    from NodeGraphQt.qgraphics.pipe import PipeItem
    from NodeGraphQt.qgraphics.port import PortItem

from . import style

IN = PortTypeEnum.IN.value
OUT = PortTypeEnum.OUT.value
#: a port item's square: its click area, with the circle at the centre
PORT_RECT = QRectF(0.0, 0.0, style.PORT_BOX, style.PORT_BOX)


class LoomPortItem(PortItem):
    """A port's hit area. Its node paints the circle (type colour, filled when wired).

    ``loom_type`` is the port's data type (checked when wiring). The item has no
    contents of its own: zoomed out over thousands of nodes, one cached node image
    per node beats a Python ``paint`` call per port per frame.
    """

    # Qt's own itemChange: no call into Python for each change (see module doc).
    itemChange = QGraphicsItem.itemChange

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        # PortItem.__init__ sets flags, cache mode and z-value one call at a time and
        # asks for scene-position notifications (the node redraws its wires instead):
        # set up exactly the attributes PortItem's methods read.
        QGraphicsItem.__init__(self, parent)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemHasNoContents, True)
        self.setAcceptHoverEvents(True)
        self._pipes: list[Any] = []
        self._width = style.PORT_BOX
        self._height = style.PORT_BOX
        self._hovered = False
        self._name = "port"
        self._display_name = True
        self._color = (0, 0, 0, 255)
        self._border_color = (0, 0, 0, 255)
        self._border_size = 1
        self._port_type: str | None = None
        self._multi_connection = False
        self._locked = False
        self.loom_type = "any"

    def boundingRect(self) -> QRectF:
        """A fixed square around the circle (the click area)."""
        return PORT_RECT

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        """Nothing: the node draws its ports (see the class docstring)."""
        return

    def update(self, *args: Any) -> None:
        """NodeGraphQt asks ports to repaint when wired or hovered: repaint the node."""
        node = self.parentItem()
        if node is not None:
            node.update()

    def hoverEnterEvent(self, event: Any) -> None:
        """Highlight; set the tooltip only when someone looks (it costs per port)."""
        if not self.toolTip():
            kind = "input" if self.port_type == IN else "output"
            self.setToolTip(f"{self.name}: {self.loom_type} {kind}")
        self._hovered = True
        self.update()
        QGraphicsItem.hoverEnterEvent(self, event)

    def hoverLeaveEvent(self, event: Any) -> None:
        """Back to normal."""
        self._hovered = False
        self.update()
        QGraphicsItem.hoverLeaveEvent(self, event)


class LoomPipeItem(PipeItem):
    """A wire, coloured by its source port's type (or green/red for true/false).

    Paints its state (selected, hovered, next to a selected node) instead of
    rebuilding pens on every change, and has no direction arrow: wires always
    run from an output (right side) to an input (left side).
    """

    itemChange = QGraphicsPathItem.itemChange

    def __init__(self, input_port: PortItem | None = None,
                 output_port: PortItem | None = None) -> None:
        # PipeItem.__init__ builds an arrow item and pens we never use; set up
        # exactly the attributes its methods read instead.
        QGraphicsPathItem.__init__(self)
        self.setZValue(Z_VAL_PIPE)
        self.setAcceptHoverEvents(True)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self._color: tuple[int, ...] = (170, 170, 176, 255)
        self._style = 0
        self._active = False
        self._highlight = False
        self._input_port = input_port
        self._output_port = output_port
        self._pens: list[QPen] = []
        self._pen_color: tuple[int, ...] = ()

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        """The path with the pen for its state (pens are built on state changes)."""
        if self._pen_color != self._color:
            self._restyle()
        painter.setPen(self._pens[2 if self.isSelected() else self._state])
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self.path())

    def _restyle(self) -> None:
        color = QColor(*self._color)
        pens = []
        for tint, width in ((100, 2.0), (125, 2.6), (150, 3.2)):
            pen = QPen(color.lighter(tint), width)
            pen.setCapStyle(Qt.PenCapStyle.RoundCap)
            pens.append(pen)
        self._pens = pens
        self._pen_color = self._color

    @property
    def _state(self) -> int:
        return 2 if self._active else 1 if self._highlight else 0

    def draw_path(self, start_port: PortItem, end_port: PortItem | None = None,
                  cursor_pos: Any = None) -> None:
        """A horizontal S-curve from the output to the input.

        A wire running backwards (a while loop's carried value) bows out to the right
        of its source and the left of its target instead of cutting through them.
        """
        if end_port is None or cursor_pos is not None:
            super().draw_path(start_port, end_port, cursor_pos)
            return
        out, inp = (start_port, end_port) if start_port.port_type == OUT else (
            end_port, start_port)
        visible = (out.isVisible() and inp.isVisible() and out.node.isVisible()
                   and inp.node.isVisible())
        self.setVisible(visible)
        if not visible:
            return
        p1, p2 = port_center(out), port_center(inp)
        dx = p2.x() - p1.x()
        bend = max(dx * 0.5, 40.0) if dx >= 0 else min(max(-dx * 0.35, 90.0), 260.0)
        path = QPainterPath(p1)
        path.cubicTo(p1.x() + bend, p1.y(), p2.x() - bend, p2.y(), p2.x(), p2.y())
        self.setPath(path)

    def set_pipe_styling(self, color: Any, width: int = 2, style: int = 0) -> None:
        """Styling is decided at paint time; just repaint."""
        self.update()

    def _draw_direction_pointer(self) -> None:
        return

    def activate(self) -> None:
        """Hovered."""
        self._active = True
        self.update()

    def highlight(self) -> None:
        """Next to a selected node."""
        self._highlight = True
        self.update()

    def reset(self) -> None:
        """Back to the plain look."""
        self._active = False
        self._highlight = False
        self.update()


def port_center(port: PortItem) -> QPointF:
    """Scene position of a port's circle centre (where its wires end)."""
    return QPointF(port.scenePos() + PORT_RECT.center())
