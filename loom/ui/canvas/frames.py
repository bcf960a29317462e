"""Framed regions behind the nodes: loop bodies, parallel branches, event waves.

Membership comes from the graph (:func:`frame_specs`: a loop's ``metadata.body``, a
parallel node's branches as the engine reads them, everything downstream of an event
source); geometry from the member nodes' rectangles (:meth:`FrameLayer.relayout`).
Both are cheap and the canvas recomputes them lazily, at most once per event-loop
turn, after edits and moves.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsScene, QStyleOptionGraphicsItem, QWidget

from loom.engine.strategies.parallel import branches
from loom.graph import Node

from . import style

_PAD = 14.0
#: the caption row; tall enough that a run badge above a top-row node stays below it
_CAPTION = 22.0
#: frames sit below wires (z -1) and nodes (z 1); bigger frames further back
_Z_BACK = -9.0


@dataclass(frozen=True)
class FrameSpec:
    """One framed region: what kind, which node owns it, its caption and members."""

    kind: str
    owner: str
    label: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class FrameNode:
    """What frame computation needs to know about one node."""

    id: str
    title: str
    mode: str
    metadata: Mapping[str, Any]


def frame_specs(owners: Iterable[FrameNode], exists: Container[str],
                downstream: Callable[[str], Iterable[str]]) -> list[FrameSpec]:
    """The frames of a graph.

    ``owners`` are the nodes that may own a frame (loop, parallel and event nodes;
    others are ignored), ``exists`` tells which ids are on the canvas and
    ``downstream(id)`` lists the nodes a node's wires feed.
    """
    frames: list[FrameSpec] = []
    for node in owners:
        if node.mode == "loop":
            body = node.metadata.get("body")
            members = _existing(body if isinstance(body, list) else [], exists)
            if members:
                kind = ("while" if node.metadata.get("loop_type") in ("while", "infinite")
                        else "for each")
                frames.append(FrameSpec("loop", node.id, f"{node.title} · {kind} body", members))
        elif node.mode == "parallel":
            probe = Node(node.id, "", metadata=dict(node.metadata))
            for name, ids in branches(probe):
                members = _existing(ids, exists)
                if members:
                    frames.append(FrameSpec("parallel", node.id, f"{node.title} · {name}",
                                            members))
        elif node.mode == "event":
            wave = _existing(_reach(node.id, downstream), exists)
            if wave:
                frames.append(FrameSpec("event", node.id, f"{node.title} · event wave",
                                        (node.id, *wave)))
    return frames


def _existing(ids: Iterable[Any], exists: Container[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for node_id in ids:
        if isinstance(node_id, str) and node_id in exists:
            seen[node_id] = None
    return tuple(seen)


def _reach(start: str, downstream: Callable[[str], Iterable[str]]) -> list[str]:
    seen = {start}
    order: list[str] = []
    todo = [start]
    while todo:
        for nxt in downstream(todo.pop()):
            if nxt not in seen:
                seen.add(nxt)
                order.append(nxt)
                todo.append(nxt)
    return order


def wiring_groups(members: list[tuple[str, tuple[float, float, int]]],
                  wires: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Nodes grouped by the wires among them, each group in wiring order.

    ``members`` are ``(id, place)`` with ``place`` sorting top to bottom, then left
    to right; ``wires`` are ``(source id, target id)`` (others are ignored). Within a
    group a node comes after the nodes wired into it; ties, and the groups, go by place.
    Used to wrap a selection in a loop (one body) or a parallel node (one branch per
    group).
    """
    place = dict(members)
    ids = set(place)
    succ: dict[str, list[str]] = {i: [] for i in ids}
    indegree = dict.fromkeys(ids, 0)
    parent = {i: i for i in ids}

    def root(i: str) -> str:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for src, dst in wires:
        if src in ids and dst in ids and src != dst:
            succ[src].append(dst)
            indegree[dst] += 1
            parent[root(src)] = root(dst)
    order: list[str] = []
    ready = sorted((i for i in ids if indegree[i] == 0), key=place.__getitem__)
    while ready:
        current = ready.pop(0)
        order.append(current)
        for nxt in succ[current]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
                ready.sort(key=place.__getitem__)
    done = set(order)
    order += sorted((i for i in ids if i not in done), key=place.__getitem__)  # cycles
    groups: dict[str, list[str]] = {}
    for node_id in order:
        groups.setdefault(root(node_id), []).append(node_id)
    return sorted(groups.values(), key=lambda g: min(place[i] for i in g))


class FrameItem(QGraphicsItem):
    """A translucent, dashed, captioned rectangle that ignores the mouse."""

    itemChange = QGraphicsItem.itemChange

    def __init__(self, spec: FrameSpec) -> None:
        super().__init__()
        self.spec = spec
        self._rect = QRectF()
        #: how many frames lie behind this one (nested frames get a deeper tint)
        self._depth = 0
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setAcceptHoverEvents(False)
        self.setZValue(_Z_BACK)

    def set_rect(self, rect: QRectF) -> None:
        """Move or resize the frame."""
        if rect != self._rect:
            self.prepareGeometryChange()
            self._rect = QRectF(rect)

    def rect(self) -> QRectF:
        """The frame's rectangle in scene coordinates."""
        return QRectF(self._rect)

    def boundingRect(self) -> QRectF:
        """The rectangle plus the pen."""
        return self._rect.adjusted(-2.0, -2.0, 2.0, 2.0)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        """Fill, dashed border and caption in the frame kind's colour."""
        r, g, b = style.FRAME_COLORS.get(self.spec.kind, (150, 150, 150))
        color = QColor(r, g, b)
        # Opaque colours that look translucent over the background: Qt rasterises big
        # translucent fills on its thread pool (threads that outlive the paint), and
        # the frame only ever lies over the background or a bigger frame.
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        pen = QPen(_over_background(color, 0.7), 1.4)
        pen.setStyle(Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        painter.setPen(pen)
        painter.setBrush(_over_background(color, 0.08 + 0.04 * self._depth))
        painter.drawRoundedRect(self._rect, 8.0, 8.0)
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        if lod >= 0.35:
            painter.setFont(style.label_font())
            painter.setPen(_over_background(color, 0.95))
            caption = QRectF(self._rect.left() + 10.0, self._rect.top() + 2.0,
                             self._rect.width() - 20.0, _CAPTION)
            text = style.label_metrics().elidedText(self.spec.label, Qt.TextElideMode.ElideRight,
                                                    caption.width())
            painter.drawText(caption, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                             text)


def _over_background(color: QColor, alpha: float) -> QColor:
    # Opaque look-alike of a translucent colour: translucent antialiased strokes of
    # big paths are rasterised on Qt's thread pool.
    bg = style.BACKGROUND
    return QColor(int(bg.red() + (color.red() - bg.red()) * alpha),
                  int(bg.green() + (color.green() - bg.green()) * alpha),
                  int(bg.blue() + (color.blue() - bg.blue()) * alpha))


class FrameLayer:
    """The frame items of one scene, kept in step with a list of :class:`FrameSpec`."""

    def __init__(self, scene: QGraphicsScene) -> None:
        self._scene = scene
        self._items: dict[tuple[str, str, str], FrameItem] = {}

    def items(self) -> list[FrameItem]:
        """The frame items, back to front."""
        return sorted(self._items.values(), key=lambda item: item.zValue())

    def sync(self, specs: list[FrameSpec]) -> None:
        """Add, update and remove items so there is one per spec."""
        wanted = {(s.kind, s.owner, s.label): s for s in specs}
        for key in [k for k in self._items if k not in wanted]:
            gone = self._items.pop(key)
            if gone.scene() is self._scene:
                self._scene.removeItem(gone)
        for key, spec in wanted.items():
            kept = self._items.get(key)
            if kept is not None:
                kept.spec = spec
                continue
            item = FrameItem(spec)
            self._items[key] = item
            self._scene.addItem(item)

    def relayout(self, rect_of: Callable[[str], QRectF | None]) -> None:
        """Fit every frame around its members; bigger frames go further back."""
        for item in self._items.values():
            bounds = QRectF()
            for node_id in item.spec.members:
                rect = rect_of(node_id)
                if rect is not None:
                    bounds = bounds.united(rect) if not bounds.isNull() else QRectF(rect)
            if bounds.isNull():
                item.setVisible(False)
                continue
            item.setVisible(True)
            item.set_rect(bounds.adjusted(-_PAD, -_PAD - _CAPTION, _PAD, _PAD))
            item.update()
        by_area = sorted(self._items.values(),
                         key=lambda i: -(i.rect().width() * i.rect().height()))
        placed: list[FrameItem] = []
        for order, item in enumerate(by_area):
            item.setZValue(_Z_BACK + min(order, 700) * 0.01)
            item._depth = min(sum(1 for p in placed if p.rect().contains(item.rect())), 3)
            placed.append(item)

    def clear(self) -> None:
        """Remove every frame."""
        self.sync([])
