"""NodeGraphQt's viewer, taught Loom's wiring rules, drops and keys.

- Mouse-drawn wires are checked by port data type (``loom.registry.compatible``) in
  :meth:`LoomViewer._validate_accept_connection`, the hook NodeGraphQt's live
  connection consults (a refused wire turns the live pipe purple and is not made);
  :attr:`LoomViewer.refusal_handler` is told why, in words (:func:`refusal_reason`).
- Drops of ``application/x-loom-node`` (palette) and NodeGraphQt's own
  ``nodegraphqt/nodes`` are handed to :attr:`LoomViewer.drop_handler`.
- A click on a wire selects it (Delete then removes it); NodeGraphQt would detach the
  wire at once. Dragging a wire still detaches its nearer end to re-plug it.
- Keys go to :attr:`LoomViewer.key_handler` first. NodeGraphQt's hidden Undo/Redo
  menu actions lose their shortcuts: window-wide duplicates of the main window's
  Ctrl+Z would make Qt call the shortcut ambiguous and run neither.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from PySide6.QtCore import QMimeData, QPointF, QRectF
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QKeyEvent, QUndoStack
from PySide6.QtWidgets import QApplication

from loom.registry import accepted_sources, compatible

from . import style
from .frames import FrameItem
from .items import LoomPipeItem, LoomPortItem
from .node_item import LoomNodeItem

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from NodeGraphQt.constants import PortTypeEnum
    from NodeGraphQt.qgraphics.node_abstract import AbstractNodeItem
    from NodeGraphQt.qgraphics.pipe import PipeItem
    from NodeGraphQt.qgraphics.port import PortItem
    from NodeGraphQt.widgets.viewer import NodeViewer

#: MIME type of a palette drag; the data is the node type id in UTF-8.
NODE_MIME = "application/x-loom-node"
_NGQT_MIME = "nodegraphqt/nodes"


def node_mime_data(type_ids: Iterable[object]) -> QMimeData:
    """Drag data for the first node type id among ``type_ids`` (falsy ones are skipped;
    empty data when there is none): what :class:`LoomViewer` creates a node from."""
    data = QMimeData()
    type_id = next((str(t) for t in type_ids if t), None)
    if type_id is not None:
        data.setData(NODE_MIME, type_id.encode("utf-8"))
        data.setText(type_id)  # for text fields the drag passes over
    return data

_NGQT_TYPES = re.compile(r"node:([\w\.]+)")
_OUT = PortTypeEnum.OUT.value

DropHandler = Callable[[str, tuple[float, float]], None]
KeyHandler = Callable[[QKeyEvent], bool]
RefusalHandler = Callable[[str], None]


@contextlib.contextmanager
def _qt5_accessors() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning,
                                message=r".*is marked as deprecated")
        yield


def wire_allowed(a: PortItem, b: PortItem) -> bool:
    """May these two port items be wired? Same-direction pairs are NodeGraphQt's call."""
    if a.port_type == b.port_type:
        return True
    out, inp = (a, b) if a.port_type == _OUT else (b, a)
    if out.node is inp.node:
        return False
    return compatible(getattr(out, "loom_type", "any"), getattr(inp, "loom_type", "any"))


def refusal_reason(a: PortItem, b: PortItem) -> str | None:
    """Why these two port items may not be wired, in words for the status bar (``None``
    when they may, or when NodeGraphQt's own rules decide: same direction)::

        str → float: Add.a accepts int or float
    """
    if a.port_type == b.port_type:
        return None
    out, inp = (a, b) if a.port_type == _OUT else (b, a)
    if out.node is inp.node:
        return f"{inp.node.name}: a node cannot be wired to itself"
    src, dst = getattr(out, "loom_type", "any"), getattr(inp, "loom_type", "any")
    if compatible(src, dst):
        return None
    return (f"{src} → {dst}: {inp.node.name}.{inp.name} accepts "
            f"{' or '.join(accepted_sources(dst))}")


def wire_color(out_port: PortItem) -> tuple[int, ...]:
    """A wire's colour: green/red from a conditional's true/false, else its data type's."""
    node = out_port.node
    if isinstance(node, LoomNodeItem) and getattr(node, "conditional", False):
        if out_port.name == "true":
            return style.WIRE_TRUE
        if out_port.name == "false":
            return style.WIRE_FALSE
    color = style.port_color(getattr(out_port, "loom_type", "any"))
    return (color.red(), color.green(), color.blue(), 255)


class LoomViewer(NodeViewer):  # type: ignore[misc]
    """The canvas view. Build it inside ``warnings.catch_warnings()`` (see Canvas)."""

    def __init__(self, parent: Any = None, undo_stack: QUndoStack | None = None) -> None:
        super().__init__(parent, undo_stack=undo_stack)
        for action in (self._undo_action, self._redo_action):
            if action is not None:
                action.setShortcuts([])
        self.drop_handler: DropHandler | None = None
        self.key_handler: KeyHandler | None = None
        #: told why a wire the user dropped on a port was refused (see refusal_reason)
        self.refusal_handler: RefusalHandler | None = None
        #: a wire pressed but not yet dragged: (pipe, scene position of the press)
        self._pressed_pipe: tuple[Any, QPointF] | None = None

    # ------------------------------------------------------------------ wiring
    def _validate_accept_connection(self, from_port: PortItem, to_port: PortItem) -> bool:
        if not super()._validate_accept_connection(from_port, to_port):
            return False
        return wire_allowed(from_port, to_port)

    def apply_live_connection(self, event: Any) -> None:
        """End a mouse-drawn wire (NodeGraphQt's), telling :attr:`refusal_handler` why
        one dropped on a port of the wrong type was not made."""
        reason = None
        if self._LIVE_PIPE.isVisible() and self._start_port is not None:
            end = next((item for item in self.scene().items(event.scenePos())
                        if isinstance(item, PortItem)), None)
            if end is not None and end is not self._start_port:
                reason = refusal_reason(self._start_port, end)
        super().apply_live_connection(event)
        if reason is not None and self.refusal_handler is not None:
            self.refusal_handler(reason)

    def establish_connection(self, start_port: PortItem, end_port: PortItem) -> None:
        """Draw a wire (NodeGraphQt calls this for every connection it shows)."""
        pipe = LoomPipeItem()
        self.scene().addItem(pipe)
        pipe.set_connections(start_port, end_port)
        pipe._color = wire_color(pipe.output_port)
        pipe.draw_path(pipe.input_port, pipe.output_port)
        if start_port.node.selected or end_port.node.selected:
            pipe.highlight()
        if not start_port.node.visible or not end_port.node.visible:
            pipe.hide()

    def _items_near(self, pos: Any, item_type: Any = None, width: int = 20,
                    height: int = 20) -> list[Any]:
        # Frames are backgrounds: clicks inside one must start a rubber band or reach
        # the node under the cursor, as on the bare canvas.
        rect = QRectF(pos.x() - width, pos.y() - height, width, height)
        skip = (self._LIVE_PIPE, self._SLICER_PIPE)
        return [item for item in self.scene().items(rect)
                if item not in skip and not isinstance(item, FrameItem)
                and (not item_type or isinstance(item, item_type))]

    # ------------------------------------------------------------------ drops
    def _accepts(self, mime: Any) -> bool:
        return bool(mime.hasFormat(NODE_MIME) or mime.hasFormat(_NGQT_MIME))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        """Accept node drags from Loom's palette (and NodeGraphQt's)."""
        if self._accepts(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        """See :meth:`dragEnterEvent`."""
        if self._accepts(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        """Create the dropped node type(s) where the drop happened."""
        mime = event.mimeData()
        pos = self.mapToScene(event.position().toPoint())
        types: list[str] = []
        if mime.hasFormat(NODE_MIME):
            types = [bytes(mime.data(NODE_MIME).data()).decode("utf-8").strip()]
        elif mime.hasFormat(_NGQT_MIME):
            types = _NGQT_TYPES.findall(bytes(mime.data(_NGQT_MIME).data()).decode("utf-8"))
        if not types or self.drop_handler is None:
            event.ignore()
            return
        event.acceptProposedAction()
        for i, type_id in enumerate(types):
            if type_id:
                self.drop_handler(type_id, (pos.x() + 40.0 * i, pos.y() + 40.0 * i))

    # ------------------------------------------------------------------ mouse
    # NodeGraphQt's handlers read Qt 5 accessors (event.pos(), event.x(), globalPos())
    # that PySide6 marks deprecated; the values are right, so mute just that warning.
    def mousePressEvent(self, event: Any) -> None:
        """NodeGraphQt's handler, without its Qt 5 deprecation warnings."""
        with _qt5_accessors():
            super().mousePressEvent(event)

    def mouseMoveEvent(self, event: Any) -> None:
        """See :meth:`mousePressEvent`."""
        with _qt5_accessors():
            super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: Any) -> None:
        """See :meth:`mousePressEvent`."""
        with _qt5_accessors():
            super().mouseReleaseEvent(event)

    def wheelEvent(self, event: Any) -> None:
        """See :meth:`mousePressEvent`."""
        with _qt5_accessors():
            super().wheelEvent(event)

    def contextMenuEvent(self, event: Any) -> None:
        """See :meth:`mousePressEvent`."""
        with _qt5_accessors():
            super().contextMenuEvent(event)

    # A wire under the press is only remembered: releasing without a drag leaves Qt's
    # own item selection to select it; a drag past the start distance detaches it.
    def _pipe_pressed(self, pos: QPointF) -> Any:
        for item in self._items_near(pos, None, 5, 5):
            if isinstance(item, (AbstractNodeItem, PortItem)):
                return None  # nodes and ports come first, as in NodeGraphQt
            if isinstance(item, PipeItem):
                return item
        return None

    def sceneMousePressEvent(self, event: Any) -> None:
        """Remember a pressed wire instead of detaching it; the rest is NodeGraphQt's."""
        self._pressed_pipe = None
        plain = not (self.ALT_state or self._LIVE_PIPE.isVisible())
        if plain and self.LMB_state:
            pipe = self._pipe_pressed(event.scenePos())
            if pipe is not None and pipe.input_port is not None \
                    and pipe.output_port is not None:
                self._pressed_pipe = (pipe, event.scenePos())
                return
        with _qt5_accessors():
            super().sceneMousePressEvent(event)

    def sceneMouseMoveEvent(self, event: Any) -> None:
        """A pressed wire dragged far enough detaches its nearer end (NodeGraphQt's way)."""
        if self._pressed_pipe is not None:
            pipe, start = self._pressed_pipe
            moved = (event.scenePos() - start).manhattanLength() * self.transform().m11()
            if moved < QApplication.startDragDistance():
                return
            self._pressed_pipe = None
            self._detach(pipe, start, event.scenePos())
        with _qt5_accessors():
            super().sceneMouseMoveEvent(event)

    def sceneMouseReleaseEvent(self, event: Any) -> None:
        """See :meth:`sceneMousePressEvent`."""
        self._pressed_pipe = None
        with _qt5_accessors():
            super().sceneMouseReleaseEvent(event)

    def _detach(self, pipe: Any, start: QPointF, pos: QPointF) -> None:
        # NodeGraphQt's sceneMousePressEvent pipe branch, run once the drag begins.
        from_port = pipe.port_from_pos(start, True)
        if from_port.locked:
            return
        from_port.hovered = True
        self._detached_port = (pipe.output_port if from_port.port_type == PortTypeEnum.IN.value
                               else pipe.input_port)
        pipe.setSelected(False)
        self.start_live_connection(from_port)
        self._LIVE_PIPE.draw_path(self._start_port, cursor_pos=pos)
        if self.SHIFT_state:
            self._LIVE_PIPE.shift_selected = True
            return
        pipe.delete()

    # ------------------------------------------------------------------ keys
    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Canvas shortcuts first, then NodeGraphQt's modifier tracking."""
        if self.key_handler is not None and self.key_handler(event):
            event.accept()
            return
        super().keyPressEvent(event)


__all__ = ["NODE_MIME", "LoomPortItem", "LoomViewer", "node_mime_data", "refusal_reason",
           "wire_allowed", "wire_color"]
