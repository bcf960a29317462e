"""Tab search: a small popup to find a node type by typing and add it to the canvas.

:class:`NodeSearch` is a frameless popup (``Qt.Popup``: a click outside closes
it) holding a line edit and a result list. It is shown with ``show()``, never
``exec()``: a nested event loop inside the qasync loop would break running
coroutines (qt-guide §2.3). Results are ranked: the name starts with the text,
then the name contains it, then the type id, then the category. ↑/↓ move,
Enter picks (``chosen(type_id)``), Escape closes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QEvent,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QGuiApplication, QKeyEvent, QPainter, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from loom.registry import NodeSpec, Registry

from .canvas import NODE_MIME, node_mime_data
from .palette import TYPE_ID_ROLE, node_tooltip

_DETAIL_ROLE = Qt.ItemDataRole.UserRole + 3
MAX_RESULTS = 200


@dataclass(frozen=True)
class Match:
    """One search result: its rank (lower is better) and the node type."""

    rank: int
    spec: NodeSpec


def rank(spec: NodeSpec, text: str) -> int | None:
    """How well ``spec`` matches ``text``: 0 name prefix, 1 in name, 2 in id, 3 in category.

    ``None`` when it does not match. Case-insensitive; blank text matches all (rank 0).
    """
    needle = text.strip().lower()
    if not needle:
        return 0
    name = spec.name.lower()
    if name.startswith(needle):
        return 0
    if needle in name:
        return 1
    if needle in spec.type_id.lower():
        return 2
    if needle in spec.category.lower():
        return 3
    return None


def search(registry: Registry | list[NodeSpec], text: str) -> list[Match]:
    """The node types matching ``text``, best first (then by name, then id)."""
    found = []
    for spec in registry:
        r = rank(spec, text)
        if r is not None:
            found.append(Match(r, spec))
    if not text.strip():
        # Nothing typed: browse by category.
        return sorted(found, key=lambda m: (m.spec.category.lower(), m.spec.name.lower()))
    return sorted(found, key=lambda m: (m.rank, m.spec.name.lower(), m.spec.type_id))


class _ResultDelegate(QStyledItemDelegate):
    """Name on the left, ``Category · type.id`` in grey on the right."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        super().paint(painter, option, index)
        detail = index.data(_DETAIL_ROLE)
        if not detail:
            return
        painter.save()
        selected = bool(option.state & QStyle.StateFlag.State_Selected)  # type: ignore[attr-defined]
        palette = option.palette  # type: ignore[attr-defined]
        color = palette.color(QPalette.ColorRole.HighlightedText) if selected else \
            palette.color(QPalette.ColorRole.PlaceholderText)
        painter.setPen(color)
        rect: QRect = option.rect.adjusted(0, 0, -6, 0)  # type: ignore[attr-defined]
        name_width = option.fontMetrics.horizontalAdvance(  # type: ignore[attr-defined]
            str(index.data())) + 40
        room = rect.width() - name_width
        if room > 30:
            text = option.fontMetrics.elidedText(  # type: ignore[attr-defined]
                str(detail), Qt.TextElideMode.ElideLeft, room)
            painter.drawText(rect, int(Qt.AlignmentFlag.AlignRight
                                       | Qt.AlignmentFlag.AlignVCenter), text)
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem,
                 index: QModelIndex | QPersistentModelIndex) -> QSize:
        size = super().sizeHint(option, index)
        return QSize(size.width(), max(size.height(), 22))


class _ResultList(QListWidget):
    """Results drag onto the canvas like palette rows do."""

    def mimeTypes(self) -> list[str]:
        return [NODE_MIME]

    def mimeData(self, items: Sequence[QListWidgetItem]) -> QMimeData:
        return node_mime_data(item.data(TYPE_ID_ROLE) for item in items)


class NodeSearch(QWidget):
    """The Tab-search popup. Not modal: :meth:`open_at` shows it and returns at once.

    Signals:
        chosen(str): the type id picked (Enter, click); the popup has closed.
        closed(): the popup closed, whether something was chosen or not.
    """

    chosen = Signal(str)
    closed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Popup | Qt.WindowType.FramelessWindowHint)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        self.resize(340, 360)
        frame = QFrame(self)
        frame.setFrameShape(QFrame.Shape.StyledPanel)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(frame)
        layout = QVBoxLayout(frame)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        self.edit = QLineEdit(frame)
        self.edit.setPlaceholderText("Add a node: type to search…")
        self.edit.setClearButtonEnabled(True)
        self.edit.textChanged.connect(self._refresh)
        self.edit.installEventFilter(self)
        layout.addWidget(self.edit)
        self.results = _ResultList(frame)
        self.results.setItemDelegate(_ResultDelegate(self.results))
        self.results.setUniformItemSizes(True)
        self.results.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # typing stays in the edit
        self.results.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.results.setDragEnabled(True)
        self.results.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.results.itemClicked.connect(self._pick_item)
        self.results.itemActivated.connect(self._pick_item)
        layout.addWidget(self.results, 1)
        self._specs: list[NodeSpec] = []
        self.position = QPoint()

    # ------------------------------------------------------------------ public API
    def open_at(self, global_pos: QPoint, registry: Registry) -> None:
        """Show the popup at ``global_pos`` (kept on screen) listing ``registry``'s types."""
        self._specs = list(registry)
        self.position = QPoint(global_pos)
        self.edit.blockSignals(True)
        self.edit.clear()
        self.edit.blockSignals(False)
        self._refresh("")
        screen = QGuiApplication.screenAt(global_pos) or QGuiApplication.primaryScreen()
        pos = QPoint(global_pos)
        if screen is not None:
            area = screen.availableGeometry()
            pos.setX(max(area.left(), min(pos.x(), area.right() - self.width())))
            pos.setY(max(area.top(), min(pos.y(), area.bottom() - self.height())))
        self.move(pos)
        self.show()
        self.raise_()
        self.activateWindow()
        self.edit.setFocus()

    def result_ids(self) -> list[str]:
        """The type ids listed now, in order."""
        return [str(self.results.item(i).data(TYPE_ID_ROLE))
                for i in range(self.results.count())]

    def current_id(self) -> str | None:
        """The highlighted type id."""
        item = self.results.currentItem()
        return str(item.data(TYPE_ID_ROLE)) if item is not None else None

    # ------------------------------------------------------------------ behaviour
    def _refresh(self, text: str) -> None:
        self.results.clear()
        for match in search(self._specs, text)[:MAX_RESULTS]:
            spec = match.spec
            item = QListWidgetItem(spec.name)
            item.setData(TYPE_ID_ROLE, spec.type_id)
            item.setData(_DETAIL_ROLE, f"{spec.category} · {spec.type_id}")
            item.setToolTip(node_tooltip(spec))
            self.results.addItem(item)
        if self.results.count():
            self.results.setCurrentRow(0)

    def _move(self, step: int) -> None:
        count = self.results.count()
        if not count:
            return
        row = self.results.currentRow()
        # Single steps wrap around, as menus do; page steps stop at the ends.
        row = (row + step) % count if step in (-1, 1) else max(0, min(count - 1, row + step))
        self.results.setCurrentRow(row)

    def _pick_item(self, item: QListWidgetItem) -> None:
        self._pick(str(item.data(TYPE_ID_ROLE)))

    def _pick(self, type_id: str | None) -> None:
        if not type_id:
            return
        self.hide()
        self.chosen.emit(type_id)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Arrows, page keys, Enter and Escape in the line edit drive the list."""
        if watched is self.edit and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            key = event.key()
            page = max(1, self.results.height() // 22 - 1)
            steps = {Qt.Key.Key_Down: 1, Qt.Key.Key_Up: -1,
                     Qt.Key.Key_PageDown: page, Qt.Key.Key_PageUp: -page}
            if key in steps:
                self._move(steps[key])
                return True
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self._pick(self.current_id())
                return True
            if key == Qt.Key.Key_Escape:
                self.hide()
                return True
        return super().eventFilter(watched, event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Escape closes (when the focus is not in the line edit)."""
        if event.key() == Qt.Key.Key_Escape:
            self.hide()
            return
        super().keyPressEvent(event)

    def hideEvent(self, event: Any) -> None:
        """Tell the window the popup is gone (focus goes back to the canvas)."""
        super().hideEvent(event)
        self.closed.emit()
