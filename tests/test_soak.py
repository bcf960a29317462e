"""Soak: 200 start/stop cycles of a graph with a timer, a file watcher and an HTTP trigger.

Threads, file descriptors and memory must stay flat; the figures are printed.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from helpers import graph_of, registry_of

from loom import node
from loom.engine import EventBus, ExecutionManager, RunStatus
from loom.graph import Graph


@node(id="soak.echo", cheap=True)
def echo(event: Any = None) -> Any:
    return event


REG = registry_of(echo, builtins=True)


def soak_graph(folder: Path) -> Graph:
    return graph_of(
        [("tick", "event.timer", {}, {"event_type": "timer", "interval": 0.01}),
         ("watch", "event.file_change", {}, {"event_type": "file_change",
                                             "watch_path": str(folder), "debounce_ms": 0}),
         ("hook", "event.http_request", {}, {"event_type": "http_request", "port": 0,
                                             "auth": "none"}),
         ("e1", "soak.echo"), ("e2", "soak.echo"), ("e3", "soak.echo")],
        ["tick.event -> e1.event", "watch.event -> e2.event", "hook.event -> e3.event"])


def _threads() -> list[str]:
    # The test loop's default executor (aiohttp's DNS look-ups) grows lazily to its
    # maximum and is shut down with the loop, which the per-test leak check covers.
    return sorted(t.name for t in threading.enumerate() if not t.name.startswith("asyncio_"))


def figures() -> tuple[list[str], int, int]:
    """Thread names, open file descriptors, resident memory in KiB."""
    gc.collect()
    rss = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return _threads(), len(os.listdir("/proc/self/fd")), rss


async def cycle(graph: Graph, folder: Path, session: aiohttp.ClientSession, n: int) -> None:
    bus = EventBus()
    ready: list[dict[str, Any]] = []
    all_ready = asyncio.Event()

    def watch(batch: list[dict[str, Any]]) -> None:
        ready.extend(e for e in batch if e["type"] == "event_source_ready")
        if len(ready) == 3:
            all_ready.set()

    bus.subscribe(watch, types=["event_source_ready"])
    manager = ExecutionManager(graph, REG, bus=bus, stop_grace=0.2)
    task = asyncio.create_task(manager.run())
    await asyncio.wait_for(all_ready.wait(), 10)
    url = next(e["url"] for e in ready if "url" in e)
    (folder / f"f{n % 5}.txt").write_text(str(n))
    async with session.post(url, json={"n": n}) as response:
        assert response.status == 200
    manager.request_stop()
    result = await asyncio.wait_for(task, 10)
    assert result.status is RunStatus.STOPPED


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_two_hundred_start_stop_cycles_leave_threads_fds_and_memory_flat(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    graph = soak_graph(tmp_path)
    async with aiohttp.ClientSession() as session:
        for n in range(20):  # warm up: imports, caches, first-use allocations
            await cycle(graph, tmp_path, session, n)
        base = figures()
        started = time.perf_counter()
        for n in range(20, 220):
            await cycle(graph, tmp_path, session, n)
        elapsed = time.perf_counter() - started
        # A stopped run's threads (observer, worker threads) end just after run()
        # returns; give them a moment, as the per-test leak check does.
        for _ in range(40):
            if _threads() == base[0]:
                break
            await asyncio.sleep(0.05)
        after = figures()
    with capsys.disabled():
        print(f"\nsoak, 200 cycles in {elapsed:.1f} s: threads {len(base[0])} -> "
              f"{len(after[0])}, "
              f"fds {base[1]} -> {after[1]}, RSS {base[2] / 1024:.1f} -> "
              f"{after[2] / 1024:.1f} MiB")
    assert after[0] == base[0], f"threads: {base[0]} -> {after[0]}"
    assert after[1] == base[1], "file descriptors"
    assert after[2] - base[2] < 8 * 1024, "memory grew by more than 8 MiB over 200 cycles"
