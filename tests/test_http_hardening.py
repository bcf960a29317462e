"""The HTTP trigger under abuse (issue 9, findings 13-15): overload, idle and half-sent
connections, a connection cap, malformed requests, token before routing, and failed
waves that do not leak their message.

Servers bind 127.0.0.1 on a free port and are closed in ``finally``; every raw socket
is closed by the test, so the suite's leak check sees nothing left. Timeouts are set
small (0.2 s) and waited for with generous bounds: nothing here measures speed.
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
from loom.engine.sources import HttpRequestSource, RunServices, WaveResult, check_settings
from loom.graph import Graph

# ------------------------------------------------------------------ helpers

gates: dict[str, asyncio.Event] = {}


@node(id="h.gate")
async def gate(event: dict) -> str:
    """Holds its wave until the test opens the gate named in the request's query."""
    await gates[event["query"]["gate"]].wait()
    return "through"


@node(id="h.leak", cheap=True)
def leak(event: dict) -> str:
    raise RuntimeError("cannot connect to db://admin:hunter2@10.0.0.5")


REG = registry_of(gate, leak, builtins=True)


def http_graph(downstream: str, **settings: Any) -> Graph:
    meta = {"event_type": "http_request", "port": 0, "path": "/hook", "auth": "none",
            **settings}
    return graph_of([("hook", "event.http_request", {}, meta), ("d", downstream)],
                    ["hook.event -> d.event"])


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


@contextlib.asynccontextmanager
async def source(settings: dict[str, Any], result: WaveResult | None = None
                 ) -> AsyncIterator[tuple[HttpRequestSource, dict[str, Any]]]:
    """A started HttpRequestSource whose trigger answers ``result`` at once."""
    answer = result or WaveResult(ok=True, value={"ok": True})

    def trigger(payload: dict[str, Any]) -> asyncio.Future[WaveResult]:
        future: asyncio.Future[WaveResult] = asyncio.get_running_loop().create_future()
        future.set_result(answer)
        return future

    services = RunServices()
    src = HttpRequestSource({"auth": "none", "path": "/hook", **settings}, trigger, "hook",
                            services)
    try:
        yield src, await src.start()
    finally:
        await src.aclose()
        assert await services.aclose()


@contextlib.asynccontextmanager
async def raw(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A plain TCP connection to the server, closed at the end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def read_answer(reader: asyncio.StreamReader, timeout: float = 3.0
                      ) -> tuple[int, dict[str, str], bytes]:
    """One HTTP answer: status, headers (lower-case names), body (by Content-Length)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", 0))),
                                  timeout)
    return status, headers, body


def request(path: str = "/hook", body: bytes = b"", extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: loom\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


async def closed_by_server(reader: asyncio.StreamReader, timeout: float = 3.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), timeout)


# ------------------------------------------------------------------ 13: overload


async def test_a_full_queue_refuses_before_reading_the_body_and_keeps_the_waves() -> None:
    gates["a"] = asyncio.Event()
    bus = EventBus()
    graph = http_graph("h.gate", max_concurrent_waves=1, overflow="queue", queue_size=1)
    try:
        async with serving(graph, bus) as (_, info), aiohttp.ClientSession() as http:
            async def call() -> tuple[int, Any]:
                async with http.post(info["url"] + "?gate=a", json={}) as resp:
                    return resp.status, await resp.text()

            seen = Recorder(bus)
            accepted = [asyncio.create_task(call())]
            while not seen.of("event_triggered"):  # the first wave holds the only slot
                await asyncio.sleep(0.01)
            accepted.append(asyncio.create_task(call()))  # waits in the queue
            await asyncio.sleep(0.5)  # no event marks a queued trigger: give it time to land
            async with raw(info["port"]) as (reader, writer):
                # a head announcing 100 kB that never come: refused without waiting for them
                writer.write(request("/hook?gate=a").replace(b"Content-Length: 0",
                                                             b"Content-Length: 100000"))
                status, headers, body = await read_answer(reader)
            assert status == 503 and headers["retry-after"] == "1"
            assert "busy" in json.loads(body)["error"]
            dropped = seen.of("event_dropped")
            assert len(dropped) == 1 and dropped[0]["payload"] is None
            gates["a"].set()
            assert await asyncio.wait_for(asyncio.gather(*accepted), 5) == [
                (200, "through"), (200, "through")]
    finally:
        gates["a"].set()


async def test_refusing_builds_no_payload() -> None:
    """A trigger with Admission that is full is never called: no body is parsed."""
    calls: list[dict[str, Any]] = []

    class Full:
        def __call__(self, payload: dict[str, Any]) -> None:
            calls.append(payload)

        def refuse_if_full(self) -> str:
            return "every wave slot is busy"

    services = RunServices()
    src = HttpRequestSource({"auth": "none"}, Full(), "hook", services)
    try:
        info = await src.start()
        async with aiohttp.ClientSession() as http, \
                http.post(info["url"], data=b"{not json", headers={
                    "Content-Type": "application/json"}) as resp:
            assert resp.status == 503 and resp.headers["Retry-After"] == "1"
    finally:
        await src.aclose()
        assert await services.aclose()
    assert calls == []


# ------------------------------------------------------------------ 14: connections


def test_limit_settings_are_checked() -> None:
    assert check_settings("http_request", {"max_connections": 0, "header_timeout": 0,
                                           "body_timeout": "x", "idle_timeout": -1}) == [
        "metadata.max_connections must be at least 1, not 0",
        "metadata.header_timeout must be a number above 0, not 0",
        "metadata.body_timeout must be a number above 0, not 'x'",
        "metadata.idle_timeout must be a number above 0, not -1",
    ]
    assert check_settings("http_request", {"max_connections": 10, "header_timeout": 1,
                                           "body_timeout": 2.5, "idle_timeout": 3}) == []


async def test_a_silent_connection_is_closed_after_idle_timeout() -> None:
    async with source({"idle_timeout": 0.2}) as (_, info), raw(info["port"]) as (reader, _):
        assert await closed_by_server(reader) == b""


async def test_an_idle_keep_alive_connection_is_closed_after_idle_timeout() -> None:
    async with source({"idle_timeout": 0.2}) as (_, info), \
            raw(info["port"]) as (reader, writer):
        writer.write(request())
        status, _, _ = await read_answer(reader)
        assert status == 200
        assert await closed_by_server(reader) == b""


async def test_a_half_sent_head_gets_408_after_header_timeout() -> None:
    async with source({"header_timeout": 0.2, "idle_timeout": 30}) as (_, info), \
            raw(info["port"]) as (reader, writer):
        writer.write(b"POST /hook HTTP/1.1\r\nHost: loom\r\n")  # never ends its head
        answer = await closed_by_server(reader)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"application/json" in answer and b"not received in time" in answer


async def test_a_half_sent_body_gets_408_after_body_timeout() -> None:
    async with source({"body_timeout": 0.2}) as (_, info), \
            raw(info["port"]) as (reader, writer):
        writer.write(request(body=b"[1, 2, 3]").replace(b"Content-Length: 9",
                                                         b"Content-Length: 90"))
        status, headers, body = await read_answer(reader)
        assert status == 408 and headers["content-type"].startswith("application/json")
        assert "within 0.2 s" in json.loads(body)["error"]
        assert await closed_by_server(reader) == b""


async def test_connections_beyond_the_cap_are_refused_at_once() -> None:
    async with source({"max_connections": 2}) as (_, info), \
            raw(info["port"]) as (r1, w1), raw(info["port"]) as (r2, w2):
        for reader, writer in ((r1, w1), (r2, w2)):  # both surely accepted and kept
            writer.write(request())
            assert (await read_answer(reader))[0] == 200
        async with raw(info["port"]) as (r3, _):
            answer = await closed_by_server(r3)
        assert answer.startswith(b"HTTP/1.1 503 ") and b"too many open connections" in answer
        w1.close()
        await w1.wait_closed()
        for _ in range(100):  # the server sees the close on its next turn
            async with raw(info["port"]) as (r4, w4):
                w4.write(request())
                status = (await read_answer(r4))[0]
            if status == 200:
                break
            await asyncio.sleep(0.02)
        assert status == 200, "a freed place is usable again"


# ------------------------------------------------------------------ 15: answers


async def test_a_malformed_request_line_gets_json_without_echo() -> None:
    async with source({}) as (_, info), raw(info["port"]) as (reader, writer):
        writer.write(b"GARBAGE<script>secret\r\n\r\n")
        status, headers, body = await read_answer(reader)
    assert status == 400 and headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"error": "bad request: not a valid HTTP/1.1 request"}
    assert b"GARBAGE" not in body and b"secret" not in body


async def test_the_token_is_checked_before_routing() -> None:
    services = RunServices()

    def trigger(payload: dict[str, Any]) -> None:
        return None

    src = HttpRequestSource({"path": "/secret-hook"}, trigger, "hook", services)
    try:
        info = await src.start()
        base = f"http://127.0.0.1:{info['port']}"
        async with aiohttp.ClientSession() as http:
            for method, path in (("POST", "/other"), ("GET", "/secret-hook"),
                                 ("GET", "/")):
                async with http.request(method, base + path) as resp:
                    assert resp.status == 401, (method, path)
                    assert "secret-hook" not in await resp.text()
            token = {"Authorization": f"Bearer {info['token']}"}
            async with http.post(base + "/other", headers=token) as resp:
                assert resp.status == 404 and "/secret-hook" in await resp.text()
    finally:
        await src.aclose()
        assert await services.aclose()


async def test_a_failed_wave_answers_a_generic_500_and_the_log_has_it() -> None:
    bus = EventBus()
    seen = Recorder(bus)
    async with serving(http_graph("h.leak"), bus) as (_, info), \
            aiohttp.ClientSession() as http, http.post(info["url"], json={}) as resp:
        assert resp.status == 500
        text = await resp.text()
        answer = json.loads(text)
    assert "hunter2" not in text and "RuntimeError" not in text
    failed = seen.of("wave_failed")
    assert len(failed) == 1 and failed[0]["wave"] == 1
    assert answer["error_id"] == failed[0]["error_id"] and answer["error_id"]
    assert answer["error_id"] in answer["error"]
    assert "hunter2" in failed[0]["error"] and "RuntimeError" in failed[0]["traceback"]


async def test_expose_errors_answers_the_message() -> None:
    async with serving(http_graph("h.leak", expose_errors=True)) as (_, info), \
            aiohttp.ClientSession() as http, http.post(info["url"], json={}) as resp:
        assert resp.status == 500
        assert "hunter2" in (await resp.json())["error"]


async def test_a_refused_connection_is_not_read_again_before_retry_after() -> None:
    """A client retrying at once on the same connection gets its next answer only after
    Retry-After: refusals are paced by the server, not by the client's manners."""

    class Full:
        def __call__(self, payload: dict[str, Any]) -> None:
            raise AssertionError("a refused request never reaches the trigger")

        def refuse_if_full(self) -> str:
            return "every wave slot is busy"

    services = RunServices()
    src = HttpRequestSource({"auth": "none", "path": "/hook"}, Full(), "hook", services)
    loop = asyncio.get_running_loop()
    try:
        info = await src.start()
        async with raw(info["port"]) as (reader, writer):
            writer.write(request(body=b"{}"))
            status, headers, _ = await read_answer(reader)
            first = loop.time()
            assert status == 503 and headers["retry-after"] == "1"
            assert headers.get("connection", "").lower() != "close", "kept, the body was read"
            writer.write(request(body=b"{}"))
            status, _, _ = await read_answer(reader, timeout=5)
            assert status == 503
            assert loop.time() - first >= 0.9, "not read again before Retry-After"
    finally:
        await src.aclose()
        assert await services.aclose()
