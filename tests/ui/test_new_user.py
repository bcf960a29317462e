"""Issue 11: the editor as a new user meets it, driven only by input events.

Mouse presses, moves and releases on the real widgets' viewports, typed keys, the
window's shortcuts and the app's own (non-native) file dialog: no canvas or document
API drives anything here; the API is only read, to check what the user did.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData, QMimeDatabase, QPoint, QPointF, Qt, QTimer
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QApplication,
    QDialogButtonBox,
    QFileDialog,
    QLineEdit,
    QTreeWidgetItemIterator,
)

from loom.ui import palette as palette_module
from loom.ui.main_window import MainWindow

LEFT = Qt.MouseButton.LeftButton
NO_MOD = Qt.KeyboardModifier.NoModifier
CTRL = Qt.KeyboardModifier.ControlModifier
SHOTS = Path("/tmp/uid")

# Qt's process-wide MIME database, which the file dialog loads once and keeps open
# (/usr/share/mime/mime.cache): loaded here, before any test's leak-check snapshot.
QMimeDatabase().mimeTypeForFile("graph.loom", QMimeDatabase.MatchMode.MatchExtension)


def shot(window: MainWindow, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    window.grab().save(str(SHOTS / name))


def node_item(window: MainWindow, node_id: str) -> Any:
    return next(n.view for n in window.canvas.node_graph.all_nodes() if n.loom_id == node_id)


def port_point(window: MainWindow, node_id: str, port: str, direction: str) -> QPoint:
    """The centre of a port, in the canvas viewport's coordinates."""
    item = node_item(window, node_id).port_item(port, direction)
    return window.canvas.widget.mapFromScene(item.sceneBoundingRect().center())


def title_point(window: MainWindow, node_id: str) -> QPoint:
    view = node_item(window, node_id)
    return window.canvas.widget.mapFromScene(view.mapToScene(view.title_rect().center()))


def mouse_drag(viewport: Any, start: QPoint, end: QPoint) -> None:
    """Press, move in steps, release: a drag as a hand makes it."""
    QTest.mousePress(viewport, LEFT, NO_MOD, start)
    for step in range(1, 9):
        QTest.mouseMove(viewport, start + (end - start) * step / 8)
    QTest.mouseRelease(viewport, LEFT, NO_MOD, end)


def drag_from_palette(window: MainWindow, qtbot: Any, type_id: str, where: QPoint) -> str:
    """Drag a node type from the palette's tree and drop it at ``where`` on the canvas.

    The press and the moves on the tree start Qt's own drag (the tree asks the palette
    model for its drag data, caught here). The offscreen platform has no drag loop
    (QDrag.exec returns at once), so the drag's enter, move and drop events are sent to
    the canvas viewport as a window system would, with that same data.
    """
    palette = window.palette
    before = set(window.canvas.node_ids())
    QTest.mouseClick(palette.search, LEFT)
    palette.search.clear()
    QTest.keyClicks(palette.search, type_id)
    row = palette.proxy.mapFromSource(palette.index_of(type_id))
    assert row.isValid(), f"{type_id} is listed"
    tree = palette.tree
    tree.scrollTo(row)
    start = tree.visualRect(row).center()
    dragged: list[dict[str, bytes]] = []
    original = palette_module.NodeModel.mimeData

    def catch(model: Any, indexes: Any) -> QMimeData:
        data = original(model, indexes)
        # The drag owns (and deletes) this object: keep its contents.
        dragged.append({f: bytes(data.data(f).data()) for f in data.formats()})
        return data

    palette_module.NodeModel.mimeData = catch  # type: ignore[method-assign]
    try:
        handle = window.windowHandle()
        at = window.mapFromGlobal(tree.viewport().mapToGlobal(start))
        QTest.mousePress(handle, LEFT, NO_MOD, at)
        for step in range(1, 6):
            QTest.mouseMove(handle, at + QPoint(8 * step, 0))
        QTest.mouseRelease(handle, LEFT, NO_MOD, at + QPoint(40, 0))
    finally:
        palette_module.NodeModel.mimeData = original  # type: ignore[method-assign]
    assert dragged, "pressing and moving on a palette row starts a drag"
    data = QMimeData()
    for fmt, content in dragged[-1].items():
        data.setData(fmt, content)
    viewport = window.canvas.widget.viewport()
    action = Qt.DropAction.CopyAction
    enter = QDragEnterEvent(where, action, data, LEFT, NO_MOD)
    QApplication.sendEvent(viewport, enter)
    assert enter.isAccepted(), "the canvas accepts a palette drag"
    move = QDragMoveEvent(where, action, data, LEFT, NO_MOD)
    QApplication.sendEvent(viewport, move)
    drop = QDropEvent(QPointF(where), action, data, LEFT, NO_MOD)
    QApplication.sendEvent(viewport, drop)
    added = set(window.canvas.node_ids()) - before
    assert len(added) == 1, f"one {type_id} node was dropped"
    return added.pop()


def with_file_dialog(qtbot: Any, fill: Callable[[QFileDialog], None]) -> list[str]:
    """Answer the next file dialog the app opens (it blocks in its own loop): the
    titles of the dialogs answered. Fills it again while it stays open (a click that
    came before the dialog was ready), for at most 5 s."""
    seen: list[str] = []
    tries = [250]  # a test that never opens the dialog must not poll forever

    def answer() -> None:
        tries[0] -= 1
        dialog = QApplication.activeModalWidget()
        if isinstance(dialog, QFileDialog) and dialog.isVisible():
            if not seen:
                seen.append(dialog.windowTitle())
            fill(dialog)
        elif seen:
            return  # answered and closed
        if tries[0] > 0:
            QTimer.singleShot(20, answer)

    QTimer.singleShot(20, answer)
    return seen


def type_file_name(path: Path) -> Callable[[QFileDialog], None]:
    def fill(dialog: QFileDialog) -> None:
        name = dialog.findChild(QLineEdit, "fileNameEdit")
        assert name is not None, "the app's own file dialog has its name field"
        name.setFocus()
        name.selectAll()
        QTest.keyClicks(name, str(path))
        # A click on Save/Open: Return could go to the name completer's popup instead.
        box = dialog.findChild(QDialogButtonBox, "buttonBox")
        accept = next(b for b in box.buttons()
                      if box.buttonRole(b) == QDialogButtonBox.ButtonRole.AcceptRole)
        QTest.mouseClick(accept, LEFT)
    return fill


def tree_texts(tree: Any) -> list[str]:
    texts = []
    it = QTreeWidgetItemIterator(tree)
    while it.value():
        item = it.value()
        texts.append(f"{item.text(0)}={item.text(1)}")
        it += 1
    return texts



def key(window: MainWindow, qtbot: Any, k: Qt.Key,
        modifier: Qt.KeyboardModifier = NO_MOD) -> None:
    """A key press through the window's shortcuts, the canvas focused (after a closed
    dialog the window must be active again for its shortcuts to answer)."""
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)
    window.canvas.widget.setFocus()
    QTest.keyClick(window.canvas.widget, k, modifier)


def test_a_refused_wire_says_why_in_the_status_bar(window: MainWindow, qtbot: Any) -> None:
    qtbot.waitExposed(window)
    viewport = window.canvas.widget.viewport()
    middle = viewport.rect().center()
    text = drag_from_palette(window, qtbot, "values.text", middle - QPoint(220, 0))
    add = drag_from_palette(window, qtbot, "math.add", middle + QPoint(120, 0))
    window.statusBar().clearMessage()
    mouse_drag(viewport, port_point(window, text, "out", "out"),
               port_point(window, add, "a", "in"))
    assert window.canvas.to_graph().connections == [], "the wire was refused"
    message = window.statusBar().currentMessage()
    assert "str → float: Add.a accepts int or float" in message, message
    shot(window, "wire-refused.png")
    mouse_drag(viewport, port_point(window, add, "out", "out"),
               port_point(window, add, "b", "in"))
    assert window.canvas.to_graph().connections == []
    assert "Add: a node cannot be wired to itself" in window.statusBar().currentMessage()
    # A wire that fits says nothing and is made.
    window.statusBar().clearMessage()
    number = drag_from_palette(window, qtbot, "values.number", middle + QPoint(-220, 160))
    mouse_drag(viewport, port_point(window, number, "out", "out"),
               port_point(window, add, "a", "in"))
    assert [c.key for c in window.canvas.to_graph().connections] == [(number, "out", add, "a")]
    assert window.statusBar().currentMessage() == ""
