"""The event bus and the events a run publishes."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from helpers import graph_of, registry_of, run_graph

from loom import node
from loom.engine import EVENT_TYPES, EventBus
from loom.engine.trace import ChromeTrace


class Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


@node(id="t.value", cheap=True)
def value(value: Any = None) -> Any:
    return value


@node(id="t.weird", cheap=True)
def weird() -> Any:
    return {"set": {1, 2}, "obj": Opaque(), "nan": float("nan"), "big": "x" * 1000}


@node(id="t.fail", cheap=True)
def fail(x: Any = None) -> Any:
    raise KeyError("k")


REG = registry_of(value, weird, fail, builtins=True)


async def test_event_sequence_and_every_event_is_json() -> None:
    graph = graph_of([("v", "t.value", {"value": 1}), ("w", "t.weird"), ("if", "control.if"),
                      ("f", "t.fail"), ("after", "t.value")],
                     ["v.out -> if.value", "if.true -> f.x", "f.out -> after.value"])
    result, rec = await run_graph(graph, REG)
    for event in rec.events:
        assert event["type"] in EVENT_TYPES
        assert event["run"] == result.run_id
        json.dumps(event, allow_nan=False)  # raises if anything is not plain JSON
    assert rec.types("v") == ["node_queued", "node_started", "node_finished"]
    assert rec.types("f") == ["node_queued", "node_started", "node_failed"]
    assert rec.types("after") == ["node_skipped"]
    assert rec.types("if") == ["node_queued", "node_started", "branch_taken", "node_finished"]
    assert rec.events[0]["type"] == "run_started" and rec.events[0]["nodes"] == 5
    assert rec.events[-1]["type"] == "run_finished" and rec.events[-1]["failed"] == ["f"]
    times = [e["t"] for e in rec.events]
    assert times == sorted(times)
    finished = rec.of("node_finished")[1]
    assert finished["node"] == "w" and finished["duration_ms"] >= 0
    preview = finished["outputs"]["out"]
    assert preview["obj"] == "<opaque>" and preview["nan"] == "nan"
    assert len(preview["big"]) <= 201, "previews are short"


async def test_subscribers_get_batches_and_type_filters() -> None:
    bus = EventBus()
    batches: list[list[dict[str, Any]]] = []
    finished: list[str] = []
    bus.subscribe(batches.append)
    bus.subscribe(lambda b: finished.extend(e["node"] for e in b), types=["node_finished"])
    bus.attach(asyncio.get_running_loop())
    for i in range(5):
        bus.publish({"type": "node_finished", "node": f"n{i}"})
    bus.publish({"type": "log", "node": "n0", "message": "x"})
    assert batches == [], "delivery waits for the loop's next turn"
    await asyncio.sleep(0)
    assert len(batches) == 1 and len(batches[0]) == 6
    assert finished == ["n0", "n1", "n2", "n3", "n4"]


async def test_unsubscribe_and_inactive_bus_builds_nothing() -> None:
    bus = EventBus()
    assert not bus.active
    got: list[Any] = []
    unsubscribe = bus.subscribe(got.extend)
    assert bus.active
    unsubscribe()
    assert not bus.active
    bus.publish({"type": "log"})
    await asyncio.sleep(0)
    assert got == []


async def test_events_from_worker_threads_reach_the_loop() -> None:
    bus = EventBus()
    got: list[tuple[str, int]] = []
    bus.subscribe(lambda b: got.extend((e["type"], threading.get_ident()) for e in b))
    bus.attach(asyncio.get_running_loop())
    thread = threading.Thread(target=bus.publish, args=({"type": "log"},))
    thread.start()
    thread.join()
    for _ in range(3):
        await asyncio.sleep(0)
    assert got == [("log", threading.get_ident())], "delivered on the loop thread"


async def test_chrome_trace_lanes_show_overlap(tmp_path: Any) -> None:
    @node(id="t.nap")
    async def nap(x: Any = None) -> Any:
        await asyncio.sleep(0.05)
        return x

    graph = graph_of([("a", "t.nap"), ("b", "t.nap"), ("c", "t.nap")], ["a.out -> c.x"],
                     max_concurrency=2)
    from loom.engine import ExecutionManager

    bus = EventBus()
    trace = ChromeTrace({"a": "First (a)"}).attach(bus)
    await ExecutionManager(graph, registry_of(nap), bus=bus).run()
    path = tmp_path / "trace.json"
    trace.write(path)
    doc = json.loads(path.read_text())
    spans = {e["args"]["node"]: e for e in doc["traceEvents"] if e["ph"] == "X"}
    assert set(spans) == {"a", "b", "c"}
    assert spans["a"]["name"] == "First (a)" and spans["a"]["cat"] == "done"
    assert spans["a"]["tid"] != spans["b"]["tid"], "overlapping nodes get separate lanes"
    assert spans["a"]["dur"] >= 40_000, "durations are in microseconds"
    assert spans["c"]["ts"] >= spans["a"]["ts"] + spans["a"]["dur"]
