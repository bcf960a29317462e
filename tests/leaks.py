"""The leak check used around every test (see conftest.py): what a test left behind."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

_FD_DIR = Path("/proc/self/fd")

Snapshot = tuple[set[threading.Thread], dict[int, str]]


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


def snapshot() -> Snapshot:
    """Threads and open file descriptors now."""
    return set(threading.enumerate()), _fds()


def leaks(before: Snapshot, wait: float = 2.0) -> list[str]:
    """What exists now that did not before, waiting up to ``wait`` s for it to go away."""
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


def assert_no_tasks_left() -> None:
    """Fail when asyncio tasks other than the current one are still running."""
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not left, f"asyncio tasks left running: {left}"


def start_dask_helpers() -> None:
    """Start the helpers Dask keeps for the life of the process, if Dask is installed.

    Its offload thread, and the resource tracker its spawned workers need (with one
    pipe here), start with the first cluster and never end. Modules whose tests start
    clusters call this at import (collection), before any test's leak snapshot, so
    they are part of every test's baseline rather than the first test's leak.
    """
    try:
        import distributed.utils
    except ImportError:
        return
    import multiprocessing.resource_tracker

    multiprocessing.resource_tracker.ensure_running()
    distributed.utils._offload_executor.submit(int).result()
