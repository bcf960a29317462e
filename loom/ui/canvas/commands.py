"""The canvas's undo commands, all on the one QUndoStack NodeGraphQt owns.

Each command stores loom ids, port names and plain data, and redoes or undoes itself
through :class:`~loom.ui.canvas.scene.SceneModel`'s primitives. None keeps a
NodeGraphQt node or port object, so undo still works after those were rebuilt
(a node recreated by undo, ports rebuilt after a property change, a reloaded pack).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtGui import QUndoCommand

from loom.graph import Connection

from .scene import SceneModel, Snapshot


class AddNodes(QUndoCommand):
    """Add nodes (new, pasted, duplicated, dropped) and the wires among them."""

    def __init__(self, model: SceneModel, snapshots: Sequence[Snapshot],
                 wires: Sequence[Connection] = (), text: str = "Add node") -> None:
        super().__init__(text)
        self._model = model
        self._snapshots = list(snapshots)
        self._wires = list(wires)

    @property
    def ids(self) -> list[str]:
        """The ids of the nodes this command adds."""
        return [s.data.id for s in self._snapshots]

    def redo(self) -> None:
        """Create the nodes and wires."""
        self._model.insert(self._snapshots, self._wires)

    def undo(self) -> None:
        """Remove them again."""
        self._model.remove(self.ids)


class RemoveNodes(QUndoCommand):
    """Delete nodes with every wire touching them."""

    def __init__(self, model: SceneModel, ids: Sequence[str], text: str = "Delete") -> None:
        super().__init__(text)
        self._model = model
        self._ids = list(ids)
        self._snapshots: list[Snapshot] = []
        self._wires: list[Connection] = []

    def redo(self) -> None:
        """Snapshot and remove the nodes."""
        self._snapshots, self._wires = self._model.remove(self._ids)

    def undo(self) -> None:
        """Rebuild the nodes at their old file positions, with their wires."""
        self._model.insert(self._snapshots, self._wires)


class Rewire(QUndoCommand):
    """Remove some wires and add others (connect, disconnect, replace, slice)."""

    def __init__(self, model: SceneModel, removed: Sequence[Connection],
                 added: Sequence[Connection], text: str = "Connect") -> None:
        super().__init__(text)
        self._model = model
        self._removed = list(removed)
        self._added = list(added)

    def redo(self) -> None:
        """Unlink the removed wires, then link the added ones."""
        for wire in self._removed:
            self._model.unlink(wire)
        for wire in self._added:
            self._model.link(wire)

    def undo(self) -> None:
        """The reverse."""
        for wire in self._added:
            self._model.unlink(wire)
        for wire in self._removed:
            self._model.link(wire)


class SetData(QUndoCommand):
    """Change a node's name, properties and/or metadata (ports follow)."""

    def __init__(self, model: SceneModel, node_id: str, before: dict[str, Any],
                 after: dict[str, Any], text: str = "Edit node") -> None:
        super().__init__(text)
        self._model = model
        self._id = node_id
        self._before = before
        self._after = after
        self._dropped: list[Connection] = []
        self._hidden: list[Connection] = []

    def redo(self) -> None:
        """Apply the new data; remember the wires that lost their port."""
        self._hidden = list(self._model.hidden)
        self._dropped = self._model.set_data(self._id, **self._after)

    def undo(self) -> None:
        """Apply the old data and put the dropped wires back."""
        self._model.set_data(self._id, **self._before)
        for wire in self._dropped:
            self._model.link(wire)
        self._model.hidden = list(self._hidden)


class MoveNodes(QUndoCommand):
    """Move nodes (the mouse already moved them; redo is then a no-op)."""

    def __init__(self, model: SceneModel,
                 moves: dict[str, tuple[tuple[float, float], tuple[float, float]]],
                 text: str = "Move") -> None:
        super().__init__(text)
        self._model = model
        self._moves = moves

    def redo(self) -> None:
        """Put the nodes at their new positions."""
        for node_id, (_, new) in self._moves.items():
            if node_id in self._model.nodes:
                self._model.move(node_id, new)

    def undo(self) -> None:
        """Put them back."""
        for node_id, (old, _) in self._moves.items():
            if node_id in self._model.nodes:
                self._model.move(node_id, old)
