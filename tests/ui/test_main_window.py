"""The editor as a person uses it: open, edit, save, run, stop, crash-proofing, recovery."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from PySide6.QtGui import QImage

from loom.graph import Graph, Node, dumps_graph, load_graph, save_graph
from loom.registry import Registry
from loom.ui.main_window import MainWindow, Unsaved

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "resources" / "examples"


def write(path: Path, graph: Graph) -> Path:
    save_graph(graph, path, backup=False)
    return path


def test_open_edit_title_and_save_gives_the_same_bytes(window: MainWindow, tmp_path: Path,
                                                        qtbot: Any) -> None:
    source = EXAMPLES / "branching.loom"
    path = tmp_path / "branching.loom"
    path.write_bytes(source.read_bytes())
    assert window.open_path(str(path))
    assert window.windowTitle() == "branching.loom[*] — Loom"
    assert not window.isWindowModified()
    assert window.save()
    assert path.read_bytes() == source.read_bytes(), "an unchanged graph saves byte-identical"
    node_id = window.canvas.add_node("math.add")
    assert window.isWindowModified()
    window.canvas.undo_stack.undo()
    assert node_id not in window.canvas.node_ids()
    window.canvas.undo_stack.redo()
    assert window.save()
    assert node_id in load_graph(path).nodes
    assert not window.isWindowModified()


def test_a_missing_node_type_is_kept_and_saved_back_unchanged(window: MainWindow,
                                                               tmp_path: Path) -> None:
    graph = load_graph(EXAMPLES / "hello.loom")
    graph.add_node(Node("plugin", "someone.elses_node", name="From a plugin",
                        properties={"x": [1, 2]}, metadata={"execution_mode": "sequential"},
                        extra={"future_key": {"kept": True}}))
    graph.connect("greeting", "out", "plugin", "text")
    path = write(tmp_path / "plugin.loom", graph)
    original = path.read_bytes()
    assert window.open_path(str(path))
    assert window.save()
    assert path.read_bytes() == original


def run_and_wait(window: MainWindow, qtbot: Any, timeout: int = 10_000) -> Any:
    results: list[Any] = []
    window.runner.finished.connect(results.append)
    window.actions_by_name["run"].trigger()
    qtbot.waitUntil(lambda: bool(results), timeout=timeout)
    qtbot.waitUntil(lambda: window.runner.backlog == 0, timeout=timeout)
    return results[0]


def test_run_shows_node_states_on_the_canvas(window: MainWindow, qtbot: Any) -> None:
    window.open_path(str(EXAMPLES / "branching.loom"))
    result = run_and_wait(window, qtbot)
    assert result.status.value == "succeeded"
    assert window.canvas.state("next") == "done"
    assert window.canvas.state("halve") == "skipped", "the path not taken is dimmed"
    assert window.runner_status == "succeeded"


def test_a_node_that_raises_turns_red_and_the_app_lives_on(window: MainWindow,
                                                           qtbot: Any) -> None:
    node_id = window.canvas.add_node("control.code")
    window.canvas.set_properties(node_id, {"code": "raise ValueError('boom')", "inputs": ""})
    result = run_and_wait(window, qtbot)
    assert result.status.value == "failed"
    assert window.canvas.state(node_id) == "failed"
    window.canvas.set_properties(node_id, {"code": "return 1", "inputs": ""})
    assert run_and_wait(window, qtbot).status.value == "succeeded", "a second run works"
    assert window.canvas.state(node_id) == "done"


def test_stop_a_timer_graph_from_the_ui(window: MainWindow, tmp_path: Path,
                                        qtbot: Any) -> None:
    window.open_path(str(EXAMPLES / "timer.loom"))
    timer = window.canvas.node("tick")
    window.canvas.set_metadata("tick", {**timer.metadata, "count": None, "interval": 0.05})
    results: list[Any] = []
    window.runner.finished.connect(results.append)
    window.actions_by_name["run"].trigger()
    qtbot.waitUntil(lambda: window.runner.status == "running", timeout=5000)
    qtbot.wait(300)
    assert window.actions_by_name["stop"].isEnabled()
    window.actions_by_name["stop"].trigger()
    qtbot.waitUntil(lambda: bool(results), timeout=5000)
    assert results[0].status.value == "stopped"
    assert results[0].nodes["tick"].stats["waves"] >= 3
    assert window.actions_by_name["run"].isEnabled()


def test_closing_with_unsaved_changes_asks_first(window: MainWindow, qtbot: Any) -> None:
    asked: list[str] = []

    def cancel() -> Unsaved:
        asked.append("cancel")
        return Unsaved.CANCEL

    window.canvas.add_node("math.add")
    window.ask_unsaved = cancel  # type: ignore[method-assign]
    closed: list[bool] = []
    window.closed.connect(lambda: closed.append(True))
    window.close()
    assert asked == ["cancel"] and window.isVisible() and not closed
    window.ask_unsaved = lambda: Unsaved.DISCARD  # type: ignore[method-assign]
    window.close()
    assert closed == [True]


def test_autosave_is_offered_back_after_a_crash(window: MainWindow, qtbot: Any,
                                                tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "work.loom"
    path.write_bytes((EXAMPLES / "hello.loom").read_bytes())
    window.open_path(str(path))
    added = window.canvas.add_node("math.add")
    window.write_autosave()
    note = next((data_dir / "autosave").glob("*.json"))
    # A crash: the process that wrote it is gone.
    meta = json.loads(note.read_text())
    meta["pid"] = 2**22 + 12345
    note.write_text(json.dumps(meta))
    assert not _pid_alive(meta["pid"])

    second = MainWindow(Registry.standard(entry_points=False))
    qtbot.addWidget(second)
    offered: list[str | None] = []
    second.ask_recover = lambda original, when: offered.append(original) or True  # type: ignore[method-assign]
    try:
        assert second.offer_recovery()
        assert offered == [str(path)]
        assert added in second.canvas.node_ids()
        assert second.document.path == str(path) and second.isWindowModified()
        assert not note.exists(), "a recovered autosave is not offered again"
    finally:
        second.watcher.stop()
        second.ask_unsaved = lambda: Unsaved.DISCARD  # type: ignore[method-assign]
        second.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_screenshot_mid_run_is_not_blank(window: MainWindow, qtbot: Any,
                                           tmp_path: Path) -> None:
    window.open_path(str(EXAMPLES / "parallel.loom"))
    window.resize(1400, 860)
    window.actions_by_name["run"].trigger()
    qtbot.waitUntil(lambda: window.canvas.state("square") in ("running", "done"),
                    timeout=5000)
    image = window.grab().toImage()
    out = tmp_path / "mid-run.png"
    image.save(str(out))
    assert image.width() >= 1000 and image.height() >= 700
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7)
               for y in range(0, image.height(), 7)}
    assert len(colours) > 50, "the window drew something"
    assert isinstance(image, QImage)
    qtbot.waitUntil(lambda: not window.runner.running, timeout=5000)


def test_save_as_writes_canonical_loom_through_loom_graph(window: MainWindow,
                                                          tmp_path: Path) -> None:
    window.open_path(str(EXAMPLES / "switch.loom"))
    target = tmp_path / "copy.loom"
    assert window._save_to(str(target))
    assert target.read_text() == dumps_graph(load_graph(EXAMPLES / "switch.loom"))
    assert window.windowTitle().startswith("copy.loom")


def test_ctrl_s_onto_a_read_only_file_shows_the_error_and_keeps_the_changes(
        window: MainWindow, tmp_path: Path, qtbot: Any, monkeypatch: Any) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from loom.ui import main_window

    folder = tmp_path / "files"
    folder.mkdir()
    path = write(folder / "locked.loom", load_graph(EXAMPLES / "hello.loom"))
    original = path.read_bytes()
    assert window.open_path(str(path))
    window.canvas.add_node("math.add")
    path.chmod(0o444)
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(main_window.QMessageBox, "warning",
                        lambda _parent, title, text: shown.append((title, text)))
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    try:
        QTest.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: bool(shown), timeout=5_000)
    finally:
        path.chmod(0o644)
    title, text = shown[0]
    assert title == "Cannot save graph"
    assert str(path) in text and "read-only" in text
    assert path.read_bytes() == original, "nothing was written"
    assert window.isWindowModified(), "the changes are still unsaved, not lost"
    assert sorted(p.name for p in folder.iterdir()) == ["locked.loom"]
