"""Colours, fonts and sizes of the canvas, in one place.

Categories and port types get fixed colours where Loom ships them and a stable
hash-derived colour otherwise, so a third-party pack looks the same on every run.
Run states use colours that no category uses, so a state never reads as a category.
"""

from __future__ import annotations

import zlib
from functools import cache

from PySide6.QtGui import QColor, QFont, QFontMetricsF

# --------------------------------------------------------------------------- geometry

TITLE_H = 24.0
ROW_H = 22.0
BODY_TOP = 4.0
BODY_BOTTOM = 6.0
MIN_W = 150.0
MAX_W = 340.0
LABEL_PAD = 12.0
RADIUS = 5.0
#: the port item's square hit area; its circle is drawn at the centre
PORT_BOX = 22.0
PORT_RADIUS = 5.0

# --------------------------------------------------------------------------- colours

BODY = QColor(40, 44, 52)
BODY_BORDER = QColor(18, 20, 24)
TITLE_TEXT = QColor(245, 245, 245)
LABEL_TEXT = QColor(200, 204, 212)
SELECTED_BORDER = QColor(254, 207, 42)
MISSING_TITLE = QColor(88, 88, 92)
MISSING_BODY = QColor(52, 52, 56)
MISSING_TEXT = QColor(170, 170, 170)

STATE_COLORS: dict[str, QColor] = {
    "queued": QColor(120, 138, 180),
    "running": QColor(56, 152, 255),
    "done": QColor(72, 196, 104),
    "failed": QColor(236, 72, 72),
    "skipped": QColor(120, 120, 120),
    "stopped": QColor(245, 152, 40),
}
STATES = frozenset(STATE_COLORS)
#: validation outlines, by severity
PROBLEM_COLORS: dict[str, QColor] = {
    "error": QColor(236, 72, 72),
    "warning": QColor(232, 160, 48),
}
TAKEN_PORT = QColor(72, 196, 104)
BADGE = QColor(18, 20, 24)
#: the canvas background (NodeGraphQt's), for colours mixed to look translucent
BACKGROUND = QColor(35, 35, 35)

WIRE_TRUE = (80, 200, 110, 255)
WIRE_FALSE = (225, 85, 85, 255)

_CATEGORY: dict[str, tuple[int, int, int]] = {
    "Control": (132, 92, 168),
    "Math": (58, 108, 170),
    "Text": (46, 134, 118),
    "Data": (150, 128, 54),
    "Values": (96, 100, 114),
    "Events": (178, 86, 58),
    "Lists": (70, 130, 72),
    "Dicts": (128, 92, 60),
    "Files": (138, 110, 82),
    "Time": (86, 118, 150),
}

_PORT_TYPE: dict[str, tuple[int, int, int]] = {
    "any": (170, 170, 176),
    "float": (120, 164, 226),
    "int": (92, 204, 174),
    "str": (232, 200, 96),
    "bool": (222, 124, 164),
    "list": (172, 142, 232),
    "dict": (234, 152, 92),
    "bytes": (150, 200, 110),
    "none": (120, 120, 120),
}

FRAME_COLORS: dict[str, tuple[int, int, int]] = {
    "loop": (76, 170, 206),
    "parallel": (172, 112, 222),
    "event": (232, 152, 62),
}


def _hashed(name: str, saturation: int, value: int) -> QColor:
    hue = zlib.crc32(name.encode("utf-8")) % 360
    return QColor.fromHsv(hue, saturation, value)


@cache
def category_color(category: str) -> QColor:
    """The title-bar colour of a node category (stable for unknown categories)."""
    rgb = _CATEGORY.get(category)
    return QColor(*rgb) if rgb else _hashed(category, 120, 150)


@cache
def port_color(type_name: str) -> QColor:
    """The colour of a port and of the wires leaving it, by port type."""
    rgb = _PORT_TYPE.get(type_name)
    return QColor(*rgb) if rgb else _hashed(type_name, 110, 210)


# --------------------------------------------------------------------------- fonts


@cache
def title_font() -> QFont:
    """Bold node titles."""
    font = QFont()
    font.setPixelSize(12)
    font.setBold(True)
    return font


@cache
def label_font() -> QFont:
    """Port labels, badges and frame captions."""
    font = QFont()
    font.setPixelSize(11)
    return font


@cache
def title_metrics() -> QFontMetricsF:
    """Metrics of :func:`title_font` (measured once per process)."""
    return QFontMetricsF(title_font())


@cache
def label_metrics() -> QFontMetricsF:
    """Metrics of :func:`label_font`."""
    return QFontMetricsF(label_font())
