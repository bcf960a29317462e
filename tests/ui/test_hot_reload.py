"""Hot reload: a changed pack file is reloaded on the Qt thread; bad edits keep the old nodes."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loom.registry import Registry
from loom.registry.registry import PACK_PACKAGE
from loom.ui.hot_reload import PackWatcher, is_pack_file

ONE_NODE = '''
from loom import node

@node
def first(x: int = 1) -> int:
    """The first node."""
    return x
'''

TWO_NODES = ONE_NODE + '''

@node
def second(text: str = "") -> str:
    return text.upper()
'''

BROKEN = ONE_NODE + "\n\ndef oops(:\n"


@pytest.fixture
def pack(tmp_path: Path) -> Iterator[Path]:
    """A pack file ``hotpack.py`` in its own folder; its modules are forgotten afterwards."""
    file = tmp_path / "hotpack.py"
    file.write_text(ONE_NODE)
    yield file
    for name in [n for n, m in sys.modules.items() if n.startswith(PACK_PACKAGE + ".")
                 and getattr(m, "__file__", None) == str(file.resolve())]:
        del sys.modules[name]


@pytest.fixture
def watcher(qtbot: Any, pack: Path) -> Iterator[PackWatcher]:
    registry = Registry()
    registry.load_dir(pack.parent)
    assert "hotpack.first" in registry
    watcher = PackWatcher(registry, [pack.parent])
    watcher.start()
    yield watcher
    watcher.stop()


def _watchdog_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if type(t).__module__.startswith("watchdog")]


def test_a_rewritten_pack_is_reloaded_with_its_new_nodes(qtbot: Any, pack: Path,
                                                         watcher: PackWatcher) -> None:
    with qtbot.waitSignal(watcher.reloaded, timeout=3000) as blocker:
        pack.write_text(TWO_NODES)
    ids, problems = blocker.args
    assert ids == ["hotpack.first", "hotpack.second"] and problems == []
    assert "hotpack.second" in watcher.registry
    assert watcher.registry["hotpack.second"].func("a") == "A"


def test_the_registry_is_only_touched_on_the_qt_thread(qtbot: Any, pack: Path,
                                                       watcher: PackWatcher) -> None:
    seen: list[threading.Thread] = []
    load_file = watcher.registry.load_file

    def recording_load_file(path: Any) -> Any:
        seen.append(threading.current_thread())
        return load_file(path)

    watcher.registry.load_file = recording_load_file  # type: ignore[method-assign]
    with qtbot.waitSignal(watcher.reloaded, timeout=3000):
        pack.write_text(TWO_NODES)
    assert seen == [threading.main_thread()]


def test_a_burst_of_writes_reloads_once(qtbot: Any, pack: Path, watcher: PackWatcher) -> None:
    signals: list[Any] = []
    watcher.reloaded.connect(lambda ids, problems: signals.append(ids))
    for _ in range(5):
        pack.write_text(TWO_NODES)
    qtbot.waitUntil(lambda: len(signals) >= 1, timeout=3000)
    qtbot.wait(500)  # longer than the debounce: nothing else may arrive
    assert len(signals) == 1


def test_a_syntax_error_keeps_the_old_nodes_and_reports(qtbot: Any, pack: Path,
                                                        watcher: PackWatcher) -> None:
    old = watcher.registry["hotpack.first"]
    with qtbot.waitSignal(watcher.reloaded, timeout=3000) as blocker:
        pack.write_text(BROKEN)
    ids, problems = blocker.args
    assert ids == ["hotpack.first"]
    assert len(problems) == 1 and "SyntaxError" in problems[0] and "hotpack.py" in problems[0]
    assert watcher.registry.get("hotpack.first") is old  # the canvas keeps working
    assert watcher.registry.origin("hotpack.first") == str(pack.resolve())
    # Fixing the file replaces the old problem instead of keeping it.
    with qtbot.waitSignal(watcher.reloaded, timeout=3000) as blocker:
        pack.write_text(TWO_NODES)
    assert blocker.args == [["hotpack.first", "hotpack.second"], []]
    assert watcher.registry.problems == []


def test_a_deleted_pack_loses_its_nodes(qtbot: Any, pack: Path, watcher: PackWatcher) -> None:
    with qtbot.waitSignal(watcher.reloaded, timeout=3000) as blocker:
        pack.unlink()
    assert blocker.args == [["hotpack.first"], []]
    assert "hotpack.first" not in watcher.registry


def test_a_new_pack_file_is_loaded(qtbot: Any, pack: Path, watcher: PackWatcher) -> None:
    extra = pack.parent / "extrapack.py"
    try:
        with qtbot.waitSignal(watcher.reloaded, timeout=3000) as blocker:
            extra.write_text(ONE_NODE)
        assert blocker.args == [["extrapack.first"], []]
    finally:
        for name in [n for n, m in sys.modules.items()
                     if getattr(m, "__file__", None) == str(extra.resolve())]:
            del sys.modules[name]


def test_private_and_other_files_are_ignored(qtbot: Any, pack: Path,
                                             watcher: PackWatcher) -> None:
    assert not is_pack_file(Path("_helpers.py")) and not is_pack_file(Path("notes.txt"))
    assert not is_pack_file(Path(".hotpack.py.swp")) and is_pack_file(Path("pack.py"))
    signals: list[Any] = []
    watcher.reloaded.connect(lambda ids, problems: signals.append(ids))
    (pack.parent / "_helpers.py").write_text("x = 1\n")
    (pack.parent / "notes.txt").write_text("hello\n")
    qtbot.wait(600)
    assert signals == []


def test_stop_joins_the_watchdog_threads(qtbot: Any, pack: Path) -> None:
    watcher = PackWatcher(Registry(), [pack.parent, pack.parent / "missing"])
    watcher.start()
    watcher.start()  # idempotent: still one observer
    assert watcher.is_running() and _watchdog_threads()
    watcher.stop()
    assert not watcher.is_running() and _watchdog_threads() == []
    watcher.stop()  # twice is fine
    # After stop, a change reloads nothing.
    signals: list[Any] = []
    watcher.reloaded.connect(lambda ids, problems: signals.append(ids))
    pack.write_text(TWO_NODES)
    qtbot.wait(500)
    assert signals == []
