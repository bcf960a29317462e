"""The node palette: categories, filtering, drag data, activation, load problems."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import Qt

from loom.registry import LoadProblem, Registry, node
from loom.ui.palette import NODE_MIME, TYPE_ID_ROLE, Palette


@node(id="zeta.spark", category="Zeta")
def spark(value: int = 1) -> int:
    """Make a spark from nothing.

    Second paragraph.
    """
    return value


@pytest.fixture(scope="module")
def registry() -> Registry:
    reg = Registry.standard(entry_points=False)
    reg.add_function(spark, origin="tests")
    return reg


@pytest.fixture
def palette(qtbot: Any, registry: Registry) -> Palette:
    widget = Palette()
    qtbot.addWidget(widget)
    widget.set_registry(registry)
    return widget


def test_every_node_is_listed_by_category(palette: Palette, registry: Registry) -> None:
    assert palette.categories() == list(registry.by_category())
    assert sorted(palette.type_ids()) == sorted(s.type_id for s in registry)
    index = palette.index_of("zeta.spark")
    assert index.data() == "Spark"
    assert index.data(Qt.ItemDataRole.ToolTipRole) == "zeta.spark — Make a spark from nothing."


def test_search_filters_by_name_id_category_and_description(palette: Palette) -> None:
    palette.search.setText("SPARK")  # case-insensitive name
    assert palette.type_ids() == ["zeta.spark"] and palette.categories() == ["Zeta"]
    palette.search.setText("text.upp")  # id
    assert palette.type_ids() == ["text.upper"]
    palette.search.setText("zeta")  # category
    assert palette.type_ids() == ["zeta.spark"]
    palette.search.setText("from nothing")  # description
    assert palette.type_ids() == ["zeta.spark"]
    palette.search.setText("no such node anywhere")
    assert palette.type_ids() == [] and palette.categories() == []
    assert not palette.empty.isHidden()
    palette.search.setText("")
    assert "zeta.spark" in palette.type_ids() and len(palette.categories()) > 5


def test_typing_cron_finds_the_schedule_trigger_under_events(qtbot: Any,
                                                             palette: Palette) -> None:
    qtbot.keyClicks(palette.search, "cron")
    assert "event.schedule" in palette.type_ids() and "Events" in palette.categories()


def test_categories_without_a_match_are_hidden(palette: Palette) -> None:
    palette.search.setText("json")
    categories = palette.categories()
    assert "Data" in categories and "Math" not in categories and "Zeta" not in categories


def test_dragging_a_node_carries_its_type_id(palette: Palette) -> None:
    index = palette.index_of("text.upper")
    assert index.flags() & Qt.ItemFlag.ItemIsDragEnabled
    data = palette.model.mimeData([index])
    assert palette.model.mimeTypes() == [NODE_MIME]
    assert bytes(data.data(NODE_MIME)).decode("utf-8") == "text.upper"
    # Through the filter model, as the tree drags it.
    palette.search.setText("upper")
    category = palette.proxy.index(0, 0)
    row = palette.proxy.index(0, 0, category)
    dragged = palette.proxy.mimeData([row])
    assert bytes(dragged.data(NODE_MIME)).decode("utf-8") == "text.upper"
    # Categories are not node types: they do not drag.
    assert not category.flags() & Qt.ItemFlag.ItemIsDragEnabled
    assert not palette.model.mimeData([palette.model.index(0, 0)]).hasFormat(NODE_MIME)


def test_double_click_and_enter_activate_a_node(qtbot: Any, palette: Palette) -> None:
    palette.search.setText("spark")
    category = palette.proxy.index(0, 0)
    row = palette.proxy.index(0, 0, category)
    with qtbot.waitSignal(palette.activated) as blocker:
        palette.tree.doubleClicked.emit(row)
    assert blocker.args == ["zeta.spark"]
    palette.tree.setCurrentIndex(row)
    with qtbot.waitSignal(palette.activated) as blocker:
        qtbot.keyClick(palette.tree, Qt.Key.Key_Return)
    assert blocker.args == ["zeta.spark"]
    # A category row activates nothing.
    fired: list[str] = []
    palette.activated.connect(fired.append)
    palette.tree.doubleClicked.emit(category)
    assert fired == []


def test_enter_in_the_search_box_adds_the_first_match(qtbot: Any, palette: Palette) -> None:
    palette.search.setText("upper")
    with qtbot.waitSignal(palette.activated) as blocker:
        qtbot.keyClick(palette.search, Qt.Key.Key_Return)
    assert blocker.args == ["text.upper"]


def test_load_problems_are_listed_at_the_bottom(qtbot: Any, registry: Registry) -> None:
    widget = Palette()
    qtbot.addWidget(widget)
    widget.set_registry(Registry())
    assert widget.problems.isHidden()
    broken = Registry()
    broken.problems.append(LoadProblem("/packs/broken.py", "SyntaxError: invalid syntax",
                                       "Traceback (most recent call last): ..."))
    widget.set_registry(broken)
    assert not widget.problems.isHidden() and widget.problems.count() == 1
    item = widget.problems.item(0)
    assert item.text() == "broken.py: SyntaxError: invalid syntax"
    assert "/packs/broken.py" in item.toolTip() and "Traceback" in item.toolTip()
    assert widget.problems_title.text() == "1 node pack problem"


def test_setting_the_registry_again_keeps_the_search(palette: Palette,
                                                     registry: Registry) -> None:
    palette.search.setText("spark")
    palette.set_registry(registry)
    assert palette.type_ids() == ["zeta.spark"]
    assert palette.index_of("zeta.spark").data(TYPE_ID_ROLE) == "zeta.spark"
