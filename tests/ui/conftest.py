"""Fixtures for editor tests: one QApplication, and a qasync loop that tests drive.

Pattern (qt-guide §3.2 A): a plain test takes ``qloop``, starts coroutines with
``asyncio.ensure_future`` and waits with ``qtbot.waitUntil``; qtbot's nested Qt loops
run the qasync timers. Teardown never calls ``loop.stop()`` (it would make every later
nested loop return at once) and cancels what the test left running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("PySide6")

from PySide6.QtWidgets import QApplication

from loom.ui import qasync_support

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
