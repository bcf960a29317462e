"""Fixtures for editor tests: one QApplication, and a qasync loop that tests drive.

Pattern (qt-guide §3.2 A): a plain test takes ``qloop``, starts coroutines with
``asyncio.ensure_future`` and waits with ``qtbot.waitUntil``; qtbot's nested Qt loops
run the qasync timers. Teardown never calls ``loop.stop()`` (it would make every later
nested loop return at once) and cancels what the test left running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("PySide6")

from PySide6.QtWidgets import QApplication

from loom.registry import Registry
from loom.ui import qasync_support
from loom.ui.main_window import MainWindow, Unsaved

# The application (and the descriptors Qt opens for it) lives for the whole session:
# made at collection, before any test's leak-check snapshot; pytest-qt's qapp reuses it.
_APP = QApplication.instance() or QApplication(["loom-tests"])


@pytest.fixture
def qloop(qapp: QApplication) -> Iterator[Any]:
    """A qasync event loop attached to the running QApplication."""
    import qasync

    qasync_support.install()
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    asyncio.events._set_running_loop(loop)
    try:
        yield loop
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        for _ in range(200):
            if all(t.done() for t in pending):
                break
            qapp.processEvents()
        loop._QEventLoop__is_running = False  # type: ignore[attr-defined]
        asyncio.events._set_running_loop(None)
        loop.close()
        asyncio.set_event_loop(None)
        assert all(t.done() for t in pending), f"tasks would not end: {pending}"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The editor's own folder (recent files, autosaves, run preferences) for this test."""
    folder = tmp_path / "data"
    monkeypatch.setenv("LOOM_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def window(qloop: Any, qtbot: Any, data_dir: Path) -> Iterator[MainWindow]:
    """A shown main window on the standard node packs; unsaved changes are discarded."""
    win = MainWindow(Registry.standard(entry_points=False))
    win.ask_unsaved = lambda: Unsaved.DISCARD  # type: ignore[method-assign]
    qtbot.addWidget(win)
    win.show()
    yield win
    if win.runner.running:
        win.runner.stop(0)
        qtbot.waitUntil(lambda: not win.runner.running, timeout=10_000)
    win.watcher.stop()
    win.close()
