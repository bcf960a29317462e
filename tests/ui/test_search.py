"""Tab search: ranking, keyboard picking, and that it is not modal."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from loom.registry import Registry, node
from loom.ui.palette import NODE_MIME
from loom.ui.search import NodeSearch, rank, search


@node(id="mem.prefix", name="Memo", category="Misc")
def memo() -> None:
    """Starts with "me"."""


@node(id="mem.inside", name="Time", category="Misc")
def time_() -> None:
    """Has "me" inside its name."""


@node(id="store.member", name="Put", category="Misc")
def put() -> None:
    """Has "me" only in its id."""


@node(id="store.keep", name="Keep", category="Memory")
def keep() -> None:
    """Has "me" only in its category."""


@node(id="other.thing", name="Other", category="Misc")
def other() -> None:
    """Does not match "me" at all."""


@pytest.fixture(scope="module")
def registry() -> Registry:
    reg = Registry()
    for func in (other, keep, put, time_, memo):
        reg.add_function(func, origin="tests")
    return reg


@pytest.fixture
def popup(qtbot: Any, registry: Registry) -> NodeSearch:
    widget = NodeSearch()
    qtbot.addWidget(widget)
    # Layout and focus without painting: the first large paint of a process starts
    # Qt's GUI thread pool, which the leak check would blame on this test.
    widget.setUpdatesEnabled(False)
    widget.open_at(QPoint(50, 50), registry)
    return widget


def test_rank_prefers_name_prefix_then_name_then_id_then_category(registry: Registry) -> None:
    assert [m.spec.type_id for m in search(registry, "ME")] == [
        "mem.prefix", "mem.inside", "store.member", "store.keep"]
    assert [m.rank for m in search(registry, "me")] == [0, 1, 2, 3]
    assert rank(registry["other.thing"], "me") is None
    assert rank(registry["other.thing"], "  ") == 0  # nothing typed: everything


def test_typing_filters_and_ranks_the_list(qtbot: Any, popup: NodeSearch) -> None:
    assert popup.isVisible() and len(popup.result_ids()) == 5
    qtbot.keyClicks(popup.edit, "me")
    assert popup.result_ids() == ["mem.prefix", "mem.inside", "store.member", "store.keep"]
    assert popup.current_id() == "mem.prefix"


def test_arrows_and_enter_pick_a_node(qtbot: Any, popup: NodeSearch) -> None:
    qtbot.keyClicks(popup.edit, "me")
    qtbot.keyClick(popup.edit, Qt.Key.Key_Down)
    qtbot.keyClick(popup.edit, Qt.Key.Key_Down)
    qtbot.keyClick(popup.edit, Qt.Key.Key_Up)
    assert popup.current_id() == "mem.inside"
    with qtbot.waitSignal(popup.chosen) as blocker:
        qtbot.keyClick(popup.edit, Qt.Key.Key_Return)
    assert blocker.args == ["mem.inside"]
    assert not popup.isVisible()


def test_up_from_the_top_wraps_to_the_last_result(qtbot: Any, popup: NodeSearch) -> None:
    qtbot.keyClick(popup.edit, Qt.Key.Key_Up)
    assert popup.current_id() == popup.result_ids()[-1]


def test_escape_closes_without_choosing(qtbot: Any, popup: NodeSearch) -> None:
    chosen: list[str] = []
    popup.chosen.connect(chosen.append)
    with qtbot.waitSignal(popup.closed):
        qtbot.keyClick(popup.edit, Qt.Key.Key_Escape)
    assert not popup.isVisible() and chosen == []


def test_enter_with_no_match_chooses_nothing(qtbot: Any, popup: NodeSearch) -> None:
    chosen: list[str] = []
    popup.chosen.connect(chosen.append)
    qtbot.keyClicks(popup.edit, "zzz")
    qtbot.keyClick(popup.edit, Qt.Key.Key_Return)
    assert chosen == [] and popup.result_ids() == []


def test_clicking_a_result_chooses_it(qtbot: Any, popup: NodeSearch) -> None:
    with qtbot.waitSignal(popup.chosen) as blocker:
        popup.results.itemClicked.emit(popup.results.item(1))
    assert blocker.args == [popup.result_ids()[1]]


def test_it_is_not_modal_and_reopens_fresh(qtbot: Any, popup: NodeSearch,
                                           registry: Registry) -> None:
    # open_at returned with the popup showing: no nested event loop ran.
    assert popup.isVisible() and QApplication.activeModalWidget() is None
    assert not popup.isModal()
    qtbot.keyClicks(popup.edit, "keep")
    popup.hide()
    popup.open_at(QPoint(10, 10), registry)
    assert popup.edit.text() == "" and len(popup.result_ids()) == 5
    assert popup.position == QPoint(10, 10)


def test_results_drag_like_palette_rows(popup: NodeSearch) -> None:
    data = popup.results.mimeData([popup.results.item(0)])
    assert bytes(data.data(NODE_MIME)).decode("utf-8") == popup.result_ids()[0]
