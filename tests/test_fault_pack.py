"""The fault pack (tests/fault_nodes) in every mode: nothing a node does crashes the host.

Issue 9 finding 7: any BaseException from node code (SystemExit, KeyboardInterrupt,
GeneratorExit, a custom one) fails that node with a clear message (NodeAborted),
wherever it runs; the run goes on and reports. Values nobody can print or that are
huge, nodes that never end and nodes that ignore cancellation do not break it either.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import graph_of, run_graph, states

from loom.engine import ExecutionManager, RunStatus
from loom.engine.processes import start_forkserver
from loom.registry import Registry

PACK = Path(__file__).resolve().parent / "fault_nodes" / "faults.py"
REG = Registry.standard(entry_points=False)
REG.load_file(PACK)
assert not REG.problems, REG.problems
# The fault pack's own list, read from the loaded pack (it is loaded under a private name).
KINDS: tuple[str, ...] = REG["fault.raise_cheap"].func.__globals__["KINDS"]
WHERE = ("cheap", "async", "thread", "process", "generator")
# Started at import, before any test's leak snapshot (see test_process_executor.py).
start_forkserver()
# Importing watchdog (event sources) starts a probe observer that lingers a moment: do
# it at collection too, not inside the first event test's leak window.
importlib.import_module("loom.engine.sources")

#: what the failure of each kind must say
EXPECTED = {"SystemExit": "SystemExit", "exit_code": "SystemExit(3)",
            "KeyboardInterrupt": "KeyboardInterrupt", "GeneratorExit": "GeneratorExit",
            "custom": "CustomBase", "unprintable": "Unprintable"}


def _says(error: str, kind: str) -> None:
    assert EXPECTED[kind] in error, (kind, error)
    if kind != "unprintable":  # an ordinary Exception keeps its own name
        assert error.startswith("NodeAborted: the node raised"), error


def top_level(where: str) -> Any:
    nodes: list[tuple[Any, ...]] = [("ok", "fault.passes", {"value": 1})]
    wires = []
    for kind in KINDS:
        nodes += [(f"f_{kind}", f"fault.raise_{where}", {"kind": kind}),
                  (f"after_{kind}", "fault.passes")]
        wires.append(f"f_{kind}.out -> after_{kind}.value")
    return graph_of(nodes, wires, max_concurrency=3)


def for_each(where: str, parallel: bool) -> Any:
    meta = {"execution_mode": "loop", "loop_type": "for_each", "body": ["f"],
            "continue_on_error": True, "parallel": parallel}
    return graph_of([("loop", "control.for_each", {"items": list(KINDS)}, meta),
                     ("f", f"fault.raise_{where}"), ("after", "fault.passes")],
                    ["loop.item -> f.kind", "loop.results -> after.value"])


def parallel_branches(where: str) -> Any:
    branches = {kind: [f"f_{kind}"] for kind in KINDS}
    meta = {"execution_mode": "parallel", "parallel_branches": branches,
            "on_error": "continue"}
    nodes: list[tuple[Any, ...]] = [("p", "control.parallel", {}, meta),
                                    ("after", "fault.passes")]
    nodes += [(f"f_{kind}", f"fault.raise_{where}", {"kind": kind}) for kind in KINDS]
    return graph_of(nodes, ["p.results -> after.value"])


@pytest.mark.parametrize("where", WHERE)
async def test_every_base_exception_fails_only_its_node(where: str) -> None:
    result, events = await run_graph(top_level(where), REG)
    assert result.status is RunStatus.FAILED
    got = states(result)
    assert got["ok"] == "done", "the rest of the run went on"
    for kind in KINDS:
        assert got[f"f_{kind}"] == "failed", kind
        assert got[f"after_{kind}"] == "skipped", kind
        _says(result.nodes[f"f_{kind}"].error or "", kind)
        trace = result.nodes[f"f_{kind}"].traceback or ""
        assert "in fault" in trace, "the traceback shows where the node raised"
        assert "loom/engine" not in trace, trace  # and none of the engine's frames
    assert events.events[-1]["type"] == "run_finished"
    json.dumps(result.to_json())  # what --json prints


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "parallel"])
@pytest.mark.parametrize("where", WHERE)
async def test_every_base_exception_in_a_loop_body_is_an_item_error(
        where: str, parallel: bool) -> None:
    result, _ = await run_graph(for_each(where, parallel), REG)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    out = result.outputs["loop"]
    assert out["results"] == [None] * len(KINDS)
    assert [e["index"] for e in out["errors"]] == list(range(len(KINDS)))
    for kind, error in zip(KINDS, out["errors"], strict=True):
        _says(error["error"], kind)
    assert states(result)["after"] == "done"


@pytest.mark.parametrize("where", WHERE)
async def test_every_base_exception_in_a_branch_fails_that_branch(where: str) -> None:
    result, _ = await run_graph(parallel_branches(where), REG)
    errors = {e["branch"]: e["error"] for e in result.outputs["p"]["errors"]}
    assert sorted(errors) == sorted(KINDS)
    for kind in KINDS:
        assert EXPECTED[kind] in errors[kind], (kind, errors[kind])
    assert states(result)["after"] == "done"


@pytest.mark.parametrize("where", WHERE)
async def test_every_base_exception_in_an_event_wave_fails_the_wave_not_the_source(
        where: str) -> None:
    meta = {"execution_mode": "event", "event_type": "timer", "interval": 0.01, "count": 2}
    nodes: list[tuple[Any, ...]] = [("tick", "event.timer", {}, meta)]
    nodes += [(f"f_{kind}", f"fault.raise_{where}", {"kind": kind}) for kind in KINDS]
    wires = [f"tick.event -> f_{kind}.x" for kind in KINDS]
    result, events = await run_graph(graph_of(nodes, wires, max_concurrency=3), REG)
    assert result.status is RunStatus.FAILED
    assert len(events.of("event_triggered")) == 2, "the source went on after a failed wave"
    for kind in KINDS:
        _says(result.nodes[f"f_{kind}"].error or "", kind)
    assert events.events[-1]["type"] == "run_finished"


async def test_unprintable_and_huge_values_do_not_break_the_run() -> None:
    graph = graph_of([("u", "fault.unprintable"), ("i", "fault.huge_int"),
                      ("l", "fault.huge_list"), ("a", "fault.passes"), ("b", "fault.passes"),
                      ("c", "fault.passes")],
                     ["u.out -> a.value", "i.out -> b.value", "l.out -> c.value"])
    result, events = await run_graph(graph, REG)  # a subscriber: every value is previewed
    assert result.status is RunStatus.SUCCEEDED, result.errors
    assert states(result) == dict.fromkeys("uilabc", "done")
    assert events.events[-1]["type"] == "run_finished"
    finished = [e for e in events.of("node_finished") if e["node"] in "uil"]
    assert len(finished) == 3


async def test_nodes_that_never_end_or_ignore_cancellation_are_stopped_and_reported(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("loom.engine.manager.CLEANUP_DEADLINE", 0.3)
    graph = graph_of([("forever", "fault.forever"), ("stubborn", "fault.ignores_cancel"),
                      ("spin", "fault.spin_thread", {"seconds": 1.0}),
                      ("after", "fault.passes")],
                     ["forever.out -> after.value"], max_concurrency=3)
    manager = ExecutionManager(graph, REG, stop_grace=0.2)
    task = asyncio.create_task(manager.run())
    await asyncio.sleep(0.2)
    manager.request_stop()
    result = await asyncio.wait_for(task, 10)  # "returns at all": grace + clean-up deadline
    assert result.status is RunStatus.STOPPED
    assert states(result)["after"] == "skipped"
    assert "stubborn" in result.abandoned, "its clean-up never ended: reported, not awaited"
    assert "spin" in result.abandoned, "a thread cannot be killed: reported"
    # Let the stubborn task and the thread end before the leak check.
    for _ in range(100):
        if not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()
                and not t.done()]:
            break
        await asyncio.sleep(0.05)
