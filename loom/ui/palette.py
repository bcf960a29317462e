"""The node palette: every registered node type by category, searchable, draggable.

Dragging a node out carries the MIME type :data:`NODE_MIME` with the type id
(UTF-8) as data; the canvas creates the node where it is dropped. Double-click or
Enter emits ``activated(type_id)`` (the main window adds the node at the view's
centre). Packs that failed to load are listed at the bottom.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QEvent,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QFont, QKeyEvent, QPalette, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QStyle,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from loom.registry import NodeSpec, Registry

from . import theme
from .canvas import NODE_MIME, node_mime_data

#: item data: the node type id (category rows have none)
TYPE_ID_ROLE = Qt.ItemDataRole.UserRole + 1
#: item data: lower-cased text the search box matches against
SEARCH_ROLE = Qt.ItemDataRole.UserRole + 2

Index = QModelIndex | QPersistentModelIndex


def first_line(text: str) -> str:
    """The first line of a docstring (empty for none)."""
    stripped = text.strip()
    return stripped.splitlines()[0].strip() if stripped else ""


def node_tooltip(spec: NodeSpec) -> str:
    """``type id — first docstring line``, as palette and search show it."""
    line = first_line(spec.description)
    return f"{spec.type_id} — {line}" if line else spec.type_id


def _short_problem(source: str, error: str) -> str:
    # A pack's full path is in the tooltip; the list has room for its file name.
    name = Path(source).name if ("/" in source or "\\" in source) else source
    return f"{name}: {error}"


class NodeModel(QStandardItemModel):
    """Categories → node types; node rows drag as :data:`NODE_MIME`."""

    def set_registry(self, registry: Registry) -> None:
        """Fill the model from the registry (replacing what was there)."""
        self.clear()
        root = self.invisibleRootItem()
        for category, specs in registry.by_category().items():
            parent = QStandardItem(category)
            parent.setFlags(Qt.ItemFlag.ItemIsEnabled)
            font = QFont(parent.font())
            font.setBold(True)
            parent.setFont(font)
            for spec in sorted(specs, key=lambda s: (s.name.lower(), s.type_id)):
                item = QStandardItem(spec.name)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                              | Qt.ItemFlag.ItemIsDragEnabled)
                item.setData(spec.type_id, TYPE_ID_ROLE)
                item.setData(node_tooltip(spec), Qt.ItemDataRole.ToolTipRole)
                item.setData(" ".join((spec.name, spec.type_id, spec.category,
                                       spec.description)).lower(), SEARCH_ROLE)
                parent.appendRow(item)
            root.appendRow(parent)

    def mimeTypes(self) -> list[str]:
        """Only node types are dragged out."""
        return [NODE_MIME]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        """The first dragged node's type id (see :func:`node_mime_data`)."""
        return node_mime_data(index.data(TYPE_ID_ROLE) for index in indexes)


class NodeFilter(QSortFilterProxyModel):
    """Keeps node rows whose name, id, category or description hold the search text.

    Categories are never matched themselves: they show while one of their nodes
    does (recursive filtering), so a category without a match disappears.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setRecursiveFilteringEnabled(True)
        self._needle = ""

    def set_text(self, text: str) -> None:
        """Filter by ``text`` (case-insensitive substring; blank shows everything)."""
        if hasattr(self, "beginFilterChange"):  # Qt 6.10+: invalidateFilter is deprecated
            self.beginFilterChange()
            self._needle = text.strip().lower()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self._needle = text.strip().lower()
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        """Match node rows only; an empty search keeps all."""
        index = self.sourceModel().index(source_row, 0, source_parent)
        if not index.data(TYPE_ID_ROLE):
            return not self._needle
        return self._needle in str(index.data(SEARCH_ROLE) or "")


class Palette(QWidget):
    """Search box, category tree of node types, and the pack load problems.

    Signals:
        activated(str): a node type was double-clicked or chosen with Enter.
    """

    activated = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search nodes…")
        self.search.setClearButtonEnabled(True)
        self.search.setToolTip("Filter by name, id, category or description; "
                               "Enter adds the first match, ↓ moves into the list")
        self.search.textChanged.connect(self._filter)
        self.search.returnPressed.connect(self._activate_first)
        self.search.installEventFilter(self)
        layout.addWidget(self.search)

        self.model = NodeModel(self)
        self.proxy = NodeFilter(self)
        self.proxy.setSourceModel(self.model)
        self.tree = QTreeView(self)
        self.tree.setModel(self.proxy)
        self.tree.setHeaderHidden(True)
        self.tree.setIndentation(14)
        self.tree.setUniformRowHeights(True)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tree.setExpandsOnDoubleClick(True)
        self.tree.doubleClicked.connect(self._activate)
        self.tree.installEventFilter(self)
        layout.addWidget(self.tree, 1)

        self.empty = QLabel("No node matches.", self)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._quiet(self.empty)
        self.empty.hide()
        layout.addWidget(self.empty)

        # Packs that failed to load: a quiet list at the bottom, shown only when needed.
        self.problems_title = QLabel(self)
        self.problems = QListWidget(self)
        self.problems.setFrameShape(QFrame.Shape.StyledPanel)
        self.problems.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.problems.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._problem_colours = ""
        self._colour_problems()
        layout.addWidget(self.problems_title)
        layout.addWidget(self.problems)
        self._set_problems([])

    def _colour_problems(self) -> None:
        """The problem list's colours, from the theme and the current palette."""
        palette = self.palette()
        background, border, text = theme.warning_panel(palette)
        title = theme.warning_text(palette).name()
        key = f"{background.name()} {text.name()} {title}"
        if key == self._problem_colours:
            return
        self._problem_colours = key
        self.problems_title.setStyleSheet(f"color: {title}; font-weight: bold;")
        self.problems.setStyleSheet(
            f"QListWidget {{ background: {background.name()}; color: {text.name()}; "
            f"border: 1px solid {border.name()}; }}")

    def changeEvent(self, event: QEvent) -> None:
        """Follow a palette change (the theme applied after the widget was built)."""
        if event.type() == QEvent.Type.PaletteChange:
            self._colour_problems()
        super().changeEvent(event)

    @staticmethod
    def _quiet(label: QLabel) -> None:
        palette = QPalette(label.palette())
        palette.setColor(QPalette.ColorRole.WindowText,
                         palette.color(QPalette.ColorRole.PlaceholderText))
        label.setPalette(palette)

    # ------------------------------------------------------------------ public API
    def set_registry(self, registry: Registry) -> None:
        """Show the registry's node types and load problems (again, after a reload)."""
        scroll = self.tree.verticalScrollBar().value()
        collapsed = {self.proxy.index(r, 0).data() for r in range(self.proxy.rowCount())
                     if not self.tree.isExpanded(self.proxy.index(r, 0))}
        self.model.set_registry(registry)
        self._filter(self.search.text(), collapsed)
        self.tree.verticalScrollBar().setValue(scroll)
        self._set_problems([_short_problem(p.source, p.error) for p in registry.problems],
                           [f"{p}\n\n{p.traceback}".strip() for p in registry.problems])

    def type_ids(self) -> list[str]:
        """The type ids the tree shows now (after filtering), top to bottom."""
        ids = []
        for row in range(self.proxy.rowCount()):
            category = self.proxy.index(row, 0)
            for child in range(self.proxy.rowCount(category)):
                ids.append(str(self.proxy.index(child, 0, category).data(TYPE_ID_ROLE)))
        return ids

    def categories(self) -> list[str]:
        """The categories the tree shows now."""
        return [str(self.proxy.index(r, 0).data()) for r in range(self.proxy.rowCount())]

    def index_of(self, type_id: str) -> QModelIndex:
        """The (source model) index of a node type, invalid when it is not listed."""
        matches = self.model.match(self.model.index(0, 0), TYPE_ID_ROLE, type_id, 1,
                                   Qt.MatchFlag.MatchExactly | Qt.MatchFlag.MatchRecursive)
        return matches[0] if matches else QModelIndex()

    # ------------------------------------------------------------------ behaviour
    def _filter(self, text: str, collapsed: set[str] | None = None) -> None:
        self.proxy.set_text(text)
        if text.strip():
            self.tree.expandAll()  # matches must be visible
        else:
            for row in range(self.proxy.rowCount()):
                index = self.proxy.index(row, 0)
                self.tree.setExpanded(index, index.data() not in (collapsed or set()))
        empty = self.proxy.rowCount() == 0 and self.model.rowCount() > 0
        self.empty.setVisible(empty)
        self.tree.setVisible(not empty)

    def _activate(self, index: QModelIndex) -> None:
        type_id = index.data(TYPE_ID_ROLE)
        if type_id:
            self.activated.emit(str(type_id))

    def _activate_first(self) -> None:
        current = self.tree.currentIndex()
        if current.isValid() and current.data(TYPE_ID_ROLE):
            self._activate(current)
            return
        ids = self.type_ids()
        if self.search.text().strip() and ids:
            self.activated.emit(ids[0])

    def eventFilter(self, watched: QObject, event: Any) -> bool:
        """Enter on a tree row activates it; ↓ in the search box moves into the tree."""
        if isinstance(event, QKeyEvent) and event.type() == QKeyEvent.Type.KeyPress:
            key = event.key()
            if watched is self.tree and key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self._activate(self.tree.currentIndex())
                return True
            if watched is self.search and key == Qt.Key.Key_Down and self.type_ids():
                self.tree.setFocus()
                category = self.proxy.index(0, 0)
                self.tree.setCurrentIndex(self.proxy.index(0, 0, category))
                return True
        return super().eventFilter(watched, event)

    def _set_problems(self, problems: list[str], tracebacks: list[str] | None = None) -> None:
        self.problems.clear()
        icon = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
        for i, text in enumerate(problems):
            item = QListWidgetItem(icon, text)
            tip = (tracebacks[i] if tracebacks and tracebacks[i] else "") or text
            item.setToolTip(tip)
            self.problems.addItem(item)
        count = len(problems)
        rows = self.problems.sizeHintForRow(0) * min(count, 4) if count else 0
        self.problems.setFixedHeight(rows + 2 * self.problems.frameWidth() + 2)
        self.problems_title.setText(f"{count} node pack problem{'s' if count != 1 else ''}")
        self.problems_title.setVisible(bool(problems))
        self.problems.setVisible(bool(problems))

