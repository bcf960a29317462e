"""The inspector: the selected node's name, execution mode and settings, and properties.

It shows plain data (a :class:`loom.graph.Node`, its :class:`NodeSpec` and input
ports) and asks for changes with one signal, ``edited(node_id, field, value)``:
``field`` is ``"name"`` (the new name), ``"metadata"`` or ``"properties"`` (the
whole new dict). It never changes a node itself: the main window applies the
request through the canvas (so it can be undone) and calls :meth:`show_node`
again. Edits are requested when the user commits one (Enter, leaving the field,
a click, a pick; the code editor after a 300 ms pause), never per keystroke, and
only when the value really changed.

Sections, top to bottom: a header (name, type, docstring), Node (name),
Execution (mode and that mode's settings; an event node's source settings),
Reliability (the policy settings the mode does not own; folded), Properties
(every input that is not wired, then the type's parameters; the code node's
source in a code editor). A value the node does not set shows its default in
grey italics; the ↺ button removes the node's own value again.
"""

from __future__ import annotations

import copy
import html
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QStringListModel, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QScrollArea,
    QSizePolicy,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from loom.engine import policies
from loom.engine.sources import SOURCE_SETTINGS, check_settings
from loom.engine.strategies import STRATEGIES
from loom.engine.strategies.base import Setting, check_setting
from loom.graph import DEFAULT_EXECUTION_MODE, Node
from loom.registry import NodeSpec, PortSpec, value_matches

from . import theme
from .code_editor import CodeEditor
from .settings_widgets import (
    COMPLETION_SEPARATOR,
    EMPTY,
    MISSING,
    BoolEditor,
    CheckListEditor,
    ChoiceEditor,
    FloatEditor,
    IntEditor,
    JsonLineEditor,
    JsonTextEditor,
    StringListEditor,
    TextEditor,
    format_json,
    same_value,
)

CODE_NODE = "control.code"

#: an emptied field removes the node's own value (the default applies again)
_UNSET: Any = object()


class _AnyIds(dict[str, Any]):
    """Node-id lookups that always succeed: the inspector does not judge which ids exist."""

    def __contains__(self, key: object) -> bool:
        return True


_ANY_IDS = _AnyIds()


# ---------------------------------------------------------------------- fields
@dataclass(eq=False)
class _Field:
    """One editable value of the node: a metadata setting or a property."""

    key: str                      # unique in a form, e.g. "metadata.timeout"
    target: str                   # "metadata" or "properties"
    name: str                     # the key inside that dict
    kind: str                     # which editor (see _make_editor)
    tooltip: str = ""
    default: Any = MISSING        # shown greyed while unset; MISSING: required
    empty_text: str | None = None  # the editor's "no value" state, if it has one
    empty_value: Any = _UNSET     # what an emptied field means: unset, or null
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    placeholder: str = ""
    check: Callable[[Any], str | None] | None = None
    label_note: str = ""          # e.g. "(not a port)"

    def state(self, values: Mapping[str, Any]) -> tuple[bool, Any]:
        """(is the node's own value set, the value shown)."""
        if self.target == "metadata":
            # The engine treats a null setting as absent: its default applies.
            value = values.get(self.name)
            return (True, value) if value is not None else (False, self.default)
        if self.name in values:
            return True, values[self.name]
        return False, self.default

    def signature(self) -> tuple[Any, ...]:
        """What decides the editor widget; a change needs a new form."""
        return (self.key, self.kind, self.empty_text, self.choices, self.minimum)


def _message(messages: Iterable[str], name: str) -> str | None:
    prefix = f"metadata.{name} "
    for message in messages:
        if message.startswith(prefix):
            return message[len(prefix):]
    return None


def _setting_field(setting: Setting, metadata: Mapping[str, Any], type_defaults:
                   Mapping[str, Any], section: str, event_type: str | None = None) -> _Field:
    """A field for one metadata setting (of the mode, the event source or a policy)."""
    name = setting.name
    default = type_defaults.get(name)
    if default is None:
        default = setting.default
    value = metadata.get(name)

    def check(v: Any) -> str | None:
        message = check_setting(setting, v, _ANY_IDS)
        if message is None and section == "policy":
            message = _message(policies.parse_policy({name: v})[1], name)
        if message is None and event_type is not None:
            message = _message(check_settings(event_type, {**type_defaults, **metadata,
                                                           name: v}), name)
        return message

    kind = setting.kind
    if kind == "node_ids":
        editor = "node_list"
    elif kind == "node_id":
        editor = "node_id"
    elif kind == "list" and setting.choices:
        editor = "checklist"
    elif kind == "list" and isinstance(default, list) and default and all(
            isinstance(v, str) for v in default):
        editor = "strlist"
    elif kind in ("int", "float", "bool", "str", "choice"):
        editor = kind
    else:
        editor = "jsonblock"
    if value is not None and check_setting(setting, value, _ANY_IDS) is not None:
        # A value the typed editor cannot show (hand-edited file): edit it as JSON
        # so nothing is lost, with the problem shown under it.
        editor = "jsonblock" if editor in ("node_list", "strlist", "checklist",
                                           "jsonblock") else "json"
    tooltip = f"{name}: {setting.description}" if setting.description else name
    if default is not None:
        tooltip += f"\ndefault: {json.dumps(default)}"
    placeholder = ""
    if editor == "jsonblock" and "{" in setting.description:
        placeholder = "e.g. " + setting.description[setting.description.index("{"):]
    return _Field(
        key=f"metadata.{name}", target="metadata", name=name, kind=editor, tooltip=tooltip,
        default=default, empty_text="not set" if default is None else None,
        empty_value=_UNSET, choices=tuple(setting.choices), minimum=setting.minimum,
        placeholder=placeholder, check=check)


def _port_field(port: PortSpec, properties: Mapping[str, Any], type_id: str,
                is_param: bool) -> _Field:
    """A field for one unwired input port or property-only parameter."""
    name = port.name
    required = port.required
    default = MISSING if required else port.default

    def check(v: Any) -> str | None:
        if port.choices and not any(same_value(v, c) for c in port.choices) and not (
                v is None and port.nullable):
            return "must be one of " + ", ".join(json.dumps(c) for c in port.choices)
        if not value_matches(v, port.type, port.nullable):
            return f"must be {_type_phrase(port.type)}" + (" or null" if port.nullable else "")
        return None

    if type_id == CODE_NODE and name == "code":
        kind = "code"
    elif port.choices:
        kind = "choice"
    elif port.type in ("bool", "int", "float", "str"):
        kind = port.type
    else:
        kind = "json"
    if name in properties and check(properties[name]) is not None:
        kind = "json"  # keep a value the typed editor could not show
    if required:
        empty_text, empty_value = "required", _UNSET
    elif default is None:
        empty_text, empty_value = "none", _UNSET
    elif port.nullable:
        empty_text, empty_value = "none", None
    else:
        empty_text, empty_value = None, _UNSET
    if kind == "json":
        empty_value = _UNSET  # blank JSON clears the value; "null" says null
    if kind == "choice" and not port.nullable:
        empty_text = None  # an unset required choice shows "required" as placeholder
    what = "parameter" if is_param else "input"
    tooltip = f"{name}: {what} of type {port.type}"
    tooltip += ", required" if required else f", default {_json_or_repr(default)}"
    return _Field(key=f"properties.{name}", target="properties", name=name, kind=kind,
                  tooltip=tooltip, default=default, empty_text=empty_text,
                  empty_value=empty_value, choices=tuple(port.choices),
                  placeholder=_type_example(port.type), check=check)


def _type_phrase(type_name: str) -> str:
    return {"str": "text", "int": "an integer", "float": "a number", "bool": "true or false",
            "list": "a list (JSON like [1, 2])", "dict": "an object (JSON like {\"a\": 1})",
            }.get(type_name, f"a {type_name}")


def _type_example(type_name: str) -> str:
    return {"list": "[1, 2, 3]", "dict": '{"key": "value"}', "any": 'JSON: 1, "text", [..]'
            }.get(type_name, "")


def _json_or_repr(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _doc_html(text: str) -> str:
    """A docstring paragraph as rich text: ``code`` in a monospace font."""
    escaped = html.escape(text.strip())
    return re.sub(r"``(.+?)``", r"<code>\1</code>", escaped).replace("\n", " ")


def _first_paragraph(text: str) -> str:
    return _doc_html(text.strip().split("\n\n")[0])


@dataclass
class _Plan:
    """Everything that decides the form's widgets, computed before building any."""

    node: Node
    spec: NodeSpec | None
    mode: str = DEFAULT_EXECUTION_MODE
    event_type: str | None = None
    settings: list[_Field] = field(default_factory=list)
    source: list[_Field] = field(default_factory=list)
    policy: list[_Field] = field(default_factory=list)
    props: list[_Field] = field(default_factory=list)
    wired: list[str] = field(default_factory=list)

    def fields(self) -> list[_Field]:
        return [*self.settings, *self.source, *self.policy, *self.props]

    def signature(self) -> tuple[Any, ...]:
        if self.spec is None:
            return ("missing", self.node.id, self.node.type)
        return (self.node.id, self.node.type, id(self.spec), self.mode, self.event_type,
                tuple(f.signature() for f in self.fields()), tuple(self.wired))


def _plan(node: Node, spec: NodeSpec | None, inputs: list[PortSpec], wired: set[str]) -> _Plan:
    plan = _Plan(node, spec)
    if spec is None:
        return plan
    type_md = dict(spec.metadata)
    md = node.metadata
    mode = md.get("execution_mode") or type_md.get("execution_mode") or spec.mode
    plan.mode = str(mode)
    strategy = STRATEGIES.get(plan.mode)
    owned: frozenset[str] = frozenset()
    if strategy is not None:
        owned = strategy.owned_settings
        plan.settings = [_setting_field(s, md, type_md, "mode") for s in strategy.settings]
        if plan.mode == "event":
            event_type = md.get("event_type") or type_md.get("event_type") or next(
                (s.default for s in strategy.settings if s.name == "event_type"), None)
            plan.event_type = str(event_type)
            plan.source = [_setting_field(s, md, type_md, "source", plan.event_type)
                           for s in SOURCE_SETTINGS.get(plan.event_type, ())]
    plan.policy = [_setting_field(s, md, type_md, "policy") for s in policies.SETTINGS
                   if s.name not in owned]
    shown: set[str] = set()
    for port in inputs:
        if port.name in wired:
            plan.wired.append(port.name)
        elif port.name not in shown:
            plan.props.append(_port_field(port, node.properties, spec.type_id, False))
        shown.add(port.name)
    for port in spec.params:
        if port.name not in shown:
            plan.props.append(_port_field(port, node.properties, spec.type_id, True))
            shown.add(port.name)
    for name in node.properties:
        if name not in shown:
            stray = PortSpec(name, "any", None, True)
            extra = _port_field(stray, node.properties, spec.type_id, False)
            extra.kind, extra.label_note = "json", "not a port"
            extra.tooltip = (f"{name}: not an input of {spec.type_id}; the engine ignores it. "
                             "Reset removes it.")
            plan.props.append(extra)
    return plan


# ---------------------------------------------------------------------- widgets
class _CodeFieldEditor(CodeEditor):
    """The code editor with the editor protocol of settings_widgets."""

    committed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text_committed.connect(lambda _text: self.committed.emit())
        self.setMinimumHeight(self.fontMetrics().lineSpacing() * 12)

    def set_display(self, value: Any, unset: bool) -> None:
        self.set_code(value if isinstance(value, str) else "")

    def read(self) -> Any:
        return self.code()

    def focus_widget(self) -> QWidget:
        return self

    def flush(self) -> None:
        self.commit()

    def pending(self) -> bool:
        return self.has_pending_commit()


def _make_editor(f: _Field, node_ids: QStringListModel,
                 labels: Callable[[str], str]) -> QWidget:
    kind = f.kind
    editor: QWidget
    if kind == "bool":
        editor = BoolEditor()
    elif kind == "int":
        editor = IntEditor(f.minimum, f.empty_text)
    elif kind == "float":
        editor = FloatEditor(f.minimum, f.empty_text)
    elif kind == "str":
        editor = TextEditor(empty_is_unset=f.default is None, placeholder=f.placeholder)
    elif kind == "choice":
        editor = ChoiceEditor(f.choices, f.empty_text)
    elif kind == "node_id":
        editor = TextEditor(empty_is_unset=True, placeholder="node id", completions=node_ids)
    elif kind == "node_list":
        editor = StringListEditor(node_ids, "add a node id…", labels=labels)
    elif kind == "strlist":
        editor = StringListEditor((), "add…")
    elif kind == "checklist":
        editor = CheckListEditor([str(c) for c in f.choices])
    elif kind == "jsonblock":
        editor = JsonTextEditor(f.placeholder)
    elif kind == "code":
        editor = _CodeFieldEditor()
    else:
        editor = JsonLineEditor(f.placeholder)
    editor.setToolTip(f.tooltip)
    return editor


class _Row(QWidget):
    """An editor with its reset button and the inline error under it."""

    def __init__(self, f: _Field, editor: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.field, self.editor = f, editor
        #: the error came from a refused commit: keep the user's text until they fix it
        self.holds_rejected = False
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(1)
        line = QHBoxLayout()
        line.setContentsMargins(0, 0, 0, 0)
        line.setSpacing(3)
        line.addWidget(editor, 1)
        self.reset = QToolButton(self)
        self.reset.setAutoRaise(True)
        self.reset.setText("↺")
        self.reset.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        policy = self.reset.sizePolicy()
        policy.setRetainSizeWhenHidden(True)  # rows stay aligned whether set or not
        self.reset.setSizePolicy(policy)
        known = f.default is not MISSING and f.default is not None
        self.reset.setToolTip("Reset to default" + (
            f" ({_json_or_repr(f.default)})" if known else ": remove this node's value"))
        line.addWidget(self.reset, 0, Qt.AlignmentFlag.AlignTop)
        outer.addLayout(line)
        self.error = QLabel(self)
        self.error.setWordWrap(True)
        self.error.setStyleSheet(
            f"color: {theme.error_text(self.palette()).name()}; font-size: 90%;")
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()
        outer.addWidget(self.error)

    def show_error(self, message: str | None, rejected: bool = False) -> None:
        self.holds_rejected = bool(message) and rejected
        self.error.setText(message or "")
        self.error.setVisible(bool(message))

    def display(self, values: Mapping[str, Any]) -> None:
        is_set, value = self.field.state(values)
        self.editor.set_display(value, not is_set)  # type: ignore[attr-defined]
        self.reset.setVisible(self.field.name in values)
        check = self.field.check
        message = check(value) if is_set and check is not None else None
        self.show_error(message)


class _Binding:
    """The node one form edits, and the values its edits start from."""

    def __init__(self, node: Node) -> None:
        self.node_id = node.id
        self.name = node.name
        self.properties: dict[str, Any] = copy.deepcopy(node.properties)
        self.metadata: dict[str, Any] = copy.deepcopy(node.metadata)

    def values(self, target: str) -> dict[str, Any]:
        return self.metadata if target == "metadata" else self.properties


class _Collapsible(QWidget):
    """A section whose body folds away under its header button."""

    def __init__(self, title: str, open_: bool, on_toggle: Callable[[bool], None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.button = QToolButton(self)
        self.button.setText(title)
        self.button.setCheckable(True)
        self.button.setChecked(open_)
        self.button.setAutoRaise(True)
        self.button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        font = QFont(self.button.font())
        font.setBold(True)
        self.button.setFont(font)
        self.body = QWidget(self)
        layout.addWidget(self.button)
        layout.addWidget(self.body)
        self._on_toggle = on_toggle
        self.button.toggled.connect(self._toggled)
        self._show(open_)

    def _show(self, open_: bool) -> None:
        self.button.setArrowType(Qt.ArrowType.DownArrow if open_ else Qt.ArrowType.RightArrow)
        self.body.setVisible(open_)

    def _toggled(self, open_: bool) -> None:
        self._show(open_)
        self._on_toggle(open_)

    def is_open(self) -> bool:
        return self.button.isChecked()


class _Form(QWidget):
    """The widgets built for one plan; updated in place while the plan's shape holds."""

    def __init__(self, plan: _Plan, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plan = plan
        self.binding = _Binding(plan.node)
        self.rows: dict[str, _Row] = {}
        self.dead = False
        self.title: QLabel | None = None
        self.name_edit: QLineEdit | None = None
        self.mode_box: ChoiceEditor | None = None
        self.reliability: _Collapsible | None = None
        self.code: _CodeFieldEditor | None = None
        self.labels: list[QLabel] = []

    def label(self, text: str, tooltip: str = "") -> QLabel:
        """A row label; all of a form's labels share one width, so the fields line up."""
        label = QLabel(text, self)
        label.setToolTip(tooltip)
        self.labels.append(label)
        return label

    def align_labels(self) -> None:
        width = max((label.sizeHint().width() for label in self.labels), default=0)
        for label in self.labels:
            label.setMinimumWidth(width)

    def focus_key(self) -> str | None:
        focus = QApplication.focusWidget()
        if focus is None or not self.isAncestorOf(focus):
            return None
        if self.name_edit is not None and focus is self.name_edit:
            return "name"
        if self.mode_box is not None and focus is self.mode_box:
            return "mode"
        for key, row in self.rows.items():
            if row.isAncestorOf(focus):
                return key
        return None

    def focus(self, key: str) -> None:
        if key == "name" and self.name_edit is not None:
            self.name_edit.setFocus()
        elif key == "mode" and self.mode_box is not None:
            self.mode_box.setFocus()
        elif key in self.rows:
            self.rows[key].editor.focus_widget().setFocus()  # type: ignore[attr-defined]

    def flush(self) -> None:
        """Commit whatever was typed but not committed yet (before the form goes away)."""
        if self.name_edit is not None and self.name_edit.isModified():
            self.name_edit.editingFinished.emit()
        for row in list(self.rows.values()):
            if not self.dead:
                row.editor.flush()  # type: ignore[attr-defined]


def _refresh_rows(form: _Form, target: str, old: Mapping[str, Any],
                  new: Mapping[str, Any]) -> None:
    """Show ``new`` values in the rows of one dict, leaving the user's input alone.

    A row holding input not committed yet, or refused (bad JSON, with its
    message), keeps it until its own stored value changes: another field's edit,
    or any other change to the graph, must not wipe what the user is typing.
    """
    for row in form.rows.values():
        if row.field.target != target:
            continue
        busy = row.holds_rejected or row.editor.pending()  # type: ignore[attr-defined]
        if busy and _same_state(row.field, old, new):
            continue
        row.display(new)


def _same_state(f: _Field, old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    (was_set, before), (is_set, after) = f.state(old), f.state(new)
    return was_set == is_set and same_value(before, after)


def _section(title: str, parent: QWidget) -> QWidget:
    label = QLabel(title, parent)
    font = QFont(label.font())
    font.setBold(True)
    label.setFont(font)
    return label


def _separator(parent: QWidget) -> QFrame:
    line = QFrame(parent)
    line.setFrameShape(QFrame.Shape.HLine)
    line.setFrameShadow(QFrame.Shadow.Sunken)
    return line


def _new_form_layout() -> QFormLayout:
    form = QFormLayout()
    form.setContentsMargins(8, 2, 0, 6)
    form.setHorizontalSpacing(10)
    form.setVerticalSpacing(5)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
    return form


def _grey(label: QLabel) -> QLabel:
    """Secondary text: the placeholder grey, readable but quieter than values."""
    palette = QPalette(label.palette())
    palette.setColor(QPalette.ColorRole.WindowText,
                     palette.color(QPalette.ColorRole.PlaceholderText))
    label.setPalette(palette)
    return label


# ---------------------------------------------------------------------- the inspector
class Inspector(QWidget):
    """Shows one node and emits edit requests for it.

    Signals:
        edited(str, str, object): ``(node_id, field, value)`` with ``field``
            ``"name"`` (a str), ``"metadata"`` or ``"properties"`` (the whole
            new dict). Emitted once per committed change, never for a value that
            did not change.
    """

    edited = Signal(str, str, object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumWidth(260)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.scroll = QScrollArea(self)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout.addWidget(self.scroll)
        self._form: _Form | None = None
        self._signature: tuple[Any, ...] | None = None
        self._node_ids = QStringListModel(self)
        self._node_names: dict[str, str] = {}
        self._reliability_open: dict[str, bool] = {}  # per node id, once the user chose
        self._pending: tuple[Any, ...] | None = None
        self._showing = False
        self._show_empty()

    # ------------------------------------------------------------------ public API
    def show_node(self, node: Node | None, spec: NodeSpec | None = None,
                  inputs: list[PortSpec] | None = None, wired: set[str] | None = None, *,
                  known_nodes: Mapping[str, str] | None = None) -> None:
        """Show ``node`` (``None``: nothing selected).

        ``spec`` is its type (``None``: not installed; the raw data is shown
        read-only), ``inputs`` its input ports as the engine sees them
        (``loom.engine.plan.ports_of``), ``wired`` the names of inputs that have a
        wire (they get no property field). ``known_nodes`` (id → name) feeds the
        completion of node-id settings. Calling it again for the same node updates
        the fields in place, keeping focus and scrolling.
        """
        self._pending = (node, spec, list(inputs or []), set(wired or ()), known_nodes)
        if self._showing:
            return  # called from an edit we emitted while showing: applied below
        self._showing = True
        try:
            while self._pending is not None:
                args, self._pending = self._pending, None
                self._show(*args)
        finally:
            self._showing = False

    def node_id(self) -> str | None:
        """The id of the node shown, if any."""
        return self._form.binding.node_id if self._form is not None else None

    def show_code_error(self, line: int | None) -> None:
        """Mark a line of the code node's source (after a failed run); None clears."""
        if self._form is not None and self._form.code is not None:
            self._form.code.show_error_line(line)

    def code_editor(self) -> CodeEditor | None:
        """The code node's editor, when a code node is shown."""
        return self._form.code if self._form is not None else None

    def editor_for(self, key: str) -> QWidget | None:
        """The editor of a field: ``"name"``, ``"mode"``, ``"metadata.<setting>"`` or
        ``"properties.<name>"`` (for tests and for focusing a field from a message)."""
        form = self._form
        if form is None:
            return None
        if key == "name":
            return form.name_edit
        if key == "mode":
            return form.mode_box
        row = form.rows.get(key)
        return row.editor if row is not None else None

    def field_error(self, key: str) -> str:
        """The inline error shown under a field ('' when none)."""
        row = self._form.rows.get(key) if self._form is not None else None
        return row.error.text() if row is not None and not row.error.isHidden() else ""

    def reset_field(self, key: str) -> None:
        """Remove the node's own value of a field (as its ↺ button does)."""
        if self._form is not None and key in self._form.rows:
            self._commit(self._form, self._form.rows[key], _UNSET)

    def reliability_open(self) -> bool:
        """Is the Reliability section unfolded?"""
        form = self._form
        return bool(form and form.reliability and form.reliability.is_open())

    # ------------------------------------------------------------------ showing
    def _show(self, node: Node | None, spec: NodeSpec | None, inputs: list[PortSpec],
              wired: set[str], known_nodes: Mapping[str, str] | None) -> None:
        if known_nodes is not None:
            self._node_names = dict(known_nodes)
            self._node_ids.setStringList(
                [f"{i}{COMPLETION_SEPARATOR}{n}" if n and n != i else i
                 for i, n in known_nodes.items()])
        if node is None:
            self._retire_form(flush=True)
            self._show_empty()
            return
        plan = _plan(node, spec, inputs, wired)
        signature = plan.signature()
        form = self._form
        if form is not None and not form.dead and signature == self._signature:
            self._update(form, plan)
            return
        same_node = form is not None and form.binding.node_id == node.id
        focus_key = form.focus_key() if form is not None and same_node else None
        scroll = self.scroll.verticalScrollBar().value() if same_node else 0
        # Typed-but-uncommitted text (a pending code edit, say) is committed before
        # its form goes; it belongs to the node that form shows.
        self._retire_form(flush=True)
        if self._pending is not None:
            return  # the flush led to a newer show_node: that one wins
        new = self._build(plan)
        self._form, self._signature = new, signature
        self.scroll.setWidget(new)
        if focus_key is not None:
            new.focus(focus_key)
        if scroll:
            new.adjustSize()
            self.scroll.verticalScrollBar().setValue(scroll)
            # Layouts settle on the next event-loop turn; set it again then.
            QTimer.singleShot(0, lambda: self._restore_scroll(new, scroll))

    def _restore_scroll(self, form: _Form, value: int) -> None:
        if self._form is form and not form.dead:
            self.scroll.verticalScrollBar().setValue(value)

    def _retire_form(self, flush: bool) -> None:
        form = self._form
        if form is None:
            return
        if flush and not form.dead:
            form.flush()
        form.dead = True
        self._form, self._signature = None, None
        taken = self.scroll.takeWidget()
        if taken is not None:
            # Later, not now: this may run inside a signal of one of its widgets.
            taken.hide()
            taken.deleteLater()

    def _show_empty(self) -> None:
        empty = QWidget()
        layout = QVBoxLayout(empty)
        label = _grey(QLabel("Select a node to see its settings and properties.", empty))
        label.setWordWrap(True)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addStretch(1)
        layout.addWidget(label)
        layout.addStretch(2)
        self.scroll.setWidget(empty)

    def _update(self, form: _Form, plan: _Plan) -> None:
        node = plan.node
        old = form.binding
        form.binding = _Binding(node)
        form.plan = plan
        if form.title is not None:
            form.title.setText(node.name or (plan.spec.name if plan.spec else node.type))
        name_edit = form.name_edit
        if name_edit is not None and name_edit.text() != node.name and not (
                name_edit.isModified() and old.name == node.name):
            name_edit.setText(node.name)
        if form.mode_box is not None:
            form.mode_box.set_display(plan.mode, "execution_mode" not in node.metadata)
        for target in ("metadata", "properties"):
            _refresh_rows(form, target, old.values(target), form.binding.values(target))

    def _build(self, plan: _Plan) -> _Form:
        form = _Form(plan)
        layout = QVBoxLayout(form)
        layout.setContentsMargins(10, 8, 10, 10)
        layout.setSpacing(4)
        self._build_header(form, layout)
        if plan.spec is None:
            self._build_missing(form, layout)
        else:
            self._build_name(form, layout)
            layout.addWidget(_separator(form))
            self._build_execution(form, layout)
            self._build_reliability(form, layout)
            layout.addWidget(_separator(form))
            self._build_properties(form, layout)
        layout.addStretch(1)
        form.align_labels()
        return form

    def _build_name(self, form: _Form, layout: QVBoxLayout) -> None:
        node, spec = form.plan.node, form.plan.spec
        assert spec is not None
        layout.addWidget(_section("Node", form))
        node_form = _new_form_layout()
        form.name_edit = QLineEdit(node.name, form)
        form.name_edit.setPlaceholderText(spec.name)
        form.name_edit.setToolTip("The node's label on the canvas (its id stays the same)")
        form.name_edit.editingFinished.connect(lambda: self._commit_name(form))
        node_form.addRow(form.label("name", form.name_edit.toolTip()), form.name_edit)
        layout.addLayout(node_form)

    def _build_execution(self, form: _Form, layout: QVBoxLayout) -> None:
        plan, node = form.plan, form.plan.node
        layout.addWidget(_section("Execution", form))
        exec_form = _new_form_layout()
        modes = list(STRATEGIES)
        if plan.mode not in modes:
            modes.append(plan.mode)
        form.mode_box = ChoiceEditor(modes, None, form)
        for i, mode in enumerate(modes):
            strategy = STRATEGIES.get(mode)
            doc = (type(strategy).__doc__ or "").strip() if strategy else "unknown mode"
            form.mode_box.setItemData(i, doc, Qt.ItemDataRole.ToolTipRole)
        form.mode_box.setToolTip("How the node runs: each mode has its own settings below")
        form.mode_box.set_display(plan.mode, "execution_mode" not in node.metadata)
        form.mode_box.committed.connect(lambda: self._commit_mode(form))
        mode_row = QWidget(form)
        mode_layout = QVBoxLayout(mode_row)
        mode_layout.setContentsMargins(0, 0, 0, 0)
        mode_layout.setSpacing(1)
        mode_layout.addWidget(form.mode_box)
        if plan.mode not in STRATEGIES:
            bad = QLabel(f"unknown execution mode {plan.mode!r}", mode_row)
            bad.setStyleSheet(f"color: {theme.error_text(self.palette()).name()};")
            mode_layout.addWidget(bad)
        exec_form.addRow(form.label("mode", form.mode_box.toolTip()), mode_row)
        self._add_rows(form, exec_form, plan.settings)
        if plan.source:
            exec_form.addRow(_grey(QLabel(f"{plan.event_type} source", form)))
            self._add_rows(form, exec_form, plan.source)
        layout.addLayout(exec_form)

    def _build_reliability(self, form: _Form, layout: QVBoxLayout) -> None:
        plan = form.plan
        if not plan.policy:
            return
        node_id = plan.node.id
        open_ = self._reliability_open.get(node_id)
        if open_ is None:
            # Folded unless the node already uses a policy.
            open_ = any(f.state(plan.node.metadata)[0] for f in plan.policy)
        section = _Collapsible(
            "Reliability", open_,
            lambda state: self._reliability_open.__setitem__(node_id, state), form)
        section.button.setToolTip("Timeout, retries, rate limit and what a failure does")
        policy_form = _new_form_layout()
        section.body.setLayout(policy_form)
        self._add_rows(form, policy_form, plan.policy)
        form.reliability = section
        layout.addWidget(section)

    def _build_properties(self, form: _Form, layout: QVBoxLayout) -> None:
        plan = form.plan
        layout.addWidget(_section("Properties", form))
        props_form = _new_form_layout()
        if not plan.props:
            props_form.addRow(_grey(QLabel("No properties to set.", form)))
        self._add_rows(form, props_form, plan.props)
        if plan.wired:
            wired = _grey(QLabel("Wired: " + ", ".join(plan.wired), form))
            wired.setWordWrap(True)
            wired.setToolTip("Inputs that receive a wire take their value from it")
            props_form.addRow(wired)
        layout.addLayout(props_form)

    def _build_header(self, form: _Form, layout: QVBoxLayout) -> None:
        node, spec = form.plan.node, form.plan.spec
        title = QLabel(node.name or (spec.name if spec else node.type), form)
        font = QFont(title.font())
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.25)
        title.setFont(font)
        title.setWordWrap(True)
        form.title = title
        layout.addWidget(title)
        kind = f"{spec.name} · {spec.type_id}" if spec else node.type
        sub = _grey(QLabel(f"{kind} · id {node.id}", form))
        sub.setWordWrap(True)
        sub.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(sub)
        if spec is not None and spec.description:
            about = _grey(QLabel(_first_paragraph(spec.description), form))
            about.setTextFormat(Qt.TextFormat.RichText)
            about.setWordWrap(True)
            tooltip = "<p>" + "</p><p>".join(
                _doc_html(p) for p in spec.description.split("\n\n")) + "</p>"
            about.setToolTip(tooltip)
            title.setToolTip(tooltip)
            layout.addWidget(about)
        layout.addSpacing(4)

    def _build_missing(self, form: _Form, layout: QVBoxLayout) -> None:
        node = form.plan.node
        note = QFrame(form)
        note.setObjectName("missingNote")
        note.setFrameShape(QFrame.Shape.StyledPanel)
        # From the theme: the palette's base tinted amber, its text kept readable on it.
        note.setStyleSheet(theme.warning_panel_style(self.palette(), "QFrame#missingNote"))
        note_layout = QHBoxLayout(note)
        icon = QLabel(note)
        icon.setPixmap(self.style().standardIcon(
            QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(20, 20))
        text = QLabel(f"type {node.type} is not installed. The node keeps its data and is "
                      "saved back unchanged; it cannot run until the type is installed.", note)
        text.setWordWrap(True)
        note_layout.addWidget(icon, 0, Qt.AlignmentFlag.AlignTop)
        note_layout.addWidget(text, 1)
        layout.addWidget(note)
        raw = _new_form_layout()
        raw.addRow(form.label("name"), QLabel(node.name or "—", form))
        raw.addRow(form.label("type"), QLabel(node.type, form))
        layout.addLayout(raw)
        for title, value in (("properties", node.properties), ("metadata", node.metadata)):
            layout.addWidget(_grey(QLabel(title, form)))
            view = QPlainTextEdit(form)
            view.setReadOnly(True)
            view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
            view.setPlainText(format_json(value) if value else "{}")
            mono = QFont(view.font())
            mono.setFamily("monospace")
            mono.setStyleHint(QFont.StyleHint.Monospace)
            view.setFont(mono)
            lines = min(12, max(1, view.document().lineCount()))
            view.setFixedHeight(view.fontMetrics().lineSpacing() * lines + 14)
            layout.addWidget(view)

    def _add_rows(self, form: _Form, layout: QFormLayout, fields: list[_Field]) -> None:
        for f in fields:
            editor = _make_editor(f, self._node_ids,
                                  lambda i: self._node_names.get(i, ""))
            row = _Row(f, editor, form)
            row.display(form.binding.values(f.target))
            editor.committed.connect(  # type: ignore[attr-defined]
                lambda r=row: self._commit(form, r, None))
            row.reset.clicked.connect(lambda _c=False, r=row: self._commit(form, r, _UNSET))
            label = form.label(f.name + (f" ({f.label_note})" if f.label_note else ""),
                               f.tooltip)
            if f.default is MISSING and f.kind != "code":
                font = QFont(label.font())
                font.setBold(True)
                label.setFont(font)
                label.setToolTip(f.tooltip + "\n(bold: required)")
            if f.kind == "code":
                form.code = editor  # type: ignore[assignment]
                form.labels.remove(label)  # on a line of its own: no column to align
                layout.addRow(label)
                layout.addRow(row)
            else:
                layout.addRow(label, row)
            form.rows[f.key] = row

    # ------------------------------------------------------------------ committing
    def _commit_name(self, form: _Form) -> None:
        if form.dead or form.name_edit is None:
            return
        form.name_edit.setModified(False)
        name = form.name_edit.text().strip()
        if name == form.binding.name:
            return
        form.binding.name = name
        if form.title is not None and form.plan.spec is not None:
            form.title.setText(name or form.plan.spec.name)
        self.edited.emit(form.binding.node_id, "name", name)

    def _commit_mode(self, form: _Form) -> None:
        if form.dead or form.mode_box is None:
            return
        mode = form.mode_box.read()
        metadata = form.binding.metadata
        if "execution_mode" in metadata and same_value(metadata["execution_mode"], mode):
            return
        if "execution_mode" not in metadata and mode == form.plan.mode:
            return
        self._emit(form, "metadata", {**metadata, "execution_mode": mode})

    def _commit(self, form: _Form, row: _Row, forced: Any) -> None:
        """The user committed a field (``forced``: _UNSET for a reset)."""
        if form.dead:
            return
        f = row.field
        values = form.binding.values(f.target)
        if forced is _UNSET:
            value = _UNSET
        else:
            try:
                value = row.editor.read()  # type: ignore[attr-defined]
            except ValueError as exc:
                row.show_error(str(exc), rejected=True)
                return
        if value is EMPTY:
            value = f.empty_value
        if value is _UNSET:
            if f.name not in values:
                row.display(values)  # nothing to remove: just show the default again
                return
            new = {k: v for k, v in values.items() if k != f.name}
            row.show_error(None)
        else:
            message = f.check(value) if f.check is not None else None
            if message:
                row.show_error(message, rejected=True)
                return
            is_set, current = f.state(values)
            if (is_set and same_value(current, value)) or (
                    not is_set and current is not MISSING and same_value(current, value)):
                row.display(values)  # unchanged: drop a stale error, keep the look
                return
            new = {**values, f.name: value}
        self._emit(form, f.target, new, row)

    def _emit(self, form: _Form, target: str, new: dict[str, Any],
              committed: _Row | None = None) -> None:
        old = form.binding.values(target)
        if target == "metadata":
            form.binding.metadata = new
        else:
            form.binding.properties = new
        # Show the result at once (greyed or not); show_node will confirm or correct it.
        if committed is not None:
            committed.display(new)
        _refresh_rows(form, target, old, new)
        if target == "metadata" and form.mode_box is not None:
            form.mode_box.set_display(new.get("execution_mode", form.plan.mode),
                                      "execution_mode" not in new)
        self.edited.emit(form.binding.node_id, target, copy.deepcopy(new))
