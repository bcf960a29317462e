"""Cost of giving a parallel branch its own run variables: deepcopy vs ``Variables.child()``.

The context holds 1,000 keys, a realistic mix: ints, floats, strings, small dicts,
small lists, nested dicts of lists of dicts, tuples. Per branch it measures:

(a) ``copy.deepcopy`` of the dict (a full clone, what an eager engine would do);
(b) ``Variables.child()``: spawning the copy-on-write layer (and dropping it);
(c) spawn + a typical branch: 10 reads (5 of them containers, copied on first read)
    and 5 writes, 2 of them nested mutations (``v["k27"]["name"] = ...``,
    ``v["k29"]["cfg"]["hosts"].append(...)``, which copy two more containers): 7 copies;
(d) the same branch on a ``copy.deepcopy`` of the dict;
(e) the same branch on a shallow ``dict(...)`` copy, for reference only: it is NOT
    isolated (its nested mutations leak into the parent, a separate copy here);
and reads of a key already in the branch (the hot path) next to a plain dict read.

Each row: median and minimum, in µs per branch, over thousands of samples
(``time.perf_counter_ns``; a sample times a batch of branches and divides). The
garbage collector stays on, as in a run. After all branches the parent is checked
unchanged, so the figures are for full isolation.

Usage: python bench/branch_spawn.py [--samples N] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loom.engine.variables import Variables

KEYS = 1000


def context(size: int = KEYS) -> dict[str, Any]:
    """A run context of ``size`` keys with a realistic mix of values."""
    values: dict[str, Any] = {}
    for i in range(size):
        kind = i % 10
        if kind in (0, 1, 2):
            value: Any = i * 7
        elif kind == 3:
            value = i / 3
        elif kind in (4, 5):
            value = f"value-{i}-{'x' * (i % 20)}"
        elif kind == 6:
            value = (i, f"t{i}", None)
        elif kind == 7:
            value = {"id": i, "name": f"item {i}", "enabled": bool(i % 2), "score": i / 7}
        elif kind == 8:
            value = [i, i + 1, i + 2, f"s{i}"]
        else:
            value = {"cfg": {"retries": 3, "hosts": ["a.example", "b.example"]},
                     "rows": [{"id": i, "tags": ["x", "y"]}, {"id": i + 1, "tags": []}]}
        values[f"k{i}"] = value
    return values


#: 10 reads: 5 immutable values (int, float, str, str, tuple), 5 containers
READS = ("k0", "k3", "k4", "k15", "k6", "k7", "k8", "k9", "k17", "k19")


def branch(v: Any) -> int:
    """A branch's work on its variables ``v``: 10 reads, 5 writes (2 nested)."""
    total = 0
    for key in READS:
        total += len(str(v[key])) if key in ("k4", "k15") else 1
        _ = v[key]
    v["out"] = total
    v["count"] = 1
    v["k1"] = "changed"
    v["k27"]["name"] = "renamed"  # nested mutation of a dict
    v["k29"]["cfg"]["hosts"].append("c.example")  # nested mutation, two levels down
    return total


def measure(fn: Callable[[], Any], batch: int, samples: int) -> tuple[float, float]:
    """(median, min) µs per call of ``fn``, over ``samples`` timed batches of ``batch`` calls."""
    per_call: list[float] = []
    clock = time.perf_counter_ns
    rounds = range(batch)
    for _ in range(max(3, samples // 20)):  # warm-up
        fn()
    gc.collect()
    for _ in range(samples):
        start = clock()
        for _ in rounds:
            fn()
        per_call.append((clock() - start) / batch / 1000)
    return statistics.median(per_call), min(per_call)


def machine() -> str:
    """One line naming the CPU, cores and Python."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (f"{platform.python_implementation()} {platform.python_version()}, "
            f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=3000,
                        help="timed samples per row (default 3000)")
    parser.add_argument("--quick", action="store_true", help="300 samples per row")
    args = parser.parse_args(argv)
    samples = 300 if args.quick else args.samples

    base = context()
    pristine = copy.deepcopy(base)
    root = Variables(base)
    leaky = copy.deepcopy(base)  # row (e) mutates this one's nested values, not `base`

    warm = root.child()
    for key in READS:
        _ = warm[key]
    plain = dict(base)

    rows: list[tuple[str, float, float]] = []

    def row(label: str, fn: Callable[[], Any], batch: int, count: int) -> None:
        median, minimum = measure(fn, batch, count)
        rows.append((label, median, minimum))
        print(f"  {label:<58} {median:>9.2f} {minimum:>9.2f}", file=sys.stderr)

    heavy = max(200, samples // 3)  # the deepcopy rows take ~1 ms a branch
    print(f"{KEYS}-key context; µs per branch, median / min", file=sys.stderr)
    row("(a) copy.deepcopy(dict)", lambda: copy.deepcopy(base), 1, heavy)
    row("(b) Variables.child()", root.child, 100, samples)
    row("(c) child() + branch (10 reads, 5 writes, 2 nested)",
        lambda: branch(root.child()), 10, samples)
    row("(d) copy.deepcopy(dict) + the same branch",
        lambda: branch(copy.deepcopy(base)), 1, heavy)
    row("(e) dict(...) shallow + the same branch (NOT isolated)",
        lambda: branch(dict(leaky)), 10, samples)
    row("    read of a key already in the branch: Variables",
        lambda: warm["k7"], 1000, samples)
    row("    read of a key: plain dict", lambda: plain["k7"], 1000, samples)

    # every Variables branch above left the parent as it was
    assert root.to_dict() == pristine, "a branch changed the parent"
    assert base == pristine

    print()
    print(f"branch_spawn · {machine()} · {KEYS} keys · {samples} samples "
          f"({heavy} for the deepcopy rows) · gc on")
    print()
    print("| per branch | median µs | min µs |")
    print("|---|---|---|")
    for label, median, minimum in rows:
        print(f"| {label.strip()} | {median:,.2f} | {minimum:,.2f} |")


if __name__ == "__main__":
    main()
