"""The main window: canvas in the middle, palette, inspector and run view around it.

It owns no logic of its own beyond wiring: the canvas edits, the document reads and
writes files (through loom.graph only), the inspector and palette turn clicks into
edit requests, and the run controller runs the graph with the engine.
"""

from __future__ import annotations

import logging
from enum import Enum
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QCursor, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QWidget,
)

from loom.graph import Graph, LoomFileError
from loom.registry import Registry

from .canvas import Canvas
from .document import Document
from .hot_reload import PackWatcher
from .hot_reload import pack_folders as watched_folders
from .inspector import Inspector
from .palette import Palette
from .problem_marks import ProblemMarks
from .run_controller import RunController
from .run_dock import RunDock
from .search import NodeSearch
from .storage import Autosave, RecentFiles, RunPreferences

log = logging.getLogger("loom.ui")

#: Seconds between autosaves while there are unsaved changes.
AUTOSAVE_SECONDS = 30
FILE_FILTER = "Loom graphs (*.loom);;All files (*)"


def redo_keys() -> list[QKeySequence]:
    """Redo's keys: the platform's own plus Ctrl+Y and Ctrl+Shift+Z, each once.

    Platforms differ (X11 without a desktop gives only Ctrl+Shift+Z, Windows and KDE
    Ctrl+Y first); a key listed twice makes Qt call the shortcut ambiguous and run
    nothing, so duplicates are dropped.
    """
    keys: dict[str, QKeySequence] = {}
    for seq in [*QKeySequence.keyBindings(QKeySequence.StandardKey.Redo),
                QKeySequence("Ctrl+Y"), QKeySequence("Ctrl+Shift+Z")]:
        text = seq.toString(QKeySequence.SequenceFormat.PortableText)
        if not seq.isEmpty() and text not in keys:
            keys[text] = seq
    return list(keys.values())


class Unsaved(Enum):
    """The answer to "save your changes?"."""

    SAVE = "save"
    DISCARD = "discard"
    CANCEL = "cancel"


class MainWindow(QMainWindow):
    """Loom's editor window."""

    #: emitted once the window has closed (the app then shuts the loop down)
    closed = Signal()

    def __init__(self, registry: Registry, pack_folders: list[Path] | None = None) -> None:
        super().__init__()
        self.registry = registry
        self.recent = RecentFiles()
        self.autosave = Autosave()
        self.canvas = Canvas(registry, self)
        self.document = Document(self.canvas, registry)
        self.inspector = Inspector()
        self.palette = Palette()
        self.palette.set_registry(registry)
        self.run_dock = RunDock()
        self.search = NodeSearch(self)
        self.runner = RunController(registry, self.canvas, self)
        self.watcher = PackWatcher(registry, watched_folders(pack_folders or []))
        #: validation problems on the canvas and in Problems, re-checked after edits
        self.problem_marks = ProblemMarks(self.canvas, registry, self._list_issues, self)
        self._status = QLabel("idle")
        self.run_preferences = RunPreferences()
        #: options of the runs the window starts (see :meth:`set_run_target`)
        self.run_options: dict[str, Any] = dict(self.run_preferences.load())
        self._autosave_timer = QTimer(self)
        self._autosave_timer.setInterval(AUTOSAVE_SECONDS * 1000)
        self._autosave_timer.timeout.connect(self.write_autosave)
        self._autosave_timer.start()
        self._build_window()
        self._build_actions()
        self._connect()
        self.document.new()
        self._update_title()
        self.watcher.start()

    # ------------------------------------------------------------------ layout
    def _build_window(self) -> None:
        self.setWindowTitle("Loom")
        self.resize(1400, 880)
        self.setCentralWidget(self.canvas.widget)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks |
                            QMainWindow.DockOption.AllowTabbedDocks)
        self.palette_dock = self._dock("Nodes", self.palette, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.inspector_dock = self._dock("Inspector", self.inspector,
                                         Qt.DockWidgetArea.RightDockWidgetArea)
        self.run_view_dock = self._dock("Run", self.run_dock,
                                        Qt.DockWidgetArea.BottomDockWidgetArea)
        self.resizeDocks([self.palette_dock, self.inspector_dock], [240, 330],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([self.run_view_dock], [230], Qt.Orientation.Vertical)
        self.statusBar().addPermanentWidget(self._status)

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, slot: Any, shortcut: QKeySequence | str | None = None,
                tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
            # The canvas has focus most of the time; window-wide shortcuts must still fire.
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setStatusTip(tip or text.replace("&", ""))
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        key = QKeySequence.StandardKey
        a = self.actions_by_name = {
            "new": self._action("&New", self.new_graph, key.New),
            "open": self._action("&Open…", self.open_dialog, key.Open),
            "save": self._action("&Save", self.save, key.Save),
            "save_as": self._action("Save &As…", self.save_as, key.SaveAs),
            "quit": self._action("&Quit", self.close, key.Quit),
            "undo": self.canvas.undo_stack.createUndoAction(self, "&Undo"),
            "redo": self.canvas.undo_stack.createRedoAction(self, "&Redo"),
            "copy": self._action("&Copy", self.canvas.copy, key.Copy),
            "paste": self._action("&Paste", self.canvas.paste, key.Paste),
            "duplicate": self._action("&Duplicate", self.canvas.duplicate, "Ctrl+D"),
            "delete": self._action("De&lete", self._delete_selected, key.Delete),
            "frame_loop": self._action("Frame as &Loop", lambda: self._frame("loop"),
                                       "Ctrl+L", "Wrap the selection in a for-each loop"),
            "frame_parallel": self._action("Frame as &Parallel",
                                           lambda: self._frame("parallel"), "Ctrl+Shift+L",
                                           "Run the selected nodes as parallel branches"),
            "search": self._action("Add &Node…", self.open_search, "Tab",
                                   "Search the node types and add one"),
            "fit": self._action("&Fit View", self.canvas.fit_view, "F"),
            "run": self._action("&Run", self.run, "F5", "Run the graph"),
            "stop": self._action("&Stop", self.stop, "Shift+F5", "Stop the run"),
            "validate": self._action("&Validate", self.validate_graph, "F7",
                                     "Check the graph without running it"),
        }
        a["undo"].setShortcut(key.Undo)
        a["redo"].setShortcuts(redo_keys())
        for name in ("undo", "redo"):
            self.addAction(a[name])
        # Tab opens the search only from the canvas: window-wide, it would take Tab's
        # focus move away from every Inspector field.
        self.removeAction(a["search"])
        a["search"].setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.canvas.widget.addAction(a["search"])
        a["stop"].setEnabled(False)
        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        file_menu.addActions([a["new"], a["open"]])
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addSeparator()
        file_menu.addActions([a["save"], a["save_as"]])
        file_menu.addSeparator()
        file_menu.addAction(a["quit"])
        edit = menus.addMenu("&Edit")
        edit.addActions([a["undo"], a["redo"]])
        edit.addSeparator()
        edit.addActions([a["copy"], a["paste"], a["duplicate"], a["delete"]])
        edit.addSeparator()
        edit.addActions([a["search"], a["frame_loop"], a["frame_parallel"]])
        view = menus.addMenu("&View")
        view.addAction(a["fit"])
        view.addSeparator()
        for dock in (self.palette_dock, self.inspector_dock, self.run_view_dock):
            view.addAction(dock.toggleViewAction())
        run = menus.addMenu("&Run")
        run.addActions([a["run"], a["stop"], a["validate"]])
        run.addSeparator()
        self._build_run_on_menu(run.addMenu("Run &On"))
        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("toolbar-main")
        toolbar.setMovable(False)
        toolbar.addActions([a["new"], a["open"], a["save"]])
        toolbar.addSeparator()
        toolbar.addActions([a["undo"], a["redo"]])
        toolbar.addSeparator()
        toolbar.addActions([a["run"], a["stop"], a["validate"]])
        toolbar.addSeparator()
        toolbar.addAction(a["fit"])

    def _connect(self) -> None:
        canvas = self.canvas
        canvas.selection_changed.connect(self._selection_changed)
        canvas.graph_changed.connect(self._graph_changed)
        self.inspector.edited.connect(self._apply_edit)
        self.palette.activated.connect(canvas.add_node)
        self.document.dirty_changed.connect(self._update_title)
        self.document.path_changed.connect(self._update_title)
        self.search.chosen.connect(self._add_from_search)
        self.runner.status_changed.connect(self._run_status)
        self.run_dock.attach(self.runner)  # events, results, problems, node labels
        self.runner.finished.connect(self._run_finished)
        self.runner.invalid.connect(self._run_refused)
        self.run_dock.node_clicked.connect(self._reveal_node)
        self.watcher.reloaded.connect(self._packs_reloaded)
        canvas.wire_refused.connect(self._wire_refused)

    # ------------------------------------------------------------------ files
    def _update_title(self, *_changed: object) -> None:
        name = Path(self.document.path).name if self.document.path else "untitled"
        self.setWindowModified(self.document.dirty)
        self.setWindowTitle(f"{name}[*] — Loom")
        self._status.setText(f"{len(self.canvas.node_ids())} nodes · {self.runner_status}"
                             f"{self._run_target_text()}")

    @property
    def runner_status(self) -> str:
        """What the run controller says about the current run."""
        return getattr(self, "_run_state", "idle")

    def new_graph(self) -> None:
        """File > New (asks about unsaved changes first)."""
        if self.confirm_discard():
            self.document.new()
            self.autosave.clear()
            self._after_load()

    def open_dialog(self) -> None:
        """File > Open."""
        if not self.confirm_discard():
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open graph", self._start_folder(),
                                              FILE_FILTER)
        if path:
            self.open_path(path, ask=False)

    def open_path(self, path: str, ask: bool = True) -> bool:
        """Open a file; a bad file is reported and nothing is lost."""
        if ask and not self.confirm_discard():
            return False
        try:
            self.document.open(path)
        except LoomFileError as exc:
            QMessageBox.warning(self, "Cannot open graph", str(exc))
            return False
        self.recent.add(path)
        self.autosave.clear()
        self._after_load()
        return True

    def _after_load(self) -> None:
        self.problem_marks.clear()
        if not self.runner.running:
            # The last run's outcome was about the graph just replaced (a run still
            # going keeps its state: it goes on and ends with its own status).
            self._run_state = "idle"
        self.run_dock.clear()
        self.inspector.show_node(None, None, [], set())
        self.canvas.fit_view()
        self._update_title()
        if not self.runner.running:
            # A graph that cannot run says so as it opens (a code node whose body does
            # not compile, a type not installed), not only at Run or F7; a run still
            # going keeps the run view to itself.
            self.problem_marks.validate()

    def save(self) -> bool:
        """File > Save (asks for a name the first time)."""
        if not self.document.path:
            return self.save_as()
        return self._save_to(self.document.path)

    def save_as(self) -> bool:
        """File > Save As."""
        path, _ = QFileDialog.getSaveFileName(self, "Save graph", self._start_folder(),
                                              FILE_FILTER)
        if not path:
            return False
        if not path.endswith(".loom"):
            path += ".loom"
        return self._save_to(path)

    def _save_to(self, path: str) -> bool:
        try:
            self.document.save(path)
        except LoomFileError as exc:
            QMessageBox.warning(self, "Cannot save graph", str(exc))
            return False
        self.recent.add(path)
        self.autosave.clear()
        self._update_title()
        self.statusBar().showMessage(f"Saved {path}", 4000)
        return True

    def _start_folder(self) -> str:
        if self.document.path:
            return str(Path(self.document.path).parent)
        recent = self.recent.list()
        return str(Path(recent[0]).parent) if recent else str(Path.cwd())

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.recent.list():
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.open_path(p))
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("(none)").setEnabled(False)

    def ask_unsaved(self) -> Unsaved:
        """Save, discard or cancel? (Tests replace this.)"""
        answer = QMessageBox.question(
            self, "Unsaved changes",
            "The graph has unsaved changes. Save them first?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard |
            QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Save)
        return {QMessageBox.StandardButton.Save: Unsaved.SAVE,
                QMessageBox.StandardButton.Discard: Unsaved.DISCARD}.get(answer, Unsaved.CANCEL)

    def confirm_discard(self) -> bool:
        """True when the current graph may be replaced (saved, or changes given up)."""
        if not self.document.dirty:
            return True
        answer = self.ask_unsaved()
        if answer is Unsaved.SAVE:
            return self.save()
        return answer is Unsaved.DISCARD

    # ------------------------------------------------------------------ autosave
    def write_autosave(self) -> None:
        """Keep a copy of unsaved changes in the data folder (a crash loses nothing)."""
        if not self.document.dirty:
            return
        try:
            self.autosave.write(self.canvas.to_graph(), self.document.path)
        except (LoomFileError, OSError) as exc:
            log.warning("autosave failed: %s", exc)

    def ask_recover(self, original: str | None, saved_at: float) -> bool:
        """Offer an autosave a crashed session left behind. (Tests replace this.)"""
        import time as _time  # noqa: PLC0415 - only for this message

        when = _time.strftime("%Y-%m-%d %H:%M", _time.localtime(saved_at))
        what = Path(original).name if original else "an untitled graph"
        return QMessageBox.question(
            self, "Recover unsaved changes?",
            f"Loom did not close cleanly. Recover the unsaved changes to {what} "
            f"from {when}?") == QMessageBox.StandardButton.Yes

    def offer_recovery(self) -> bool:
        """At start-up: open the newest autosave a crashed session left, if the user agrees."""
        orphans = self.autosave.orphans()
        if not orphans:
            return False
        newest = orphans[0]
        if not self.ask_recover(newest.original, newest.saved_at):
            for orphan in orphans:
                orphan.discard()
            return False
        try:
            self.document.recover(newest.autosave, newest.original)
        except LoomFileError as exc:
            QMessageBox.warning(self, "Cannot recover", str(exc))
            return False
        newest.discard()
        self._after_load()
        self.write_autosave()
        return True

    # ------------------------------------------------------------------ editing
    def _graph_changed(self) -> None:
        self._update_title()
        self.problem_marks.graph_changed()
        self._refresh_inspector()

    def _selection_changed(self, ids: list[str]) -> None:
        self._refresh_inspector(ids)
        if len(ids) == 1:
            self.run_dock.select_node(ids[0], self.runner.records.get(ids[0]))

    def _refresh_inspector(self, ids: list[str] | None = None) -> None:
        ids = self.canvas.selected_ids() if ids is None else ids
        if len(ids) != 1 or ids[0] not in self.canvas.node_ids():
            self.inspector.show_node(None, None, [], set())
            return
        node = self.canvas.node(ids[0])
        inputs, _ = self.canvas.ports(ids[0])
        wired = {c.dst_port for c in self.canvas.to_graph().connections if c.dst_node == node.id}
        self.inspector.show_node(node, self.registry.get(node.type), inputs, wired)

    def _apply_edit(self, node_id: str, field: str, value: Any) -> None:
        setter = {"name": self.canvas.set_name, "metadata": self.canvas.set_metadata,
                  "properties": self.canvas.set_properties}[field]
        setter(node_id, value)

    def _delete_selected(self) -> None:
        self.canvas.delete_selected()  # nodes and wires, one undo step

    def _frame(self, kind: str) -> None:
        ids = self.canvas.selected_ids()
        if ids:
            self.canvas.frame(ids, kind)

    def open_search(self) -> None:
        """Tab: search the node types and add the one chosen where the cursor is."""
        self._search_at = QCursor.pos()
        self.search.open_at(self._search_at, self.registry)

    def _add_from_search(self, type_id: str) -> None:
        view = self.canvas.widget
        local = view.mapFromGlobal(getattr(self, "_search_at", QPoint()))
        pos = None
        if view.rect().contains(local) and hasattr(view, "mapToScene"):
            scene = view.mapToScene(local)
            pos = (scene.x(), scene.y())
        self.canvas.add_node(type_id, pos=pos)

    def _reveal_node(self, node_id: str) -> None:
        if node_id in self.canvas.node_ids():
            self.canvas.select([node_id])
            self.canvas.center_on(node_id)

    def _packs_reloaded(self, type_ids: list[str], problems: list[str]) -> None:
        self.canvas.reload_types(type_ids)
        self.palette.set_registry(self.registry)
        self._refresh_inspector()
        for problem in problems:
            self.run_dock.show_events([{"type": "log", "level": "error", "node": None,
                                        "message": f"node pack: {problem}"}])

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """Run (F5): the graph as it is on the canvas, saved or not."""
        if self.runner.running:
            return
        self.problem_marks.clear()
        self.run_dock.clear()
        self.runner.start(self.canvas.to_graph(), **self.run_options)

    # ------------------------------------------------------------------ where runs go
    def _build_run_on_menu(self, menu: Any) -> None:
        group = QActionGroup(self)
        self.run_on_actions: dict[str, QAction] = {}
        for key, text, tip in (
                ("here", "This &Machine", "Sync nodes run where their packs say: worker "
                 "threads or processes here"),
                ("dask-local", "Dask: a &Local Cluster", "Every plain sync node runs on a "
                 "Dask cluster of 2 worker processes started for the run on 127.0.0.1"),
                ("dask-scheduler", "Dask: a &Scheduler…", "Every plain sync node runs on "
                 "the Dask cluster at an address you give")):
            action = QAction(text, self, checkable=True)
            action.setStatusTip(tip)
            action.triggered.connect(lambda _checked=False, k=key: self._choose_run_on(k))
            group.addAction(action)
            menu.addAction(action)
            self.run_on_actions[key] = action
        self._check_run_on()

    def _choose_run_on(self, key: str) -> None:
        if key == "dask-scheduler":
            address = self.ask_scheduler(self.run_options.get("scheduler") or "tcp://")
            if address:
                self.set_run_target("dask", address)
        else:
            self.set_run_target("dask" if key == "dask-local" else None)
        self._check_run_on()

    def set_run_target(self, executor: str | None, scheduler: str | None = None) -> None:
        """Where the next runs send sync nodes: None (here), or "dask" with an optional
        scheduler address (without one, each run starts a local cluster)."""
        self.run_options = {"executor": executor, "scheduler": scheduler}
        self.run_preferences.save(self.run_options)
        self._check_run_on()
        self._update_title()

    def _check_run_on(self) -> None:
        executor, scheduler = self.run_options.get("executor"), self.run_options.get("scheduler")
        key = "here" if executor is None else "dask-scheduler" if scheduler else "dask-local"
        self.run_on_actions[key].setChecked(True)

    def ask_scheduler(self, current: str) -> str | None:
        """The Dask scheduler's address, or None when cancelled. (Tests replace this.)"""
        text, ok = QInputDialog.getText(self, "Dask scheduler",
                                        "Address of the Dask scheduler:", text=current)
        return text.strip() if ok and text.strip() else None

    def _run_target_text(self) -> str:
        if self.run_options.get("executor") != "dask":
            return ""
        return f" · on Dask ({self.run_options.get('scheduler') or 'local cluster'})"

    def stop(self) -> None:
        """Stop (Shift+F5); pressing it again while stopping stops at once."""
        self.runner.stop()

    def validate_graph(self) -> None:
        """Validate (F7): show the graph's problems without running anything."""
        issues = self.problem_marks.validate()
        self._raise_run_view()
        self.statusBar().showMessage(
            f"{sum(i.severity == 'error' for i in issues)} error(s), "
            f"{sum(i.severity == 'warning' for i in issues)} warning(s)" if issues
            else "The graph is valid.", 5000)

    def _list_issues(self, issues: list[Any], graph: Graph, focus: bool) -> None:
        tabs = self.run_dock.tabs
        shown = tabs.currentIndex()
        # Problems name nodes as the canvas does now, not as the last run did.
        self.run_dock.set_labels({nid: node.name or nid for nid, node in graph.nodes.items()})
        self.run_dock.show_issues(issues)
        if not focus:  # a re-check after an edit: the list updates where it is
            tabs.setCurrentIndex(shown)

    def _wire_refused(self, reason: str) -> None:
        # The purple live wire alone does not say what would have fitted.
        self.statusBar().showMessage(f"Wire refused — {reason}", 8000)

    def _run_refused(self, issues: list[Any]) -> None:
        # The run view lists them already (it follows the runner); outline them too.
        self.problem_marks.show(issues)
        self._raise_run_view()

    def _raise_run_view(self, *_why: object) -> None:
        self.run_view_dock.raise_()

    def _run_status(self, status: str) -> None:
        self._run_state = status
        running = status in ("running", "stopping")
        self.actions_by_name["run"].setEnabled(not running)
        self.actions_by_name["stop"].setEnabled(running)
        self._update_title()

    def _run_finished(self, result: Any) -> None:
        ids = self.canvas.selected_ids()
        if len(ids) == 1:
            self.run_dock.select_node(ids[0], self.runner.records.get(ids[0]))

    # ------------------------------------------------------------------ closing
    def closeEvent(self, event: QCloseEvent) -> None:
        """Ask about unsaved changes; stop the run; let the app finish the shutdown."""
        if not self.confirm_discard():
            event.ignore()
            return
        self.autosave.clear()
        self._autosave_timer.stop()
        if self.runner.running:
            self.runner.stop(grace=0)
        event.accept()
        self.closed.emit()

    async def shutdown(self) -> None:
        """After the window closed: end the run, stop watching packs (bounded)."""
        await self.runner.shutdown()
        self.watcher.stop()  # joins the watchdog threads, bounded
