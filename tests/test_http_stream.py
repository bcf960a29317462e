"""``response: "stream"`` on the HTTP trigger (issue 10, point 6): Server-Sent Events of
the request's own wave (branch and for-each item results as they happen), then its
result or its error, then the end; other waves never mix in; a client that leaves
mid-stream breaks nothing.

Servers bind 127.0.0.1 on a free port; waves are held by gates the test opens, so the
order of events is forced, never timed. The suite's leak check sees any task left.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from helpers import Recorder, graph_of, registry_of

from loom import node
from loom.engine import EventBus, ExecutionManager
from loom.engine.sources import check_settings
from loom.graph import Graph

gates: dict[str, asyncio.Event] = {}


@node(id="s.items", cheap=True)
def items_of(event: dict) -> list:
    return list(event["body"]["items"])


@node(id="s.body", cheap=True)
def body_of(event: dict) -> dict:
    return dict(event["body"])


@node(id="s.step")
async def step(x: str) -> str:
    """Waits for the gate named by its item, then answers it in capitals."""
    await gates[x].wait()
    return x.upper()


@node(id="s.tagged")
async def tagged(x: dict, suffix: str = "") -> str:
    """Waits for the gate named by the request's tag; answers tag-suffix."""
    await gates[x["tag"]].wait()
    return f"{x['tag']}-{suffix}"


@node(id="s.leak", cheap=True)
def leak(x: list) -> str:
    raise RuntimeError("cannot connect to db://admin:hunter2@10.0.0.5")


REG = registry_of(items_of, body_of, step, tagged, leak, builtins=True)
HOOK = {"event_type": "http_request", "port": 0, "path": "/hook", "auth": "none",
        "response": "stream"}


@contextlib.asynccontextmanager
async def serving(graph: Graph, bus: EventBus | None = None
                  ) -> AsyncIterator[tuple[ExecutionManager, dict[str, Any]]]:
    """A run of ``graph`` until its source listens; stopped however the test ends."""
    bus = bus or EventBus()
    ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def watch(batch: list[dict[str, Any]]) -> None:
        for event in batch:
            if event["type"] == "event_source_ready" and not ready.done():
                ready.set_result(event)

    bus.subscribe(watch)
    manager = ExecutionManager(graph, REG, bus=bus, stop_grace=0.5)
    task = asyncio.create_task(manager.run())
    try:
        await asyncio.wait({task, ready}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        assert ready.done(), "the source never listened"
        yield manager, ready.result()
    finally:
        manager.request_stop()
        await asyncio.wait_for(task, 5)


def loop_graph(**settings: Any) -> Graph:
    """hook -> items of the body -> for_each(step); the loop's results answer."""
    return graph_of(
        [("hook", "event.http_request", {}, {**HOOK, "response_node": "loop", **settings}),
         ("get", "s.items"),
         ("loop", "control.for_each", {}, {"body": ["step"]}), ("step", "s.step")],
        ["hook.event -> get.event", "get.out -> loop.items", "loop.item -> step.x"])


def branch_graph(**settings: Any) -> Graph:
    """hook -> body of the request -> parallel branches a and b."""
    return graph_of(
        [("hook", "event.http_request", {}, {**HOOK, "response_node": "p", **settings}),
         ("get", "s.body"),
         ("p", "control.parallel", {}, {"parallel_branches": {"a": ["a"], "b": ["b"]}}),
         ("a", "s.tagged", {"suffix": "a"}), ("b", "s.tagged", {"suffix": "b"})],
        ["hook.event -> get.event", "get.out -> p.value", "p.value -> a.x", "p.value -> b.x"])



async def next_event(resp: aiohttp.ClientResponse, timeout: float = 5.0
                     ) -> tuple[str, Any] | None:
    """The next Server-Sent Event as (name, parsed data); None at the end of the stream."""
    block = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), timeout)
    if not block:
        return None
    assert block.endswith(b"\n\n"), block
    fields = dict(line.split(": ", 1) for line in block.decode().strip().split("\n"))
    return fields["event"], json.loads(fields["data"])


async def rest(resp: aiohttp.ClientResponse) -> list[tuple[str, Any]]:
    """Every event left, up to the end of the stream."""
    events = []
    while (event := await next_event(resp)) is not None:
        events.append(event)
    return events


async def test_items_stream_as_they_finish_then_the_result_and_the_end() -> None:
    for name in ("i0", "i1", "i2"):
        gates[name] = asyncio.Event()
    gates["i0"].set()
    async with serving(loop_graph()) as (_, info), aiohttp.ClientSession() as http, \
            http.post(info["url"], json={"items": ["i0", "i1", "i2"]}) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        name, data = await next_event(resp) or ("", None)
        # item 0 arrives while items 1 and 2 are still held: it was sent as it happened
        assert name == "item_completed" and data["index"] == 0 and data["result"] == "I0"
        assert not gates["i1"].is_set()
        gates["i1"].set()
        name, data = await next_event(resp) or ("", None)
        assert (name, data["index"], data["result"]) == ("item_completed", 1, "I1")
        gates["i2"].set()
        events = await rest(resp)
    assert [e[0] for e in events] == ["item_completed", "result"]
    assert events[0][1]["index"] == 2 and events[0][1]["total"] == 3
    assert events[1][1] == ["I0", "I1", "I2"]


async def test_concurrent_streams_carry_only_their_own_waves_branches() -> None:
    gates["A"], gates["B"] = asyncio.Event(), asyncio.Event()
    async with serving(branch_graph(max_concurrent_waves=2)) as (_, info), \
            aiohttp.ClientSession() as http, \
            http.post(info["url"], json={"tag": "A"}) as first, \
            http.post(info["url"], json={"tag": "B"}) as second:
        # both waves run at once; B finishes first, while A is still held
        gates["B"].set()
        got_b = await rest(second)
        gates["A"].set()
        got_a = await rest(first)
    for tag, events in (("A", got_a), ("B", got_b)):
        names = [e[0] for e in events]
        assert names == ["branch_completed", "branch_completed", "result"], events
        branches = {e[1]["branch"]: e[1]["result"] for e in events[:2]}
        assert branches == {"a": f"{tag}-a", "b": f"{tag}-b"}
        assert len({tuple(e[1]["scope"][0]) for e in events[:2]}) == 1
        assert events[2][1] == {"a": f"{tag}-a", "b": f"{tag}-b"}
    assert got_a[0][1]["scope"][0] != got_b[0][1]["scope"][0]


def leak_graph(**settings: Any) -> Graph:
    return graph_of(
        [("hook", "event.http_request", {}, {**HOOK, **settings}), ("get", "s.items"),
         ("bad", "s.leak")],
        ["hook.event -> get.event", "get.out -> bad.x"])


async def test_a_failed_wave_ends_the_stream_with_the_generic_error() -> None:
    bus = EventBus()
    seen = Recorder(bus)
    async with serving(leak_graph(), bus) as (_, info), aiohttp.ClientSession() as http, \
            http.post(info["url"], json={"items": []}) as resp:
        assert resp.status == 200
        raw = await resp.read()
    assert b"hunter2" not in raw and b"RuntimeError" not in raw
    blocks = raw.decode().strip().split("\n\n")
    assert len(blocks) == 1 and blocks[0].startswith("event: error\ndata: ")
    answer = json.loads(blocks[0].split("data: ", 1)[1])
    failed = seen.of("wave_failed")
    assert len(failed) == 1 and answer["error_id"] == failed[0]["error_id"]
    assert answer["error_id"] in answer["error"]


async def test_expose_errors_streams_the_message() -> None:
    async with serving(leak_graph(expose_errors=True)) as (_, info), \
            aiohttp.ClientSession() as http, \
            http.post(info["url"], json={"items": []}) as resp:
        name, data = await next_event(resp) or ("", None)
        assert await next_event(resp) is None
    assert name == "error" and "hunter2" in data["error"]


async def test_a_client_leaving_mid_stream_leaves_the_wave_running_and_nothing_behind() -> None:
    for name in ("k0", "k1"):
        gates[name] = asyncio.Event()
    gates["k0"].set()
    bus = EventBus()
    seen = Recorder(bus)
    async with serving(loop_graph(), bus) as (_, info):
        watchers = len(bus._subscribers)
        async with aiohttp.ClientSession() as http:
            async with http.post(info["url"], json={"items": ["k0", "k1"]}) as resp:
                assert (await next_event(resp) or ("",))[0] == "item_completed"
                assert len(bus._subscribers) == watchers + 1
                resp.close()  # hang up while item 1 is still held
            # the handler is cancelled on the hang-up and unsubscribes, before any
            # further event of the wave could tell it by a failed write
            for _ in range(100):
                if len(bus._subscribers) == watchers:
                    break
                await asyncio.sleep(0.02)
            assert len(bus._subscribers) == watchers
            gates["k1"].set()
            # the wave went on: its loop finished both items, and nothing failed
            for _ in range(200):
                if [e for e in seen.of("node_finished") if e["node"] == "loop"]:
                    break
                await asyncio.sleep(0.02)
            for _ in range(100):  # the handler notices the hang-up and unsubscribes
                if len(bus._subscribers) == watchers:
                    break
                await asyncio.sleep(0.02)
            assert len(bus._subscribers) == watchers
            async with http.post(info["url"], json={"items": ["k0"]}) as again:
                events = await rest(again)
    assert [e for e in seen.of("node_finished") if e["node"] == "loop"]
    assert not seen.of("wave_failed")
    assert events[-1] == ("result", ["K0"])


async def test_a_wave_past_response_timeout_ends_the_stream_with_an_error() -> None:
    gates["t0"], gates["t1"] = asyncio.Event(), asyncio.Event()
    gates["t0"].set()
    async with serving(loop_graph(response_timeout=0.3)) as (_, info), \
            aiohttp.ClientSession() as http, \
            http.post(info["url"], json={"items": ["t0", "t1"]}) as resp:
        events = await rest(resp)
        gates["t1"].set()  # the wave may end now; the stop would cancel it anyway
    assert [e[0] for e in events] == ["item_completed", "error"]
    assert "did not finish within 0.3 s" in events[1][1]["error"]


def test_the_response_setting_is_checked() -> None:
    assert check_settings("http_request", {"response": "stream"}) == []
    problems = check_settings("http_request", {"response": "sse"})
    assert len(problems) == 1 and "response" in problems[0]
