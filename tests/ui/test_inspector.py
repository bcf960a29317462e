"""The inspector: per-mode settings, typed property widgets, edit requests; the code editor."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QColor, QFocusEvent
from PySide6.QtWidgets import QLabel, QWidget

from loom.engine.plan import ports_of
from loom.graph import Node
from loom.registry import Registry, node
from loom.ui.code_editor import CodeEditor
from loom.ui.inspector import Inspector
from loom.ui.settings_widgets import (
    BoolEditor,
    CheckListEditor,
    ChoiceEditor,
    FloatEditor,
    IntEditor,
    JsonLineEditor,
    JsonTextEditor,
    StringListEditor,
    TextEditor,
)


@node(id="test.typed", category="Test")
def typed(text: str, flag: bool = False, count: int = 3, ratio: float = 0.5,
          label: str = "hi", pick: Literal["a", "b"] = "a", items: list = (),  # type: ignore[assignment]
          mapping: dict | None = None, anything: Any = None, width: int | None = None) -> str:
    """A node with one property of every kind.

    Used by the inspector tests.
    """
    return text


@pytest.fixture(scope="module")
def registry() -> Registry:
    reg = Registry.standard(entry_points=False)
    reg.add_function(typed, origin="tests")
    return reg


class Harness:
    """An inspector plus what the main window does: apply an edit, show the node again."""

    def __init__(self, qtbot: Any, registry: Registry, apply: bool = False) -> None:
        self.registry = registry
        self.inspector = Inspector()
        self.inspector.resize(380, 700)
        qtbot.addWidget(self.inspector)
        self.edits: list[tuple[str, str, Any]] = []
        self.node: Node | None = None
        self.wired: set[str] = set()
        self.apply = apply
        self.inspector.edited.connect(self._edited)

    def _edited(self, node_id: str, field: str, value: Any) -> None:
        self.edits.append((node_id, field, value))
        if self.apply and self.node is not None:
            self.show(dataclasses.replace(self.node, **{field: value}))

    def show(self, node_: Node | None, wired: set[str] | None = None) -> None:
        self.node = node_
        if wired is not None:
            self.wired = wired
        if node_ is None:
            self.inspector.show_node(None, None, [], set())
            return
        spec = self.registry.get(node_.type)
        inputs = ports_of(node_, self.registry)[0] if spec is not None else []
        self.inspector.show_node(node_, spec, inputs, self.wired)

    def editor(self, key: str) -> Any:
        editor = self.inspector.editor_for(key)
        assert editor is not None, f"no editor for {key}"
        return editor

    def keys(self, prefix: str) -> list[str]:
        form = self.inspector._form
        assert form is not None
        return [k.removeprefix(prefix) for k in form.rows if k.startswith(prefix)]

    def policy_keys(self) -> list[str]:
        form = self.inspector._form
        assert form is not None
        return [f.name for f in form.plan.policy]

    def mode_keys(self) -> list[str]:
        form = self.inspector._form
        assert form is not None
        return [f.name for f in (*form.plan.settings, *form.plan.source)]


def show_unpainted(widget: QWidget) -> None:
    """Show a widget (layouts run, focus works) with painting switched off.

    The first large paint in a process starts Qt's private GUI thread pool (two
    worker threads holding an eventfd each, ended only after 30 s idle), which the
    leak check would pin on whichever test painted first. These tests need layout
    and focus, not pixels.
    """
    widget.setUpdatesEnabled(False)
    widget.show()


def commit_text(qtbot: Any, edit: Any, text: str) -> None:
    """Type into a line edit as a user would, then press Enter."""
    edit.setFocus()
    edit.selectAll()
    qtbot.keyClicks(edit, text)
    qtbot.keyClick(edit, Qt.Key.Key_Return)


# ---------------------------------------------------------------------- what is shown
def test_nothing_selected_shows_an_empty_state(qtbot: Any, registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.show(None)
    assert h.inspector.node_id() is None
    texts = [label.text() for label in h.inspector.findChildren(QLabel)]
    assert any("Select a node" in t for t in texts)


def test_switch_shows_cases_and_default_and_the_policies(qtbot: Any, registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.show(Node("s", "control.switch", metadata={"execution_mode": "switch"}))
    assert h.mode_keys() == ["cases", "default"]
    assert h.policy_keys() == ["timeout", "max_retries", "retry_wait", "rate_limit", "on_error"]
    assert isinstance(h.editor("metadata.cases"), JsonTextEditor)
    assert isinstance(h.editor("metadata.default"), TextEditor)
    # The switch's default cases come from its type and show as its value.
    assert "case_0" in h.editor("metadata.cases").toPlainText()


def test_loop_shows_loop_settings_and_leaves_out_what_it_owns(qtbot: Any,
                                                              registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.show(Node("l", "control.for_each", metadata={"execution_mode": "loop"}), wired={"items"})
    keys = h.mode_keys()
    for name in ("loop_type", "body", "max_iterations", "batch_size", "parallel",
                 "max_concurrent", "continue_on_error", "loop_back_to"):
        assert name in keys
    assert "max_retries" not in h.policy_keys() and "retry_wait" not in h.policy_keys()
    # The loop's timeout is a deadline for the whole loop: a loop setting (issue 10).
    assert "timeout" in keys and "timeout" not in h.policy_keys()
    assert isinstance(h.editor("metadata.body"), StringListEditor)
    assert isinstance(h.editor("metadata.parallel"), BoolEditor)
    assert isinstance(h.editor("metadata.max_iterations"), IntEditor)
    assert h.editor("metadata.max_iterations").minimum() <= -1  # -1: no limit
    assert "items" not in h.keys("properties.")  # wired


def test_parallel_owns_timeout_on_error_and_retries(qtbot: Any, registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.show(Node("p", "control.parallel", metadata={"execution_mode": "parallel"}))
    assert "timeout" in h.mode_keys() and "on_error" in h.mode_keys()
    # max_retries retries each failed branch (issue 10): the node's own settings too.
    assert "max_retries" in h.mode_keys() and "retry_wait" in h.mode_keys()
    assert h.policy_keys() == ["rate_limit"]


def test_event_timer_shows_its_source_settings(qtbot: Any, registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.show(Node("t", "event.timer", metadata={"execution_mode": "event", "event_type": "timer",
                                              "interval": 2.5}))
    keys = h.mode_keys()
    assert keys[:1] == ["event_type"]
    assert {"interval", "count", "immediate", "max_concurrent_waves", "overflow"} <= set(keys)
    assert "watch_path" not in keys and "port" not in keys
    interval = h.editor("metadata.interval")
    assert isinstance(interval, FloatEditor) and interval.value() == 2.5
    assert h.editor("metadata.count").text() == "not set"  # default None


def test_event_file_change_shows_file_settings(qtbot: Any, registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.show(Node("f", "event.file_change", metadata={"execution_mode": "event",
                                                    "event_type": "file_change"}))
    keys = h.mode_keys()
    assert {"watch_path", "patterns", "recursive", "debounce_ms", "events"} <= set(keys)
    assert "interval" not in keys
    assert isinstance(h.editor("metadata.events"), CheckListEditor)
    assert isinstance(h.editor("metadata.patterns"), StringListEditor)


def test_event_schedule_shows_cron_and_zone_and_flags_bad_ones(qtbot: Any,
                                                                registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.show(Node("s", "event.schedule", metadata={
        "execution_mode": "event", "event_type": "schedule", "cron": "61 * * * *",
        "timezone": "Mars/Olympus"}))
    keys = h.mode_keys()
    assert {"cron", "timezone", "count", "max_concurrent_waves"} <= set(keys)
    assert "interval" not in keys
    assert isinstance(h.editor("metadata.cron"), TextEditor)
    assert h.editor("metadata.timezone").text() == "Mars/Olympus"
    assert "not a valid cron expression (Bad minute)" in h.inspector.field_error("metadata.cron")
    assert "not a known IANA time zone" in h.inspector.field_error("metadata.timezone")


def test_a_mode_change_requests_new_metadata_and_shows_the_new_settings(
        qtbot: Any, registry: Registry) -> None:
    h = Harness(qtbot, registry, apply=True)
    h.show(Node("n", "text.upper", metadata={"timeout": 3}))
    assert h.mode_keys() == []
    box = h.editor("mode")
    box.setCurrentIndex(box.findText("loop"))
    box.activated.emit(box.currentIndex())
    assert h.edits == [("n", "metadata", {"timeout": 3, "execution_mode": "loop"})]
    assert "loop_type" in h.mode_keys()


def test_changing_the_event_type_shows_that_sources_settings(qtbot: Any,
                                                            registry: Registry) -> None:
    h = Harness(qtbot, registry, apply=True)
    h.show(Node("t", "event.timer", metadata={"execution_mode": "event", "event_type": "timer",
                                              "interval": 1.0}))
    box = h.editor("metadata.event_type")
    box.setCurrentIndex(box.findText("http_request"))
    box.activated.emit(box.currentIndex())
    assert h.edits == [("t", "metadata", {"execution_mode": "event",
                                          "event_type": "http_request", "interval": 1.0})]
    keys = h.mode_keys()
    assert {"host", "port", "path", "method"} <= set(keys) and "interval" not in keys


def test_typed_widgets_follow_the_port_types(qtbot: Any, registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.show(Node("x", "test.typed"), wired={"text"})
    kinds = {key: type(h.editor("properties." + key)) for key in h.keys("properties.")}
    assert kinds == {"flag": BoolEditor, "count": IntEditor, "ratio": FloatEditor,
                     "label": TextEditor, "pick": ChoiceEditor, "items": JsonLineEditor,
                     "mapping": JsonLineEditor, "anything": JsonLineEditor,
                     "width": IntEditor}
    # Unset values show their default, greyed (italic).
    count = h.editor("properties.count")
    assert count.value() == 3 and count.font().italic()
    assert h.editor("properties.label").text() == "hi"
    assert h.editor("properties.width").text() == "none"  # int | None = None


def test_a_value_the_widget_cannot_show_is_kept_as_json(qtbot: Any, registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.show(Node("x", "test.typed", properties={"count": "many"}))
    editor = h.editor("properties.count")
    assert isinstance(editor, JsonLineEditor) and editor.text() == '"many"'
    assert "integer" in h.inspector.field_error("properties.count")


def test_a_missing_type_shows_its_raw_data_read_only(qtbot: Any, registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.show(Node("m", "acme.widget", name="W", properties={"a": 1},
                metadata={"timeout": 3}))
    texts = " ".join(label.text() for label in h.inspector.findChildren(QLabel))
    assert "type acme.widget is not installed" in texts
    assert h.inspector.editor_for("name") is None and h.inspector.editor_for("mode") is None
    form = h.inspector._form
    assert form is not None and not form.rows


def test_tooltips_come_from_descriptions(qtbot: Any, registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.show(Node("n", "text.upper"))
    assert "seconds each attempt may take" in h.editor("metadata.timeout").toolTip()
    titles = [label for label in h.inspector.findChildren(QLabel)
              if "Upper-case" in label.toolTip()]
    assert titles


# ---------------------------------------------------------------------- edit requests
def test_typing_commits_once_on_enter_with_the_whole_dict(qtbot: Any, registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.show(Node("n", "text.upper", properties={"text": "a"}))
    edit = h.editor("properties.suffix")
    edit.setFocus()
    qtbot.keyClicks(edit, "!!")
    assert h.edits == []  # no request per keystroke
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    edit.clearFocus()  # focus-out after Enter: still one request
    assert h.edits == [("n", "properties", {"text": "a", "suffix": "!!"})]


def test_nothing_is_requested_when_the_value_did_not_change(qtbot: Any,
                                                            registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.show(Node("n", "test.typed", properties={"label": "same", "count": 4},
                metadata={"max_retries": 2}))
    commit_text(qtbot, h.editor("properties.label"), "same")
    commit_text(qtbot, h.editor("properties.count").lineEdit(), "4")
    commit_text(qtbot, h.editor("metadata.max_retries").lineEdit(), "2")
    # An unset field committed with its default unchanged stays unset.
    commit_text(qtbot, h.editor("properties.ratio").lineEdit(), "0.5")
    assert h.edits == []


def test_metadata_edits_carry_every_other_key(qtbot: Any, registry: Registry) -> None:
    h = Harness(qtbot, registry)
    meta = {"execution_mode": "loop", "loop_type": "for_each", "body": ["a"], "custom": 1}
    h.show(Node("l", "control.for_each", metadata=meta), wired={"items"})
    commit_text(qtbot, h.editor("metadata.batch_size").lineEdit(), "5")
    assert h.edits == [("l", "metadata", {**meta, "batch_size": 5})]
    h.editor("metadata.parallel").click()
    assert h.edits[-1] == ("l", "metadata", {**meta, "batch_size": 5, "parallel": True})


def test_arrow_steps_commit_once_after_a_pause(qtbot: Any, registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.show(Node("x", "test.typed"))
    count = h.editor("properties.count")
    count.stepUp()
    count.stepUp()
    assert h.edits == [] and count.pending()
    qtbot.waitUntil(lambda: len(h.edits) == 1, timeout=2000)
    assert h.edits == [("x", "properties", {"count": 5})]


def test_a_nullable_number_steps_out_of_none(qtbot: Any, registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.show(Node("x", "test.typed"))
    width = h.editor("properties.width")
    assert width.read() is not None and width.text() == "none"
    width.stepUp()
    width.flush()
    assert h.edits == [("x", "properties", {"width": 0})]


def test_a_refresh_does_not_wipe_what_is_being_typed(qtbot: Any, registry: Registry) -> None:
    h = Harness(qtbot, registry)
    node_ = Node("x", "test.typed", name="N")
    h.show(node_)
    label, name = h.editor("properties.label"), h.editor("name")
    qtbot.keyClicks(label, "!")
    qtbot.keyClicks(name, "2")
    h.show(dataclasses.replace(node_, metadata={"timeout": 1.0}))  # e.g. another edit
    assert label.text() == "hi!" and name.text() == "N2"
    h.show(dataclasses.replace(node_, properties={"label": "from undo"}))
    assert label.text() == "from undo"  # the stored value changed: that wins


def test_the_node_list_editor_adds_and_removes_ids(qtbot: Any, registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.show(Node("l", "control.for_each", metadata={"execution_mode": "loop", "body": ["a"]}))
    body = h.editor("metadata.body")
    body.entry.setText("b")
    body.entry.returnPressed.emit()
    assert h.edits[-1][2]["body"] == ["a", "b"]
    body.list.setCurrentRow(0)
    body.remove_button.click()
    assert h.edits[-1][2]["body"] == ["b"]
    assert len(h.edits) == 2


def test_reset_removes_the_nodes_own_value(qtbot: Any, registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.show(Node("n", "text.upper", properties={"text": "a", "suffix": "!"},
                metadata={"timeout": 2.0}))
    h.inspector.reset_field("properties.suffix")
    h.inspector.reset_field("metadata.timeout")
    h.inspector.reset_field("properties.suffix")  # nothing left to reset
    assert h.edits == [("n", "properties", {"text": "a"}), ("n", "metadata", {})]
    assert h.editor("properties.suffix").font().italic()  # shows the default again


def test_bad_json_shows_an_inline_error_and_requests_nothing(qtbot: Any,
                                                             registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.show(Node("x", "test.typed"))
    items = h.editor("properties.items")
    commit_text(qtbot, items, "[1, 2")
    assert h.edits == []
    assert "not valid JSON" in h.inspector.field_error("properties.items")
    commit_text(qtbot, items, '{"a": 1}')  # JSON, but not a list
    assert h.edits == [] and "list" in h.inspector.field_error("properties.items")
    commit_text(qtbot, items, "[1, 2]")
    assert h.edits == [("x", "properties", {"items": [1, 2]})]
    assert h.inspector.field_error("properties.items") == ""


def test_a_refused_entry_survives_another_fields_edit(qtbot: Any, registry: Registry) -> None:
    h = Harness(qtbot, registry, apply=True)
    h.show(Node("x", "test.typed"))
    commit_text(qtbot, h.editor("properties.mapping"), "{oops")
    commit_text(qtbot, h.editor("properties.label"), "new")
    assert h.edits == [("x", "properties", {"label": "new"})]
    assert h.editor("properties.mapping").text() == "{oops"
    assert "not valid JSON" in h.inspector.field_error("properties.mapping")


def test_name_edits_request_the_name(qtbot: Any, registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.show(Node("n", "text.upper", name="Old"))
    commit_text(qtbot, h.editor("name"), "New")
    commit_text(qtbot, h.editor("name"), "New")
    assert h.edits == [("n", "name", "New")]


def test_showing_the_same_node_again_keeps_widgets_focus_and_scroll(
        qtbot: Any, registry: Registry) -> None:
    h = Harness(qtbot, registry, apply=True)
    h.inspector.resize(380, 260)  # short: the form scrolls
    show_unpainted(h.inspector)
    h.show(Node("x", "test.typed"))
    bar = h.inspector.scroll.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0)
    bar.setValue(bar.maximum())
    label = h.editor("properties.label")
    commit_text(qtbot, label, "changed")
    assert h.edits == [("x", "properties", {"label": "changed"})]
    assert h.editor("properties.label") is label  # updated in place, not rebuilt
    assert h.inspector.focusWidget() is label  # the focus stays in the edited field
    assert bar.value() == bar.maximum() and bar.value() > 0
    assert not label.font().italic()  # now the node's own value


def test_a_rebuild_for_the_same_node_keeps_the_scroll_position(qtbot: Any,
                                                              registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.inspector.resize(380, 260)
    show_unpainted(h.inspector)
    h.show(Node("x", "test.typed"))
    bar = h.inspector.scroll.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0)
    bar.setValue(60)
    h.show(Node("x", "test.typed"), wired={"flag"})  # a new wire: fewer fields
    qtbot.wait(10)
    assert bar.value() == 60


def test_switching_nodes_commits_what_was_typed_for_the_old_one(qtbot: Any,
                                                                registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.show(Node("a", "text.upper", properties={"text": "x"}))
    qtbot.keyClicks(h.editor("properties.suffix"), "?")
    h.show(Node("b", "text.upper"))
    assert h.edits == [("a", "properties", {"text": "x", "suffix": "?"})]
    assert h.inspector.node_id() == "b"


def test_code_node_gets_a_code_editor_with_a_debounced_commit(qtbot: Any,
                                                              registry: Registry) -> None:
    h = Harness(qtbot, registry)
    h.show(Node("c", "control.code", properties={"code": "return value"}))
    editor = h.inspector.code_editor()
    assert isinstance(editor, CodeEditor) and editor.toPlainText() == "return value"
    editor.setFocus()
    editor.moveCursor(editor.textCursor().MoveOperation.End)
    qtbot.keyClicks(editor, " + 1")
    assert h.edits == []
    with qtbot.waitSignal(h.inspector.edited, timeout=2000):
        pass
    assert h.edits == [("c", "properties", {"code": "return value + 1"})]
    h.inspector.show_code_error(1)
    assert editor.error_line() == 1


# ---------------------------------------------------------------------- the code editor
def test_code_editor_commits_once_after_typing_pauses(qtbot: Any) -> None:
    editor = CodeEditor()
    qtbot.addWidget(editor)
    editor.set_code("x = 1")
    commits: list[str] = []
    editor.text_committed.connect(commits.append)
    qtbot.keyClicks(editor, "abc")
    assert commits == [] and editor.has_pending_commit()
    qtbot.waitUntil(lambda: commits == ["abcx = 1"], timeout=2000)
    qtbot.wait(400)
    assert commits == ["abcx = 1"]
    editor.set_code("y = 2")  # shown, not committed
    qtbot.wait(400)
    assert commits == ["abcx = 1"]


def test_code_editor_commits_at_once_on_focus_out(qtbot: Any) -> None:
    editor = CodeEditor()
    qtbot.addWidget(editor)
    commits: list[str] = []
    editor.text_committed.connect(commits.append)
    editor.insertPlainText("pass")
    editor.focusOutEvent(QFocusEvent(QEvent.Type.FocusOut))
    assert commits == ["pass"] and not editor.has_pending_commit()


def test_code_editor_highlights_python(qtbot: Any) -> None:
    editor = CodeEditor()
    qtbot.addWidget(editor)
    editor.set_code("def f(x):  # note\n    return 'a' + 12")
    highlighter = editor.highlighter

    def colour_at(line: int, column: int) -> QColor:
        block = editor.document().findBlockByNumber(line)
        for fmt in block.layout().formats():
            if fmt.start <= column < fmt.start + fmt.length:
                return fmt.format.foreground().color()
        return QColor()

    assert colour_at(0, 0) == highlighter.keyword_format.foreground().color()       # def
    assert colour_at(0, 12) == highlighter.comment_format.foreground().color()      # # note
    assert colour_at(1, 11) == highlighter.string_format.foreground().color()       # 'a'
    assert colour_at(1, 17) == highlighter.number_format.foreground().color()       # 12


def test_code_editor_tab_inserts_four_spaces_and_marks_error_lines(qtbot: Any) -> None:
    editor = CodeEditor()
    qtbot.addWidget(editor)
    editor.set_code("")
    qtbot.keyClick(editor, Qt.Key.Key_Tab)
    assert editor.toPlainText() == "    "
    editor.set_code("a\nb\nc")
    editor.show_error_line(2)
    assert editor.error_line() == 2
    assert any(s.cursor.blockNumber() == 1 for s in editor.extraSelections())
    editor.show_error_line(None)
    assert editor.error_line() is None
    editor.show_error_line(99)  # past the end: nothing to mark
    assert editor.error_line() is None
