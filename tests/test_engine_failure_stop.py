"""A node's failure stays the node's; stop ends a run cleanly."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from helpers import graph_of, registry_of, run_graph, states

from loom import node
from loom.engine import EventBus, ExecutionManager, NodeState, RunStatus


@node(id="t.value", cheap=True)
def value(value: Any = None) -> Any:
    return value


@node(id="t.inc", cheap=True)
def inc(x: float) -> float:
    return x + 1


@node(id="t.boom")
def boom(x: Any = None) -> Any:
    raise ValueError(f"cannot handle {x!r}")


@node(id="t.boom_inline", cheap=True)
def boom_inline(x: Any = None) -> Any:
    return {"x": x}["missing"]


@node(id="t.boom_async")
async def boom_async(x: Any = None) -> Any:
    await asyncio.sleep(0)
    raise RuntimeError("async trouble")


@node(id="t.raises_cancelled")
async def raises_cancelled() -> Any:
    raise asyncio.CancelledError


cleanup: list[str] = []


@node(id="t.long")
async def long(x: Any = None, seconds: float = 30.0) -> Any:
    try:
        await asyncio.sleep(seconds)
    finally:
        cleanup.append("long")
    return x


@node(id="t.cooperative")
def cooperative(ctx: Any = None, seconds: float = 30.0) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ctx.stop_requested:
            cleanup.append("cooperative")
            return "stopped early"
        time.sleep(0.005)
    return "ran out"


REG = registry_of(value, inc, boom, boom_inline, boom_async, raises_cancelled, long, cooperative,
                  builtins=True)


@pytest.mark.parametrize("kind", ["t.boom", "t.boom_inline", "t.boom_async"])
async def test_failure_is_isolated_and_reported(kind: str) -> None:
    graph = graph_of([("v", "t.value", {"value": 1}), ("bad", kind), ("after", "t.inc"),
                      ("after2", "t.inc"), ("other", "t.inc")],
                     ["v.out -> bad.x", "bad.out -> after.x", "after.out -> after2.x",
                      "v.out -> other.x"])
    result, rec = await run_graph(graph, REG)
    assert result.status is RunStatus.FAILED
    assert states(result) == {"v": "done", "bad": "failed", "after": "skipped",
                              "after2": "skipped", "other": "done"}
    assert result.nodes["after2"].reason == "upstream failed: bad"
    bad = result.nodes["bad"]
    assert bad.error is not None and bad.traceback is not None
    assert bad.error.split(":")[0] in ("ValueError", "KeyError", "RuntimeError")
    assert "test_engine_failure_stop.py" in bad.traceback, "the user's frame is shown"
    assert "loom/engine" not in bad.traceback, "engine plumbing is left out"
    assert result.errors == [{"node": "bad", "error": bad.error, "traceback": bad.traceback,
                              "handled": False}]
    failed = rec.of("node_failed")
    assert len(failed) == 1 and failed[0]["error"] == bad.error


async def test_code_node_error_points_at_user_line() -> None:
    graph = graph_of([("c", "control.code", {
        "code": "a = value * 2\nb = a + 1\nraise ValueError(f'b is {b}')", "value": 1})])
    result, _ = await run_graph(graph, REG)
    rec = result.nodes["c"]
    assert rec.error == "ValueError: b is 3"
    assert 'File "<code node c>", line 3' in (rec.traceback or "")
    assert "raise ValueError(f'b is {b}')" in (rec.traceback or "")
    assert "control.py" not in (rec.traceback or "")


async def test_code_node_computes_with_several_outputs() -> None:
    graph = graph_of([("c", "control.code", {
        "code": "return {'total': a + b, 'product': a * b}", "inputs": "a, b",
        "outputs": "total, product", "a": 3, "b": 4}), ("n", "t.inc")], ["c.total -> n.x"])
    result, _ = await run_graph(graph, REG)
    assert result.outputs["c"] == {"total": 7, "product": 12}
    assert result.outputs["n"] == {"out": 8}


async def test_a_node_raising_cancelled_error_is_a_failure_not_a_stop() -> None:
    result, _ = await run_graph(graph_of([("c", "t.raises_cancelled")]), REG)
    assert result.status is RunStatus.FAILED
    assert result.nodes["c"].state is NodeState.FAILED


async def test_subscriber_that_raises_is_detached_and_run_continues(
        caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    seen: list[str] = []

    def bad(batch: list[dict[str, Any]]) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(bad)
    bus.subscribe(lambda batch: seen.extend(e["type"] for e in batch))
    graph = graph_of([("v", "t.value", {"value": 1}), ("i", "t.inc")], ["v.out -> i.x"])
    result = await ExecutionManager(graph, REG, bus=bus).run()
    assert result.status is RunStatus.SUCCEEDED
    assert seen[-1] == "run_finished"
    assert bus.failures and "subscriber bug" in bus.failures[0]


@pytest.mark.parametrize("limit", [1, 3])
async def test_stop_cancels_running_nodes_runs_finally_and_skips_the_rest(limit: int) -> None:
    cleanup.clear()
    graph = graph_of([("c", "t.value", {"value": 1}), ("a", "t.long"), ("b", "t.inc")],
                     ["a.out -> b.x"], max_concurrency=limit)
    bus = EventBus()
    manager = ExecutionManager(graph, REG, bus=bus)
    stopped_at: list[float] = []

    async def stop_soon() -> None:
        await asyncio.sleep(0.1)
        stopped_at.append(time.perf_counter())
        manager.request_stop(grace=0)

    stopper = asyncio.create_task(stop_soon())
    result = await manager.run()
    await stopper
    assert time.perf_counter() - stopped_at[0] < 0.5
    assert result.status is RunStatus.STOPPED
    assert states(result) == {"a": "stopped", "b": "skipped", "c": "done"}
    assert result.nodes["b"].reason == "run stopped"
    assert cleanup == ["long"], "the node's finally ran"
    assert manager.status is RunStatus.STOPPED


async def test_stop_reaches_thread_nodes_through_the_stop_flag() -> None:
    cleanup.clear()
    graph = graph_of([("w", "t.cooperative")])
    manager = ExecutionManager(graph, REG)
    task = asyncio.create_task(manager.run())
    await asyncio.sleep(0.1)
    manager.request_stop()
    result = await task
    assert result.status is RunStatus.STOPPED
    assert result.nodes["w"].state is NodeState.DONE, "it finished within the grace period"
    assert result.outputs["w"] == {"out": "stopped early"}
    assert result.abandoned == [] and result.cancelled == []
    assert cleanup == ["cooperative"]


async def test_request_stop_from_another_thread() -> None:
    cleanup.clear()
    manager = ExecutionManager(graph_of([("a", "t.long")]), REG)
    task = asyncio.create_task(manager.run())
    await asyncio.sleep(0.05)
    thread = threading.Thread(target=manager.request_stop, kwargs={"grace": 0})
    thread.start()
    thread.join()
    result = await asyncio.wait_for(task, 2)
    assert result.status is RunStatus.STOPPED


async def test_stop_when_idle_is_harmless_and_manager_can_run_again() -> None:
    manager = ExecutionManager(graph_of([("v", "t.value", {"value": 2})]), REG)
    manager.request_stop()
    assert (await manager.run()).status is RunStatus.SUCCEEDED
    manager.request_stop()
    assert (await manager.run()).status is RunStatus.SUCCEEDED


async def test_outside_cancellation_propagates_after_cleanup() -> None:
    cleanup.clear()
    manager = ExecutionManager(graph_of([("a", "t.long")]), REG)
    task = asyncio.create_task(manager.run())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleanup == ["long"]
    assert manager.records["a"].state is NodeState.STOPPED
    assert manager.status is RunStatus.STOPPED


async def test_stop_events_are_published() -> None:
    bus = EventBus()
    events: list[dict[str, Any]] = []
    bus.subscribe(events.extend)
    graph = graph_of([("a", "t.long"), ("b", "t.inc")], ["a.out -> b.x"])
    manager = ExecutionManager(graph, REG, bus=bus, stop_grace=0)
    task = asyncio.create_task(manager.run())
    await asyncio.sleep(0.05)
    manager.request_stop()
    await task
    kinds = [(e["type"], e.get("node")) for e in events]
    assert ("node_stopped", "a") in kinds and ("node_skipped", "b") in kinds
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "stopped"


@node(id="t.stubborn_thread")
def stubborn_thread(seconds: float = 0.6) -> str:
    time.sleep(seconds)  # never looks at ctx.stop_requested
    return "late"


stubborn_done = threading.Event()


@node(id="t.ignores_cancel")
async def ignores_cancel() -> str:
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        await asyncio.sleep(2.6)  # longer than the clean-up deadline
    finally:
        stubborn_done.set()
    return "never"


async def test_stop_does_not_wait_forever_for_a_thread_that_ignores_it() -> None:
    manager = ExecutionManager(graph_of([("s", "t.stubborn_thread")]),
                               registry_of(stubborn_thread), stop_grace=0.1)
    task = asyncio.create_task(manager.run())
    await asyncio.sleep(0.05)
    stopped = time.perf_counter()
    manager.request_stop()
    result = await task
    assert time.perf_counter() - stopped < 0.45
    assert result.status is RunStatus.STOPPED
    assert result.abandoned == ["s"], "the thread still running is reported"
    assert result.cancelled == ["s"]


async def test_stop_gives_up_on_clean_up_that_never_ends_and_reports_it() -> None:
    from loom.engine.manager import CLEANUP_DEADLINE

    stubborn_done.clear()
    manager = ExecutionManager(graph_of([("n", "t.ignores_cancel")]),
                               registry_of(ignores_cancel), stop_grace=0)
    task = asyncio.create_task(manager.run())
    await asyncio.sleep(0.05)
    stopped = time.perf_counter()
    manager.request_stop()
    result = await task
    assert CLEANUP_DEADLINE <= time.perf_counter() - stopped < CLEANUP_DEADLINE + 0.5
    assert result.status is RunStatus.STOPPED
    assert result.abandoned == ["n"]
    for _ in range(100):  # let the stubborn task end before the leak check runs
        if stubborn_done.is_set():
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.05)
