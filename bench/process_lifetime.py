"""Process workers' life: the loop stall while a pool starts, and how long orphans live.

Two measurements (issue 9, findings 8 and 4), each in fresh processes, so that the
forkserver starts cold as it does for every `loom run`:

- **loop stall during pool start**: a new Python process runs a probe task (sleeping
  1 ms at a time, recording the longest gap between its turns) while the first call of
  a new ``ProcessExecutor`` starts the pool; the longest gap beyond the 1 ms sleep is
  the stall. Also the first call's own latency.
- **orphans after SIGKILL**: `loom run` of a graph whose process node spins for ever
  (a Python loop; or a C loop that never releases the GIL) and has started a child; the
  run is SIGKILLed and the time until no process of its session is left is measured
  (given up after ``--give-up`` seconds, reported as "> N s"; then killed by pid).

Usage: python bench/process_lifetime.py [--repeat N] [--give-up S]
Run from a checkout (its `loom` is measured); to compare with another one, run it there
with PYTHONPATH=. (`loom run` is started with `python -m loom` from the current folder).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SPIN_PACK = '''
    import itertools
    import os
    import subprocess
    from pathlib import Path

    from loom import node

    @node(executor="process")
    def spin(marker: str = "", native: bool = False) -> int:
        child = subprocess.Popen(["sleep", "600"])
        Path(marker + ".tmp").write_text(f"{os.getpid()} {child.pid}")
        os.replace(marker + ".tmp", marker)
        if native:
            return sum(itertools.repeat(1))
        while True:
            pass
'''


# ------------------------------------------------------------- loop stall (child)

async def _stall_probe() -> dict[str, float]:
    from loom.engine.processes import ProcessExecutor  # imported in the child only

    longest = 0.0
    running = True

    async def probe() -> None:
        nonlocal longest
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            longest = max(longest, now - last - 0.001)
            last = now

    task = asyncio.create_task(probe())
    await asyncio.sleep(0.05)  # the probe is running
    longest = 0.0
    executor = ProcessExecutor()
    start = time.perf_counter()
    await executor.call(os.getpid, {}, "first")
    first_call = time.perf_counter() - start
    running = False
    await task
    await executor.aclose(0)
    return {"stall_ms": longest * 1000, "first_call_ms": first_call * 1000}


def measure_stall(repeat: int) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"stall_ms": [], "first_call_ms": []}
    for _ in range(repeat):
        out = subprocess.run([sys.executable, __file__, "--stall-child"], capture_output=True,
                             text=True, check=True, timeout=60)
        for key, value in json.loads(out.stdout).items():
            found[key].append(value)
    return found


# ----------------------------------------------------------------- orphans after SIGKILL

def _session(sid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] not in ("Z", "X") and int(fields[3]) == sid:
                found.add(int(entry.name))
    return found


def orphan_lifetime(folder: Path, native: bool, give_up: float) -> float | None:
    """Seconds from `loom run`'s SIGKILL until its session is empty; None: gave up."""
    from loom.graph import Graph, Node, save_graph

    marker = folder / "pids"
    marker.unlink(missing_ok=True)
    graph = Graph(name="spin")
    graph.add_node(Node("s", "spinpack.spin", properties={"marker": str(marker), "native": native}))
    path = folder / "spin.loom"
    save_graph(graph, path)
    proc = subprocess.Popen([sys.executable, "-m", "loom", "run", str(path), "--nodes",
                             str(folder / "pack")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the spinning node never started")
            time.sleep(0.01)
        time.sleep(0.2)  # spinning for sure
        proc.kill()
        proc.wait()
        killed = time.monotonic()
        while _session(proc.pid):
            if time.monotonic() - killed > give_up:
                return None
            time.sleep(0.005)
        return time.monotonic() - killed
    finally:
        proc.kill()
        proc.wait()
        for pid in _session(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _summary(values: list[float | None], unit: str, give_up: float) -> str:
    done = [v for v in values if v is not None]
    if len(done) < len(values):
        return f"> {give_up:g} s in {len(values) - len(done)} of {len(values)}"
    return f"{statistics.median(done):.1f} / {max(done):.1f} {unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--give-up", type=float, default=10.0)
    parser.add_argument("--stall-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stall_child:
        print(json.dumps(asyncio.run(_stall_probe())))
        return

    print(f"{time.strftime('%Y-%m-%d')} · CPython {platform.python_version()}, "
          f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores · "
          f"--repeat {args.repeat} · median / max")
    stall = measure_stall(args.repeat)
    print(f"loop stall while the pool starts: {_summary(stall['stall_ms'], 'ms', 0)}")
    print(f"first call (pool start included): {_summary(stall['first_call_ms'], 'ms', 0)}")
    if sys.platform != "linux":
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "pack").mkdir()
        (folder / "pack" / "spinpack.py").write_text(textwrap.dedent(SPIN_PACK))
        for native in (False, True):
            times = [orphan_lifetime(folder, native, args.give_up) for _ in range(args.repeat)]
            label = "C loop holding the GIL" if native else "Python loop"
            shown = [None if t is None else t * 1000 for t in times]
            print(f"orphans gone after SIGKILL ({label}): "
                  f"{_summary(shown, 'ms', args.give_up)}")


if __name__ == "__main__":
    main()
