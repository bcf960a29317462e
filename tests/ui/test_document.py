"""The document: new, open, save (same bytes), the dirty flag, bad files, migrations."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from loom.graph import LoomFileError, Node
from loom.registry import Registry, build_spec
from loom.ui.canvas import Canvas
from loom.ui.document import Document

EXAMPLES = Path(__file__).resolve().parents[2] / "resources" / "examples"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.standard(entry_points=False)


@pytest.fixture
def document(qtbot: Any, registry: Registry) -> Document:
    canvas = Canvas(registry)
    qtbot.addWidget(canvas.widget)
    return Document(canvas)


def test_new_document_is_empty_untitled_and_clean(document: Document) -> None:
    document.canvas.add_node("math.add")
    document.new()
    assert document.canvas.node_ids() == []
    assert document.path is None and document.display_name == "Untitled"
    assert not document.dirty
    with pytest.raises(ValueError, match="no file"):
        document.save()


def test_open_edit_undo_save_and_the_dirty_flag(document: Document, tmp_path: Path) -> None:
    source = tmp_path / "hello.loom"
    shutil.copy(EXAMPLES / "hello.loom", source)
    original = source.read_bytes()
    seen: list[bool] = []
    document.dirty_changed.connect(seen.append)
    document.open(source)
    assert document.path == str(source) and document.display_name == "hello.loom"
    assert not document.dirty
    document.canvas.set_name("shout", "Louder")
    assert document.dirty and seen == [True]
    document.canvas.undo()
    assert not document.dirty and seen == [True, False]  # back at the saved state
    assert document.save() == str(source)
    assert source.read_bytes() == original  # nothing changed: the same bytes
    document.canvas.set_name("shout", "Louder")
    document.save()
    assert not document.dirty
    assert b'"Louder"' in source.read_bytes()
    assert (tmp_path / "hello.loom.bak").read_bytes() == original
    document.canvas.undo()
    assert document.dirty  # the file has "Louder"; the canvas no longer does


def test_save_as_moves_the_document(document: Document, tmp_path: Path) -> None:
    document.open(EXAMPLES / "loop.loom")
    paths: list[object] = []
    document.path_changed.connect(paths.append)
    target = tmp_path / "copy.loom"
    document.save(target)
    assert document.path == str(target) and paths == [str(target)]
    assert target.read_bytes() == (EXAMPLES / "loop.loom").read_bytes()


def test_save_copy_changes_neither_path_nor_dirty_flag(document: Document,
                                                       tmp_path: Path) -> None:
    document.open(EXAMPLES / "hello.loom")
    document.canvas.set_name("shout", "Louder")
    document.save_copy(tmp_path / "autosave.loom")
    assert document.dirty and document.path == str(EXAMPLES / "hello.loom")
    assert b'"Louder"' in (tmp_path / "autosave.loom").read_bytes()
    assert not (tmp_path / "autosave.loom.bak").exists()


def test_a_bad_file_raises_and_leaves_the_canvas_alone(document: Document,
                                                       tmp_path: Path) -> None:
    document.open(EXAMPLES / "hello.loom")
    bad = tmp_path / "bad.loom"
    bad.write_text('{"format": "loom", "version": 1, "nodes": [{"id": 3}]}', encoding="utf-8")
    with pytest.raises(LoomFileError, match=r"\$\.nodes\[0\]"):
        document.open(bad)
    with pytest.raises(LoomFileError, match="cannot read"):
        document.open(tmp_path / "nowhere.loom")
    assert document.path == str(EXAMPLES / "hello.loom")
    assert "shout" in document.canvas.node_ids()


def test_failing_save_keeps_the_document_dirty(document: Document, tmp_path: Path) -> None:
    document.open(EXAMPLES / "hello.loom")
    document.canvas.set_name("shout", "Louder")
    with pytest.raises(LoomFileError):
        document.save(tmp_path / "missing-folder" / "x.loom")
    assert document.dirty and document.path == str(EXAMPLES / "hello.loom")


def _grow(width: float = 1.0) -> float:
    return width


def _rename_size(node: Node) -> None:
    node.properties["width"] = node.properties.pop("size", 1.0)


def test_migrated_nodes_make_the_opened_document_dirty(qtbot: Any, tmp_path: Path) -> None:
    registry = Registry()
    registry.add(build_spec(_grow, id="tests.grow", version=2,
                            migrations={1: _rename_size}), origin="tests")
    canvas = Canvas(registry)
    qtbot.addWidget(canvas.widget)
    document = Document(canvas, registry)
    old = tmp_path / "old.loom"
    old.write_text('{"format": "loom", "version": 1, "nodes": [{"id": "g", "type": '
                   '"tests.grow", "properties": {"size": 3}}]}', encoding="utf-8")
    document.open(old)
    assert document.upgraded == ["g"] and document.dirty
    node = canvas.node("g")
    assert node.properties == {"width": 3} and node.type_version == 2
    document.save()
    assert not document.dirty
    document.open(old.with_name("old.loom"))
    assert document.upgraded == [] and not document.dirty


def test_recover_loads_an_autosave_as_unsaved_changes(document: Document,
                                                      tmp_path: Path) -> None:
    autosave = tmp_path / "auto.loom"
    shutil.copy(EXAMPLES / "branching.loom", autosave)
    document.recover(autosave, str(tmp_path / "mine.loom"))
    assert document.dirty and document.path == str(tmp_path / "mine.loom")
    assert "check" in document.canvas.node_ids()
    document.recover(autosave)
    assert document.path is None and document.dirty
