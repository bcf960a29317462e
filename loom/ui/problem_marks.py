"""Validation problems that follow the graph: outlined on the canvas, listed in the run
view, and checked again after every edit until the graph is valid.

Without this, problems found by Validate (F7) or by a refused run stayed on screen after
the user fixed them. The engine's ``validate`` is the one judge; this module only decides
when to ask it again and where the answer is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from PySide6.QtCore import QObject, QTimer

from loom.engine import Issue, validate
from loom.graph import Graph
from loom.registry import Registry

from .canvas import Canvas

#: Milliseconds of quiet after an edit before the graph is checked again (typing in a
#: field, or dragging several wires, checks once).
RECHECK_MS = 150


def problem_nodes(issues: Iterable[Issue], graph: Graph) -> dict[str, str]:
    """Node id -> worst severity ("error" beats "warning") of the issues naming it.

    An issue names its node by ``node_id``, or else by its id or display label
    (``name (id)``) in ``node``; issues about the whole graph outline nothing.
    """
    by_label = {node.label: node.id for node in graph}
    marks: dict[str, str] = {}
    for issue in issues:
        key = issue.node_id or issue.node  # the id when the engine gave one
        if key is None:
            continue
        node_id = key if key in graph.nodes else by_label.get(key)
        if node_id is not None and marks.get(node_id) != "error":
            marks[node_id] = issue.severity
    return marks


class ProblemMarks(QObject):
    """Shows validation problems on the canvas and re-checks them after edits.

    ``show_list(issues, graph, focus)`` receives each new issue list, with the graph
    it is about (the run view's Problems
    tab); ``focus`` is False for the quiet re-checks after edits, which must not pull
    the user's eye (or tab) away from what they are editing.
    """

    def __init__(self, canvas: Canvas, registry: Registry,
                 show_list: Callable[[list[Issue], Graph, bool], None],
                 parent: QObject | None = None
                 ) -> None:
        super().__init__(parent)
        self._canvas = canvas
        self.registry = registry
        self._show_list = show_list
        #: problems from validation are on screen: an edit must check them again
        self._shown = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(RECHECK_MS)
        self._timer.timeout.connect(self.recheck)

    @property
    def shown(self) -> bool:
        """Whether validation problems are on screen (and followed after edits)."""
        return self._shown

    def show(self, issues: list[Issue], graph: Graph | None = None) -> None:
        """Outline the nodes these issues name (the list itself is shown elsewhere)."""
        graph = self._canvas.to_graph() if graph is None else graph
        self._canvas.set_problems(problem_nodes(issues, graph))
        self._shown = bool(issues)

    def validate(self, focus: bool = True) -> list[Issue]:
        """Check the graph now, show the problems everywhere, return them."""
        self._timer.stop()
        graph = self._canvas.to_graph()
        issues = validate(graph, self.registry)
        self._show_list(issues, graph, focus)
        self.show(issues, graph)
        return issues

    def graph_changed(self) -> None:
        """After an edit: check again soon, if problems are on screen."""
        if self._shown:
            self._timer.start()

    def recheck(self) -> None:
        """Check again (the timer's slot); a valid graph clears every mark."""
        if self._shown:
            self.validate(focus=False)

    def clear(self) -> None:
        """Forget the marks (a run starts, another graph is opened)."""
        self._timer.stop()
        self._shown = False
        self._canvas.set_problems({})
