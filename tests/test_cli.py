"""The `loom` command, run as a subprocess the way people use it."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from loom.graph import Graph, Node, save_graph

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "resources" / "examples"


def loom(*args: str, timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loom", *args], capture_output=True, text=True,
                          check=False, timeout=timeout, cwd=ROOT, **kwargs)


def _interrupt_after(event_type: str, *run_args: str) -> tuple[int, str, str, float]:
    """``loom run ... --events``, Ctrl+C once ``event_type`` is printed: (exit code,
    the rest of stdout, stderr, seconds from the signal to the exit)."""
    proc = subprocess.Popen([sys.executable, "-m", "loom", "run", *run_args, "--events"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if json.loads(line)["type"] == event_type:
                break
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=10)
        elapsed = time.monotonic() - sent
    finally:
        proc.kill()
        proc.wait()
    return proc.returncode, rest, err, elapsed


def _event_types(lines: str) -> list[str]:
    """The ``type`` of each JSON event line (other lines, a node's prints, left out)."""
    types = []
    for line in lines.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and "type" in event:
            types.append(event["type"])
    return types


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    folder = tmp_path / "pack"
    folder.mkdir()
    (folder / "testpack.py").write_text(textwrap.dedent("""
        import asyncio
        from loom import node

        @node(cheap=True)
        def fail(x: float = 0.0) -> float:
            raise ValueError(f"bad value {x}")

        @node
        async def wait(seconds: float = 30.0) -> str:
            try:
                await asyncio.sleep(seconds)
            finally:
                print("cleanup ran", flush=True)
            return "woke"
    """))
    return folder


def _graph(tmp_path: Path, nodes: list[Node], wires: list[tuple[str, str, str, str]] = (),
           name: str = "g.loom") -> Path:
    graph = Graph(name="cli test")
    for n in nodes:
        graph.add_node(n)
    for wire in wires:
        graph.connect(*wire)
    path = tmp_path / name
    save_graph(graph, path)
    return path


def test_run_example_prints_summary_and_exits_0() -> None:
    proc = loom("run", str(EXAMPLES / "hello.loom"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("succeeded in ")
    assert "Word count (word_count).out = 5" in proc.stdout, "the last nodes' outputs are shown"


def test_run_json_prints_exactly_the_documented_object() -> None:
    proc = loom("run", str(EXAMPLES / "branching.loom"), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) == {"status", "outputs", "nodes", "errors", "cancelled", "abandoned"}
    assert doc["cancelled"] == [] and doc["abandoned"] == []
    assert doc["status"] == "succeeded" and doc["errors"] == []
    for entry in doc["nodes"].values():
        assert set(entry) >= {"state", "duration_ms", "error"}
    skipped = [nid for nid, e in doc["nodes"].items() if e["state"] == "skipped"]
    assert skipped and all("reason" in doc["nodes"][nid] for nid in skipped)


def test_failing_graph_exits_1_with_error_and_traceback(tmp_path: Path, pack: Path) -> None:
    path = _graph(tmp_path, [Node("f", "testpack.fail", properties={"x": 3})])
    proc = loom("run", str(path), "--nodes", str(pack), "--json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["status"] == "failed"
    [error] = doc["errors"]
    assert error["node"] == "f" and error["error"] == "ValueError: bad value 3"
    assert "testpack.py" in error["traceback"]

    proc = loom("run", str(path), "--nodes", str(pack))
    assert proc.returncode == 1
    assert "node f failed: ValueError: bad value 3" in proc.stderr


def test_set_overrides_a_property_by_id_or_name(tmp_path: Path, pack: Path) -> None:
    path = _graph(tmp_path, [Node("f", "testpack.fail", name="Failer")])
    proc = loom("run", str(path), "--nodes", str(pack), "--set", "Failer.x=7.5", "--json")
    assert json.loads(proc.stdout)["errors"][0]["error"] == "ValueError: bad value 7.5"
    proc = loom("run", str(EXAMPLES / "hello.loom"), "--set", "greeting.value=hi there",
                "--json")
    outputs = json.loads(proc.stdout)["outputs"]
    assert outputs["shout"]["out"] == "HI THERE!"
    for bad in ("nodot=1", "ghost.value=1", "greeting.value"):
        proc = loom("run", str(EXAMPLES / "hello.loom"), "--set", bad)
        assert proc.returncode == 2 and proc.stderr.startswith("loom: --set"), bad


def test_invalid_file_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.loom"
    bad.write_text('{"format": "loom", "version": 1, "nodes": [')
    proc = loom("run", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert str(bad) in proc.stderr and "invalid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr

    proc = loom("run", str(tmp_path / "missing.loom"))
    assert proc.returncode == 2 and "cannot read" in proc.stderr


def test_graph_that_cannot_run_exits_2_naming_the_node(tmp_path: Path) -> None:
    path = _graph(tmp_path, [Node("x", "nowhere.special")])
    proc = loom("run", str(path))
    assert proc.returncode == 2
    assert "x: node type 'nowhere.special' is not installed" in proc.stderr
    proc = loom("validate", str(path))
    assert proc.returncode == 2 and "not installed" in proc.stdout


def test_validate_ok_and_json(tmp_path: Path) -> None:
    proc = loom("validate", str(EXAMPLES / "switch.loom"))
    assert proc.returncode == 0 and "valid" in proc.stdout
    path = _graph(tmp_path, [Node("x", "nowhere.special")])
    doc = json.loads(loom("validate", str(path), "--json").stdout)
    assert doc["valid"] is False and doc["issues"][0]["node"] == "x"


def test_nodes_lists_registry_by_category() -> None:
    proc = loom("nodes")
    assert proc.returncode == 0
    assert "Control:" in proc.stdout and "control.if" in proc.stdout
    predicates = proc.stdout.split("Predicates (a conditional node's metadata.condition_func):")
    assert "  is_empty " in predicates[1] and "not_none" in predicates[1]
    doc = json.loads(loom("nodes", "--json").stdout)
    assert doc["control.merge"]["category"] == "Control"
    assert doc["text.upper"]["inputs"]["text"] == "str"


def test_trace_file_is_chrome_trace_json(tmp_path: Path) -> None:
    out = tmp_path / "trace.json"
    proc = loom("run", str(EXAMPLES / "hello.loom"), "--trace", str(out))
    assert proc.returncode == 0
    doc = json.loads(out.read_text())
    assert isinstance(doc, list), "the trace format's JSON array form (streamed)"
    spans = [e for e in doc if e["ph"] == "X"]
    assert spans and all({"name", "ts", "dur", "pid", "tid"} <= set(e) for e in spans)


def test_events_stream_ndjson() -> None:
    proc = loom("run", str(EXAMPLES / "hello.loom"), "--events")
    assert proc.returncode == 0
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"
    assert {"node_started", "node_finished"} <= {e["type"] for e in events}


def test_usage_errors_exit_2() -> None:
    assert loom("run").returncode == 2
    assert loom("frobnicate", "x", "y").returncode == 2
    assert loom("no-such-file.loom").returncode == 2


def test_editor_without_a_display_says_so_in_one_line() -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    for args in ((), (str(EXAMPLES / "hello.loom"),)):
        proc = loom(*args, env=env)
        assert proc.returncode == 2
        assert proc.stderr.count("\n") == 1 and "no display" in proc.stderr
        assert "loom run" in proc.stderr and "Traceback" not in proc.stderr


def test_editor_takes_a_file_and_node_pack_folders(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    """`loom FILE --nodes DIR` opens the editor with the packs (was "unknown command")."""
    import types

    from loom import cli

    opened: list[tuple[Any, ...]] = []
    fake = types.ModuleType("loom.ui.app")
    fake.main = lambda path=None, folders=(): opened.append((path, list(folders))) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "loom.ui.app", fake)
    monkeypatch.setattr(cli, "_display_available", lambda: True)
    graph = str(EXAMPLES / "hello.loom")
    assert cli.main([graph, "--nodes", str(tmp_path)]) == 0
    assert cli.main(["--nodes", str(tmp_path), "--nodes", str(tmp_path), graph]) == 0
    assert cli.main([]) == 0
    assert opened == [(graph, [str(tmp_path)]), (graph, [str(tmp_path)] * 2), (None, [])]
    assert cli.main([graph, "--nodes", str(tmp_path / "missing")]) == 2
    assert cli.main([graph, "--frobnicate"]) == 2
    assert len(opened) == 3, "bad input never opens the editor"


def test_ctrl_c_stops_gracefully_with_exit_130(tmp_path: Path, pack: Path) -> None:
    path = _graph(tmp_path, [Node("w", "testpack.wait")])
    returncode, rest, err, _ = _interrupt_after(
        "node_started", str(path), "--nodes", str(pack), "--grace", "0.2")
    assert returncode == 130, err
    assert "cleanup ran" in rest, "the node's finally block ran"
    assert '"status": "stopped"' in rest
    # Stopped by the signal, not by the node's 30 s sleep ending (order, not the clock).
    types = _event_types(rest)
    assert types.index("run_stopping") < types.index("node_stopped") < types.index(
        "run_finished")


def test_engine_and_run_never_import_qt() -> None:
    code = textwrap.dedent(f"""
        import sys, importlib.abc

        class NoQt(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in ("PySide6", "PyQt5", "PyQt6", "NodeGraphQt", "qasync"):
                    raise ImportError(f"Qt import attempted: {{name}}")

        sys.meta_path.insert(0, NoQt())
        import loom.engine, loom.graph, loom.registry
        from loom.cli import main
        code = main(["run", {str(EXAMPLES / "hello.loom")!r}, "--json"])
        assert code == 0, code
        assert not [m for m in sys.modules if m.startswith("PySide6")]
        print("no qt")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("no qt")


def test_progress_display_draws_on_a_terminal() -> None:
    import asyncio

    from rich.console import Console

    from loom.console import ProgressDisplay
    from loom.engine import EventBus, ExecutionManager
    from loom.graph import load_graph
    from loom.registry import Registry

    graph = load_graph(EXAMPLES / "hello.loom")
    bus = EventBus()
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    display = ProgressDisplay(graph, console).attach(bus)

    async def go() -> None:
        with display:
            await ExecutionManager(graph, Registry.standard(entry_points=False), bus=bus).run()

    asyncio.run(go())
    task = display.progress.tasks[0]
    assert task.completed == len(graph) == task.total
    assert buffer.getvalue(), "something was drawn"


def test_loom_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "loom"
    assert script.exists()
    proc = subprocess.run([str(script), "nodes"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0


def test_events_stream_branch_results_as_they_complete() -> None:
    proc = loom("run", str(EXAMPLES / "parallel.loom"), "--events")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    completed = [e for e in events if e["type"] == "branch_completed"]
    assert [e["branch"] for e in completed] == ["square", "double", "half"]
    fan_done = next(e for e in events if e["type"] == "node_finished" and e["node"] == "fan")
    assert completed[0]["t"] < fan_done["t"] - 0.15, "the first result streamed out early"


def _event_graph(tmp_path: Path, **timer: Any) -> Path:
    graph = Graph(name="ticks")
    graph.add_node(Node("tick", "event.timer", metadata={"event_type": "timer",
                                                         "interval": 0.05, **timer}))
    graph.add_node(Node("say", "text.to_text"))
    graph.connect("tick", "event", "say", "value")
    path = tmp_path / "ticks.loom"
    save_graph(graph, path)
    return path


def test_event_graph_stops_on_ctrl_c_with_exit_130_within_a_second(tmp_path: Path) -> None:
    path = _event_graph(tmp_path)
    returncode, rest, err, _ = _interrupt_after("event_triggered", str(path))
    assert returncode == 130, err
    assert json.loads(rest.splitlines()[-1])["status"] == "stopped"
    # No wave starts once the stop is heard (order from the events, not the clock).
    types = _event_types(rest)
    assert "event_triggered" not in types[types.index("run_stopping"):]


def test_event_graph_ends_with_max_waves_or_duration(tmp_path: Path) -> None:
    path = _event_graph(tmp_path)
    doc = json.loads(loom("run", str(path), "--max-waves", "3", "--json").stdout)
    assert doc["status"] == "succeeded"
    assert doc["nodes"]["tick"]["stats"]["waves"] == 3
    proc = loom("run", str(path), "--duration", "0.3", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["status"] == "succeeded"


def test_http_trigger_address_and_token_are_announced(tmp_path: Path) -> None:
    graph = Graph(name="hook")
    graph.add_node(Node("hook", "event.http_request", metadata={
        "event_type": "http_request", "port": 0, "path": "/in"}))
    graph.add_node(Node("say", "text.to_text"))
    graph.connect("hook", "event", "say", "value")
    path = tmp_path / "hook.loom"
    save_graph(graph, path)
    proc = loom("run", str(path), "--duration", "0.3",
                env={**os.environ, "LOOM_HTTP_TOKEN": "sekrit"})
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"hook listening on POST http://127\.0\.0\.1:\d+/in "
                     r"\(header 'Authorization: Bearer sekrit'\)", proc.stderr), proc.stderr


def test_schedule_first_fire_time_is_announced_and_it_runs(tmp_path: Path) -> None:
    graph = Graph(name="cron")
    graph.add_node(Node("cron", "event.schedule", metadata={
        "event_type": "schedule", "cron": "* * * * * *", "timezone": "Asia/Tokyo", "count": 1}))
    graph.add_node(Node("say", "text.to_text"))
    graph.connect("cron", "event", "say", "value")
    path = tmp_path / "cron.loom"
    save_graph(graph, path)
    proc = loom("run", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"cron scheduled '\* \* \* \* \* \*' in Asia/Tokyo, first at "
                     r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+09:00", proc.stderr), proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "succeeded" and doc["nodes"]["cron"]["stats"]["waves"] == 1


@pytest.mark.slow
def test_run_on_dask_sends_pack_nodes_to_a_local_cluster(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    folder = tmp_path / "farpack"
    folder.mkdir()
    (folder / "far.py").write_text(textwrap.dedent("""
        import os
        from loom import node

        LOADED_IN = os.getpid()  # travels with the function, by value

        @node
        def where(x: int) -> list:
            return [x * 10, os.getpid() != LOADED_IN]
    """))
    loop_meta = {"execution_mode": "loop", "loop_type": "for_each", "body": ["w"],
                 "parallel": True}
    path = _graph(tmp_path, [Node("items", "values.list", properties={"value": [1, 2, 3]}),
                             Node("loop", "control.for_each", metadata=loop_meta),
                             Node("w", "far.where")],
                  [("items", "out", "loop", "items"), ("loop", "item", "w", "x")])
    proc = loom("run", str(path), "--nodes", str(folder), "--executor", "dask", "--json",
                timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)["outputs"]["loop"]["results"]
    assert [r[0] for r in results] == [10, 20, 30]
    assert all(r[1] for r in results), "the items ran on Dask workers, not in loom"


def test_scheduler_with_the_local_executor_is_a_usage_error(tmp_path: Path) -> None:
    proc = loom("run", "resources/examples/hello.loom", "--executor", "local",
                "--scheduler", "tcp://127.0.0.1:8786")
    assert proc.returncode == 2
    assert "--scheduler" in proc.stderr and "--executor dask" in proc.stderr


def test_a_node_calling_sys_exit_or_raising_keyboard_interrupt_does_not_end_loom_run(
        tmp_path: Path) -> None:
    """Issue 9 finding 7: the node fails (NodeAborted); the CLI prints its JSON and exits
    1 (a failed run), not the node's exit code with no output."""
    path = _graph(tmp_path, [
        Node("exit", "fault.raise_cheap", properties={"kind": "exit_code"}),
        Node("interrupt", "fault.raise_thread", properties={"kind": "KeyboardInterrupt"}),
        Node("ok", "fault.passes", properties={"value": 1})])
    proc = loom("run", str(path), "--nodes", str(ROOT / "tests" / "fault_nodes"), "--json")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "failed"
    assert doc["nodes"]["ok"]["state"] == "done"
    for name in ("exit", "interrupt"):
        assert doc["nodes"][name]["error"].startswith("NodeAborted: the node raised"), name
