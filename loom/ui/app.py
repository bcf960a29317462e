"""Starting and ending the editor: Qt application, qasync loop, main window.

(Whether there is a display at all is decided by the CLI, before Qt is imported.)

``main()`` is what ``loom [FILE.loom]`` calls. The event loop is qasync's (Qt
drives asyncio), so the ExecutionManager runs on the same thread as the widgets
and the window stays responsive: node code that blocks runs in worker threads.
Shutdown is explicit (qt-guide §2.2): closing the window stops any run, the main
coroutine awaits its end, then the loop closes. Nothing waits for a node call stuck in a
worker thread: those are daemon threads, abandoned and reported, never joined.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from loom.registry import Registry

from . import qasync_support
from .main_window import MainWindow
from .theme import apply_theme

__all__ = ["apply_theme", "create_window", "main"]


def create_window(registry: Registry, folders: Sequence[Path] = ()) -> MainWindow:
    """The main window on the current QApplication (tests build it this way too)."""
    return MainWindow(registry, list(folders))


def main(path: str | None = None, folders: Sequence[str] = ()) -> int:
    """Run the editor until its window closes; returns the process exit code."""
    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
        Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "loom"])
    assert isinstance(app, QApplication)
    app.setApplicationName("Loom")
    # The window closing ends ``run()`` below, which then shuts the run down; Qt must not
    # quit the loop on its own first ("Event loop stopped before Future completed").
    app.setQuitOnLastWindowClosed(False)
    app.setOrganizationName("Loom")
    apply_theme(app)
    registry = Registry.standard(folders)
    loop = qasync_support.new_loop(app)
    asyncio.set_event_loop(loop)
    window = create_window(registry, [Path(f) for f in folders])

    async def run() -> None:
        closed = asyncio.Event()
        window.closed.connect(closed.set)
        window.show()
        # From a plain Qt timer, not this coroutine: they may show a modal dialog, and a
        # nested Qt loop inside a running task breaks qasync (qt-guide §2.3).
        QTimer.singleShot(0, (lambda: window.open_path(path)) if path else window.offer_recovery)
        await closed.wait()
        await window.shutdown()

    with loop:
        loop.run_until_complete(run())
    return 0
