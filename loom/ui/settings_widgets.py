"""Typed value editors for the inspector: one widget per kind of value.

Every editor is a Qt widget with the same small protocol, so the inspector can
treat them alike:

- ``committed`` (a Signal with no arguments): the user finished an edit (Enter,
  leaving the field, a click on a check box or a pick in a combo box), never a
  keystroke;
- ``set_display(value, unset)``: show a value (``MISSING`` for a required value
  nobody gave) without emitting anything; ``unset`` shows it greyed and italic,
  as a default rather than a value of the node. Showing the text already shown
  is a no-op, so the cursor and focus stay where they are;
- ``read()``: the value the user entered, :data:`EMPTY` when the field was
  emptied, or :class:`ValueError` with a message for the inline error;
- ``focus_widget()``: the widget that takes the keyboard focus;
- ``flush()``: commit what the user typed but has not committed yet;
- ``pending()``: is there such uncommitted input?

Values are JSON values: what the editors return can be saved in a ``.loom`` file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from PySide6.QtCore import QLocale, QStringListModel, Qt, QTimer, Signal
from PySide6.QtGui import QFocusEvent, QFont, QKeyEvent, QPalette, QResizeEvent, QWheelEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QCompleter,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)


class _Marker:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: "no value at all": a required input nobody filled in.
MISSING: Any = _Marker("MISSING")
#: what ``read()`` returns when the user emptied a field that may be empty.
EMPTY: Any = _Marker("EMPTY")

_INT_LIMIT = 2**31 - 1
_FLOAT_LIMIT = 1e12
#: arrow clicks and wheel steps commit once the stepping pauses this long
STEP_COMMIT_MS = 500
#: completions may read "n3 — Upper"; what is stored is the part before this
COMPLETION_SEPARATOR = " — "

Completions: TypeAlias = "QStringListModel | Sequence[str]"


def _completer(completions: Completions, parent: QWidget) -> QCompleter | None:
    if not isinstance(completions, QStringListModel):
        if not completions:
            return None
        completions = QStringListModel(list(completions), parent)
    completer = QCompleter(completions, parent)
    completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
    completer.setFilterMode(Qt.MatchFlag.MatchContains)
    return completer


def strip_completion(text: str) -> str:
    """The id part of a completion such as ``"n3 — Upper"``."""
    return text.split(COMPLETION_SEPARATOR, maxsplit=1)[0].strip()


def same_value(a: Any, b: Any) -> bool:
    """Equal as JSON values: ``1 == 1.0`` but ``True != 1`` and ``1 != "1"``."""
    if a is MISSING or b is MISSING:
        return a is b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    try:
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    except (TypeError, ValueError):
        return bool(a == b)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_json(value: Any) -> str:
    """JSON on one line, or one line per item for a list or object of several items."""
    if value is MISSING:
        return ""
    flat = json.dumps(value, ensure_ascii=False)
    if isinstance(value, list) and len(value) > 1 and len(flat) > 40:
        items = ",\n".join("  " + json.dumps(v, ensure_ascii=False) for v in value)
        return "[\n" + items + "\n]"
    if isinstance(value, dict) and len(value) > 1 and len(flat) > 40:
        items = ",\n".join(f"  {json.dumps(k, ensure_ascii=False)}: "
                           f"{json.dumps(v, ensure_ascii=False)}" for k, v in value.items())
        return "{\n" + items + "\n}"
    return flat


def parse_json(text: str) -> Any:
    """The JSON value in ``text``; :data:`EMPTY` for blank text; ValueError otherwise."""
    if not text.strip():
        return EMPTY
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = ""
        if text.strip()[:1].isalpha() and text.strip() not in ("true", "false", "null"):
            hint = ' (text needs quotes: "like this")'
        raise ValueError(f"not valid JSON: {exc.msg} at line {exc.lineno} column "
                         f"{exc.colno}{hint}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("not valid JSON: numbers must be finite")
    return value


def set_unset_look(widget: QWidget, unset: bool) -> None:
    """Grey italic text for a value that is only a default (nothing set on the node).

    The placeholder grey, not the disabled one: the field must still look editable.
    """
    if bool(widget.property("loomUnset")) == unset:
        return
    widget.setProperty("loomUnset", unset)
    palette = QPalette(widget.palette())
    base = widget.parentWidget().palette() if widget.parentWidget() else QPalette()
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText,
                 QPalette.ColorRole.WindowText):
        color = base.color(QPalette.ColorRole.PlaceholderText) if unset else base.color(role)
        palette.setColor(QPalette.ColorGroup.Active, role, color)
        palette.setColor(QPalette.ColorGroup.Inactive, role, color)
    widget.setPalette(palette)
    font = QFont(widget.font())
    font.setItalic(unset)
    widget.setFont(font)


class _NoStrayWheel:
    """Mixin: the wheel scrolls the inspector unless the field has the focus.

    Without it, scrolling a long inspector changes whatever spin or combo box
    happens to pass under the pointer.
    """

    def wheelEvent(self, event: QWheelEvent) -> None:
        if self.hasFocus():  # type: ignore[attr-defined]
            super().wheelEvent(event)  # type: ignore[misc]
        else:
            event.ignore()


# ---------------------------------------------------------------------- booleans
class BoolEditor(QCheckBox):
    """A check box; a click commits."""

    committed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.clicked.connect(lambda _checked=False: self.committed.emit())

    def set_display(self, value: Any, unset: bool) -> None:
        """Show ``value`` (anything but a true value shows unchecked)."""
        self.blockSignals(True)
        self.setChecked(value is True)
        self.blockSignals(False)
        self.setText("(required)" if value is MISSING else "")
        set_unset_look(self, unset)

    def read(self) -> Any:
        """True or false."""
        return self.isChecked()

    def focus_widget(self) -> QWidget:
        """This check box."""
        return self

    def flush(self) -> None:
        """Nothing waits: every change commits at once."""

    def pending(self) -> bool:
        """Never: every change commits at once."""
        return False


# ---------------------------------------------------------------------- numbers
class _SpinMixin(_NoStrayWheel):
    """Commit on Enter/focus-out when the user changed the value; arrows commit after a pause.

    An editor that may be empty keeps one value below its minimum as the empty
    state, shown with the special-value text ("none", "required").
    """

    committed: Any  # each concrete class declares its Signal (PySide6 wants it there)

    def _setup(self, empty_text: str | None) -> None:
        self._empty_text = empty_text
        self._dirty = False
        self._step_timer = QTimer(self)  # type: ignore[arg-type]
        self._step_timer.setSingleShot(True)
        self._step_timer.setInterval(STEP_COMMIT_MS)
        self._step_timer.timeout.connect(self.flush)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # type: ignore[attr-defined]
        self.setKeyboardTracking(False)  # type: ignore[attr-defined]
        self.lineEdit().textEdited.connect(self._mark_dirty)  # type: ignore[attr-defined]
        self.editingFinished.connect(self.flush)  # type: ignore[attr-defined]
        if empty_text is not None:
            self.setSpecialValueText(empty_text)  # type: ignore[attr-defined]

    def _mark_dirty(self, _text: str = "") -> None:
        self._dirty = True

    def stepBy(self, steps: int) -> None:
        if self._empty_text is not None and self.value() == self.minimum():  # type: ignore[attr-defined]
            # Stepping out of the empty state starts from 0 (or the lowest allowed).
            start = max(0, self._lowest())
            self.setValue(start if steps > 0 else self._lowest())  # type: ignore[attr-defined]
        else:
            super().stepBy(steps)  # type: ignore[misc]
        self._dirty = True
        self._step_timer.start()

    def _lowest(self) -> Any:
        return self.minimum() + (1 if self._empty_text is not None else 0)  # type: ignore[attr-defined]

    def flush(self) -> None:
        """Commit now if the user changed the value since the last display or commit."""
        self._step_timer.stop()
        if self._dirty:
            self._dirty = False
            self.committed.emit()

    def pending(self) -> bool:
        """True while a typed or stepped value waits to be committed."""
        return bool(self._dirty)

    def is_empty(self) -> bool:
        """True when the box shows the empty state."""
        return self._empty_text is not None and self.value() == self.minimum()  # type: ignore[attr-defined]

    def focus_widget(self) -> QWidget:
        """This spin box."""
        return self  # type: ignore[return-value]


class IntEditor(_SpinMixin, QSpinBox):
    """An integer spin box, bounded below by ``minimum`` when given."""

    committed = Signal()

    def __init__(self, minimum: float | None = None, empty_text: str | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        low = math.ceil(minimum) if minimum is not None else -_INT_LIMIT + 1
        self.setRange(low - 1 if empty_text is not None else low, _INT_LIMIT)
        self._setup(empty_text)

    def set_display(self, value: Any, unset: bool) -> None:
        """Show an integer; None or MISSING show the empty state (or the lowest value)."""
        self._dirty = False
        self._step_timer.stop()
        self.blockSignals(True)
        if _is_number(value):
            self.setValue(max(self._lowest(), min(_INT_LIMIT, int(value))))
        else:
            self.setValue(self.minimum() if self._empty_text is not None
                          else max(0, self._lowest()))
        self.blockSignals(False)
        set_unset_look(self, unset)

    def read(self) -> Any:
        """The integer, or EMPTY."""
        self.interpretText()
        return EMPTY if self.is_empty() else int(self.value())


class FloatEditor(_SpinMixin, QDoubleSpinBox):
    """A number spin box that shows numbers as typed (``0.25``, ``30.0``), never ``30.000000``."""

    committed = Signal()

    def __init__(self, minimum: float | None = None, empty_text: str | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # A "." decimal point whatever the desktop's language: values are JSON.
        self.setLocale(QLocale.c())
        self.setDecimals(9)
        low = float(minimum) if minimum is not None else -_FLOAT_LIMIT
        self.setRange(low - 1 if empty_text is not None else low, _FLOAT_LIMIT)
        self.setSingleStep(1.0)
        self._setup(empty_text)

    def textFromValue(self, value: float) -> str:
        """Shortest readable form with at least one decimal."""
        text = f"{value:.9f}".rstrip("0")
        return text + "0" if text.endswith(".") else text

    def set_display(self, value: Any, unset: bool) -> None:
        """Show a number; None or MISSING show the empty state (or the lowest value)."""
        self._dirty = False
        self._step_timer.stop()
        self.blockSignals(True)
        if _is_number(value):
            self.setValue(max(self._lowest(), min(_FLOAT_LIMIT, float(value))))
        else:
            self.setValue(self.minimum() if self._empty_text is not None
                          else max(0.0, self._lowest()))
        self.blockSignals(False)
        set_unset_look(self, unset)

    def read(self) -> Any:
        """The number (a float), or EMPTY."""
        self.interpretText()
        return EMPTY if self.is_empty() else float(self.value())


# ---------------------------------------------------------------------- text
class TextEditor(QLineEdit):
    """A line edit committing on Enter or focus-out, only after the user typed.

    With ``empty_is_unset`` an emptied field reads as EMPTY (the setting goes
    back to its default) instead of the empty string.
    """

    committed = Signal()

    def __init__(self, empty_is_unset: bool = False, placeholder: str = "",
                 completions: Completions = (), parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._empty_is_unset = empty_is_unset
        self._placeholder = placeholder
        self.setPlaceholderText(placeholder)
        self.editingFinished.connect(self.flush)
        completer = _completer(completions, self)
        self._completing = completer is not None
        if completer is not None:
            self.setCompleter(completer)

    def flush(self) -> None:
        """Commit now if the user typed since the last display or commit."""
        if self.isModified():
            self.setModified(False)
            self.committed.emit()

    def pending(self) -> bool:
        """True while typed text waits for Enter or focus-out."""
        return self.isModified()

    def set_display(self, value: Any, unset: bool) -> None:
        """Show a string; None shows the placeholder; MISSING says it is required."""
        text = value if isinstance(value, str) else "" if value in (None, MISSING) else str(value)
        if value is MISSING:
            self.setPlaceholderText("required")
        elif value is None and not self._placeholder:
            self.setPlaceholderText("none")
        else:
            self.setPlaceholderText(self._placeholder)
        if text != self.text():
            self.setText(text)
        self.setModified(False)
        set_unset_look(self, unset)

    def read(self) -> Any:
        """The text (EMPTY for an emptied field that may be unset)."""
        text = strip_completion(self.text()) if self._completing else self.text()
        return EMPTY if self._empty_is_unset and not text else text

    def focus_widget(self) -> QWidget:
        """This line edit."""
        return self


# ---------------------------------------------------------------------- choices
class ChoiceEditor(_NoStrayWheel, QComboBox):
    """A combo box of fixed choices (any JSON scalars); a pick commits.

    With ``empty_text`` a first item stands for "no value" and reads as EMPTY.
    """

    committed = Signal()

    def __init__(self, choices: Sequence[Any], empty_text: str | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._values: list[Any] = []
        if empty_text is not None:
            self.addItem(empty_text)
            self._values.append(EMPTY)
        for choice in choices:
            self.addItem(choice if isinstance(choice, str) else json.dumps(choice))
            self._values.append(choice)
        self.setPlaceholderText("required")
        self.activated.connect(lambda _index: self.committed.emit())

    def set_display(self, value: Any, unset: bool) -> None:
        """Select the item equal to ``value`` (none selected for MISSING)."""
        index = next((i for i, v in enumerate(self._values)
                      if v is not EMPTY and same_value(v, value)), -1)
        if index < 0 and value is None and self._values and self._values[0] is EMPTY:
            index = 0
        if index != self.currentIndex():
            self.blockSignals(True)
            self.setCurrentIndex(index)
            self.blockSignals(False)
        set_unset_look(self, unset)

    def read(self) -> Any:
        """The chosen value, EMPTY, or ValueError when nothing is chosen."""
        index = self.currentIndex()
        if index < 0:
            raise ValueError("choose a value")
        return self._values[index]

    def has(self, value: Any) -> bool:
        """Is ``value`` one of the choices?"""
        return any(v is not EMPTY and same_value(v, value) for v in self._values)

    def focus_widget(self) -> QWidget:
        """This combo box."""
        return self

    def flush(self) -> None:
        """Nothing waits: every change commits at once."""

    def pending(self) -> bool:
        """Never: every change commits at once."""
        return False


class CheckListEditor(QWidget):
    """Several of a few choices (a file watcher's event kinds): one check box each."""

    committed = Signal()

    def __init__(self, choices: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setHorizontalSpacing(12)
        layout.setVerticalSpacing(2)
        self._boxes: list[tuple[str, QCheckBox]] = []
        columns = 2 if len(choices) > 3 else len(choices) or 1
        for i, choice in enumerate(choices):
            box = QCheckBox(choice, self)
            box.clicked.connect(lambda _checked=False: self.committed.emit())
            layout.addWidget(box, i // columns, i % columns)
            self._boxes.append((choice, box))

    def set_display(self, value: Any, unset: bool) -> None:
        """Check the boxes whose choice is in the list ``value``."""
        chosen = set(value) if isinstance(value, list) else set()
        for choice, box in self._boxes:
            box.blockSignals(True)
            box.setChecked(choice in chosen)
            box.blockSignals(False)
            set_unset_look(box, unset)

    def read(self) -> Any:
        """The checked choices, in the order of the choices."""
        return [choice for choice, box in self._boxes if box.isChecked()]

    def focus_widget(self) -> QWidget:
        """The first check box."""
        return self._boxes[0][1] if self._boxes else self

    def flush(self) -> None:
        """Nothing waits: every change commits at once."""

    def pending(self) -> bool:
        """Never: every change commits at once."""
        return False


# ---------------------------------------------------------------------- lists of strings
class StringListEditor(QWidget):
    """A short, ordered list of strings (node ids, glob patterns).

    Items are reordered by dragging, removed with the − button or Delete, and
    added by typing in the field below (Enter); with ``completions`` that field
    completes them. Plain strings are edited in place (double-click); node ids
    (``labels`` given: id → name) are shown as "id — name" and only added,
    removed or moved. Every change commits.
    """

    committed = Signal()

    def __init__(self, completions: Completions = (), placeholder: str = "add…",
                 labels: Callable[[str], str] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._labels = labels
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.list = QListWidget(self)
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.list.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                  | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.installEventFilter(self)
        layout.addWidget(self.list)
        row = QHBoxLayout()
        row.setSpacing(2)
        self.entry = QLineEdit(self)
        self.entry.setPlaceholderText(placeholder)
        completer = _completer(completions, self)
        if completer is not None:
            self.entry.setCompleter(completer)
        self.entry.returnPressed.connect(self._add)
        self.remove_button = QToolButton(self)
        self.remove_button.setText("−")
        self.remove_button.setToolTip("Remove the selected item (Delete)")
        self.remove_button.clicked.connect(self._remove)
        row.addWidget(self.entry, 1)
        row.addWidget(self.remove_button)
        layout.addLayout(row)
        self._loading = False
        self.list.model().rowsMoved.connect(self._changed)
        self.list.itemChanged.connect(self._changed)
        self._fit()

    def _fit(self) -> None:
        rows = min(max(self.list.count(), 1), 6)
        row_height = self.list.sizeHintForRow(0) if self.list.count() else \
            self.list.fontMetrics().height() + 4
        frame = 2 * self.list.frameWidth()
        self.list.setFixedHeight(rows * row_height + frame + 2)

    def _changed(self, *_args: Any) -> None:
        if not self._loading:
            self._fit()
            self.committed.emit()

    def _add(self) -> None:
        # A completion may read "id — name": the id is what is stored.
        text = strip_completion(self.entry.text())
        if not text:
            return
        self.entry.clear()
        self._append(text)
        self._changed()

    def _append(self, text: str) -> None:
        item = QListWidgetItem(text)
        item.setData(Qt.ItemDataRole.UserRole, text)
        if self._labels is None:
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        else:
            name = self._labels(text)
            if name and name != text:
                item.setText(f"{text}{COMPLETION_SEPARATOR}{name}")
            else:
                item.setText(text)
            item.setToolTip(name or "no node has this id")
        self.list.addItem(item)

    def _remove(self) -> None:
        rows = sorted({i.row() for i in self.list.selectedIndexes()}, reverse=True)
        if not rows and self.list.currentRow() >= 0:
            rows = [self.list.currentRow()]
        if not rows:
            return
        for row in rows:
            self.list.takeItem(row)
        self._changed()

    def eventFilter(self, watched: Any, event: Any) -> bool:
        """Delete removes the selected item."""
        if (watched is self.list and isinstance(event, QKeyEvent)
                and event.type() == QKeyEvent.Type.KeyPress
                and event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace)
                and self.list.state() != QAbstractItemView.State.EditingState):
            self._remove()
            return True
        return False

    def set_display(self, value: Any, unset: bool) -> None:
        """Show a list of strings (a no-op when the same list is shown)."""
        items = [v if isinstance(v, str) else json.dumps(v) for v in value] \
            if isinstance(value, list) else []
        if items != self.read():
            self._loading = True
            self.list.clear()
            for text in items:
                self._append(text)
            self._loading = False
            self._fit()
        set_unset_look(self.list, unset)

    def read(self) -> Any:
        """The items, in order (blank ones left out)."""
        texts = (self._text(self.list.item(i)) for i in range(self.list.count()))
        return [t for t in texts if t]

    def _text(self, item: QListWidgetItem) -> str:
        if self._labels is not None:
            return str(item.data(Qt.ItemDataRole.UserRole)).strip()
        return item.text().strip()

    def focus_widget(self) -> QWidget:
        """The entry field."""
        return self.entry

    def flush(self) -> None:
        """Nothing waits: every change commits at once."""

    def pending(self) -> bool:
        """Never: every change commits at once."""
        return False


# ---------------------------------------------------------------------- JSON
class JsonLineEditor(TextEditor):
    """Any JSON value on one line; parsed (and checked) when committed."""

    def __init__(self, placeholder: str = "", parent: QWidget | None = None) -> None:
        super().__init__(False, placeholder, (), parent)
        mono = QFont(self.font())
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setFamily("monospace")
        self.setFont(mono)

    def set_display(self, value: Any, unset: bool) -> None:
        """Show ``value`` as compact JSON (blank for MISSING or an unset null)."""
        blank = value is MISSING or (unset and value is None)
        text = "" if blank else json.dumps(value, ensure_ascii=False)
        self.setPlaceholderText("required (JSON)" if value is MISSING
                                else self._placeholder or "none")
        if text != self.text():
            self.setText(text)
        self.setModified(False)
        set_unset_look(self, unset)

    def read(self) -> Any:
        """The parsed value; EMPTY for blank text; ValueError for bad JSON."""
        return parse_json(self.text())


class JsonTextEditor(QPlainTextEdit):
    """JSON over a few lines (cases, branches, objects); commits on focus-out or Ctrl+Enter."""

    committed = Signal()

    def __init__(self, placeholder: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._placeholder = placeholder
        self.setPlaceholderText(placeholder)
        self.setTabChangesFocus(True)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        mono = QFont(self.font())
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setFamily("monospace")
        self.setFont(mono)
        self.textChanged.connect(self._fit)
        self._fit()

    def _fit(self, *_size: Any) -> None:
        # A plain-text document measures its height in visual lines (wrapping included).
        visual = int(self.document().documentLayout().documentSize().height())
        lines = max(2, min(10, visual))
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded if visual > 10
                                        else Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        height = self.fontMetrics().lineSpacing() * lines
        margins = self.contentsMargins()
        self.setFixedHeight(int(height + 2 * self.document().documentMargin()
                                + margins.top() + margins.bottom()) + 4)

    def resizeEvent(self, event: QResizeEvent) -> None:
        """A new width re-wraps the text: fit the height to it."""
        super().resizeEvent(event)
        self._fit()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Ctrl+Enter commits without leaving the field."""
        if (event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
                and event.modifiers() & Qt.KeyboardModifier.ControlModifier):
            self.flush()
            return
        super().keyPressEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        """Leaving the field commits."""
        super().focusOutEvent(event)
        self.flush()

    def pending(self) -> bool:
        """True while typed text waits for focus-out or Ctrl+Enter."""
        return self.document().isModified()

    def flush(self) -> None:
        """Commit now if the user typed since the last display or commit."""
        if self.document().isModified():
            self.document().setModified(False)
            self.committed.emit()

    def set_display(self, value: Any, unset: bool) -> None:
        """Show ``value`` as JSON, one item per line for longer lists and objects."""
        blank = value is MISSING or (unset and value is None)
        text = "" if blank else format_json(value)
        self.setPlaceholderText("required (JSON)" if value is MISSING
                                else self._placeholder or "not set")
        if text != self.toPlainText() and (blank or not same_value(self._current(), value)):
            self.setPlainText(text)
        self.document().setModified(False)
        set_unset_look(self, unset)

    def _current(self) -> Any:
        try:
            return parse_json(self.toPlainText())
        except ValueError:
            return MISSING

    def read(self) -> Any:
        """The parsed value; EMPTY for blank text; ValueError for bad JSON."""
        return parse_json(self.toPlainText())

    def focus_widget(self) -> QWidget:
        """This text edit."""
        return self
