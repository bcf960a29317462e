"""``ctx.shared``: run-wide state shared on purpose, never cloned (issue 10, point 9)."""

from __future__ import annotations

import pickle
import threading
import time
from typing import Any

import cloudpickle  # type: ignore[import-untyped]
import pytest
from helpers import graph_of, registry_of, run_graph

from loom import node
from loom.engine import EventBus, RunStatus
from loom.engine.context import NodeContext, RunContext
from loom.engine.invoke import executor_name


@node(id="t.value", cheap=True)
def value(value: Any = None) -> Any:
    return value


@node(id="t.count")
def count(item: Any, ctx: Any = None) -> Any:
    """A thread node: parallel items count into one key."""
    ctx.shared.increment("seen")
    ctx.vars["mine"] = ctx.vars.get("mine", 0) + 1  # a clone per item: always 1
    return ctx.vars["mine"]


@node(id="t.slow_add")
def slow_add(item: Any, ctx: Any = None) -> Any:
    """Read, wait, write: without one lock around it, parallel threads lose counts."""
    def add(current: int) -> int:
        time.sleep(0.001)
        return current + 1

    return ctx.shared.update_key("total", add, 0)


@node(id="t.read_shared")
def read_shared(after: Any = None, key: str = "seen", ctx: Any = None) -> Any:
    return ctx.shared.get(key)


@node(id="t.wave_count")
def wave_count(event: Any = None, ctx: Any = None) -> Any:
    ctx.vars["mine"] = ctx.vars.get("mine", 0) + 1
    return ctx.shared.increment("waves"), ctx.vars["mine"]


REG = registry_of(value, count, slow_add, read_shared, wave_count, builtins=True)


def counting_graph(body_type: str, key: str, items: int = 60) -> Any:
    return graph_of(
        [("items", "t.value", {"value": list(range(items))}),
         ("loop", "control.for_each", {}, {"body": ["c"], "parallel": True,
                                            "max_concurrent": 8}),
         ("c", body_type), ("read", "t.read_shared", {"key": key})],
        ["items.out -> loop.items", "loop.item -> c.item", "loop.results -> read.after"])


async def test_parallel_loop_items_share_a_counter_through_ctx_shared() -> None:
    result, _ = await run_graph(counting_graph("t.count", "seen"), REG)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    assert result.outputs["read"] == {"out": 60}, "every item's count reached the run"
    assert set(result.outputs["loop"]["results"]) == {1}, "ctx.vars stays cloned per item"


async def test_update_key_is_one_step_under_parallel_threads() -> None:
    result, _ = await run_graph(counting_graph("t.slow_add", "total", items=40), REG)
    assert result.outputs["read"] == {"out": 40}
    assert sorted(result.outputs["loop"]["results"]) == list(range(1, 41))


async def test_parallel_branches_see_each_others_writes() -> None:
    code_a = "ctx.shared['a'] = 1\nreturn 'a'"
    code_b = ("import time\nwhile 'a' not in ctx.shared:\n    time.sleep(0.005)\n"
              "return ctx.shared['a'] + 1")
    graph = graph_of(
        [("p", "control.parallel", {}, {"parallel_branches": {"a": ["a"], "b": ["b"]}}),
         ("a", "control.code", {"code": code_a, "inputs": "value"}),
         ("b", "control.code", {"code": code_b, "inputs": "value"})],
        ["p.value -> a.value", "p.value -> b.value"])
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    assert result.outputs["p"]["results"] == {"a": "a", "b": 2}


async def test_overlapping_event_waves_share_ctx_shared() -> None:
    graph = graph_of([("tick", "event.timer", {}, {"event_type": "timer", "interval": 0.01,
                                                   "count": 4, "max_concurrent_waves": 4}),
                      ("d", "t.wave_count")], ["tick.event -> d.event"])
    result, rec = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    seen = [e["outputs"]["out"] for e in rec.of("node_finished") if e["node"] == "d"]
    assert sorted(shared for shared, _ in seen) == [1, 2, 3, 4]
    assert {mine for _, mine in seen} == {1}, "ctx.vars is cloned per overlapping wave"


def test_shared_is_one_mapping_for_every_clone_and_thread_safe() -> None:
    run = RunContext(EventBus())
    branch, item = run.clone(), run.clone().clone()
    NodeContext(item, "n").shared["k"] = [1]
    assert NodeContext(branch, "m").shared["k"] is run.shared["k"]
    workers = [threading.Thread(target=lambda: [run.shared.increment("n") for _ in range(2000)])
               for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert run.shared["n"] == 8000
    assert dict(run.shared) == run.shared.snapshot() == {"k": [1], "n": 8000}
    with run.shared.lock:  # re-entrant: methods still work while a node holds it
        assert run.shared.setdefault("new", 3) == 3


def test_shared_never_reaches_a_process_or_dask_node() -> None:
    """Process and Dask nodes get no ctx; ctx.shared refuses to be pickled."""
    with pytest.raises(TypeError, match=r"without a ctx parameter \(ctx, with ctx.vars and "
                                        r"ctx.shared, lives in the process"):
        node(id="t.proc", executor="process")(lambda x, ctx=None: x)
    with pytest.raises(TypeError, match="executor='dask' needs a plain function"):
        node(id="t.dask", executor="dask")(lambda x, ctx=None: x)
    # `loom run --executor dask` keeps a ctx node on a local thread, where ctx.shared works.
    assert executor_name(count.__loom_spec__, "dask") == "thread"
    run = RunContext(EventBus())
    for dumps in (pickle.dumps, cloudpickle.dumps):
        with pytest.raises(TypeError, match=r"ctx\.shared cannot leave the process"):
            dumps(run.shared)
