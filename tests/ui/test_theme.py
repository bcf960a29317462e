"""Colours come from the theme, and what the editor writes stays readable in it.

Contrast is measured on the rendered pixels (``grab()``): the panel's background is its
most common colour, the text's colour the pixel inside the label that stands out most.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QImage, QPalette
from PySide6.QtWidgets import QApplication, QFrame, QLabel, QWidget

from loom.graph import Graph, Node
from loom.registry import LoadProblem, Registry
from loom.ui import theme
from loom.ui.canvas import Canvas
from loom.ui.canvas.node_item import LoomNodeItem
from loom.ui.main_window import MainWindow


def item(canvas: Canvas, node_id: str) -> LoomNodeItem:
    """The node item that draws a node on the canvas."""
    view = canvas.node_graph.get_node_by_id(
        next(n.id for n in canvas.node_graph.all_nodes() if n.loom_id == node_id)).view
    assert isinstance(view, LoomNodeItem)
    return view


@pytest.fixture
def dark(qapp: QApplication) -> Iterator[None]:
    """The editor's dark theme on the application, put back afterwards."""
    palette, style = QPalette(qapp.palette()), qapp.style().name()
    theme.apply_theme(qapp)
    yield
    qapp.setPalette(palette)
    qapp.setStyle(style)


def _colour(image: QImage, x: int, y: int) -> QColor:
    return image.pixelColor(x, y)


def rendered_contrast(widget: QWidget, text_area: QRect, tmp_path: Path, name: str) -> float:
    """Contrast between a widget's rendered background and the text drawn in text_area."""
    image = widget.grab().toImage()
    image.save(str(tmp_path / f"{name}.png"))
    counts = Counter(image.pixel(x, y) for x in range(image.width())
                     for y in range(image.height()))
    background = QColor.fromRgb(counts.most_common(1)[0][0])
    area = text_area.intersected(image.rect())
    assert not area.isEmpty()
    text = max((_colour(image, x, y) for x in range(area.left(), area.right() + 1)
                for y in range(area.top(), area.bottom() + 1)),
               key=lambda c: theme.contrast(c, background))
    assert theme.contrast(text, background) > 1.5, "some text was drawn there"
    return theme.contrast(text, background)


def test_the_missing_node_warning_reads_in_the_dark_theme(dark: None, window: MainWindow,
                                                          qtbot: Any, tmp_path: Path) -> None:
    graph = Graph()
    graph.add_node(Node("gone", "nope.nothing", name="Gone", position=(0.0, 0.0)))
    window.resize(1200, 760)
    window.canvas.load(graph)
    qtbot.waitExposed(window.canvas.widget)
    window.canvas.fit_view()
    view = item(window.canvas, "gone")
    point = window.canvas.widget.mapFromScene(view.mapToScene(view.title_rect().center()))
    qtbot.mouseClick(window.canvas.widget.viewport(), Qt.MouseButton.LeftButton, pos=point)
    qtbot.waitUntil(lambda: window.inspector.findChild(QFrame, "missingNote") is not None,
                    timeout=3000)
    note = window.inspector.findChild(QFrame, "missingNote")
    assert isinstance(note, QFrame)
    qtbot.waitUntil(note.isVisible, timeout=3000)
    window.grab().save(str(tmp_path / "window.png"))
    background, _, text = theme.warning_panel(window.inspector.palette())
    assert background.name() in note.styleSheet() and text.name() in note.styleSheet(), (
        "the panel's colours come from the theme")
    label = next(w for w in note.findChildren(QLabel) if "not installed" in w.text())
    ratio = rendered_contrast(note, label.geometry(), tmp_path, "missing-note")
    assert ratio >= theme.MIN_CONTRAST, f"contrast {ratio:.2f}"


def test_pack_problems_read_in_the_dark_theme(dark: None, window: MainWindow, qtbot: Any,
                                              tmp_path: Path) -> None:
    broken = Registry.standard(entry_points=False)
    broken.problems.append(LoadProblem("/packs/broken.py", "SyntaxError: invalid syntax",
                                       "Traceback (most recent call last): ..."))
    window.palette.set_registry(broken)
    problems = window.palette.problems
    qtbot.waitUntil(problems.isVisible, timeout=3000)
    window.grab().save(str(tmp_path / "window.png"))
    background, _, text = theme.warning_panel(window.palette.palette())
    assert background.name() in problems.styleSheet() and text.name() in problems.styleSheet()
    row = problems.visualItemRect(problems.item(0)).adjusted(24, 0, 0, 0)  # past the icon
    ratio = rendered_contrast(problems.viewport(), row, tmp_path, "problems")
    assert ratio >= theme.MIN_CONTRAST, f"contrast {ratio:.2f}"
    title = window.palette.problems_title
    title_ratio = rendered_contrast(title, title.rect(), tmp_path, "problems-title")
    assert title_ratio >= theme.MIN_CONTRAST, f"title contrast {title_ratio:.2f}"


def test_readable_keeps_a_colour_that_reads_and_fixes_one_that_does_not() -> None:
    dark_base, light_base = QColor("#202225"), QColor("#ffffff")
    assert theme.readable(QColor("#ffffff"), dark_base) == QColor("#ffffff")
    for base in (dark_base, light_base):
        for accent in (theme.ERROR, theme.WARNING, theme.SUCCESS, QColor("#c62828")):
            assert theme.contrast(theme.readable(accent, base), base) >= theme.MIN_CONTRAST
    assert round(theme.contrast(QColor("black"), QColor("white")), 1) == 21.0
