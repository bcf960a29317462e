"""The Dask executor: node calls on a LocalCluster bound to 127.0.0.1 (2 worker processes).

Most tests share one cluster started by a module fixture and reach it by address,
the way ``loom run --executor dask --scheduler ADDR`` does; the tests of the run-owned
cluster start their own and check that it is gone afterwards. Every test checks that
no scheduler or worker process is left once its cluster is closed.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")

from helpers import Recorder, graph_of, registry_of, run_graph  # noqa: E402
from leaks import start_dask_helpers  # noqa: E402

from loom import node  # noqa: E402
from loom.engine import (  # noqa: E402
    DaskExecutor,
    EventBus,
    ExecutionManager,
    ExecutorUnavailableError,
    RunStatus,
    dask_executor,
)
from loom.registry import Registry  # noqa: E402

pytestmark = pytest.mark.slow

start_dask_helpers()


def _burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


@node(id="t.value", cheap=True)
def value(value: Any = None) -> Any:
    return value


@node(id="t.crunch")
def crunch(x: int, n: int = 20_000) -> tuple[int, int]:
    """CPU work; returns the item and the worker's pid (thread node: goes to Dask on request)."""
    if x == 13:
        raise ValueError(f"unlucky item {x}")
    return x * x + _burn(n) * 0, os.getpid()


@node(id="t.nap", executor="dask")
def nap(x: int, seconds: float = 0.2) -> int:
    time.sleep(seconds)
    return x


@node(id="t.fail_at_13", executor="dask")
def fail_at_13(x: int, delay: float = 0.0) -> int:
    if x == 13:
        time.sleep(delay)
        raise ValueError("13")
    time.sleep(0.3)
    return x


@node(id="t.flaky", executor="dask")
def flaky(path: str) -> int:
    """Fails on the first attempt, works on the second (the count lives in a file)."""
    marker = Path(path)
    if not marker.exists():
        marker.write_text("tried")
        raise ConnectionError("first attempt fails")
    return os.getpid()


REG = registry_of(value, crunch, nap, fail_at_13, flaky, builtins=True)


def for_each(items: list[Any], body_type: str, props: dict[str, Any] | None = None,
             **settings: Any) -> Any:
    meta = {"execution_mode": "loop", "loop_type": "for_each", "body": ["b"], **settings}
    return graph_of([("items", "t.value", {"value": items}),
                     ("loop", "control.for_each", {}, meta),
                     ("b", body_type, props or {})],
                    ["items.out -> loop.items", "loop.item -> b.x"])


def _worker_processes() -> list[Any]:
    return [p for p in multiprocessing.active_children() if p.is_alive()]


@pytest.fixture(scope="class")
def cluster() -> Iterator[str]:
    """A LocalCluster shared by the tests of a class: its scheduler's address.

    It runs its own event loop in a thread, started before the first test of the
    class and stopped after the last, which therefore skip the per-test leak check;
    its teardown checks that no scheduler or worker process is left.
    """
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                       silence_logs=40)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()
    assert _worker_processes() == [], "no scheduler or worker process is left"


@pytest.mark.allow_leaks
class TestOnASharedCluster:
    """Runs on one LocalCluster reached by address, as ``--scheduler ADDR`` does."""

    async def test_a_parallel_for_each_gives_the_same_results_as_the_local_executor(
            self, cluster: str) -> None:
        graph = for_each(list(range(12)), "t.crunch", parallel=True, max_concurrent=6)
        local, _ = await run_graph(graph, REG)
        remote, rec = await run_graph(graph, REG, executor="dask", scheduler=cluster)
        assert local.status is remote.status is RunStatus.SUCCEEDED
        squares = [pair[0] for pair in remote.outputs["loop"]["results"]]
        assert squares == [pair[0] for pair in local.outputs["loop"]["results"]]
        assert squares == [i * i for i in range(12)], "items come back in order"
        pids = {pair[1] for pair in remote.outputs["loop"]["results"]}
        assert os.getpid() not in pids, "the work ran on the workers"
        info = remote.outputs["loop"]["execution_info"]
        assert info["total"] == 12 and info["completed"] == 12 and info["failed"] == 0
        assert len(rec.of("loop_iteration")) == 12

    async def test_a_pack_function_runs_on_workers_that_never_imported_it(
            self, cluster: str, tmp_path: Path) -> None:
        (tmp_path / "far.py").write_text(textwrap.dedent('''
            import os
            from loom import node

            FACTOR = 7

            class Tagged(tuple):
                pass

            @node(executor="dask")
            def times(x: int) -> tuple:
                return Tagged((x * FACTOR, os.getpid()))
        '''))
        registry = Registry.standard([tmp_path], entry_points=False)
        registry.add_function(value, origin="tests")
        graph = for_each([1, 2, 3], "far.times", parallel=True)
        result, _ = await run_graph(graph, registry, scheduler=cluster)
        assert result.status is RunStatus.SUCCEEDED, result.errors
        out = result.outputs["loop"]["results"]
        assert [v for v, _pid in out] == [7, 14, 21]
        assert type(out[0]).__name__ == "Tagged" and os.getpid() not in {p for _, p in out}

    async def test_a_worker_exception_comes_back_with_its_traceback(self, cluster: str) -> None:
        graph = for_each([1, 13, 2], "t.crunch", parallel=True)
        result, _ = await run_graph(graph, REG, executor="dask", scheduler=cluster)
        assert result.status is RunStatus.FAILED
        error = result.nodes["b"].error
        assert error is not None and "ValueError: unlucky item 13" in error
        tb = result.nodes["b"].traceback or ""
        assert "crunch" in tb and 'raise ValueError(f"unlucky item {x}")' in tb

    async def test_fail_fast_cancels_the_items_still_pending(self, cluster: str) -> None:
        items = [13, *range(1, 40)]
        graph = for_each(items, "t.fail_at_13", parallel=True, max_concurrent=40,
                         on_error="stop")  # a loop's fail-fast
        result, rec = await run_graph(graph, REG, scheduler=cluster)
        assert result.status is RunStatus.FAILED
        # 39 naps of 0.3 s on 2 single-thread workers: fail-fast cancels most of them.
        # Counted from events, not timed: a loaded machine finishes a few more.
        finished = [e for e in rec.of("node_finished") if e["node"] == "b"]
        assert len(finished) < len(items) // 2, "the pending items were cancelled, not run"
        assert await _tasks_on(cluster) == 0, "no future of the run is left on the cluster"

    async def test_retries_and_timeouts_work_as_they_do_here(
            self, cluster: str, tmp_path: Path) -> None:
        graph = graph_of([("f", "t.flaky", {"path": str(tmp_path / "marker")},
                           {"max_retries": 2}),
                          ("n", "t.nap", {"x": 1, "seconds": 5.0}, {"timeout": 0.5})])
        started = time.perf_counter()
        result, rec = await run_graph(graph, REG, scheduler=cluster)
        assert time.perf_counter() - started < 4.0, "the timeout did not wait for the nap"
        assert result.nodes["f"].state.value == "done"
        assert result.nodes["f"].attempts == 2
        assert result.outputs["f"]["out"] != os.getpid()
        assert [e["node"] for e in rec.of("node_retrying")] == ["f"]
        assert result.nodes["n"].state.value == "failed"
        assert "timed out after 0.5 s" in (result.nodes["n"].error or "")
        assert await _tasks_on(cluster) == 0, "the timed-out call's future was cancelled"

    async def test_stop_cancels_every_future_on_a_shared_cluster(self, cluster: str) -> None:
        result, _, _ = await _stop_mid_run(scheduler=cluster)
        assert result.status is RunStatus.STOPPED
        assert await _tasks_on(cluster) == 0, "no future of the run is left on the cluster"


async def _tasks_on(address: str) -> int:
    client = await distributed.Client(address, asynchronous=True)
    try:
        return int(await client.run_on_scheduler(
            lambda dask_scheduler: len(dask_scheduler.tasks)))
    finally:
        await client.close()


async def _stop_mid_run(**options: Any) -> tuple[Any, Recorder, float]:
    """Run 40 naps of 0.5 s (on 2 workers: 10 s), stop at once after the first starts."""
    graph = for_each(list(range(40)), "t.nap", {"seconds": 0.5}, parallel=True,
                     max_concurrent=40)
    bus = EventBus()
    recorder = Recorder(bus)
    manager = ExecutionManager(graph, REG, bus=bus, **options)
    run = asyncio.ensure_future(manager.run())
    while not any(e["type"] == "node_started" and e["node"] == "b" for e in recorder.events):
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    started = time.perf_counter()
    manager.request_stop(grace=0)
    result = await run
    return result, recorder, time.perf_counter() - started


async def test_stop_cancels_pending_futures_and_closes_the_cluster_it_started() -> None:
    result, recorder, took = await _stop_mid_run()
    assert result.status is RunStatus.STOPPED and took < 10
    assert result.nodes["loop"].state.value == "stopped"
    done = [e for e in recorder.of("node_finished") if e["node"] == "b"]
    assert len(done) < 10, "the items still pending never ran"
    assert _worker_processes() == [], "the run's LocalCluster is closed"




async def test_parallel_fail_fast_cancels_the_branches_still_on_the_cluster() -> None:
    # On a cluster of its own: fresh workers, so no other test's work is in the way.
    # "bad" fails after 0.5 s on one worker; the slow branches start 0.1 s later (so
    # that "bad" surely has a worker): one runs on the other worker, the rest wait on
    # the cluster until fail_fast cancels them.
    branches = {"bad": ["bad"], **{f"slow{i}": [f"wait{i}", f"slow{i}"] for i in range(6)}}
    graph = graph_of([("v", "t.value", {"value": 13}),
                      ("p", "control.parallel", {},
                       {"execution_mode": "parallel", "parallel_branches": branches,
                        "on_error": "fail_fast"}),
                      ("bad", "t.fail_at_13", {"delay": 0.5}),
                      *[(f"wait{i}", "time.delay", {"seconds": 0.1}) for i in range(6)],
                      *[(f"slow{i}", "t.nap", {"seconds": 2.0}) for i in range(6)]],
                     ["v.out -> p.value", "p.value -> bad.x",
                      *[f"p.value -> wait{i}.value" for i in range(6)],
                      *[f"wait{i}.out -> slow{i}.x" for i in range(6)]])
    result, rec = await run_graph(graph, REG, executor="dask")
    assert result.status is RunStatus.FAILED
    completed = {e["branch"]: e["status"] for e in rec.of("branch_completed")}
    assert completed["bad"] == "failed"
    assert {completed[f"slow{i}"] for i in range(6)} == {"cancelled"}
    failed_at = {e["node"]: e["t"] for e in rec.of("node_failed")}
    assert failed_at["p"] - failed_at["bad"] < 0.5, "fail_fast did not wait for the 2 s naps"
    assert not [e for e in rec.of("node_finished") if e["node"].startswith("slow")]
    assert _worker_processes() == [], "the run's LocalCluster is closed"


async def test_an_unreachable_scheduler_is_one_clear_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT", 1.0)
    graph = for_each([1], "t.crunch")
    manager = ExecutionManager(graph, REG, executor="dask", scheduler="tcp://127.0.0.1:9")
    with pytest.raises(ExecutorUnavailableError, match=r"cannot reach the Dask scheduler at "
                                                       r"tcp://127.0.0.1:9"):
        await manager.run()
    assert manager.status is RunStatus.FAILED
    assert manager.records["b"].state.value == "skipped", "no node ran"


def test_the_executor_choice_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown executor 'cloud'"):
        ExecutionManager(graph_of([]), REG, executor="cloud")


async def test_a_run_owned_cluster_is_closed_after_a_normal_run() -> None:
    result, _ = await run_graph(for_each([1, 2], "t.nap", {"seconds": 0.01}), REG)
    assert result.status is RunStatus.SUCCEEDED
    assert result.outputs["loop"]["results"] == [1, 2]
    assert _worker_processes() == []


async def test_without_the_extra_the_error_says_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_distributed(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "distributed" or name.startswith("distributed."):
            raise ImportError("No module named 'distributed'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_distributed)
    executor = DaskExecutor()
    with pytest.raises(ExecutorUnavailableError, match=r"pip install 'loom\[dask\]'"):
        await executor.start()
    assert await executor.aclose(0) == []
