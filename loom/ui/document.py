"""``Document``: the file behind the canvas (path, unsaved changes, open and save).

Files are read and written only through ``loom.graph`` (``load_graph`` with the
registry's migrations, ``save_graph``: atomic, with a ``.bak``). The dirty flag is the
canvas undo stack's clean state, so undoing back to the saved state clears it; a
file whose nodes were upgraded by migrations on open starts dirty, since saving it
would change it. No dialogs here: errors propagate as ``LoomFileError``.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from loom.graph import Graph, LoomFileError, MigrationError, load_graph, save_graph
from loom.registry import Registry

from .canvas import Canvas

#: what an unsaved document is called in titles
UNTITLED = "Untitled"


class Document(QObject):
    """One graph file shown on a :class:`Canvas`."""

    #: the dirty flag changed (the new value)
    dirty_changed = Signal(bool)
    #: the file path changed (new document, open, save as); None for an unsaved one
    path_changed = Signal(object)

    def __init__(self, canvas: Canvas, registry: Registry | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._canvas = canvas
        self._registry = registry if registry is not None else canvas.registry
        self._path: str | None = None
        self._upgraded: list[str] = []
        self._forced_dirty = False
        self._last_dirty = False
        canvas.undo_stack.cleanChanged.connect(self._on_clean_changed)

    # ------------------------------------------------------------------ state
    @property
    def canvas(self) -> Canvas:
        """The canvas showing this document."""
        return self._canvas

    @property
    def path(self) -> str | None:
        """The file (as given to open/save), or None when the document was never saved."""
        return self._path

    @property
    def dirty(self) -> bool:
        """Are there changes that are not in the file?"""
        return self._forced_dirty or not self._canvas.undo_stack.isClean()

    @property
    def display_name(self) -> str:
        """The file name, or "Untitled"."""
        return Path(self._path).name if self._path is not None else UNTITLED

    @property
    def upgraded(self) -> list[str]:
        """Ids of nodes that migrations upgraded when the file was opened."""
        return list(self._upgraded)

    def graph(self) -> Graph:
        """The graph as edited (what :meth:`save` would write)."""
        return self._canvas.to_graph()

    # ------------------------------------------------------------------ actions
    def new(self) -> None:
        """An empty, unsaved graph."""
        self._canvas.load(Graph())
        self._upgraded = []
        self._set_path(None)
        self._mark_clean()

    def open(self, path: str | os.PathLike[str]) -> None:
        """Load a ``.loom`` file. On ``LoomFileError`` nothing changes."""
        graph, upgraded = self._read(path)
        self._canvas.load(graph)
        self._upgraded = upgraded
        self._set_path(os.fspath(path))
        self._mark_clean()
        if upgraded:
            self._forced_dirty = True
            self._emit_dirty()

    def recover(self, autosave: str | os.PathLike[str],
                original: str | os.PathLike[str] | None = None) -> None:
        """Load an autosave as unsaved changes to ``original`` (None: an untitled graph)."""
        graph, upgraded = self._read(autosave)
        self._canvas.load(graph)
        self._upgraded = upgraded
        self._set_path(os.fspath(original) if original is not None else None)
        self._mark_clean()
        self._forced_dirty = True
        self._emit_dirty()

    def _read(self, path: str | os.PathLike[str]) -> tuple[Graph, list[str]]:
        # Loaded without migrations first, so we learn which nodes they change
        # (errors are reported as load_graph(migrations=...) reports them).
        graph = load_graph(path)
        upgraded = []
        for i, node in enumerate(graph):
            try:
                if self._registry.migrations.upgrade(node):
                    upgraded.append(node.id)
            except MigrationError as exc:
                raise LoomFileError(os.fspath(path), f"$.nodes[{i}]", str(exc)) from exc
        return graph, upgraded

    def save(self, path: str | os.PathLike[str] | None = None) -> str:
        """Write the graph (to ``path``, or the current file); returns the path used.

        Raises ``ValueError`` for an untitled document without a path, and
        ``LoomFileError`` when writing fails (the document then stays dirty).
        """
        target = os.fspath(path) if path is not None else self._path
        if target is None:
            raise ValueError("this document has no file yet: save it with a path")
        save_graph(self._canvas.to_graph(), target)
        self._set_path(target)
        self._mark_clean()
        return target

    def save_copy(self, path: str | os.PathLike[str]) -> None:
        """Write the graph elsewhere (autosave, export) without changing path or dirty flag."""
        save_graph(self._canvas.to_graph(), path, backup=False)

    # ------------------------------------------------------------------ internals
    def _set_path(self, path: str | None) -> None:
        if path != self._path:
            self._path = path
            self.path_changed.emit(path)

    def _mark_clean(self) -> None:
        self._forced_dirty = False
        self._canvas.undo_stack.setClean()
        self._emit_dirty()

    def _on_clean_changed(self, clean: bool) -> None:
        # Uses the signal's value, never asks the stack: QUndoStack emits cleanChanged
        # from its destructor, when asking it would touch a deleted object.
        self._emit_dirty(self._forced_dirty or not clean)

    def _emit_dirty(self, dirty: bool | None = None) -> None:
        if dirty is None:
            dirty = self.dirty
        if dirty != self._last_dirty:
            self._last_dirty = dirty
            self.dirty_changed.emit(dirty)
