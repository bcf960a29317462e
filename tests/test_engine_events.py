"""Event nodes: timer, file and HTTP triggers running waves; overflow; phased stop."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from helpers import Recorder, graph_of, registry_of, states

from loom import node
from loom.engine import EventBus, ExecutionManager, NodeState, RunStatus, validate
from loom.graph import Graph


@node(id="t.count", cheap=True)
def count(event: dict, ctx: Any = None) -> list[int]:
    ctx.vars["seen"] = ctx.vars.get("seen", 0) + 1
    return [int(event.get("count", 0)), int(ctx.vars["seen"])]


@node(id="t.echo", cheap=True)
def echo(x: Any = None) -> Any:
    return x


finished: list[Any] = []


@node(id="t.work")
async def work(event: Any = None, seconds: float = 0.2) -> Any:
    try:
        await asyncio.sleep(seconds)
    finally:
        finished.append(event.get("count") if isinstance(event, dict) else event)
    return "worked"


@node(id="t.fail_on_two", cheap=True)
def fail_on_two(event: dict) -> int:
    if event.get("count") == 2:
        raise RuntimeError("wave two breaks")
    return int(event["count"])


@node(id="t.reply", cheap=True)
def reply(event: dict) -> dict:
    return {"you_sent": event["body"], "method": event["method"]}


@node(id="t.poll", cheap=True, mode="event", metadata={"event_type": "timer", "interval": 0.02})
def poll(start: int = 100, ctx: Any = None) -> int:
    ctx.vars["polls"] = ctx.vars.get("polls", 0) + 1
    return start + int(ctx.vars["polls"])


REG = registry_of(count, echo, work, fail_on_two, reply, poll, builtins=True)


def timer_graph(downstream: str = "t.count", port: str = "event", **timer: Any) -> Graph:
    meta = {"event_type": "timer", "interval": 0.05, **timer}
    return graph_of([("tick", "event.timer", {}, meta), ("d", downstream)],
                    [f"tick.event -> d.{port}"])


async def start(manager: ExecutionManager, kind: str = "event_source_ready",
                timeout: float = 5.0) -> tuple[asyncio.Task[Any], dict[str, Any]]:
    """Run in the background until the first event of ``kind``; return it."""
    seen: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def watch(batch: list[dict[str, Any]]) -> None:
        for event in batch:
            if event["type"] == kind and not seen.done():
                seen.set_result(event)

    manager.bus.subscribe(watch)
    task = asyncio.create_task(manager.run())
    done, _ = await asyncio.wait({task, seen}, timeout=timeout,
                                 return_when=asyncio.FIRST_COMPLETED)
    assert seen in done, f"no {kind} event (run ended: {task.done()})"
    return task, seen.result()


# ------------------------------------------------------------------ timer


async def test_timer_count_spacing_and_the_run_ends_by_itself() -> None:
    bus = EventBus()
    rec = Recorder(bus)
    manager = ExecutionManager(timer_graph(count=5), REG, bus=bus)
    result = await asyncio.wait_for(manager.run(), 5)
    assert result.status is RunStatus.SUCCEEDED
    triggered = rec.of("event_triggered")
    assert [e["wave"] for e in triggered] == [1, 2, 3, 4, 5]
    times = [e["t"] for e in triggered]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.03 < g < 0.09 for g in gaps), gaps
    assert times[-1] - times[0] == pytest.approx(0.2, abs=0.05), "no drift over 4 intervals"
    assert [e["outputs"]["out"][0] for e in rec.of("node_finished") if e["node"] == "d"] == \
        [1, 2, 3, 4, 5]
    assert result.nodes["tick"].stats == {"waves": 5, "completed": 5, "failed": 0, "dropped": 0,
                                          "coalesced": 0}
    assert result.nodes["tick"].iterations == 5


async def test_one_at_a_time_waves_share_the_context_overlapping_ones_do_not() -> None:
    manager = ExecutionManager(timer_graph(count=4, interval=0.02), REG)
    await manager.run()
    assert manager.records["d"].outputs == {"out": [4, 4]}, "seen counted across waves"
    manager = ExecutionManager(timer_graph(count=4, interval=0.02, max_concurrent_waves=3),
                               REG)
    await manager.run()
    assert manager.records["d"].outputs == {"out": [4, 1]}, "each wave had its own clone"


async def test_failed_wave_fails_the_run_but_the_source_goes_on() -> None:
    result = await asyncio.wait_for(ExecutionManager(
        timer_graph("t.fail_on_two", count=3, interval=0.02), REG).run(), 5)
    assert result.status is RunStatus.FAILED
    assert result.nodes["tick"].stats["failed"] == 1
    assert result.nodes["tick"].stats["completed"] == 2
    assert result.nodes["d"].outputs == {"out": 3}, "wave three ran after wave two failed"


async def test_a_function_polled_on_a_timer_feeds_its_waves() -> None:
    graph = graph_of([("p", "t.poll", {"start": 10}, {"count": 3}), ("e", "t.echo")],
                     ["p.out -> e.x"])
    result = await asyncio.wait_for(ExecutionManager(graph, REG).run(), 5)
    assert result.status is RunStatus.SUCCEEDED
    assert result.nodes["e"].outputs == {"out": 13}


# ------------------------------------------------------------------ overflow


async def test_overflow_drop_counts_and_reports() -> None:
    finished.clear()
    bus = EventBus()
    rec = Recorder(bus)
    graph = timer_graph("t.work", interval=0.02, count=10, overflow="drop")
    result = await asyncio.wait_for(ExecutionManager(graph, REG, bus=bus).run(), 10)
    stats = result.nodes["tick"].stats
    assert stats["waves"] + stats["dropped"] == 10 and stats["dropped"] >= 5
    assert len(rec.of("event_dropped")) == stats["dropped"]
    assert len(finished) == stats["waves"]


async def test_overflow_queue_is_bounded_and_runs_waves_in_order() -> None:
    finished.clear()
    graph = timer_graph("t.work", interval=0.01, count=8, overflow="queue", queue_size=2)
    graph.nodes["d"].properties["seconds"] = 0.1
    result = await asyncio.wait_for(ExecutionManager(graph, REG).run(), 10)
    stats = result.nodes["tick"].stats
    assert stats["dropped"] >= 4, "beyond the queue's two slots, triggers are dropped"
    assert finished == sorted(finished), "queued waves run in trigger order"


async def test_concurrent_waves_overlap_up_to_the_limit() -> None:
    finished.clear()
    graph = timer_graph("t.work", interval=0.01, count=6, max_concurrent_waves=3,
                        overflow="queue")
    started = time.perf_counter()
    result = await asyncio.wait_for(ExecutionManager(graph, REG).run(), 10)
    assert result.nodes["tick"].stats["waves"] == 6
    assert time.perf_counter() - started < 0.9, "6 waves of 0.2 s, 3 at a time: ~0.45 s"


# ------------------------------------------------------------------ files


async def test_file_events_are_debounced_and_delivered(tmp_path: Path) -> None:
    graph = graph_of([("watch", "event.file_change", {}, {
        "event_type": "file_change", "watch_path": str(tmp_path), "patterns": ["*.txt"],
        "debounce_ms": 100}), ("e", "t.echo")], ["watch.event -> e.x"])
    bus = EventBus()
    rec = Recorder(bus)
    manager = ExecutionManager(graph, REG, bus=bus, stop_grace=0.5)
    task, _ = await start(manager)
    target = tmp_path / "notes.txt"
    for i in range(20):
        target.write_text(f"line {i}\n")
    (tmp_path / "ignored.log").write_text("not a txt")
    for _ in range(100):
        await asyncio.sleep(0.02)
        if rec.of("event_triggered"):
            break
    await asyncio.sleep(0.3)  # a second trigger would have come by now
    manager.request_stop()
    result = await asyncio.wait_for(task, 5)
    assert result.status is RunStatus.STOPPED
    waves = rec.of("event_triggered")
    assert len(waves) == 1, waves
    payload = result.nodes["e"].outputs["out"]
    assert payload["path"] == str(target) and payload["kind"] in ("created", "modified")


# ------------------------------------------------------------------ HTTP


def http_graph(**settings: Any) -> Graph:
    meta = {"event_type": "http_request", "port": 0, "path": "/hook", "method": "POST",
            **settings}
    return graph_of([("hook", "event.http_request", {}, meta), ("r", "t.reply")],
                    ["hook.event -> r.event"])


async def test_http_trigger_answers_with_the_graphs_result_and_needs_its_token() -> None:
    manager = ExecutionManager(http_graph(), REG, stop_grace=0.5)
    task, ready = await start(manager)
    try:
        assert ready["host"] == "127.0.0.1", "loopback only by default"
        url, token = ready["url"], ready["token"]
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json={"n": 1}) as response:
                assert response.status == 401
            headers = {"Authorization": f"Bearer {token}"}
            async with session.post(url, json={"n": 1}, headers=headers) as response:
                assert response.status == 200
                assert await response.json() == {"you_sent": {"n": 1}, "method": "POST"}
    finally:
        manager.request_stop()
        result = await asyncio.wait_for(task, 5)
    assert result.status is RunStatus.STOPPED
    assert result.nodes["hook"].stats["completed"] == 1


async def test_http_wave_failure_answers_500_without_a_traceback() -> None:
    graph = http_graph(auth="none", expose_errors=True)
    graph.nodes["r"].type = "t.fail_on_two"
    graph.connections[0].dst_port = "event"
    manager = ExecutionManager(graph, REG, stop_grace=0.5)
    task, ready = await start(manager)
    try:
        async with aiohttp.ClientSession() as session, \
                session.post(ready["url"], json={}) as response:
            body = await response.text()
            assert response.status == 500
            assert "Traceback" not in body and "KeyError" in body
    finally:
        manager.request_stop()
        await asyncio.wait_for(task, 5)


# ------------------------------------------------------------------ stop, limits, opening


async def test_stop_lets_a_wave_in_flight_finish_within_the_grace_period() -> None:
    finished.clear()
    graph = timer_graph("t.work", interval=10.0)
    graph.nodes["d"].properties["seconds"] = 0.3
    bus = EventBus()
    manager = ExecutionManager(graph, REG, bus=bus, stop_grace=2.0)
    task, _ = await start(manager, "node_started")
    manager.request_stop()
    result = await asyncio.wait_for(task, 5)
    assert result.status is RunStatus.STOPPED
    assert finished == [1] and result.nodes["d"].state is NodeState.DONE, "the wave drained"
    assert result.cancelled == []


async def test_stop_cancels_a_stuck_wave_after_the_grace_period_and_runs_its_finally() -> None:
    finished.clear()
    graph = timer_graph("t.work", interval=10.0)
    graph.nodes["d"].properties["seconds"] = 30.0
    manager = ExecutionManager(graph, REG, stop_grace=0.2)
    task, _ = await start(manager, "node_started")
    stopped = time.perf_counter()
    manager.request_stop()
    result = await asyncio.wait_for(task, 5)
    assert 0.15 < time.perf_counter() - stopped < 1.0
    assert result.status is RunStatus.STOPPED
    assert finished == [1], "the cancelled wave's finally ran"
    assert set(result.cancelled) == {"tick", "d"}
    assert states(result)["d"] == "stopped"


async def test_max_waves_and_duration_end_the_run_on_their_own() -> None:
    result = await asyncio.wait_for(ExecutionManager(timer_graph(interval=0.02), REG,
                                                     max_waves=3).run(), 5)
    assert result.status is RunStatus.SUCCEEDED and result.nodes["tick"].stats["waves"] == 3
    started = time.perf_counter()
    result = await asyncio.wait_for(ExecutionManager(timer_graph(interval=0.05), REG,
                                                     duration=0.3).run(), 5)
    assert result.status is RunStatus.SUCCEEDED
    assert 0.25 < time.perf_counter() - started < 1.0
    assert 5 <= result.nodes["tick"].stats["waves"] <= 8


def test_opening_and_validating_arms_nothing_and_runs_nothing(tmp_path: Path) -> None:
    before = threading.active_count()
    calls: list[str] = []

    @node(id="t.spy", cheap=True)
    def spy(event: Any = None) -> None:
        calls.append("ran")

    registry = registry_of(spy, builtins=True)
    graph = graph_of([("h", "event.http_request", {}, {"event_type": "http_request",
                                                        "port": 0}),
                      ("w", "event.file_change", {}, {"event_type": "file_change",
                                                       "watch_path": str(tmp_path)}),
                      ("t", "event.timer", {}, {"event_type": "timer", "interval": 0.01}),
                      ("s1", "t.spy"), ("s2", "t.spy"), ("s3", "t.spy")],
                     ["h.event -> s1.event", "w.event -> s2.event", "t.event -> s3.event"])
    assert validate(graph, registry) == []
    time.sleep(0.05)
    assert threading.active_count() == before, "no observer, server or timer was started"
    assert calls == []


def test_event_sources_are_validated() -> None:
    graph = graph_of([("t", "event.timer", {}, {"event_type": "timer", "interval": -1}),
                      ("u", "event.timer", {}, {"event_type": "bogus"}),
                      ("l", "control.for_each", {"items": [1]}, {"body": ["x"]}),
                      ("x", "event.timer", {}, {"event_type": "timer", "interval": 1})])
    errors = [str(i) for i in validate(graph, REG) if i.severity == "error"]
    assert any(e.startswith("t: metadata.interval") for e in errors), errors
    assert any(e.startswith("u: metadata.event_type must be one of") for e in errors), errors
    assert "x: an event source cannot run inside a loop body or branch" in errors


def test_a_schedule_with_a_bad_cron_or_zone_is_an_issue_naming_node_and_field() -> None:
    graph = graph_of([("s", "event.schedule", {}, {"event_type": "schedule",
                                                   "cron": "0 25 * * *", "timezone": "UTC"}),
                      ("z", "event.schedule", {}, {"event_type": "schedule",
                                                   "cron": "0 9 * * 1-5",
                                                   "timezone": "Europe/Atlantis"}),
                      ("ok", "event.schedule", {}, {"event_type": "schedule",
                                                    "cron": "0 9 * * 1-5",
                                                    "timezone": "Europe/Berlin"})])
    errors = [str(i) for i in validate(graph, REG) if i.severity == "error"]
    assert errors == [
        "s: metadata.cron is not a valid cron expression (Bad hour): '0 25 * * *'",
        "z: metadata.timezone is not a known IANA time zone (e.g. Europe/Berlin, UTC), "
        "not 'Europe/Atlantis'"]


async def test_a_per_second_schedule_runs_waves_until_its_count() -> None:
    bus = EventBus()
    rec = Recorder(bus)
    graph = graph_of([("cron", "event.schedule", {}, {"event_type": "schedule",
                                                      "cron": "* * * * * *", "count": 2}),
                      ("d", "t.echo")], ["cron.event -> d.x"])
    result = await asyncio.wait_for(ExecutionManager(graph, REG, bus=bus).run(), 10)
    assert result.status is RunStatus.SUCCEEDED
    assert result.nodes["cron"].stats["waves"] == 2
    values = [e["outputs"]["out"] for e in rec.of("node_finished") if e["node"] == "d"]
    assert [(v["type"], v["count"]) for v in values] == [("schedule", 1), ("schedule", 2)]
    assert all(v["time"].endswith("+00:00") for v in values)


async def test_stop_ends_a_schedule_waiting_for_next_year_at_once() -> None:
    graph = graph_of([("cron", "event.schedule", {}, {"event_type": "schedule",
                                                      "cron": "0 0 1 1 *"}),
                      ("d", "t.echo")], ["cron.event -> d.x"])
    manager = ExecutionManager(graph, REG)
    task, ready = await start(manager)
    assert ready["node"] == "cron"
    manager.request_stop()
    result = await asyncio.wait_for(task, 5)
    assert result.status is RunStatus.STOPPED
    assert result.nodes["cron"].stats["waves"] == 0


async def test_two_sources_run_side_by_side_even_with_a_concurrency_of_one() -> None:
    graph = graph_of([("a", "event.timer", {}, {"event_type": "timer", "interval": 0.02,
                                                "count": 3}),
                      ("b", "event.timer", {}, {"event_type": "timer", "interval": 0.02,
                                                "count": 3}),
                      ("ea", "t.echo"), ("eb", "t.echo")],
                     ["a.event -> ea.x", "b.event -> eb.x"])
    result = await asyncio.wait_for(ExecutionManager(graph, REG).run(), 5)
    assert result.nodes["a"].stats["waves"] == 3 and result.nodes["b"].stats["waves"] == 3
