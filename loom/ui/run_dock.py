"""The run dock: log, the selected node's last execution, problems, and the timeline.

It is fed by :class:`~loom.ui.run_controller.RunController` (``events`` once per
frame, ``finished``, ``invalid``) and by the main window (``select_node`` when the
canvas selection changes). Everything it keeps is bounded: the log holds the newest
``max_log_lines`` lines and takes at most ``max_lines_per_frame`` of any one frame,
value trees stop after a few thousand items.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping
from typing import Any

from PySide6.QtCore import QEvent, QPoint, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QColor,
    QFontDatabase,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QLabel,
    QPlainTextEdit,
    QSplitter,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from loom.engine import Issue, NodeRecord, RunResult, to_jsonable

from . import theme
from .run_controller import format_duration
from .timeline import STATE_COLOURS, Timeline, scope_text

MAX_LOG_LINES = 5000
MAX_LINES_PER_FRAME = 500
#: items a value tree shows at most (the rest is summarised)
MAX_TREE_ITEMS = 2000
_NODE_ROLE = Qt.ItemDataRole.UserRole
_VALUE_ROLE = Qt.ItemDataRole.UserRole + 1
# From the theme (accents chosen to read on the dark theme's base colour).
_RED = theme.ERROR.name()
_ORANGE = theme.WARNING.name()
_GREEN = theme.SUCCESS.name()
_GREY = theme.MUTED.name()
_LEVEL_COLOURS = {"error": _RED, "critical": _RED, "warning": _ORANGE}


def _mono() -> Any:
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)


def _stamp(event: Mapping[str, Any]) -> str:
    t = event.get("t")
    return f"{t:9.3f} s  " if isinstance(t, (int, float)) else " " * 13


class LogView(QPlainTextEdit):
    """A read-only, capped, copyable log; a click on a node's line emits its id."""

    node_clicked = Signal(str)

    def __init__(self, max_lines: int = MAX_LOG_LINES, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setUndoRedoEnabled(False)  # an undo history of the log would grow forever
        self.setMaximumBlockCount(max_lines)
        self.setFont(_mono())
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setPlaceholderText("The run's log: start and end, node logs and progress, "
                                "failures in red.")
        # A block's user state indexes this list: the node its line is about.
        self._nodes: list[str] = []
        self._node_index: dict[str, int] = {}
        self._formats: dict[str | None, QTextCharFormat] = {}

    def _format(self, colour: str | None) -> QTextCharFormat:
        fmt = self._formats.get(colour)
        if fmt is None:
            fmt = QTextCharFormat()
            if colour is not None:
                fmt.setForeground(QColor(colour))
            self._formats[colour] = fmt
        return fmt

    def add_lines(self, lines: Iterable[tuple[str, str | None, str | None]]) -> None:
        """Append ``(text, node id or None, colour or None)`` lines in one edit."""
        bar = self.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 2
        doc = self.document()
        cursor = QTextCursor(doc)
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.beginEditBlock()
        empty = doc.isEmpty()
        for text, node, colour in lines:
            if not empty:
                cursor.insertBlock()
            empty = False
            cursor.insertText(text, self._format(colour))
            if node is not None:
                index = self._node_index.get(node)
                if index is None:
                    index = self._node_index[node] = len(self._nodes)
                    self._nodes.append(node)
                cursor.block().setUserState(index)
        cursor.endEditBlock()
        if at_bottom:  # follow the newest line unless the user scrolled up to read
            bar.setValue(bar.maximum())

    def clear(self) -> None:
        """Empty the log."""
        super().clear()
        self._nodes.clear()
        self._node_index.clear()

    def node_at(self, pos: QPoint) -> str | None:
        """The node id of the line at a viewport position, if the line names one."""
        index = self.cursorForPosition(pos).block().userState()
        return self._nodes[index] if 0 <= index < len(self._nodes) else None

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        """A plain click (no text selected) on a node's line emits ``node_clicked``."""
        super().mouseReleaseEvent(event)
        if event.button() == Qt.MouseButton.LeftButton and not self.textCursor().hasSelection():
            node = self.node_at(event.position().toPoint())
            if node is not None:
                self.node_clicked.emit(node)


class ValueTree(QTreeWidget):
    """Expandable JSON view of values; right-click copies a value as JSON."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setColumnCount(2)
        self.setHeaderLabels(["Name", "Value"])
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        self.header().setStretchLastSection(True)
        self.setColumnWidth(0, 160)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        # No shortcut on the action: the window's Copy holds Ctrl+C, and two owners make
        # Qt call it ambiguous. The tree takes Copy as a key instead (see event()).
        copy = QAction("Copy value as JSON\t" + _copy_keys(), self)
        copy.triggered.connect(self.copy_selected)
        self.addAction(copy)
        self._budget = 0

    def show_values(self, sections: Iterable[tuple[str, Mapping[str, Any] | None]]) -> None:
        """One top-level item per section ("Inputs", "Outputs"), a child per port."""
        self.clear()
        self._budget = MAX_TREE_ITEMS
        for title, values in sections:
            top = QTreeWidgetItem(self, [title, "" if values else "—"])
            font = top.font(0)
            font.setBold(True)
            top.setFont(0, font)
            data = to_jsonable(values or {}, max_items=200, max_str=2000)
            top.setData(0, _VALUE_ROLE, data)
            for name, value in data.items():
                self._add(top, name, value)
            top.setExpanded(True)
        self.resizeColumnToContents(0)
        self.setColumnWidth(0, min(max(self.columnWidth(0), 120), 260))

    def _add(self, parent: QTreeWidgetItem, name: str, value: Any) -> None:
        if self._budget <= 0:
            return
        self._budget -= 1
        item = QTreeWidgetItem(parent, [name, _summary(value)])
        item.setData(0, _VALUE_ROLE, value)
        item.setToolTip(1, _summary(value, 2000))
        if isinstance(value, dict):
            for key, child in value.items():
                self._add(item, str(key), child)
        elif isinstance(value, list):
            for k, child in enumerate(value):
                self._add(item, f"[{k}]", child)
        if parent.parent() is None and 0 < item.childCount() <= 12:
            item.setExpanded(True)  # a port's small value is open at once
        if self._budget <= 0 and parent.childCount() and parent.child(
                parent.childCount() - 1) is item:
            QTreeWidgetItem(parent, ["…", "more not shown"])

    def event(self, event: QEvent) -> bool:
        """Copy pressed here is the tree's, not the window's (as text fields do)."""
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent) \
                and event.matches(QKeySequence.StandardKey.Copy):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Copy copies the selected value as JSON."""
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy_selected()
            event.accept()
            return
        super().keyPressEvent(event)

    def copy_selected(self) -> None:
        """Put the selected item's value on the clipboard as JSON."""
        items = self.selectedItems()
        if items:
            value = items[0].data(0, _VALUE_ROLE)
            QGuiApplication.clipboard().setText(json.dumps(value, indent=2, ensure_ascii=False))


def _copy_keys() -> str:
    return QKeySequence(QKeySequence.StandardKey.Copy).toString(
        QKeySequence.SequenceFormat.NativeText)


def _summary(value: Any, limit: int = 200) -> str:
    if isinstance(value, dict):
        return f"{{{len(value)} key{'s' if len(value) != 1 else ''}}}"
    if isinstance(value, list):
        return f"[{len(value)} item{'s' if len(value) != 1 else ''}]"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"


class NodeView(QWidget):
    """The selected node's last execution: summary, inputs/outputs, error."""

    node_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        self.header = QLabel()
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.header.setWordWrap(True)
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.header.linkActivated.connect(lambda link: self.node_clicked.emit(link[5:]))
        layout.addWidget(self.header)
        split = QSplitter(Qt.Orientation.Vertical)
        self.values = ValueTree()
        split.addWidget(self.values)
        self.error = QPlainTextEdit()
        self.error.setReadOnly(True)
        self.error.setFont(_mono())
        self.error.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        split.addWidget(self.error)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout.addWidget(split, 1)
        self.node_id: str | None = None
        self.record: NodeRecord | None = None
        self.show_record(None, None)

    def show_record(self, node_id: str | None, record: NodeRecord | None, *,
                    label: str | None = None, inside: str | None = None) -> None:
        """Show ``record`` for ``node_id`` (None: nothing selected or never ran)."""
        self.node_id, self.record = node_id, record
        if node_id is None:
            self.header.setText("<i>Select a node to see its last execution.</i>")
            self.values.show_values([])
            self.values.hide()
            self.error.hide()
            return
        name = html.escape(label or node_id)
        link = f'<a href="node:{html.escape(node_id)}">{name}</a>'
        ident = f" <span style='color:#8b8f97'>({html.escape(node_id)})</span>" \
            if label and label != node_id else ""
        if record is None:
            self.header.setText(f"<b>{link}</b>{ident}<br><i>Not run in the last run.</i>")
            self.values.hide()
            self.error.hide()
            return
        state = record.state.value
        colour = STATE_COLOURS.get(state, _GREY)
        facts = [f"<span style='color:{colour}'><b>{state}</b></span>"]
        if record.duration_ms is not None:
            facts.append(format_duration(record.duration_ms))
        if record.started is not None:
            facts.append(f"started at {format_duration(record.started * 1000.0)}")
        if record.attempts > 1:
            facts.append(f"{record.attempts} attempts")
        if record.iterations:
            facts.append(f"{record.iterations} iterations")
        if record.handled:
            facts.append("failure handled by on_error")
        lines = [f"<b>{link}</b>{ident}", " · ".join(facts)]
        if inside:
            lines.append(f"inside <a href='node:{html.escape(inside)}'>"
                         f"{html.escape(inside)}</a> (its last item or branch)")
        if record.reason:
            lines.append(f"<i>{html.escape(record.reason)}</i>")
        if record.stats:
            lines.append(html.escape(", ".join(f"{k}: {v}" for k, v in record.stats.items())))
        if record.error:
            lines.append(f"<span style='color:{_RED}'>{html.escape(record.error)}</span>")
        self.header.setText("<br>".join(lines))
        self.values.show()
        self.values.show_values([("Inputs", record.inputs), ("Outputs", record.outputs)])
        if record.error:
            self.error.setPlainText(record.traceback or record.error)
            self.error.show()
        else:
            self.error.clear()
            self.error.hide()


class RunDock(QWidget):
    """Tabs Log, Node, Problems and Timeline for the current or last run.

    Methods: :meth:`show_events` (a frame of engine events), :meth:`show_result`,
    :meth:`show_issues`, :meth:`select_node`, :meth:`clear`, :meth:`set_labels`.
    Signal ``node_clicked(str)``: a node id was clicked in any tab.
    """

    node_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, max_log_lines: int = MAX_LOG_LINES,
                 max_lines_per_frame: int = MAX_LINES_PER_FRAME) -> None:
        super().__init__(parent)
        self.max_lines_per_frame = max_lines_per_frame
        self._labels: dict[str, str] = {}
        self._result: RunResult | None = None
        self._issues: list[Issue] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        layout.addWidget(self.tabs)
        self.log = LogView(max_log_lines)
        self.node_view = NodeView()
        self.problems = QTreeWidget()
        self.problems.setColumnCount(2)
        self.problems.setHeaderLabels(["Problem", "Node"])
        self.problems.setRootIsDecorated(True)
        self.problems.setWordWrap(True)
        self.problems.header().setStretchLastSection(False)
        self.problems.header().setSectionResizeMode(0, self.problems.header().ResizeMode.Stretch)
        self.problems.itemClicked.connect(self._problem_clicked)
        self.timeline = Timeline()
        for widget, title in ((self.log, "Log"), (self.node_view, "Node"),
                              (self.problems, "Problems"), (self.timeline, "Timeline")):
            self.tabs.addTab(widget, title)
        for source in (self.log, self.node_view, self.timeline):
            source.node_clicked.connect(self.node_clicked)
        self._problems_tab = self.tabs.indexOf(self.problems)

    # ------------------------------------------------------------------ feeding
    def set_labels(self, labels: Mapping[str, str]) -> None:
        """Node id -> display name (the timeline's bars and the Node tab use it)."""
        self._labels = dict(labels)
        self.timeline.set_labels(self._labels)

    def attach(self, controller: Any) -> None:
        """Follow a RunController: its events, results and validation problems."""
        def on_started(_: str) -> None:
            self.set_labels(controller.labels)

        controller.started.connect(on_started)
        controller.events.connect(self.show_events)
        controller.finished.connect(self.show_result)
        controller.invalid.connect(self.show_issues)

    def show_events(self, batch: list[Mapping[str, Any]]) -> None:
        """A frame of engine events: log lines, timeline bars, the selected node's state."""
        lines: list[tuple[str, str | None, str | None]] = []
        selected = self.node_view.node_id
        refresh = False
        logged = _LOGGED
        for event in batch:
            if event.get("type") in logged:  # most events are node states: skip fast
                line = _log_line(event, self._labels)
                if line is not None:
                    lines.append(line)
        if selected is not None:
            refresh = any(event.get("node") == selected for event in batch)
        if len(lines) > self.max_lines_per_frame:
            # Nobody reads thousands of lines a second; keep the newest, say what was left.
            left_out = len(lines) - self.max_lines_per_frame
            note = (f"{' ' * 13}… {left_out} lines left out (too many at once)", None,
                    _GREY)
            lines = [note, *lines[-self.max_lines_per_frame:]]
        if lines:
            self.log.add_lines(lines)
        self.timeline.add_events(batch)
        if refresh and self.node_view.record is not None:
            self._show_node(selected, self.node_view.record)

    def show_result(self, result: RunResult) -> None:
        """The run ended: a final log line, failures in Problems, the Node tab refreshed."""
        self._result = result
        status = result.status.value
        failed = [e for e in result.errors if not e["handled"]]
        text = f"run {status} in {format_duration(result.duration_ms)}"
        if failed:
            text += f": {len(failed)} node(s) failed"
        colour = {"failed": _RED, "stopped": _ORANGE}.get(status, _GREEN)
        stamp = _stamp({"t": result.duration_ms / 1000.0})
        lines: list[tuple[str, str | None, str | None]] = [(stamp + text, None, colour)]
        for issue in result.issues:
            if issue.severity == "error":
                lines.append((" " * 13 + str(issue), issue.node_id, _RED))
        self.log.add_lines(lines)
        self.timeline.add_events([{"type": "run_finished",
                                   "t": self.timeline.duration}])
        self._fill_problems()
        selected = self.node_view.node_id
        if selected is not None:
            self._show_node(selected, result.nodes.get(selected))

    def show_issues(self, issues: Iterable[Issue]) -> None:
        """Validation problems (before a run); errors bring the Problems tab forward."""
        self._issues = list(issues)
        self._result = None
        self._fill_problems()
        if any(i.severity == "error" for i in self._issues):
            self.tabs.setCurrentIndex(self._problems_tab)

    def select_node(self, node_id: str | None, record: NodeRecord | None) -> None:
        """Show a node's last execution in the Node tab (None: nothing selected)."""
        self._show_node(node_id, record)

    def clear(self) -> None:
        """Forget the last run: log, problems, timeline, the Node tab's record."""
        self._result = None
        self._issues = []
        self.log.clear()
        self.timeline.clear()
        self._fill_problems()
        self.node_view.show_record(self.node_view.node_id, None,
                                   label=self._labels.get(self.node_view.node_id or ""))

    # ------------------------------------------------------------------ internals
    def _show_node(self, node_id: str | None, record: NodeRecord | None) -> None:
        inside = self._result.inside.get(node_id) if self._result and node_id else None
        self.node_view.show_record(node_id, record, label=self._labels.get(node_id or ""),
                                   inside=inside)

    def _fill_problems(self) -> None:
        tree = self.problems
        tree.clear()
        mono = _mono()
        issues = list(self._issues)
        result = self._result
        if result is not None:
            issues += [i for i in result.issues if i not in issues]
        for issue in issues:
            colour = _RED if issue.severity == "error" else _ORANGE
            self._problem(issue.severity, issue.message, issue.node_id, colour,
                          shown=issue.node)
        if result is not None:
            for error in result.errors:
                word = "failed (handled)" if error["handled"] else "failed"
                item = self._problem(word, error["error"] or "", error["node"],
                                     _ORANGE if error["handled"] else _RED)
                if error["traceback"]:
                    child = QTreeWidgetItem(item, [error["traceback"].rstrip(), ""])
                    child.setFont(0, mono)
                    child.setData(0, _NODE_ROLE, error["node"])
            for node in result.abandoned:
                self._problem("warning", "still running in a worker thread when the run "
                              "ended (threads cannot be stopped)", node, _ORANGE)
        count = tree.topLevelItemCount()
        self.tabs.setTabText(self._problems_tab, f"Problems ({count})" if count else "Problems")
        red = any(i.severity == "error" for i in issues) or bool(
            result is not None and any(not e["handled"] for e in result.errors))
        self.tabs.tabBar().setTabTextColor(
            self._problems_tab,
            QColor(_RED) if red else self.palette().color(self.foregroundRole()))

    def _problem(self, kind: str, message: str, node: str | None,
                 colour: str, shown: str | None = None) -> QTreeWidgetItem:
        """A row: ``node`` is the id the row carries (a click reveals that node),
        ``shown`` how to name it when the labels of the run do not."""
        name = self._name(node) if node in self._labels or not shown else shown
        item = QTreeWidgetItem(self.problems, [f"{kind}: {message}", name])
        item.setForeground(0, QColor(colour))
        item.setData(0, _NODE_ROLE, node)
        item.setToolTip(0, message)
        if node:
            item.setToolTip(1, f"{node}: click to show it on the canvas")
        return item

    def _name(self, node: str | None) -> str:
        if not node:
            return ""
        label = self._labels.get(node)
        return f"{label} ({node})" if label and label != node else node

    def _problem_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        node = item.data(0, _NODE_ROLE)
        if node:
            self.node_clicked.emit(str(node))


#: the event types that make a log line (the others are shown by the canvas and timeline)
_LOGGED = frozenset({"log", "node_progress", "node_failed", "node_retrying", "run_started",
                     "run_stopping", "event_source_ready", "event_dropped", "wave_failed"})


def _log_line(event: Mapping[str, Any], labels: Mapping[str, str] | None = None,
              ) -> tuple[str, str | None, str | None] | None:
    """The log's line for an event, or None for events the log leaves to other tabs.

    The line names the node by its display name (``labels``: id -> name) and carries
    its id, so a click on it reveals the node.
    """
    kind = event.get("type")
    node = event.get("node")
    shown = (labels or {}).get(node, node) if node else None
    prefix = _stamp(event) + (f"[{shown}] " if shown else "")
    where = scope_text(event.get("scope"))
    suffix = f"  (in {where})" if where else ""
    if kind == "log":
        level = str(event.get("level", "info"))
        tag = "" if level == "info" else f"{level}: "
        return prefix + tag + str(event.get("message", "")) + suffix, node, \
            _LEVEL_COLOURS.get(level)
    if kind == "node_progress":
        parts = []
        if isinstance(event.get("progress"), (int, float)):
            parts.append(f"{event['progress'] * 100:.0f}%")
        if event.get("message"):
            parts.append(str(event["message"]))
        if "items" in event:
            parts.append(f"{event['items']} items")
        return prefix + (" ".join(parts) or "progress") + suffix, node, None
    if kind == "node_failed":
        handled = " (handled by on_error)" if event.get("handled") else ""
        return (prefix + f"failed{handled}: {event.get('error')}" + suffix, node,
                _ORANGE if handled else _RED)
    if kind == "node_retrying":
        return (prefix + f"retrying (attempt {event.get('attempt')}) after "
                f"{event.get('error')}" + suffix, node, _ORANGE)
    if kind == "run_started":
        return (prefix + f"run started: {event.get('graph') or 'graph'} "
                f"({event.get('nodes', '?')} nodes)", None, None)
    if kind == "run_stopping":
        return prefix + f"stopping (grace {event.get('grace', 0):g} s)…", None, _ORANGE
    if kind == "event_source_ready":
        info = {k: v for k, v in event.items()
                if k not in ("type", "run", "t", "node", "scope", "token")}
        return prefix + "listening " + json.dumps(info, ensure_ascii=False), node, None
    if kind == "event_dropped":
        return prefix + f"event dropped: {event.get('reason')}" + suffix, node, _ORANGE
    if kind == "wave_failed":  # the id an HTTP client was given, beside the full error
        return (prefix + f"wave {event.get('wave')} failed (error id "
                f"{event.get('error_id')}): {event.get('error')}", node, _RED)
    return None
