"""The code node (issue 10, point 4): a body may await, and it is compiled when the
graph is validated, so a syntax error is a validation problem with its line."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from helpers import graph_of, registry_of, run_graph

from loom import node
from loom.engine import EventBus, ExecutionManager, RunStatus, validate
from loom.graph import Graph, Node, save_graph

ROOT = Path(__file__).resolve().parent.parent


@node(id="t.value", cheap=True)
def value(value: Any = None) -> Any:
    """Pass a value on."""
    return value


REG = registry_of(value, builtins=True)

BROKEN = "x = 1\ny = (x +\nreturn y"  # the parenthesis never closes: line 2


def code_graph(code: str, **props: Any) -> Graph:
    return graph_of([("v", "t.value", {"value": 20}),
                     ("c", "control.code", {"code": code, **props})],
                    ["v.out -> c.value"])


async def test_a_body_that_awaits_runs_as_an_async_node() -> None:
    code = ("import asyncio\n"
            "await asyncio.sleep(0)\n"
            "await ctx.sleep(0.01)\n"
            "async with asyncio.timeout(5):\n"
            "    await asyncio.sleep(0)\n"
            "return value + 1")
    result, _ = await run_graph(code_graph(code), REG)
    assert result.status is RunStatus.SUCCEEDED, result.nodes["c"].error
    assert result.outputs["c"]["out"] == 21


async def test_an_awaiting_body_runs_on_the_loop_and_a_plain_one_in_a_thread() -> None:
    # "Plain body keeps running as today": a worker thread, so blocking code is fine.
    probe = "import threading\nreturn threading.current_thread() is threading.main_thread()"
    plain, _ = await run_graph(code_graph(probe), REG)
    awaiting, _ = await run_graph(code_graph("await ctx.sleep(0)\n" + probe), REG)
    assert plain.outputs["c"]["out"] is False
    assert awaiting.outputs["c"]["out"] is True


async def test_an_awaiting_body_reports_its_own_line() -> None:
    result, _ = await run_graph(code_graph("await ctx.sleep(0)\nx = 1\nreturn 1 / 0"), REG)
    assert result.status is RunStatus.FAILED
    assert 'File "<code node c>", line 3' in (result.nodes["c"].traceback or "")


async def test_awaits_inside_an_inner_function_leave_the_body_plain() -> None:
    code = ("async def inner():\n"
            "    await asyncio.sleep(0)\n"
            "    return 2\n"
            "import asyncio, threading\n"
            "return (asyncio.run(inner()), threading.current_thread() is not "
            "threading.main_thread())")
    result, _ = await run_graph(code_graph(code), REG)
    assert result.status is RunStatus.SUCCEEDED, result.nodes["c"].error
    assert result.outputs["c"]["out"] == (2, True)


def test_a_syntax_error_is_a_validation_error_with_its_line() -> None:
    issues = validate(code_graph(BROKEN), REG)
    errors = [i for i in issues if i.severity == "error"]
    assert len(errors) == 1
    assert errors[0].node_id == "c"
    assert errors[0].message.startswith("code does not compile: line 2: ")
    assert "never closed" in errors[0].message
    # An await outside the body's own level is the compiler's error too.
    issues = validate(code_graph("def f():\n    await g()\nreturn 1"), REG)
    assert [i.message for i in issues] == [
        "code does not compile: line 2: 'await' outside async function (await g())"]


def test_the_engine_refuses_to_run_a_body_that_does_not_compile() -> None:
    manager = ExecutionManager(code_graph(BROKEN), REG, bus=EventBus())
    assert any("line 2" in i.message and i.node_id == "c" for i in manager.validate())


def test_loom_validate_reports_the_syntax_error_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "broken.loom"
    save_graph(Graph(nodes={"c": Node("c", "control.code", name="Broken",
                                      properties={"code": BROKEN, "inputs": ""})}), path)
    proc = subprocess.run([sys.executable, "-m", "loom", "validate", str(path)],
                          capture_output=True, text=True, check=False, timeout=60, cwd=ROOT)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Broken (c): code does not compile: line 2:" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "loom", "validate", str(path), "--json"],
                          capture_output=True, text=True, check=False, timeout=60, cwd=ROOT)
    issue = json.loads(proc.stdout)["issues"][0]
    assert proc.returncode == 2 and issue["node_id"] == "c" and "line 2" in issue["message"]


def started_event(bus: EventBus, node_id: str) -> asyncio.Event:
    """An event set once ``node_id`` has started."""
    started = asyncio.Event()

    def seen(batch: list[dict[str, Any]]) -> None:
        if any(e.get("node") == node_id for e in batch):
            started.set()

    bus.subscribe(seen, types=["node_started"])
    return started


async def test_stop_during_an_awaiting_code_node() -> None:
    graph = code_graph("import asyncio\nawait asyncio.sleep(30)\nreturn value")
    bus = EventBus()
    manager = ExecutionManager(graph, REG, bus=bus)
    manager.stop_grace = 0.2
    started = started_event(bus, "c")
    task = asyncio.create_task(manager.run())
    await asyncio.wait_for(started.wait(), 10)
    begun = time.monotonic()
    manager.request_stop()
    result = await asyncio.wait_for(task, 10)  # "returns at all", not a speed check
    assert result.status is RunStatus.STOPPED
    assert result.nodes["c"].state.value == "stopped"
    assert time.monotonic() - begun < 10


async def test_ctx_sleep_in_a_code_body_ends_at_once_on_stop() -> None:
    graph = code_graph("await ctx.sleep(30)\nreturn value")
    bus = EventBus()
    manager = ExecutionManager(graph, REG, bus=bus)
    started = started_event(bus, "c")
    task = asyncio.create_task(manager.run())
    await asyncio.wait_for(started.wait(), 10)
    manager.request_stop()
    result = await asyncio.wait_for(task, 10)
    assert result.status is RunStatus.STOPPED
    assert result.nodes["c"].state.value == "stopped"
