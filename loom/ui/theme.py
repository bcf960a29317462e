"""The editor's colours, in one place: the dark palette, and the accents widgets derive
their colours from.

Widgets never hard-code a colour: a warning panel mixes the warning accent into the
palette's own base colour and keeps the palette's text, and a red or orange message is
lightened or darkened until it reads on the background it is drawn on (WCAG contrast
4.5:1). So every panel stays readable in the dark theme and under a light system palette.
(The canvas's own colours are in :mod:`loom.ui.canvas.style`.)
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

_ROLE = QPalette.ColorRole

#: the dark palette, role by role (it matches the canvas background)
DARK: dict[QPalette.ColorRole, str] = {
    _ROLE.Window: "#2b2d31", _ROLE.WindowText: "#dcdfe4",
    _ROLE.Base: "#202225", _ROLE.AlternateBase: "#2f3136",
    _ROLE.ToolTipBase: "#202225", _ROLE.ToolTipText: "#dcdfe4",
    _ROLE.Text: "#dcdfe4", _ROLE.Button: "#35373c",
    _ROLE.ButtonText: "#dcdfe4", _ROLE.Highlight: "#4f7cff",
    _ROLE.HighlightedText: "#ffffff", _ROLE.Link: "#7aa2ff",
    _ROLE.PlaceholderText: "#8b8f97",
}
DARK_DISABLED_TEXT = "#6b6f77"

#: accents: what a colour means, not how it is drawn (see :func:`readable`)
ERROR = QColor("#ef6a62")
WARNING = QColor("#e39b3c")
SUCCESS = QColor("#3fa66b")
MUTED = QColor("#8b8f97")

#: run states as the run view draws them (timeline bars, the Node tab); white text
#: (:data:`BAR_TEXT`) is drawn on the bars
STATE_COLOURS: dict[str, str] = {
    "running": "#4f8ff7",
    "done": "#3fa66b",
    "failed": "#e5534b",
    "stopped": "#e39b3c",
    "skipped": "#7d828b",
}
BAR_TEXT = "#ffffff"

#: the smallest text contrast ratio the editor draws (WCAG AA for normal text)
MIN_CONTRAST = 4.5
#: how much of the warning accent tints a warning panel's background
_PANEL_TINT = 0.16


def apply_theme(app: QApplication) -> None:
    """The dark Fusion palette that matches the canvas."""
    app.setStyle("Fusion")
    palette = QPalette()
    for role, colour in DARK.items():
        palette.setColor(role, QColor(colour))
    for role in (_ROLE.Text, _ROLE.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(DARK_DISABLED_TEXT))
    app.setPalette(palette)


# --------------------------------------------------------------------------- contrast
def luminance(colour: QColor) -> float:
    """WCAG relative luminance (0 black … 1 white)."""
    def channel(value: float) -> float:
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    return (0.2126 * channel(colour.redF()) + 0.7152 * channel(colour.greenF())
            + 0.0722 * channel(colour.blueF()))


def contrast(a: QColor, b: QColor) -> float:
    """WCAG contrast ratio of two colours (1 … 21)."""
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def mix(base: QColor, tint: QColor, amount: float) -> QColor:
    """``amount`` of ``tint`` over ``base`` (opaque)."""
    keep = 1.0 - amount
    return QColor(round(base.red() * keep + tint.red() * amount),
                  round(base.green() * keep + tint.green() * amount),
                  round(base.blue() * keep + tint.blue() * amount))


def readable(colour: QColor, background: QColor, minimum: float = MIN_CONTRAST) -> QColor:
    """``colour``, moved towards white on a dark background (black on a light one) just
    far enough to reach ``minimum`` contrast; its hue is kept as far as possible."""
    if contrast(colour, background) >= minimum:
        return QColor(colour)
    target = QColor("white") if luminance(background) < 0.18 else QColor("black")
    for step in range(1, 21):
        moved = mix(colour, target, step / 20)
        if contrast(moved, background) >= minimum:
            return moved
    return target


# --------------------------------------------------------------------------- widget colours
def error_text(palette: QPalette) -> QColor:
    """Red text that reads on the palette's base (fields, lists) and window colours."""
    return readable(readable(ERROR, palette.color(_ROLE.Base)), palette.color(_ROLE.Window))


def warning_text(palette: QPalette) -> QColor:
    """Orange text that reads on the palette's base and window colours."""
    return readable(readable(WARNING, palette.color(_ROLE.Base)), palette.color(_ROLE.Window))


def success_text(palette: QPalette) -> QColor:
    """Green text that reads on the palette's base colour."""
    return readable(SUCCESS, palette.color(_ROLE.Base))


def muted_text(palette: QPalette) -> QColor:
    """Quiet text (notes, placeholders) that still reads on the base colour."""
    return readable(MUTED, palette.color(_ROLE.Base), 3.0)


def warning_panel(palette: QPalette) -> tuple[QColor, QColor, QColor]:
    """(background, border, text) of a warning panel: the base colour tinted with the
    warning accent, and the palette's own text made to read on it."""
    background = mix(palette.color(_ROLE.Base), WARNING, _PANEL_TINT)
    text = readable(palette.color(_ROLE.Text), background)
    return background, WARNING, text


def warning_panel_style(palette: QPalette, selector: str) -> str:
    """A style sheet giving ``selector`` (e.g. ``QFrame#missingNote``) the warning
    panel's colours; its labels keep no border and take the panel's text colour."""
    background, border, text = warning_panel(palette)
    return (f"{selector} {{ background: {background.name()}; color: {text.name()}; "
            f"border: 1px solid {border.name()}; border-radius: 3px; }} "
            f"{selector} QLabel {{ border: none; background: transparent; "
            f"color: {text.name()}; }}")
