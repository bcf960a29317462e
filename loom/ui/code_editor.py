"""A small Python code editor for the code node (``control.code``).

:class:`CodeEditor` is a monospace :class:`QPlainTextEdit` with a line-number
gutter, Python syntax highlighting, four-space indentation and a debounced
``text_committed`` signal: the inspector turns each commit into one undoable
edit, so a pause in typing (300 ms) or leaving the editor commits, never each
keystroke. :meth:`CodeEditor.show_error_line` marks the line a run failed on.
"""

from __future__ import annotations

import builtins
import keyword
import re

from PySide6.QtCore import QRect, QRegularExpression, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QFocusEvent,
    QFont,
    QFontDatabase,
    QKeyEvent,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QSyntaxHighlighter,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextFormat,
)
from PySide6.QtWidgets import QPlainTextEdit, QTextEdit, QWidget

#: How long typing must pause before the text is committed.
COMMIT_DELAY_MS = 300
INDENT = "    "

# Colours that read on both the light default palette and a dark one.
_KEYWORD = "#0b5cad"
_BUILTIN = "#7a3e9d"
_STRING = "#2a7d2e"
_COMMENT = "#8a8a8a"
_NUMBER = "#b5530b"
_DEFINITION = "#1a1a8c"
_ERROR_LINE = QColor(255, 80, 80, 60)
_CURRENT_LINE = QColor(120, 160, 255, 28)


def _format(color: str, *, bold: bool = False, italic: bool = False) -> QTextCharFormat:
    fmt = QTextCharFormat()
    fmt.setForeground(QColor(color))
    if bold:
        fmt.setFontWeight(QFont.Weight.Bold)
    fmt.setFontItalic(italic)
    return fmt


class PythonHighlighter(QSyntaxHighlighter):
    """Highlights Python keywords, builtins, strings, comments and numbers.

    Triple-quoted strings may span lines: the block state remembers which quote
    is still open (1: ``'''``, 2: ``\"\"\"``).
    """

    def __init__(self, document: QTextDocument) -> None:
        super().__init__(document)
        self.keyword_format = _format(_KEYWORD, bold=True)
        self.builtin_format = _format(_BUILTIN)
        self.string_format = _format(_STRING)
        self.comment_format = _format(_COMMENT, italic=True)
        self.number_format = _format(_NUMBER)
        self.definition_format = _format(_DEFINITION, bold=True)
        words = sorted({*keyword.kwlist, *keyword.softkwlist} - {"_"})
        names = sorted(n for n in dir(builtins) if not n.startswith("_"))
        self._rules: list[tuple[QRegularExpression, QTextCharFormat, int]] = [
            (QRegularExpression(rf"\b(?:{'|'.join(names)})\b"), self.builtin_format, 0),
            (QRegularExpression(rf"\b(?:{'|'.join(words)})\b"), self.keyword_format, 0),
            (QRegularExpression(r"\b(?:def|class)\s+(\w+)"), self.definition_format, 1),
            (QRegularExpression(
                r"\b(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|"
                r"(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?j?)\b"),
             self.number_format, 0),
        ]
        # Strings and comments are scanned by hand: a '#' inside a string is not a
        # comment and a quote inside a comment opens no string.
        self._token = re.compile(r"""#|'''|\"\"\"|'|\"""")

    def highlightBlock(self, text: str) -> None:
        """Colour one line (Qt calls this for every changed block)."""
        for pattern, fmt, group in self._rules:
            matches = pattern.globalMatch(text)
            while matches.hasNext():
                match = matches.next()
                self.setFormat(match.capturedStart(group), match.capturedLength(group), fmt)
        self.setCurrentBlockState(0)
        pos = 0
        previous = self.previousBlockState()
        if previous in (1, 2):
            quote = "'''" if previous == 1 else '"""'
            end = text.find(quote)
            if end < 0:
                self.setFormat(0, len(text), self.string_format)
                self.setCurrentBlockState(previous)
                return
            self.setFormat(0, end + 3, self.string_format)
            pos = end + 3
        while True:
            match = self._token.search(text, pos)
            if match is None:
                return
            token, start = match.group(), match.start()
            if token == "#":
                self.setFormat(start, len(text) - start, self.comment_format)
                return
            if len(token) == 3:
                end = text.find(token, start + 3)
                if end < 0:
                    self.setFormat(start, len(text) - start, self.string_format)
                    self.setCurrentBlockState(1 if token == "'''" else 2)
                    return
                self.setFormat(start, end + 3 - start, self.string_format)
                pos = end + 3
                continue
            end = start + 1
            while end < len(text) and text[end] != token:
                end += 2 if text[end] == "\\" else 1
            end = min(end + 1, len(text))
            self.setFormat(start, end - start, self.string_format)
            pos = end


class _Gutter(QWidget):
    """The line-number column; painting is done by the editor, which knows the blocks."""

    def __init__(self, editor: CodeEditor) -> None:
        super().__init__(editor)
        self._editor = editor

    def sizeHint(self) -> QSize:
        return QSize(self._editor.gutter_width(), 0)

    def paintEvent(self, event: QPaintEvent) -> None:
        self._editor.paint_gutter(event)


class CodeEditor(QPlainTextEdit):
    """A monospace Python editor with line numbers, highlighting and a debounced commit.

    Signals:
        text_committed(str): the text, 300 ms after typing pauses and when the
            editor loses focus; only when it differs from the last commit or
            :meth:`set_code`.
    """

    text_committed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setStyleHint(QFont.StyleHint.Monospace)
        self.setFont(font)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setTabStopDistance(self.fontMetrics().horizontalAdvance(" ") * len(INDENT))
        self.highlighter = PythonHighlighter(self.document())
        self._gutter = _Gutter(self)
        self._error_line: int | None = None
        self._committed = ""
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(COMMIT_DELAY_MS)
        self._timer.timeout.connect(self.commit)
        self.blockCountChanged.connect(self._update_margins)
        self.updateRequest.connect(self._update_gutter)
        self.cursorPositionChanged.connect(self._update_selections)
        self.textChanged.connect(self._on_text_changed)
        self._update_margins()
        self._update_selections()

    # ------------------------------------------------------------------ public API
    def code(self) -> str:
        """The current text."""
        return self.toPlainText()

    def set_code(self, text: str) -> None:
        """Show ``text`` without committing it; a no-op (cursor kept) when it is unchanged."""
        self._committed = text
        if text == self.toPlainText():
            return
        self._timer.stop()
        self.blockSignals(True)
        try:
            self.setPlainText(text)
        finally:
            self.blockSignals(False)
        # Signals were blocked, so redraw what textChanged/blockCount would have.
        self._update_margins()
        self._update_selections()
        self._gutter.update()

    def commit(self) -> None:
        """Emit ``text_committed`` now if the text changed since the last commit."""
        self._timer.stop()
        text = self.toPlainText()
        if text != self._committed:
            self._committed = text
            self.text_committed.emit(text)

    def has_pending_commit(self) -> bool:
        """True while typed text waits for the debounce timer."""
        return self._timer.isActive()

    def show_error_line(self, line: int | None) -> None:
        """Mark line ``line`` (1-based) as the one a run failed on; ``None`` clears it."""
        count = self.blockCount()
        self._error_line = line if line is not None and 1 <= line <= count else None
        self._update_selections()
        self._gutter.update()
        if self._error_line is not None and not self.hasFocus():
            block = self.document().findBlockByNumber(self._error_line - 1)
            cursor = QTextCursor(block)
            self.setTextCursor(cursor)
            self.centerCursor()

    def error_line(self) -> int | None:
        """The marked line, if any."""
        return self._error_line

    # ------------------------------------------------------------------ editing keys
    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Tab/Shift+Tab indent by four spaces; Enter keeps the indentation."""
        key, mods = event.key(), event.modifiers()
        cursor = self.textCursor()
        if key == Qt.Key.Key_Tab and not mods & Qt.KeyboardModifier.ControlModifier:
            if cursor.hasSelection() and "\u2029" in cursor.selectedText():
                self._shift_lines(+1)
            else:
                column = cursor.positionInBlock()
                cursor.insertText(" " * (len(INDENT) - column % len(INDENT)))
            return
        if key == Qt.Key.Key_Backtab:
            self._shift_lines(-1)
            return
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not mods:
            line = cursor.block().text()[:cursor.positionInBlock()]
            indent = line[:len(line) - len(line.lstrip(" "))]
            if line.rstrip().endswith(":"):
                indent += INDENT
            cursor.insertText("\n" + indent)
            self.ensureCursorVisible()
            return
        if (key == Qt.Key.Key_Backspace and not cursor.hasSelection()
                and cursor.positionInBlock() > 0):
            before = cursor.block().text()[:cursor.positionInBlock()]
            if before and not before.strip(" "):
                # Backspace in leading blanks removes one indentation step.
                remove = (len(before) - 1) % len(INDENT) + 1
                cursor.movePosition(QTextCursor.MoveOperation.Left,
                                    QTextCursor.MoveMode.KeepAnchor, remove)
                cursor.removeSelectedText()
                return
        super().keyPressEvent(event)

    def _shift_lines(self, direction: int) -> None:
        cursor = self.textCursor()
        doc = self.document()
        first = doc.findBlock(cursor.selectionStart()).blockNumber()
        last = doc.findBlock(cursor.selectionEnd()).blockNumber()
        if (cursor.hasSelection() and last > first
                and doc.findBlock(cursor.selectionEnd()).position() == cursor.selectionEnd()):
            last -= 1  # a selection ending at a line start does not include that line
        edit = QTextCursor(doc)
        edit.beginEditBlock()
        for number in range(first, last + 1):
            block = doc.findBlockByNumber(number)
            edit.setPosition(block.position())
            if direction > 0:
                edit.insertText(INDENT)
            else:
                text = block.text()
                remove = min(len(INDENT), len(text) - len(text.lstrip(" ")))
                edit.movePosition(QTextCursor.MoveOperation.Right,
                                  QTextCursor.MoveMode.KeepAnchor, remove)
                edit.removeSelectedText()
        edit.endEditBlock()

    # ------------------------------------------------------------------ commit timing
    def _on_text_changed(self) -> None:
        if self._error_line is not None:
            # The marked line came from the code as it was run; an edit outdates it.
            self._error_line = None
            self._update_selections()
        self._timer.start()

    def focusOutEvent(self, event: QFocusEvent) -> None:
        """Leaving the editor commits at once."""
        super().focusOutEvent(event)
        self._update_selections()
        self.commit()

    def focusInEvent(self, event: QFocusEvent) -> None:
        """Show the current-line mark while editing."""
        super().focusInEvent(event)
        self._update_selections()

    # ------------------------------------------------------------------ gutter and marks
    def gutter_width(self) -> int:
        """Width of the line-number column for the current number of lines."""
        digits = max(2, len(str(self.blockCount())))
        return 12 + self.fontMetrics().horizontalAdvance("9") * digits

    def _update_margins(self, _count: int = 0) -> None:
        self.setViewportMargins(self.gutter_width(), 0, 0, 0)

    def _update_gutter(self, rect: QRect, dy: int) -> None:
        if dy:
            self._gutter.scroll(0, dy)
        else:
            self._gutter.update(0, rect.y(), self._gutter.width(), rect.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Keep the gutter beside the viewport."""
        super().resizeEvent(event)
        area = self.contentsRect()
        self._gutter.setGeometry(QRect(area.left(), area.top(), self.gutter_width(),
                                       area.height()))

    def paint_gutter(self, event: QPaintEvent) -> None:
        """Paint the line numbers of the visible blocks (the error line in red)."""
        painter = QPainter(self._gutter)
        palette = self.palette()
        painter.fillRect(event.rect(), palette.alternateBase())
        block = self.firstVisibleBlock()
        number = block.blockNumber()
        top = round(self.blockBoundingGeometry(block).translated(self.contentOffset()).top())
        bottom = top + round(self.blockBoundingRect(block).height())
        height = self.fontMetrics().height()
        width = self._gutter.width() - 6
        current = self.textCursor().blockNumber()
        while block.isValid() and top <= event.rect().bottom():
            if block.isVisible() and bottom >= event.rect().top():
                if number + 1 == self._error_line:
                    painter.fillRect(0, top, self._gutter.width(), height, QColor("#d93b3b"))
                    painter.setPen(QColor("white"))
                elif number == current:
                    painter.setPen(palette.text().color())
                else:
                    painter.setPen(palette.placeholderText().color())
                painter.drawText(0, top, width, height, Qt.AlignmentFlag.AlignRight,
                                 str(number + 1))
            block = block.next()
            top = bottom
            bottom = top + round(self.blockBoundingRect(block).height())
            number += 1
        painter.end()

    def _update_selections(self) -> None:
        selections = []
        if self.hasFocus():
            current = QTextEdit.ExtraSelection()
            current.format.setBackground(_CURRENT_LINE)
            current.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
            current.cursor = self.textCursor()
            current.cursor.clearSelection()
            selections.append(current)
        if self._error_line is not None:
            error = QTextEdit.ExtraSelection()
            error.format.setBackground(_ERROR_LINE)
            error.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
            error.cursor = QTextCursor(self.document().findBlockByNumber(self._error_line - 1))
            selections.append(error)
        self.setExtraSelections(selections)
        self._gutter.update()
