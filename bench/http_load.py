"""HTTP trigger under load: bare aiohttp against Loom's ``http_request`` trigger.

Closed-loop clients (each sends a request, reads the answer, sends the next one at
once, also after a 503: the worst case for a server) run in a separate process for
``--seconds`` per point. The server is either a bare aiohttp app answering the same
JSON, or a Loom graph ``event.http_request -> reply`` with the event node's
defaults (one wave at a time, ``queue_size`` 100) and ``overflow`` queue or drop.
With ``--work-ms N`` each wave (and each bare answer) also awaits N ms, so the
server, not the clients, is the bottleneck and the queue really fills.

Reported per point: goodput (200 answers per second: completed waves), refused
answers (503) per second, errors, and the p50/p99 latency of the 200 answers.

Usage: python bench/http_load.py [--clients 10,50,100,120,200] [--seconds 4]
                                 [--servers bare,queue,drop] [--work-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import platform
import time
from typing import Any

import aiohttp
from aiohttp import web

from loom import node
from loom.engine import EventBus, ExecutionManager
from loom.graph import Graph, Node
from loom.registry import Registry


@node(id="bench.reply", cheap=True)
def reply(event: dict) -> dict:
    """What every wave answers: a little of the request."""
    return {"you_sent": event["body"], "method": event["method"]}


@node(id="bench.work_reply")
async def work_reply(event: dict, ms: float = 0.0) -> dict:
    """The same answer after awaiting ``ms`` milliseconds (a call to some service)."""
    await asyncio.sleep(ms / 1000)
    return {"you_sent": event["body"], "method": event["method"]}


REGISTRY = Registry.standard(entry_points=False)
REGISTRY.add_function(reply)
REGISTRY.add_function(work_reply)


def loom_graph(overflow: str, work_ms: float) -> Graph:
    g = Graph(name="http load")
    g.add_node(Node("hook", "event.http_request", metadata={
        "event_type": "http_request", "port": 0, "path": "/hook", "auth": "none",
        "overflow": overflow}))
    if work_ms:
        g.add_node(Node("r", "bench.work_reply", properties={"ms": work_ms}))
    else:
        g.add_node(Node("r", "bench.reply"))
    g.connect("hook", "event", "r", "event")
    return g


# ------------------------------------------------------------------ clients (own process)


async def _clients(url: str, clients: int, seconds: float, warmup: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    start = loop.time() + warmup
    end = start + seconds
    latencies: list[float] = []
    counts = {"ok": 0, "refused": 0, "other": 0, "errors": 0}

    async def one(session: aiohttp.ClientSession) -> None:
        while (now := loop.time()) < end:
            try:
                async with session.post(url, json={"n": 1}) as resp:
                    await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, OSError, TimeoutError):
                status = -1
            done = loop.time()
            if now < start:
                continue
            if status == 200:
                counts["ok"] += 1
                latencies.append(done - now)
            elif status == 503:
                counts["refused"] += 1
            elif status == -1:
                counts["errors"] += 1
                await asyncio.sleep(0.01)
            else:
                counts["other"] += 1

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(one(session) for _ in range(clients)))
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0.0

    return {"goodput": counts["ok"] / seconds, "refused": counts["refused"] / seconds,
            "other": counts["other"], "errors": counts["errors"],
            "p50_ms": pct(0.50) * 1000, "p99_ms": pct(0.99) * 1000}


def _client_process(url: str, clients: int, seconds: float, warmup: float,
                    out: Any) -> None:
    out.send(asyncio.run(_clients(url, clients, seconds, warmup)))
    out.close()


async def measure(url: str, clients: int, seconds: float, warmup: float = 1.0) -> dict[str, Any]:
    """Run the clients in another process (the server keeps this one's loop)."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_client_process, args=(url, clients, seconds, warmup, child))
    proc.start()
    child.close()
    loop = asyncio.get_running_loop()
    try:
        while not parent.poll():
            await asyncio.sleep(0.05)
            if not proc.is_alive() and not parent.poll():
                raise RuntimeError("the client process died")
        result: dict[str, Any] = parent.recv()
    finally:
        await loop.run_in_executor(None, proc.join, 10)
        parent.close()
    return result


# ------------------------------------------------------------------ servers


async def bare_point(clients: int, seconds: float, work_ms: float) -> dict[str, Any]:
    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        if work_ms:
            await asyncio.sleep(work_ms / 1000)
        return web.json_response({"you_sent": body, "method": request.method})

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return await measure(f"http://127.0.0.1:{port}/hook", clients, seconds)
    finally:
        await runner.cleanup()


async def loom_point(overflow: str, clients: int, seconds: float,
                     work_ms: float) -> dict[str, Any]:
    bus = EventBus()
    ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def watch(batch: list[dict[str, Any]]) -> None:
        for event in batch:
            if event["type"] == "event_source_ready" and not ready.done():
                ready.set_result(event)

    bus.subscribe(watch, ["event_source_ready"])
    manager = ExecutionManager(loom_graph(overflow, work_ms), REGISTRY, bus=bus, stop_grace=2.0)
    task = asyncio.create_task(manager.run())
    try:
        info = await asyncio.wait_for(ready, 10)
        return await measure(info["url"], clients, seconds)
    finally:
        manager.request_stop()
        await asyncio.wait_for(task, 10)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="10,50,100,120,200")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--servers", default="bare,queue,drop")
    parser.add_argument("--work-ms", type=float, default=0.0)
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    print(f"# {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"work per request {args.work_ms:g} ms")
    print("| server | clients | goodput/s | 503/s | errors | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for server in args.servers.split(","):
        for clients in counts:
            if server == "bare":
                r = await bare_point(clients, args.seconds, args.work_ms)
            else:
                r = await loom_point(server, clients, args.seconds, args.work_ms)
            print(f"| {server} | {clients} | {r['goodput']:,.0f} | {r['refused']:,.0f} | "
                  f"{r['errors'] + r['other']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} |",
                  flush=True)


if __name__ == "__main__":
    asyncio.run(main())
