"""``--trace`` streams its Chrome trace to the file as the run goes (issue 9, 18).

The file is the trace format's bare JSON array: readable while the run goes and after
a crash (viewers accept it without its closing ``]``), properly closed at the end, and
the trace keeps nothing per event in memory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from loom.engine import EventBus, ExecutionManager, RunStatus
from loom.engine.trace import ChromeTrace
from loom.graph import load_graph, save_graph
from loom.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "resources" / "examples"
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


def endless_timer(folder: Path, interval: float = 0.005) -> Path:
    """The timer example, ticking fast and without end."""
    graph = load_graph(EXAMPLES / "timer.loom")
    meta = graph.node("tick").metadata
    meta["interval"] = interval
    del meta["count"]
    path = folder / "endless.loom"
    save_graph(graph, path, backup=False)
    return path


def read_trace(path: Path) -> list[dict[str, Any]]:
    """The trace's events, closing the array if the writer could not (as viewers do)."""
    text = path.read_text(encoding="utf-8").rstrip()
    if not text.endswith("]"):
        text += "\n]"
    events = json.loads(text)
    assert isinstance(events, list)
    return events


def waves_in(path: Path) -> int:
    if not path.exists() or path.stat().st_size < 2:
        return 0
    return sum(e["name"] == "event_triggered" for e in read_trace(path))


def start_run(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "loom", "run", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_waves(path: Path, proc: subprocess.Popen[str], count: int) -> int:
    deadline = time.monotonic() + 30
    while (seen := waves_in(path)) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"only {seen} waves in the trace"
        time.sleep(0.1)
    return seen


@posix_only
def test_trace_is_on_disk_while_running_and_survives_a_kill(tmp_path: Path) -> None:
    out = tmp_path / "trace.json"
    proc = start_run(str(endless_timer(tmp_path)), "--trace", str(out), "--json")
    try:
        wait_for_waves(out, proc, 20)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    events = read_trace(out)
    assert not out.read_text(encoding="utf-8").rstrip().endswith("]"), "cut short by the kill"
    spans = [e for e in events if e["ph"] == "X"]
    assert {e["args"]["node"] for e in spans} >= {"count", "pack", "say"}
    assert {"lane 1", "run", "loom"} <= {e["args"]["name"] for e in events if e["ph"] == "M"}


@posix_only
def test_trace_is_closed_when_the_run_is_stopped(tmp_path: Path) -> None:
    out = tmp_path / "trace.json"
    proc = start_run(str(endless_timer(tmp_path)), "--trace", str(out), "--json")
    try:
        wait_for_waves(out, proc, 5)
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    assert json.loads(stdout)["status"] == "stopped"
    events = json.loads(out.read_text(encoding="utf-8"))  # whole JSON: closed properly
    names = [e["name"] for e in events]
    assert names.count("run_started") == 1 and names[-1] == "run_finished"


def test_trace_path_that_cannot_be_written_is_a_usage_error(tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "trace.json"
    proc = subprocess.run([sys.executable, "-m", "loom", "run", str(EXAMPLES / "hello.loom"),
                           "--trace", str(out)], cwd=ROOT, text=True, capture_output=True,
                          timeout=60, check=False)
    assert proc.returncode == 2
    assert f"--trace {out}: cannot write" in proc.stderr
    assert "Traceback" not in proc.stderr


def _wave(i: int) -> list[dict[str, Any]]:
    t = i * 0.001
    scope = [["tick", i]]
    return [{"type": "event_triggered", "t": t, "node": "tick", "wave": i,
             "payload": {"count": i}},
            {"type": "node_started", "t": t, "node": "say", "scope": scope},
            {"type": "node_finished", "t": t + 0.0005, "node": "say", "scope": scope,
             "outputs": {"out": f"tick {i}"}}]


def test_streamed_trace_memory_stays_flat(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    trace = ChromeTrace.to_file(path, {"say": "Say it"})
    try:
        for i in range(1_000):  # warm up: the first lane, the file buffer
            trace.handle(_wave(i))
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(1_000, 21_000):
                trace.handle(_wave(i))
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    finally:
        trace.close()
    assert trace.events == []
    assert grown < 64 * 1024, f"{grown} bytes kept for 20,000 waves"
    events = json.loads(path.read_text(encoding="utf-8"))
    assert sum(e["ph"] == "X" for e in events) == 21_000
    assert next(e for e in events if e["ph"] == "X")["name"] == "Say it"


def test_unprintable_values_do_not_break_the_stream(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    trace = ChromeTrace.to_file(path)
    trace.handle([{"type": "log", "t": 0.0, "node": "n", "message": 10 ** 5000}])
    trace.handle([{"type": "log", "t": 0.1, "node": "n", "message": "after"}])
    trace.close()
    trace.close()  # idempotent
    logs = [e for e in json.loads(path.read_text(encoding="utf-8")) if e["name"] == "log"]
    assert logs[0]["args"] == {"note": "details not printable"}
    assert logs[1]["args"]["message"] == "after"


async def test_streamed_trace_of_an_engine_run(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    graph = load_graph(EXAMPLES / "timer.loom")
    graph.node("tick").metadata["interval"] = 0.01
    bus = EventBus()
    trace = ChromeTrace.to_file(path, {n.id: n.label for n in graph}).attach(bus)
    try:
        result = await ExecutionManager(graph, Registry.standard(entry_points=False),
                                        bus=bus).run()
    finally:
        trace.close()
    assert result.status is RunStatus.SUCCEEDED
    events = json.loads(path.read_text(encoding="utf-8"))
    assert sum(e["name"] == "event_triggered" for e in events) == 5
    says = [e for e in events if e["ph"] == "X" and e["args"]["node"] == "say"]
    assert len(says) == 5 and all(e["name"] == graph.node("say").label for e in says)


def test_a_span_is_as_long_as_the_duration_its_end_event_reports() -> None:
    # One duration per execution (issue 11, bug 11): a failure's event comes after its
    # traceback was formatted; the span shows the node's own duration, as the editor does.
    trace = ChromeTrace()
    trace.handle([
        {"type": "node_started", "node": "a", "t": 0.001},
        {"type": "node_failed", "node": "a", "t": 0.005, "duration_ms": 0.25},
        {"type": "node_started", "node": "b", "t": 0.006},
        {"type": "node_finished", "node": "b", "t": 0.008},
    ])
    spans = {e["args"]["node"]: e for e in trace.events if e["ph"] == "X"}
    assert (spans["a"]["ts"], spans["a"]["dur"]) == (1000, 250)
    assert (spans["b"]["ts"], spans["b"]["dur"]) == (6000, 2000), "no duration: the times"
