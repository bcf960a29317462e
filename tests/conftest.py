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
import time
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")

ROOT = Path(__file__).resolve().parent.parent
_FD_DIR = Path("/proc/self/fd")


def _fds() -> dict[int, str]:
    if not _FD_DIR.is_dir():
        return {}
    result = {}
    for entry in _FD_DIR.iterdir():
        try:
            result[int(entry.name)] = os.readlink(entry)
        except OSError:  # the fd that listed the directory is already closed
            continue
    return result


def _snapshot() -> tuple[set[threading.Thread], dict[int, str]]:
    return set(threading.enumerate()), _fds()


def _leaks(before: tuple[set[threading.Thread], dict[int, str]], wait: float = 2.0) -> list[str]:
    threads_before, fds_before = before
    deadline = time.monotonic() + wait
    while True:
        threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        fds = {fd: target for fd, target in _fds().items()
               if fds_before.get(fd) != target}
        if (not threads and not fds) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    problems = [f"watchdog observer left running: {t.name}"
                if type(t).__module__.startswith("watchdog") else f"thread left running: {t.name}"
                for t in threads]
    problems += [f"socket left open: fd {fd} ({target})" if target.startswith("socket:")
                 else f"file descriptor left open: {fd} -> {target}"
                 for fd, target in fds.items()]
    return problems


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):  # type: ignore[no-untyped-def]
    item.stash[_before_key] = _snapshot()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):  # type: ignore[no-untyped-def]
    result = yield
    before = item.stash.get(_before_key, None)
    if before is not None and "allow_leaks" not in item.keywords:
        problems = _leaks(before)
        if problems:
            pytest.fail("resources leaked by this test:\n  " + "\n  ".join(problems),
                        pytrace=False)
    return result


_before_key = pytest.StashKey[tuple[set[threading.Thread], dict[int, str]]]()


@pytest.fixture
async def _no_task_leak():
    yield
    await asyncio.sleep(0)  # let just-cancelled tasks finish
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not left, f"asyncio tasks left running: {left}"


@pytest.fixture(autouse=True)
def _tasks_checked(request: pytest.FixtureRequest) -> None:
    if inspect.iscoroutinefunction(getattr(request, "function", None)):
        request.getfixturevalue("_no_task_leak")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_leaks: skip the thread/fd leak check")
