"""Speed-up of Loom's process executor on CPU-bound nodes, next to the stdlib baselines.

Two calls of a pure-Python loop (it holds the GIL throughout) calibrated to about one
second each here, measured in one run, each way repeated:

- sequential: both calls in this process, one after the other (the reference);
- threads: a ``ThreadPoolExecutor`` with 2 threads (the GIL: no gain expected);
- process pool, warm: a ``concurrent.futures.ProcessPoolExecutor`` with 2 workers already
  started, on the same forkserver (the floor: what two processes give on this machine);
- Loom cold: a new ``ProcessExecutor`` (as each run gets), so its pool and workers start
  inside the measurement; its ``aclose`` is timed separately;
- Loom warm: a new ``ProcessExecutor`` after ``await warm()``.

The machine's speed drifts, so each measurement is paired with a sequential run right
next to it; speed-up = the median of those pairs' ratios. The forkserver is started (and
its one-time start-up timed) before the measurements: it is one per Python process.

Usage: python bench/process_speedup.py [--repeat N] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import functools
import multiprocessing
import os
import platform
import statistics
import time
from collections.abc import Callable

from loom.engine.processes import ProcessExecutor, start_forkserver


def burn(n: int) -> int:
    """Pure-Python CPU work."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def calibrate(seconds: float) -> int:
    """Iterations of :func:`burn` taking ``seconds`` here (best of 3 probes)."""
    n = 200_000
    while True:
        took = min(_timed(functools.partial(burn, n)) for _ in range(3))
        if took > 0.1:
            return int(n * seconds / took)
        n *= 4


def _timed(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def sequential(n: int) -> float:
    return _timed(lambda: (burn(n), burn(n)))


def threads(n: int) -> float:
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return _timed(lambda: list(pool.map(burn, [n, n])))


def process_pool(pool: concurrent.futures.ProcessPoolExecutor, n: int) -> float:
    return _timed(lambda: list(pool.map(burn, [n, n])))


async def loom(n: int, *, warm: bool) -> tuple[float, float]:
    """(seconds for the two calls, seconds for aclose) with a new executor."""
    executor = ProcessExecutor(max_workers=2)
    try:
        if warm:
            await executor.warm()
        start = time.perf_counter()
        results = await asyncio.gather(executor.call(burn, {"n": n}, "a"),
                                       executor.call(burn, {"n": n}, "b"))
        took = time.perf_counter() - start
        assert results[0] == results[1]
    finally:
        start = time.perf_counter()
        await executor.aclose(0)
        closing = time.perf_counter() - start
    return took, closing


async def first_use() -> float:
    """The forkserver's start-up as the first process node of a process sees it."""
    executor = ProcessExecutor(max_workers=1)
    start = time.perf_counter()
    await executor.call(os.getpid, {}, "first")
    took = time.perf_counter() - start
    await executor.aclose(0)
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one call")
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, "
          f"{platform.processor() or platform.system()}, {os.cpu_count()} CPUs")

    start_forkserver()
    server = asyncio.run(first_use())
    n = calibrate(args.seconds)
    one = min(_timed(lambda: burn(n)) for _ in range(3))
    print(f"one call: {n:,} iterations, {one:.2f} s in this process; "
          f"first process call of this process (forkserver start-up): {server:.2f} s")

    # This machine's speed drifts (shared cores: the same loop takes 0.65 s or 1 s
    # minutes apart), so every way is timed right next to its own sequential run,
    # alternately before and after it, and scored by that pair's ratio.
    labels = {
        "threads": "ThreadPoolExecutor, 2 threads",
        "pool": "ProcessPoolExecutor, warm (floor)",
        "cold": "Loom ProcessExecutor, cold",
        "warm": "Loom ProcessExecutor, warm()",
    }
    times: dict[str, list[float]] = {k: [] for k in labels}
    ratios: dict[str, list[float]] = {k: [] for k in labels}
    reference: list[float] = []
    closing: list[float] = []
    context = multiprocessing.get_context("forkserver" if "forkserver" in
                                          multiprocessing.get_all_start_methods() else "spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        # Two overlapping calls make the pool start both workers before measuring.
        list(pool.map(time.sleep, [0.2, 0.2]))

        def cold() -> float:
            took, close = asyncio.run(loom(n, warm=False))
            closing.append(close)
            return took

        ways: dict[str, Callable[[], float]] = {
            "threads": lambda: threads(n),
            "pool": lambda: process_pool(pool, n),
            "cold": cold,
            "warm": lambda: asyncio.run(loom(n, warm=True))[0],
        }
        for i in range(args.repeat):
            for key, way in ways.items():
                if i % 2:
                    took, seq = way(), sequential(n)
                else:
                    seq, took = sequential(n), way()
                reference.append(seq)
                times[key].append(took)
                ratios[key].append(seq / took)
            print(f"  repeat {i + 1}: " + ", ".join(
                f"{k} {times[k][-1]:.2f} s ({ratios[k][-1]:.2f}x)" for k in labels), flush=True)

    print(f"\n2 calls of ~{one:.2f} s, {args.repeat} repeats. Speed-up: each measurement "
          "against a sequential run right next to it; median (min-max) of those ratios")
    floor = statistics.median(times["pool"])
    print(f"| {'way':<36}| {'seconds, median':>15} | {'vs floor':>8} | {'speed-up':>8} | "
          f"{'range':>11} |")
    print(f"|{'-' * 37}|{'-' * 17}|{'-' * 10}|{'-' * 10}|{'-' * 13}|")
    print(f"| {'sequential, in process':<36}| {statistics.median(reference):>15.2f} | "
          f"{'':>8} | {1:>7.2f}x | {'':>11} |")
    for key, label in labels.items():
        r, median = ratios[key], statistics.median(times[key])
        versus = f"{(median - floor) * 1000:+.0f} ms" if key in ("cold", "warm") else ""
        print(f"| {label:<36}| {median:>15.2f} | {versus:>8} | "
              f"{statistics.median(r):>7.2f}x | {min(r):>4.2f}-{max(r):.2f}x |")
    print(f"\nLoom cold aclose (workers exit, pool joined): median "
          f"{statistics.median(closing) * 1000:.1f} ms")


if __name__ == "__main__":  # required: the forkserver and workers import the main module
    main()
