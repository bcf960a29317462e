"""The node item: title bar, port rows and circles, and live run state, all painted.

NodeGraphQt's ``NodeItem`` creates four ``QGraphicsTextItem`` children per node
(~90 µs each here) and re-lays itself out on every port added; a
:class:`LoomNodeItem` paints its title, port labels and port circles itself, lays out
once, and is cached as one image (zoomed out over thousands of nodes, one cached
image per node beats a Python ``paint`` per port per frame). Live run state
(:attr:`LoomNodeItem.exec_state`, badge, taken port) lives only on the item: it is
never saved and never on the undo stack.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Any

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from NodeGraphQt.constants import ITEM_CACHE_MODE, Z_VAL_NODE, LayoutDirectionEnum
    from NodeGraphQt.qgraphics.node_base import NodeItem
    from NodeGraphQt.qgraphics.port import PortItem

from . import style
from .items import IN, OUT, PORT_RECT, LoomPortItem

_SELECTED_CHANGE = QGraphicsItem.GraphicsItemChange.ItemSelectedHasChanged
_MOVED = QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged
#: how far port circles reach past a node's sides (hover grows them)
_PORT_OVERHANG = style.PORT_RADIUS + 3.0
_ELIDE_RIGHT = Qt.TextElideMode.ElideRight
_ALIGN_LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
_ALIGN_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
_ALIGN_CENTER = Qt.AlignmentFlag.AlignCenter
#: below this on-screen scale a node is drawn as a plain coloured box (text unreadable)
_LOD_TEXT = 0.45
#: the run badge's pill: its height, and the gap between it and the node's top edge
_BADGE_H = 14.0
_BADGE_GAP = 2.0
#: how far above the node the badge reaches (it sits over the title row, never in it)
_BADGE_ABOVE = _BADGE_H + _BADGE_GAP
#: how far a validation outline lies outside the body
_OUTLINE_OUT = 4.0
#: how much of a stale state's colour is kept (the rest is the body's)
_STALE_KEEP = 0.35


class LoomNodeItem(NodeItem):
    """A node: category-coloured title bar, port rows, and live run state.

    Layout happens in :meth:`draw_node`, once after the ports are in place; port
    labels and the title are painted, not child items.

    A node is built "quiet", with Qt's own ``itemChange``: building and adding it
    changes flags, z-value, children and scene a dozen times, each a call into
    Python otherwise. :meth:`go_live` then makes it follow moves and selection.
    """

    itemChange = QGraphicsItem.itemChange

    def __init__(self, name: str = "node", parent: QGraphicsItem | None = None) -> None:
        # Skip NodeItem.__init__ on purpose: it builds the icon, title and overlay
        # child items this class paints itself (see the module docstring). This is
        # AbstractNodeItem.__init__ with the flags set in one call.
        QGraphicsItem.__init__(self, parent)
        flag = QGraphicsItem.GraphicsItemFlag
        self.setFlags(flag.ItemIsSelectable | flag.ItemIsMovable | flag.ItemSendsGeometryChanges)
        self.setCacheMode(ITEM_CACHE_MODE)
        self.setZValue(Z_VAL_NODE)
        self.setAcceptHoverEvents(True)
        self._properties: dict[str, Any] = {
            "id": None, "name": name.strip(), "color": (13, 18, 23, 255),
            "border_color": (46, 57, 66, 255), "text_color": (255, 255, 255, 180),
            "type_": "AbstractBaseNode", "selected": False, "disabled": False,
            # NodeGraphQt copies "visible" from its model in node.update(), which Loom
            # skips; wires to an "invisible" node are hidden.
            "visible": True, "layout_direction": LayoutDirectionEnum.HORIZONTAL.value,
            "icon": None,
        }
        self._width = style.MIN_W
        self._height = style.TITLE_H + style.ROW_H
        self._input_items: OrderedDict[PortItem, None] = OrderedDict()
        self._output_items: OrderedDict[PortItem, None] = OrderedDict()
        self._widgets: OrderedDict[str, Any] = OrderedDict()
        self._proxy_mode = False
        self._proxy_mode_threshold = 70
        self._text_item = None
        self._icon_item = None
        self._x_item = None
        #: loom node id (a fast way back from an item to its node)
        self.loom_id = ""
        self.category = ""
        self.type_id = ""
        self.description = ""
        self.missing = False
        #: a conditional node: its true/false wires are drawn green/red
        self.conditional = False
        self.title_color = style.category_color("")
        self._title = name
        self._shown_title = name
        #: live run state (transient): one of style.STATES or None
        self.exec_state: str | None = None
        self.badge: str | None = None
        self.taken_port: str | None = None
        self.pulse = 0.0
        #: the state is from before the last edit: drawn dimmed (transient)
        self.stale = False
        #: a validation problem outlines the node: "error", "warning" or None (transient)
        self.problem: str | None = None
        self._badge_item: _BadgeItem | None = None
        self._outline_item: _OutlineItem | None = None
        #: called with this item when it moves (the canvas refreshes its frames)
        self.on_moved: Any = None
        self._laid_out = False

    # ------------------------------------------------------------------ properties
    @property
    def name(self) -> str:
        """The title shown (the loom name, or the type's name when that is empty)."""
        return str(self._properties["name"])

    @name.setter
    def name(self, name: str = "") -> None:
        if name == self._properties["name"] and name == self._title:
            return
        self._properties["name"] = name
        self._title = name
        if self._laid_out:
            self.setToolTip("")
            self.draw_node()

    @property
    def layout_direction(self) -> int:
        """Always horizontal; kept for NodeGraphQt's property syncing."""
        return int(self._properties["layout_direction"])

    @layout_direction.setter
    def layout_direction(self, value: int = 0) -> None:
        # NodeItem's setter re-lays the node out; NodeObject sets it at construction.
        self._properties["layout_direction"] = value

    @property
    def text_item(self) -> None:
        """NodeGraphQt's title item: this class paints the title instead."""
        return None

    @property
    def icon_item(self) -> None:
        """NodeGraphQt's icon item: Loom nodes have none."""
        return None

    @property
    def icon(self) -> Any:
        """Kept for NodeGraphQt's property syncing; never drawn."""
        return self._properties["icon"]

    @icon.setter
    def icon(self, path: Any = None) -> None:
        self._properties["icon"] = path

    @property
    def disabled(self) -> bool:
        """Loom has no disabled nodes; kept for NodeGraphQt's property syncing."""
        return bool(self._properties["disabled"])

    @disabled.setter
    def disabled(self, state: bool = False) -> None:
        self._properties["disabled"] = state

    @property
    def text_color(self) -> Any:
        """Kept for NodeGraphQt's property syncing; the palette lives in :mod:`style`."""
        return self._properties["text_color"]

    @text_color.setter
    def text_color(self, color: Any = (255, 255, 255, 180)) -> None:
        self._properties["text_color"] = color

    @property
    def width(self) -> float:
        """Width, fixed by the layout."""
        return float(self._width)

    @width.setter
    def width(self, width: float = 0.0) -> None:
        # NodeGraphQt restores saved sizes through this; the layout decides here.
        return

    @property
    def height(self) -> float:
        """Height, fixed by the layout."""
        return float(self._height)

    @height.setter
    def height(self, height: float = 0.0) -> None:
        return

    def boundingRect(self) -> QRectF:
        """The body plus the port circles that stick out of its sides.

        The badge above and a problem outline around are child items: they never
        change this rectangle, so where a node is does not depend on its run state."""
        return QRectF(-_PORT_OVERHANG, 0.0, self._width + 2 * _PORT_OVERHANG, self._height)

    @property
    def shown_title(self) -> str:
        """The title as painted (elided only when longer than the widest node)."""
        return self._shown_title

    def title_rect(self) -> QRectF:
        """Where the title text is painted, in item coordinates."""
        return QRectF(style.LABEL_PAD, 0.0, self._width - 2 * style.LABEL_PAD, style.TITLE_H)

    def badge_rect(self) -> QRectF:
        """Where the badge pill is painted (empty when there is no badge): right-aligned
        just above the title row, so it never takes room from the title."""
        if not self.badge:
            return QRectF()
        text_w = _badge_width(self.badge)
        return QRectF(self._width - text_w - 4.0, -_BADGE_ABOVE, text_w, _BADGE_H)

    def shape(self) -> QPainterPath:
        """Clicks and rubber bands see the body only."""
        path = QPainterPath()
        path.addRect(QRectF(0.0, 0.0, self._width, self._height))
        return path

    # ------------------------------------------------------------------ ports
    def _add_port(self, port: PortItem) -> PortItem:
        if port.port_type == IN:
            self._input_items[port] = None
        else:
            self._output_items[port] = None
        if self._laid_out:
            self.draw_node()
        return port

    def _new_port(self, name: str, port_type: str, multi: bool, display_name: bool,
                  locked: bool) -> PortItem:
        port = LoomPortItem(self)
        # Private fields: the public setters also build tooltips (costly, see class doc).
        port._name = name
        port._port_type = port_type
        port._multi_connection = multi
        port._display_name = display_name
        port._locked = locked
        return self._add_port(port)

    def add_input(self, name: str = "input", multi_port: bool = False,
                  display_name: bool = True, locked: bool = False,
                  painter_func: Any = None) -> PortItem:
        """Add an input port item (called by ``BaseNode.add_input``)."""
        return self._new_port(name, IN, multi_port, display_name, locked)

    def add_output(self, name: str = "output", multi_port: bool = False,
                   display_name: bool = True, locked: bool = False,
                   painter_func: Any = None) -> PortItem:
        """Add an output port item (called by ``BaseNode.add_output``)."""
        return self._new_port(name, OUT, multi_port, display_name, locked)

    def _delete_port(self, port: PortItem, text: Any = None) -> None:
        port.setParentItem(None)
        scene = self.scene()
        if scene is not None and port.scene() is scene:
            scene.removeItem(port)

    def delete_input(self, port: PortItem) -> None:
        """Remove an input port item."""
        self._input_items.pop(port)
        self._delete_port(port)

    def delete_output(self, port: PortItem) -> None:
        """Remove an output port item."""
        self._output_items.pop(port)
        self._delete_port(port)

    def reorder_ports(self, inputs: list[PortItem], outputs: list[PortItem]) -> None:
        """Put the port items in this order (after ports were added or removed)."""
        self._input_items = OrderedDict((p, None) for p in inputs)
        self._output_items = OrderedDict((p, None) for p in outputs)

    def port_item(self, name: str, port_type: str) -> PortItem | None:
        """The input (``"in"``) or output (``"out"``) port item with this name."""
        items = self._input_items if port_type == IN else self._output_items
        for port in items:
            if port.name == name:
                return port
        return None

    def get_input_text_item(self, port_item: PortItem) -> None:
        """Port labels are painted, not items."""
        return None

    def get_output_text_item(self, port_item: PortItem) -> None:
        """Port labels are painted, not items."""
        return None

    # ------------------------------------------------------------------ layout
    def post_init(self, viewer: Any = None, pos: Any = None) -> None:
        """Lay out once the item is in the scene (NodeGraphQt's hook)."""
        self.draw_node()
        if pos:
            self.xy_pos = pos

    def calc_size(self, add_w: float = 0.0, add_h: float = 0.0) -> tuple[float, float]:
        """Width and height this node needs for its title and port labels."""
        widest_in = max((_label_width(p.name) for p in self._input_items), default=0.0)
        widest_out = max((_label_width(p.name) for p in self._output_items), default=0.0)
        title_w = _title_width(self._title) + 2 * style.LABEL_PAD
        ports_w = widest_in + widest_out + 2 * style.LABEL_PAD + 24.0
        rows = max(len(self._input_items), len(self._output_items), 1)
        width = min(max(style.MIN_W, title_w, ports_w), style.MAX_W) + add_w
        height = style.TITLE_H + style.BODY_TOP + rows * style.ROW_H + style.BODY_BOTTOM + add_h
        return width, height

    def draw_node(self) -> None:
        """Size the node and place its ports (one pass; no child text items)."""
        self.prepareGeometryChange()
        self._width, self._height = self.calc_size()
        self._laid_out = True
        half = style.PORT_BOX / 2.0
        top = style.TITLE_H + style.BODY_TOP + style.ROW_H / 2.0 - half
        for i, port in enumerate(self._input_items):
            port.setPos(-half, top + i * style.ROW_H)
        for i, port in enumerate(self._output_items):
            port.setPos(self._width - half, top + i * style.ROW_H)
        room = self._width - 2 * style.LABEL_PAD
        self._shown_title = self._title if _title_width(self._title) <= room else (
            style.title_metrics().elidedText(self._title, _ELIDE_RIGHT, room))
        if self.badge:
            self._sync_badge()
        if self.problem:
            self._sync_outline()
        self.redraw_pipes()
        self.update()

    def redraw_pipes(self) -> None:
        """Redraw every wire attached to this node (after it moved or re-laid out)."""
        for port in self._input_items:
            for pipe in port._pipes:
                pipe.draw_path(port, pipe.output_port)
        for port in self._output_items:
            for pipe in port._pipes:
                pipe.draw_path(pipe.input_port, port)

    def align_label(self, h_offset: float = 0.0, v_offset: float = 0.0) -> None:
        """Titles are painted where the layout puts them."""
        return

    def auto_switch_mode(self) -> None:
        """Level of detail is decided in :meth:`paint` from the painter's scale."""
        return

    def set_proxy_mode(self, mode: bool) -> None:
        """See :meth:`auto_switch_mode`."""
        return

    def _set_text_color(self, color: Any) -> None:
        return

    def _tooltip_disable(self, state: bool) -> None:
        return

    # ------------------------------------------------------------------ events
    def go_live(self) -> None:
        """Start following moves and selection (once the node is in its scene).

        An instance attribute: PySide looks virtual overrides up on the instance, so
        from now on Qt calls :meth:`_follow` for every change of this item.
        """
        self.itemChange = self._follow

    def _follow(self, change: QGraphicsItem.GraphicsItemChange, value: Any) -> Any:
        """Redraw wires and tell the canvas when moved; highlight wires when selected."""
        if change == _MOVED:
            self.redraw_pipes()
            if self.on_moved is not None:
                self.on_moved(self)
        elif change == _SELECTED_CHANGE:
            self.reset_pipes()
            if value:
                self.highlight_pipes()
            self.setZValue(Z_VAL_NODE + 1 if value else Z_VAL_NODE)
        return QGraphicsItem.itemChange(self, change, value)

    def hoverEnterEvent(self, event: Any) -> None:
        """Build the tooltip when first needed."""
        if not self.toolTip():
            lines = [f"<b>{_escape(self._title)}</b> ({_escape(self.loom_id)})",
                     f"{_escape(self.type_id)} · {_escape(self.category)}"]
            if self.missing:
                lines.append("<i>this node type is not installed; the node is kept "
                             "as it is and saved back unchanged</i>")
            elif self.description:
                lines.append(_escape(self.description.splitlines()[0]))
            self.setToolTip("<br>".join(lines))
        super().hoverEnterEvent(event)

    def mouseDoubleClickEvent(self, event: Any) -> None:
        """Double-click opens the node (there is no inline title editor)."""
        if event.button() == Qt.MouseButton.LeftButton:
            viewer = self.viewer()
            if viewer is not None:
                viewer.node_double_clicked.emit(self.id)
        QGraphicsItem.mouseDoubleClickEvent(self, event)

    # ------------------------------------------------------------------ live state
    def set_exec_state(self, state: str | None, badge: str | None) -> None:
        """Show a run state and badge (transient; never saved)."""
        self.exec_state = state
        self.badge = badge
        self.setOpacity(0.45 if state == "skipped" else 1.0)
        self._sync_badge()
        self.update()

    def set_stale(self, stale: bool) -> None:
        """Dim the run state (the graph changed since the run that set it)."""
        if stale != self.stale:
            self.stale = stale
            self._sync_badge()
            self.update()

    def set_problem(self, severity: str | None) -> None:
        """Outline the node for a validation problem ("error", "warning") or not (None)."""
        if severity != self.problem:
            self.problem = severity
            self._sync_outline()

    def _sync_badge(self) -> None:
        """Show the badge in its child item (made on first use: most nodes never run)."""
        item = self._badge_item
        if not self.badge:
            if item is not None:
                item.hide()
            return
        if item is None:
            item = self._badge_item = _BadgeItem(self)
        color = style.STATE_COLORS.get(self.exec_state or "", style.STATE_COLORS["queued"])
        color = color.lighter(130)
        if self.stale:
            color = _mix(style.BADGE, color, 0.5)
        item.show_text(self.badge_rect(), self.badge, color)

    def _sync_outline(self) -> None:
        item = self._outline_item
        if not self.problem:
            if item is not None:
                item.hide()
            return
        if item is None:
            item = self._outline_item = _OutlineItem(self)
        color = style.PROBLEM_COLORS.get(self.problem, style.PROBLEM_COLORS["error"])
        item.show_around(QRectF(0.0, 0.0, self._width, self._height), color)

    def set_taken_port(self, port: str | None) -> None:
        """Highlight the output port a conditional or switch took."""
        self.taken_port = port
        self.update()

    # ------------------------------------------------------------------ painting
    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        """Body, title bar, port labels, then state border, badge and selection."""
        rect = QRectF(0.0, 0.0, self._width, self._height)
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        body = style.MISSING_BODY if self.missing else style.BODY
        state_color = style.STATE_COLORS.get(self.exec_state) if self.exec_state else None
        if state_color is not None and self.stale:
            state_color = _mix(style.BODY, state_color, _STALE_KEEP)
        if state_color is not None and self.exec_state not in ("skipped", "queued"):
            # An opaque mix, not a translucent overlay: Qt fills big translucent
            # antialiased paths on its thread pool (threads outliving the paint).
            body = _mix(body, state_color, 0.16)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(body)
        painter.drawRoundedRect(rect, style.RADIUS, style.RADIUS)
        self._paint_title(painter, rect, lod)
        if lod >= _LOD_TEXT:
            self._paint_labels(painter)
        self._paint_border(painter, rect, state_color)
        self._paint_ports(painter)
        painter.restore()

    def _paint_ports(self, painter: QPainter) -> None:
        offset = PORT_RECT.center()
        for port in (*self._input_items, *self._output_items):
            color = style.port_color(port.loom_type) if isinstance(port, LoomPortItem) else (
                style.LABEL_TEXT)
            hovered = port._hovered
            radius = style.PORT_RADIUS + (1.5 if hovered else 0.0)
            painter.setPen(QPen(color, 1.8))
            painter.setBrush(color if port._pipes or hovered else style.BODY)
            painter.drawEllipse(port.pos() + offset, radius, radius)

    def _paint_title(self, painter: QPainter, rect: QRectF, lod: float) -> None:
        title = QPainterPath()
        title.setFillRule(Qt.FillRule.WindingFill)
        bar = QRectF(0.0, 0.0, rect.width(), style.TITLE_H)
        title.addRoundedRect(bar, style.RADIUS, style.RADIUS)
        title.addRect(QRectF(0.0, style.TITLE_H / 2, rect.width(), style.TITLE_H / 2))
        painter.setBrush(style.MISSING_TITLE if self.missing else self.title_color)
        painter.drawPath(title.simplified())
        if lod < _LOD_TEXT:
            return
        font = style.title_font()
        if self.missing:
            font = QFont(font)
            font.setItalic(True)
        painter.setFont(font)
        painter.setPen(style.MISSING_TEXT if self.missing else style.TITLE_TEXT)
        painter.drawText(self.title_rect(), _ALIGN_LEFT, self._shown_title)

    def _paint_labels(self, painter: QPainter) -> None:
        painter.setFont(style.label_font())
        top = style.TITLE_H + style.BODY_TOP
        row = style.ROW_H
        width = self._width - 2 * style.LABEL_PAD
        for i, port in enumerate(self._input_items):
            if port.display_name:
                painter.setPen(style.LABEL_TEXT)
                painter.drawText(QRectF(style.LABEL_PAD, top + i * row, width, row),
                                 _ALIGN_LEFT, port.name)
        for i, port in enumerate(self._output_items):
            taken = port.name == self.taken_port
            if taken:
                glow = _mix(style.BODY, style.TAKEN_PORT, 0.3)
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(glow)
                label_w = style.label_metrics().horizontalAdvance(port.name)
                pill = QRectF(self._width - label_w - style.LABEL_PAD - 6, top + i * row + 2,
                              label_w + style.LABEL_PAD + 6, row - 4)
                painter.drawRoundedRect(pill, 4.0, 4.0)
            if port.display_name:
                painter.setPen(style.TAKEN_PORT.lighter(140) if taken else style.LABEL_TEXT)
                painter.drawText(QRectF(style.LABEL_PAD, top + i * row, width, row),
                                 _ALIGN_RIGHT, port.name)

    def _paint_border(self, painter: QPainter, rect: QRectF, state_color: QColor | None) -> None:
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if self.isSelected():
            painter.setPen(QPen(style.SELECTED_BORDER, 2.0))
        elif state_color is not None:
            color = state_color
            if self.exec_state == "running":  # pulses between dim and bright (opaque)
                color = _mix(style.BODY, state_color, 0.5 + 0.5 * self.pulse)
            painter.setPen(QPen(color, 2.6))
        elif self.missing:
            pen = QPen(style.MISSING_TEXT, 1.2)
            pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(pen)
        else:
            painter.setPen(QPen(style.BODY_BORDER, 1.0))
        inset = rect.adjusted(0.5, 0.5, -0.5, -0.5)
        painter.drawRoundedRect(inset, style.RADIUS, style.RADIUS)
        if self.isSelected() and state_color is not None:
            # Selection hides the state border: keep a thin state line inside it.
            painter.setPen(QPen(state_color, 1.6))
            painter.drawRoundedRect(rect.adjusted(3, 3, -3, -3), style.RADIUS - 2,
                                    style.RADIUS - 2)


class _BadgeItem(QGraphicsItem):
    """The run badge: a pill just above the node's title row (a child item, so the
    node's own rectangle never depends on it). Clicks pass through it."""

    def __init__(self, node: LoomNodeItem) -> None:
        super().__init__(node)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self._rect = QRectF()
        self._text = ""
        self._color = QColor()

    def show_text(self, rect: QRectF, text: str, color: QColor) -> None:
        """Show ``text`` in ``color`` in a pill at ``rect`` (node coordinates)."""
        if rect != self._rect:
            self.prepareGeometryChange()
            self._rect = rect
        self._text, self._color = text, color
        self.show()
        self.update()

    def boundingRect(self) -> QRectF:
        """The pill."""
        return self._rect

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        """The pill and its text (nothing when zoomed out too far to read it)."""
        if option.levelOfDetailFromTransform(painter.worldTransform()) < _LOD_TEXT:
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(style.BADGE)
        painter.drawRoundedRect(self._rect, 7.0, 7.0)
        painter.setFont(style.label_font())
        painter.setPen(self._color)
        painter.drawText(self._rect, _ALIGN_CENTER, self._text)


class _OutlineItem(QGraphicsItem):
    """A validation problem's dashed outline around the node (a child item drawn
    behind it, so only the ring outside the body shows). Clicks pass through it."""

    def __init__(self, node: LoomNodeItem) -> None:
        super().__init__(node)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemStacksBehindParent, True)
        self._body = QRectF()
        self._color = QColor()

    def show_around(self, body: QRectF, color: QColor) -> None:
        """Outline ``body`` (node coordinates) in ``color``."""
        if body != self._body:
            self.prepareGeometryChange()
            self._body = body
        self._color = color
        self.show()
        self.update()

    def boundingRect(self) -> QRectF:
        """The body grown by the ring."""
        ring = _OUTLINE_OUT
        return self._body.adjusted(-ring, -ring, ring, ring)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        """A dashed rounded ring just outside the body."""
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        pen = QPen(self._color, 2.0)
        pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        ring = _OUTLINE_OUT - 1.0
        painter.drawRoundedRect(self._body.adjusted(-ring, -ring, ring, ring),
                                style.RADIUS + ring, style.RADIUS + ring)


def _badge_width(text: str) -> float:
    return style.label_metrics().horizontalAdvance(text) + 10.0


def _mix(base: QColor, tint: QColor, amount: float) -> QColor:
    keep = 1.0 - amount
    return QColor(int(base.red() * keep + tint.red() * amount),
                  int(base.green() * keep + tint.green() * amount),
                  int(base.blue() * keep + tint.blue() * amount))


_label_widths: dict[str, float] = {}
_title_widths: dict[str, float] = {}


def _label_width(text: str) -> float:
    # Port names repeat across a graph ("a", "out"): measure each once.
    width = _label_widths.get(text)
    if width is None:
        width = _label_widths[text] = style.label_metrics().horizontalAdvance(text)
    return width


def _title_width(text: str) -> float:
    width = _title_widths.get(text)
    if width is None:
        if len(_title_widths) > 20_000:  # titles are unbounded: keep the cache bounded
            _title_widths.clear()
        width = _title_widths[text] = style.title_metrics().horizontalAdvance(text)
    return width


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
