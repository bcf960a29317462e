"""RSS growth of a long event run with a Chrome trace (issue 9, 18).

The timer example ticks every ``--interval`` s for ``--seconds`` s in a fresh process per
mode; RSS is sampled every second and its growth is the least-squares slope after a
warm-up. Modes: ``none`` (no trace: the engine's own growth), ``memory`` (the trace kept
in memory and written at the end: how ``--trace`` worked before) and ``stream`` (written
as the run goes: ``--trace`` now).

Usage: python bench/trace_rss.py [--seconds S] [--interval S] [--modes none,memory,stream]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc)."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


async def child(mode: str, seconds: float, interval: float, out: str) -> dict[str, Any]:
    from loom.engine import EventBus, ExecutionManager
    from loom.engine.trace import ChromeTrace
    from loom.graph import load_graph
    from loom.registry import Registry

    graph = load_graph(ROOT / "resources" / "examples" / "timer.loom")
    meta = graph.node("tick").metadata
    meta["interval"] = interval
    del meta["count"]
    bus = EventBus()
    labels = {n.id: n.label for n in graph}
    trace = None
    if mode == "memory":
        trace = ChromeTrace(labels).attach(bus)
    elif mode == "stream":
        trace = ChromeTrace.to_file(out, labels).attach(bus)
    waves = 0

    def count(batch: list[dict[str, Any]]) -> None:
        nonlocal waves
        waves += sum(e["type"] == "event_triggered" for e in batch)

    bus.subscribe(count, types=["event_triggered"])
    manager = ExecutionManager(graph, Registry.standard(entry_points=False), bus=bus,
                               duration=seconds)
    samples: list[tuple[float, float]] = []

    async def sample() -> None:
        start = time.monotonic()
        while True:
            samples.append((time.monotonic() - start, rss_bytes() / MIB))
            await asyncio.sleep(1.0)

    sampler = asyncio.create_task(sample())
    try:
        await manager.run()
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
        if mode == "memory" and trace is not None:
            trace.write(out)
        elif trace is not None:
            trace.close()
    warm = [p for p in samples if p[0] >= seconds * 0.2]
    return {"mode": mode, "waves": waves, "seconds": seconds,
            "rss_start_mib": round(warm[0][1], 1), "rss_end_mib": round(warm[-1][1], 1),
            "growth_mib_s": round(slope(warm), 4),
            "trace_mib": round(os.path.getsize(out) / MIB, 1) if trace is not None else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=0.001)
    parser.add_argument("--modes", default="none,memory,stream")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.child, args.seconds, args.interval, args.out))))
        return
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
          f"timer every {args.interval} s for {args.seconds:g} s per mode")
    print("| mode | waves | RSS after warm-up MiB | RSS at end MiB | growth MiB/s | trace MiB |")
    print("|---|---|---|---|---|---|")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as folder:
        for mode in args.modes.split(","):
            out = os.path.join(folder, f"{mode}.json")
            proc = subprocess.run([sys.executable, __file__, "--child", mode, "--seconds",
                                   str(args.seconds), "--interval", str(args.interval),
                                   "--out", out], capture_output=True, text=True, env=env,
                                  check=True)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"| {mode} | {r['waves']:,} | {r['rss_start_mib']} | {r['rss_end_mib']} | "
                  f"{r['growth_mib_s']} | {r['trace_mib']} |", flush=True)


if __name__ == "__main__":
    main()
