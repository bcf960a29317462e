"""The stop matrix (issue 9): every mode x where the work runs x when the stop comes.

Modes: sequential, conditional, switch, for-each (sequential and parallel), while,
parallel branches, event wave. Work: cheap inline (a chain of quick nodes), async,
thread, process, generator. When: before the work starts, mid-work (cancelled after
a short grace), during the grace period (the work ends on its own in it), and a
second stop (grace 0) after a first one that would have waited 30 s.

Each run must return within grace + clean-up deadline (generous "returns at all"
bounds, never speed), report ``stopped`` with no node left queued or running,
skip what is downstream, run the ``finally`` blocks of async, generator and
process work, and leave no task, thread (beyond the reported abandoned ones),
process or file descriptor behind (the conftest leak check plus a process check).
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import Recorder, graph_of, registry_of

from loom import node
from loom.engine import EventBus, ExecutionManager, NodeState, RunStatus
from loom.engine.processes import start_forkserver
from loom.graph import Graph

start_forkserver()  # before any test's leak snapshot (see test_process_executor.py)
# Importing watchdog (event sources) starts a probe observer that lingers a moment: do
# it at collection too, not inside the first event test's leak window.
importlib.import_module("loom.engine.sources")

MODES = ("sequential", "conditional", "switch", "for_each", "for_each_parallel", "while",
         "parallel", "event")
WORK = ("cheap", "async", "thread", "process", "generator")
WHEN = ("before", "mid", "grace", "second")

#: How long unstopped work would take; every stop must end the run long before.
LONG = 20.0
#: Work that ends on its own inside the grace period.
SHORT = 0.15
CHAIN = 30  # cheap work: a chain of this many 5 ms nodes (ten times that: "long")

finally_ran: list[str] = []


@node(id="m.hold")
async def hold(x: Any = None, ctx: Any = None) -> Any:
    """Upstream of the work: waits until the stop (so the work never starts)."""
    await ctx.sleep(LONG)
    return [1]


@node(id="m.value", cheap=True)
def value(value: Any = 1) -> Any:
    return value


@node(id="m.cheap", cheap=True)
def cheap(x: Any = 1, ms: float = 5.0) -> Any:
    time.sleep(ms / 1000)
    return x


@node(id="m.async")
async def work_async(x: Any = 1, seconds: float = LONG, tag: str = "") -> Any:
    try:
        await asyncio.sleep(seconds)
    finally:
        finally_ran.append(tag)
    return x


@node(id="m.thread")
def work_thread(x: Any = 1, seconds: float = LONG, polite: bool = True,
                ctx: Any = None) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (polite and ctx.stop_requested):
        time.sleep(0.005)
    return x


@node(id="m.process", executor="process")
def work_process(x: Any = 1, seconds: float = LONG, marker: str = "") -> Any:
    deadline = time.monotonic() + seconds
    try:
        # Inside the try: the test stops the run once this file exists, which is
        # before write_text returns, so a SIGTERM may already land within it.
        if marker:
            Path(marker + ".started").write_text(str(os.getpid()))
        while time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        if marker:
            Path(marker).write_text("finally ran")
    return x


@node(id="m.generator")
def work_generator(x: Any = 1, seconds: float = LONG, tag: str = "", polite: bool = True,
                   ctx: Any = None) -> Any:
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and not (polite and ctx.stop_requested):
            time.sleep(0.005)
            yield x
    finally:
        finally_ran.append(tag)


@node(id="m.after", cheap=True)
def after(x: Any = None) -> str:
    return "ran"


REG = registry_of(hold, value, cheap, work_async, work_thread, work_process, work_generator,
                  after, builtins=True)


def work_nodes(work: str, when: str, tag: str, marker: Path) -> tuple[list[tuple[Any, ...]],
                                                                    list[str], str, str]:
    """The work: (nodes, wires among them, first id, last id)."""
    seconds = SHORT if when == "grace" else LONG
    if work == "cheap":
        # Long only as a chain: a stop lands between two of its nodes.
        count = CHAIN if when == "grace" else 10 * CHAIN
        ids = [f"w{k}" for k in range(count)]
        return ([(i, "m.cheap") for i in ids],
                [f"{a}.out -> {b}.x" for a, b in itertools.pairwise(ids)],
                ids[0], ids[-1])
    props: dict[str, Any] = {"seconds": seconds}
    if work in ("async", "generator"):
        props["tag"] = tag
    if work == "process":
        props["marker"] = str(marker)
    if work in ("thread", "generator"):
        # mid and second: work that never looks at the stop (a thread is then abandoned)
        props["polite"] = when not in ("mid", "second")
        if not props["polite"]:
            props["seconds"] = 0.25  # a thread cannot be killed: short enough to end soon after
    return [("w0", f"m.{work}", props)], [], "w0", "w0"


def build(mode: str, work: str, when: str, tag: str, marker: Path) -> tuple[Graph, str, str]:
    """The graph, the id of the node whose stop the run reports (the mode's node, or
    the work's first node at top level) and the work's last node."""
    wnodes, wwires, first, last = work_nodes(work, when, tag, marker)
    body = [n[0] for n in wnodes]
    up: list[tuple[Any, ...]] = [("hold", "m.hold")] if when == "before" else [
        ("start", "m.value", {"value": 1})]
    src = "hold.out" if when == "before" else "start.out"
    nodes: list[tuple[Any, ...]] = [*up, ("after", "m.after")]
    wires = list(wwires)
    if mode == "sequential":
        nodes += wnodes
        wires += [f"{src} -> {first}.x", f"{last}.out -> after.x"]
        return graph_of(nodes, wires), first, last
    if mode == "conditional":
        nodes += [("if", "control.if", {"condition": True}), *wnodes]
        wires += [f"{src} -> if.value", f"if.true -> {first}.x", f"{last}.out -> after.x"]
        return graph_of(nodes, wires), first, last
    if mode == "switch":
        meta = {"execution_mode": "switch", "cases": [{"values": [1], "port": "one"}],
                "default": "other"}
        nodes += [("sw", "control.switch", {}, meta), *wnodes]
        wires += [f"{src} -> sw.value", f"sw.one -> {first}.x", f"{last}.out -> after.x"]
        return graph_of(nodes, wires), first, last
    if mode in ("for_each", "for_each_parallel"):
        meta = {"execution_mode": "loop", "loop_type": "for_each", "body": body,
                "parallel": mode == "for_each_parallel", "max_concurrent": 2}
        nodes += [("items", "values.list", {"value": [1, 2, 3, 4]}),
                  ("loop", "control.for_each", {}, meta), *wnodes]
        wires += ["items.out -> loop.items", f"loop.item -> {first}.x",
                  "loop.results -> after.x"]
        if when == "before":
            wires.append("hold.out -> items.value")
        return graph_of(nodes, wires, max_concurrency=2), "loop", last
    if mode == "while":
        meta = {"execution_mode": "loop", "loop_type": "while", "body": body,
                "max_iterations": -1}
        nodes += [("loop", "control.while", {}, meta), *wnodes]
        wires += [f"{src} -> loop.value", f"loop.out -> {first}.x", f"{last}.out -> loop.value",
                  "loop.out -> after.x"]
        return graph_of(nodes, wires), "loop", last
    if mode == "parallel":
        meta = {"execution_mode": "parallel", "parallel_branches": {"work": body}}
        nodes += [("par", "control.parallel", {}, meta), *wnodes]
        wires += [f"{src} -> par.value", f"par.value -> {first}.x", "par.results -> after.x"]
        return graph_of(nodes, wires), "par", last
    assert mode == "event"
    meta = {"execution_mode": "event", "event_type": "timer", "interval": 0.01, "count": 1}
    nodes += [("tick", "event.timer", {}, meta), *wnodes]
    wires.append(f"{last}.out -> after.x")
    # The source starts with the run: "before" is a stop while the wave's first node
    # (hold) runs, before the work does.
    wires += ["tick.event -> hold.x", f"hold.out -> {first}.x"] if when == "before" else [
        f"tick.event -> {first}.x"]
    return graph_of(nodes, wires), first, last


def _children() -> set[int]:
    """Worker processes of this process (the forkserver's children are ours too)."""
    from multiprocessing import forkserver

    mine = {os.getpid()}
    server = forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
    if server:
        mine.add(server)
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent in mine and int(entry.name) != server:
                found.add(int(entry.name))
    return found


async def _until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the work never started"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("when", WHEN)
@pytest.mark.parametrize("work", WORK)
@pytest.mark.parametrize("mode", MODES)
async def test_stop(mode: str, work: str, when: str, tmp_path: Path) -> None:
    from loom.engine.manager import CLEANUP_DEADLINE

    tag = f"{mode}-{work}-{when}"
    marker = tmp_path / "finally"
    graph, owner, last = build(mode, work, when, tag, marker)
    before_children = _children()
    bus = EventBus()
    events = Recorder(bus)
    grace = {"before": 0.5, "mid": 0.1, "grace": 3.0, "second": 30.0}[when]
    manager = ExecutionManager(graph, REG, bus=bus, stop_grace=grace)
    task = asyncio.create_task(manager.run())
    if when == "before":
        await _until(lambda: ("node_started", "hold") in
                     [(e["type"], e.get("node")) for e in events.events])
    else:
        await _until(lambda: any(e["type"] == "node_started" and e.get("node") == "w0"
                                 for e in events.events))
    if work == "process" and when in ("mid", "second"):
        # The worker is inside the call (a SIGTERM then unwinds it, running its finally).
        await _until(Path(str(marker) + ".started").exists)
    manager.request_stop()
    if when == "second":
        await asyncio.sleep(0.05)
        if work != "cheap" or mode in ("for_each", "for_each_parallel", "while", "parallel",
                                       "event"):
            assert not task.done(), "the first stop lets work under way go on"
        manager.request_stop(grace=0)
    # Generous: the grace period (or, for "second", none) plus the clean-up deadline.
    bound = (0 if when == "second" else grace) + CLEANUP_DEADLINE + 5.0
    result = await asyncio.wait_for(task, bound)
    await _check(result, events, mode, work, when, owner, last, marker)
    await _no_leftovers(before_children, tag)


async def _check(result: Any, events: Recorder, mode: str, work: str, when: str, owner: str,
                 last: str, marker: Path) -> None:
    """What a stopped run must report."""
    tag = f"{mode}-{work}-{when}"
    got = {nid: rec.state for nid, rec in result.nodes.items()}
    assert result.status is RunStatus.STOPPED, tag
    unfinished = [n for n, s in got.items()
                  if s in (NodeState.PENDING, NodeState.QUEUED, NodeState.RUNNING)]
    assert not unfinished, f"{tag}: left unfinished: {unfinished[:5]}"
    assert got["after"] is not NodeState.DONE or (mode == "event" and when == "grace"), \
        f"{tag}: a node downstream of stopped work ran"
    assert result.errors == [], f"{tag}: a stop is not a failure"
    if when == "before":
        assert "w0" not in [e.get("node") for e in events.of("node_started")], tag
    if when in ("mid", "second"):
        if work == "async":
            assert tag in finally_ran, f"{tag}: the work's finally block ran"
        if work == "process":
            # The marker is written as the worker unwinds; a loaded machine may take a
            # while to schedule it, so wait by the clock, generously, not by a count.
            deadline = time.monotonic() + 10.0
            while not marker.exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert marker.exists(), f"{tag}: the process work's finally block ran"
        if work == "cheap":
            assert got[last] is not NodeState.DONE, f"{tag}: the chain went on to its end"
        else:
            assert got[owner] is NodeState.STOPPED, (tag, got[owner])
            assert owner in result.cancelled, (tag, result.cancelled)
        assert set(result.abandoned) <= {"w0"}, result.abandoned
        if work in ("thread", "generator"):
            assert set(result.abandoned) == {"w0"}, "the thread that never looks is reported"
    if when == "grace" and work != "cheap" and mode != "event":
        # The work ended on its own within the grace period: done, not cancelled.
        assert got["w0"] is NodeState.DONE, (tag, got["w0"])


async def _no_leftovers(before_children: set[int], tag: str) -> None:
    """No worker process is left (the leak check covers tasks, threads, descriptors)."""
    for _ in range(200):
        if _children() <= before_children:
            break
        await asyncio.sleep(0.01)
    assert _children() <= before_children, f"{tag}: worker processes left"
    # An abandoned thread ends by itself soon after (it cannot be killed).
    for _ in range(100):
        if not [t for t in threading.enumerate() if t.name.startswith("loom-node")]:
            break
        await asyncio.sleep(0.02)
