"""Suite-wide set-up: offscreen Qt, and a leak check around every test.

Every test must leave no asyncio task (async tests), no thread, no watchdog
observer, no open socket and no other open file descriptor behind. Threads and
descriptors are compared after all of a test's fixtures have been torn down, so a
fixture's own loop does not count; each kind is named in the failure.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
from pathlib import Path

import pytest
from leaks import assert_no_tasks_left, leaks, snapshot

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")
# Qt starts a private thread pool on the first big paint and ends it only after 30 s
# idle; the leak check would blame whichever test painted first.
os.environ.setdefault("QT_NO_GUI_THREADPOOL", "1")

ROOT = Path(__file__).resolve().parent.parent


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):  # type: ignore[no-untyped-def]
    item.stash[_before_key] = snapshot()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):  # type: ignore[no-untyped-def]
    result = yield
    before = item.stash.get(_before_key, None)
    if before is not None and "allow_leaks" not in item.keywords:
        problems = leaks(before)
        if problems:
            pytest.fail("resources leaked by this test:\n  " + "\n  ".join(problems),
                        pytrace=False)
    return result


_before_key = pytest.StashKey[tuple[set[threading.Thread], dict[int, str]]]()


@pytest.fixture
async def _no_task_leak():
    yield
    await asyncio.sleep(0)  # let just-cancelled tasks finish
    assert_no_tasks_left()


@pytest.fixture(autouse=True)
def _tasks_checked(request: pytest.FixtureRequest) -> None:
    if inspect.iscoroutinefunction(getattr(request, "function", None)):
        request.getfixturevalue("_no_task_leak")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_leaks: skip the thread/fd leak check")
