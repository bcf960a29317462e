"""file_change under bursts (issue 9, 17): a 1,000-file copy yields every file, and a
path that changes again while its trigger waits for a wave slot is merged, not queued
twice. Real watchdog on a temporary folder; the run's observer stops with the run."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

from helpers import Recorder, graph_of, registry_of

from loom import node
from loom.console import print_summary
from loom.engine import EventBus, ExecutionManager, RunStatus
from loom.engine.sources import files
from loom.graph import Graph

seen: list[dict[str, Any]] = []
gate: dict[str, asyncio.Event] = {}


@node(id="t.collect", cheap=True)
def collect(event: dict) -> str:
    seen.append(event)
    return str(event["path"])


@node(id="t.gated")
async def gated(event: dict) -> str:
    seen.append(event)
    await gate["open"].wait()
    return str(event["path"])


REG = registry_of(collect, gated, builtins=True)


def watch_graph(folder: Path, downstream: str, **settings: Any) -> Graph:
    meta = {"event_type": "file_change", "watch_path": str(folder), "debounce_ms": 50,
            **settings}
    return graph_of([("watch", "event.file_change", {}, meta), ("d", downstream)],
                    ["watch.event -> d.event"])


async def wait_until(check: Any, task: asyncio.Task[Any], timeout: float) -> None:
    """Poll ``check()`` until true; fail early if the run ended, late after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert not task.done(), f"the run ended early: {task.result()}"
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def start(manager: ExecutionManager, rec: Recorder) -> asyncio.Task[Any]:
    task = asyncio.create_task(manager.run())
    await wait_until(lambda: rec.of("event_source_ready"), task, 10)
    return task


def test_default_queue_holds_a_thousand_file_burst() -> None:
    assert files.QUEUE_SIZE >= 1_000


async def test_a_thousand_file_burst_yields_every_file(tmp_path: Path) -> None:
    seen.clear()
    bus = EventBus()
    rec = Recorder(bus)
    manager = ExecutionManager(watch_graph(tmp_path, "t.collect"), REG, bus=bus,
                               stop_grace=1.0)
    task = await start(manager, rec)
    expected = set()
    for i in range(1_000):  # as a folder copy does: create and write, back to back
        target = tmp_path / f"file{i:04}.txt"
        target.write_text(f"{i}\n")
        expected.add(str(target.resolve()))
    try:
        await wait_until(lambda: {e["path"] for e in seen} >= expected, task, 45)
    finally:
        manager.request_stop()
        result = await asyncio.wait_for(task, 30)
    assert result.status is RunStatus.STOPPED
    stats = result.nodes["watch"].stats
    assert stats["dropped"] == 0, stats
    assert not rec.of("event_dropped")
    assert {e["path"] for e in seen} == expected
    assert sum(e["dropped"] for e in seen) == 0
    assert stats["waves"] == stats["completed"] == len(seen)


async def test_a_path_changing_while_queued_is_coalesced(tmp_path: Path) -> None:
    seen.clear()
    gate["open"] = asyncio.Event()
    bus = EventBus()
    rec = Recorder(bus)
    graph = watch_graph(tmp_path, "t.gated", debounce_ms=20)
    manager = ExecutionManager(graph, REG, bus=bus, stop_grace=1.0)
    task = await start(manager, rec)
    first, busy = tmp_path / "first.txt", tmp_path / "busy.txt"
    try:
        first.write_text("holds the only wave slot")
        await wait_until(lambda: len(seen) == 1, task, 10)
        busy.write_text("created")  # queued behind the first wave
        for i in range(3):
            # Each change comes well after the debounce: a trigger of its own, which
            # finds the path's earlier trigger still queued.
            await asyncio.sleep(0.3)
            busy.write_text(f"changed {i}")
        await asyncio.sleep(0.3)
        gate["open"].set()
        await wait_until(lambda: len(seen) >= 2, task, 10)
        await asyncio.sleep(0.3)  # a third wave, if any, would have started by now
    finally:
        gate["open"].set()
        manager.request_stop()
        result = await asyncio.wait_for(task, 30)
    assert [Path(e["path"]).name for e in seen] == ["first.txt", "busy.txt"]
    stats = result.nodes["watch"].stats
    assert stats["waves"] == 2, stats
    assert stats["coalesced"] >= 1, stats
    assert stats["dropped"] == 0
    merged = seen[1]
    assert "created" in merged["kinds"] and merged["kind"] == "modified"
    assert merged["dropped"] == 0
    assert busy.read_text() == "changed 2"
    # Shown where the stats are: the --json result and the terminal summary.
    assert result.to_json()["nodes"]["watch"]["stats"]["coalesced"] == stats["coalesced"]
    summary = io.StringIO()
    print_summary(result, graph, summary, io.StringIO())
    assert f"0 dropped, {stats['coalesced']} coalesced" in summary.getvalue()


def test_coalesce_merges_kinds_destination_time_and_drops() -> None:
    queued = {"type": "file_change", "path": "/d/a", "kind": "created", "kinds": ["created"],
              "time": "t1", "dropped": 2}
    files.coalesce(queued, {"type": "file_change", "path": "/d/a", "kind": "moved",
                            "kinds": ["modified", "moved"], "dest_path": "/d/b", "time": "t2",
                            "dropped": 1})
    assert queued == {"type": "file_change", "path": "/d/a", "kind": "moved",
                      "kinds": ["created", "modified", "moved"], "dest_path": "/d/b",
                      "time": "t2", "dropped": 3}
    assert files.coalesce_key(queued) == "/d/a"
    assert files.coalesce_key({"type": "timer"}) is None
