"""The leak check itself: each kind of leftover is caught and named."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from leaks import assert_no_tasks_left, leaks, snapshot


def test_a_leftover_thread_socket_and_file_are_each_named(tmp_path: Path) -> None:
    before = snapshot()
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="leaky-thread")
    thread.start()
    sock = socket.socket()
    handle = open(tmp_path / "f.txt", "w")  # noqa: SIM115 - left open on purpose
    try:
        problems = leaks(before, wait=0.05)
        assert "thread left running: leaky-thread" in problems
        assert any(p.startswith("socket left open: fd") for p in problems)
        assert any(p.startswith("file descriptor left open") and p.endswith("f.txt")
                   for p in problems)
    finally:
        stop.set()
        thread.join()
        sock.close()
        handle.close()
    assert leaks(before, wait=1.0) == []


def test_a_leftover_watchdog_observer_is_named(tmp_path: Path) -> None:
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer

    before = snapshot()
    observer = Observer()
    observer.schedule(FileSystemEventHandler(), str(tmp_path))
    observer.start()
    try:
        assert any(p.startswith("watchdog observer left running")
                   for p in leaks(before, wait=0.05))
    finally:
        observer.stop()
        observer.join()
    assert leaks(before, wait=1.0) == []


async def test_a_leftover_task_is_named() -> None:
    import asyncio

    task = asyncio.create_task(asyncio.sleep(10))
    with pytest.raises(AssertionError, match="asyncio tasks left running"):
        assert_no_tasks_left()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert_no_tasks_left()
