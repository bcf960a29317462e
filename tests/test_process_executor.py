"""The process executor: sync nodes in a pool of worker processes (``executor="process"``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator
from multiprocessing import forkserver, resource_tracker
from pathlib import Path
from typing import Any

import pytest
from helpers import graph_of, registry_of, run_graph, states

from loom import node
from loom.engine import ExecutionManager, RunStatus
from loom.engine.invoke import EXECUTOR_FACTORIES, format_error
from loom.engine.processes import ProcessCallError, ProcessExecutor, start_forkserver
from loom.graph import Graph, Node, save_graph
from loom.registry import Registry

# The forkserver and the resource tracker it needs are one server process each per
# Python process, shared by every pool and stopped when this process exits; each
# keeps one pipe open here for its lifetime. Started at import (collection), before
# any test's leak snapshot, they are part of every test's baseline, not a leak.
start_forkserver()


def _burn(n: int) -> int:
    """Pure-Python CPU work (holds the GIL throughout)."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def _calibrate(seconds: float) -> int:
    """Iterations of :func:`_burn` taking about ``seconds`` here."""
    n = 100_000
    while True:
        start = time.perf_counter()
        _burn(n)
        took = time.perf_counter() - start
        if took > 0.05:
            return int(n * seconds / took)
        n *= 4


def _children_left() -> list[int]:
    """Processes descended from this one, except the forkserver and the resource tracker."""
    if not Path("/proc").is_dir():
        return []
    parent_of: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # exited meanwhile
                continue
            parent_of[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [os.getpid()]
    while frontier:
        pid = frontier.pop()
        children = [c for c, p in parent_of.items() if p == pid]
        found += children
        frontier += children
    servers = {forkserver._forkserver._forkserver_pid,  # type: ignore[attr-defined]
               resource_tracker._resource_tracker._pid}  # type: ignore[attr-defined]
    return [pid for pid in found if pid not in servers]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _wait_for_file(path: Path, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never appeared"
        await asyncio.sleep(0.01)
    return path.read_text()


def _pid_then_sleep(path: str, seconds: float = 30.0) -> str:
    """Write this worker's pid to ``path``, then sleep (a call that outlives its caller)."""
    Path(path).write_text(str(os.getpid()))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return "slept"


def _spin_with_a_child(path: str) -> None:
    """Start a child process, write "worker child" pids to ``path``, spin for ever."""
    child = subprocess.Popen(["sleep", "600"])
    Path(path + ".tmp").write_text(f"{os.getpid()} {child.pid}")
    os.replace(path + ".tmp", path)
    while True:
        pass


def _must_be_small(x: int) -> int:
    if x > 2:
        raise ValueError(f"x is too big: {x}")  # the line the traceback must show
    return x


@node(id="t.square_elsewhere", executor="process", outputs=["square", "pid"])
def square_elsewhere(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


@node(id="t.fail_elsewhere", executor="process")
def fail_elsewhere(x: int) -> int:
    return _must_be_small(x)


@node(id="t.sleep_elsewhere", executor="process")
def sleep_elsewhere(path: str) -> str:
    return _pid_then_sleep(path)


@pytest.fixture
async def executor() -> AsyncIterator[ProcessExecutor]:
    ex = ProcessExecutor()
    yield ex
    await ex.aclose(0)
    assert _children_left() == []


# --------------------------------------------------------------------- results

async def test_registered_as_the_process_executor() -> None:
    assert EXECUTOR_FACTORIES["process"] is ProcessExecutor


async def test_cpu_bound_function_returns_its_result(executor: ProcessExecutor) -> None:
    assert await executor.call(_burn, {"n": 200_000}, "burn") == _burn(200_000)


@pytest.mark.slow
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs")
async def test_two_calls_run_in_parallel(executor: ProcessExecutor) -> None:
    n = _calibrate(0.5)
    await executor.warm()

    def timed(n: int) -> tuple[int, float, float]:
        # The loop of _burn, inline: a closure travels by value, so a worker need not
        # import this test module (and pytest) first, which would skew the timing.
        start = time.monotonic()  # one clock for every process of the machine
        total = 0
        for i in range(n):
            total += i * i % 7
        return os.getpid(), start, time.monotonic()

    # Overlap from what the workers themselves saw (one clock for every process), not
    # from how long the pair took: this machine's speed varies from second to second.
    (pid_a, start_a, end_a), (pid_b, start_b, end_b) = await asyncio.gather(
        executor.call(timed, {"n": n}, "a"), executor.call(timed, {"n": n}, "b"))
    assert pid_a != pid_b != os.getpid()
    assert start_b < end_a and start_a < end_b, "each started before the other ended"


async def test_a_closure_runs(executor: ProcessExecutor) -> None:
    offset = 40

    def add(x: int) -> tuple[int, int]:
        return x + offset, os.getpid()

    value, pid = await executor.call(add, {"x": 2}, "closure")
    assert value == 42 and pid != os.getpid()
    lam = await executor.call(lambda s: s.upper(), {"s": "lambda"}, "lambda")
    assert lam == "LAMBDA"


async def test_a_function_from_a_pack_file_runs_in_the_pool(
        executor: ProcessExecutor, tmp_path: Path) -> None:
    pack = tmp_path / "crunchpack.py"
    pack.write_text(textwrap.dedent('''
        import os
        from dataclasses import dataclass

        from loom import node

        SCALE = 3


        @dataclass
        class Point:
            x: int
            y: int


        class PackError(Exception):
            pass


        def _scaled(v):
            return v * SCALE


        @node(executor="process")
        def crunch(x: int):
            if x < 0:
                raise PackError(f"negative: {x}")
            return Point(_scaled(x), os.getpid())


        @node(executor="process")
        def echo(p):
            return p
        '''))
    registry = Registry()
    specs = {s.func.__name__: s for s in registry.load_file(pack)}
    assert registry.problems == []
    crunch = specs["crunch"].func
    module = __import__(crunch.__module__, fromlist=["Point"])
    assert crunch.__module__.startswith("loom_nodes.")

    point = await executor.call(crunch, {"x": 5}, "crunch")
    assert isinstance(point, module.Point), "the result's class is the pack's own class"
    assert point.x == 15 and point.y != os.getpid()
    # An instance of a pack class travels to a worker and back, keeping its class.
    again = await executor.call(specs["echo"].func, {"p": module.Point(1, 2)}, "echo")
    assert isinstance(again, module.Point) and again == module.Point(1, 2)

    with pytest.raises(module.PackError, match="negative: -1") as caught:
        await executor.call(crunch, {"x": -1}, "crunch")
    message, text = format_error(caught.value)
    assert message.endswith("PackError: negative: -1")
    line = pack.read_text().splitlines().index('        raise PackError(f"negative: {x}")') + 1
    assert f'File "{pack}", line {line}, in crunch' in text
    assert 'raise PackError(f"negative: {x}")' in text


# ------------------------------------------------------------------ failures

async def test_a_worker_exception_keeps_its_type_and_the_worker_traceback(
        executor: ProcessExecutor) -> None:
    def outer(x: int) -> int:
        return _must_be_small(x)

    with pytest.raises(ValueError, match="x is too big: 5") as caught:
        await executor.call(outer, {"x": 5}, "outer")
    exc = caught.value
    assert type(exc.__cause__).__name__ == "_RemoteTraceback", "the concurrent.futures way"
    message, text = format_error(exc)
    assert message == "ValueError: x is too big: 5"
    here = Path(__file__).name
    assert f'{here}", line' in text and "in outer" in text and "in _must_be_small" in text
    line = _must_be_small.__code__.co_firstlineno + 2
    assert f'{here}", line {line}, in _must_be_small' in text
    assert 'raise ValueError(f"x is too big: {x}")' in text, "the source line is shown"
    assert "loom/engine" not in text and "concurrent/futures" not in text, "no plumbing"
    # This test awaits the call itself, so its own frame shows too, after the worker's.
    worker, _, local = text.partition("The above exception was the direct cause")
    assert "in _must_be_small" in worker and "in test_a_worker_exception" in local


async def test_a_worker_exception_shows_inside_the_chain_of_a_later_one(
        executor: ProcessExecutor) -> None:
    try:
        await executor.call(_must_be_small, {"x": 6}, "helper")
    except ValueError as exc:
        exc.__traceback__ = None  # as if only engine plumbing had seen it on this side
        try:
            raise RuntimeError("while crunching")
        except RuntimeError as later:
            message, text = format_error(later)
    assert message == "RuntimeError: while crunching"
    assert (text.index("in _must_be_small") < text.index("ValueError: x is too big: 6")
            < text.index("During handling of the above exception")
            < text.index("RuntimeError: while crunching"))
    assert '"""' not in text and "_RemoteTraceback" not in text


async def test_format_error_is_unchanged_for_exceptions_raised_here() -> None:
    def fail() -> None:
        raise KeyError("local")

    try:
        fail()
    except KeyError as exc:
        message, text = format_error(exc)
    assert message == "KeyError: 'local'"
    assert text.startswith("Traceback (most recent call last):")
    assert "in fail" in text and 'raise KeyError("local")' in text


async def test_format_error_keeps_local_frames_of_a_pool_used_by_node_code() -> None:
    # A node that uses a process pool itself: its own frame and the worker's both show.
    ctx = multiprocessing.get_context("forkserver")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        try:
            pool.submit(_must_be_small, 9).result()
        except ValueError as exc:
            message, text = format_error(exc)
    assert message == "ValueError: x is too big: 9"
    assert "in _must_be_small" in text, "the worker's frames"
    assert "in test_format_error_keeps_local_frames" in text, "the frame that re-raised here"
    assert '"""' not in text and "_RemoteTraceback" not in text


async def test_an_unpicklable_result_fails_clearly(executor: ProcessExecutor) -> None:
    with pytest.raises(TypeError) as caught:
        await executor.call(threading.Lock, {}, "lock")
    assert "the result, of type _thread.lock, cannot be sent back" in str(caught.value)
    # The pool survives it.
    assert await executor.call(_burn, {"n": 10}, "after") == _burn(10)


async def test_unpicklable_inputs_fail_before_reaching_the_pool(
        executor: ProcessExecutor) -> None:
    with pytest.raises(TypeError, match=r"cannot send .* to a worker process"):
        await executor.call(_burn, {"n": threading.Lock()}, "lock-input")


class _NeedsTwo(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a} and {b}")


async def test_an_exception_that_does_not_unpickle_comes_back_as_a_stand_in(
        executor: ProcessExecutor) -> None:
    def fail() -> None:
        raise _NeedsTwo(1, 2)

    with pytest.raises(ProcessCallError, match=r"_NeedsTwo: 1 and 2 \(the exception could not"):
        await executor.call(fail, {}, "two")


async def test_a_crashed_worker_fails_its_call_and_later_calls_get_a_new_pool(
        executor: ProcessExecutor) -> None:
    with pytest.raises(concurrent.futures.process.BrokenProcessPool):
        await executor.call(lambda: os._exit(3), {}, "crash")
    assert await executor.call(_burn, {"n": 10}, "after") == _burn(10)


async def test_a_worker_crashing_at_once_is_always_noticed() -> None:
    # The pool's manager thread watches the workers that existed when it last woke,
    # and submit() wakes it before spawning one: a fresh worker crashing at once went
    # unnoticed (the call hung) about one time in ten, unless woken again.
    for _ in range(10):
        executor = ProcessExecutor()
        try:
            with pytest.raises(concurrent.futures.process.BrokenProcessPool):
                await asyncio.wait_for(executor.call(lambda: os._exit(3), {}, "crash"), 20)
        finally:
            await executor.aclose(0)
    assert _children_left() == []


# ------------------------------------------------------- cancellation, aclose

async def test_cancelling_a_running_call_leaves_the_worker_until_aclose_terminates_it(
        tmp_path: Path) -> None:
    executor = ProcessExecutor()
    marker = tmp_path / "pid"
    task = asyncio.create_task(executor.call(_pid_then_sleep, {"path": str(marker)}, "sleeper"))
    pid = int(await _wait_for_file(marker))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.1)
    assert _alive(pid), "a running call keeps its worker"
    start = time.perf_counter()
    assert await executor.aclose(grace=0.1) == ["sleeper"]
    assert time.perf_counter() - start < 2.0
    assert not _alive(pid)
    assert multiprocessing.active_children() == []
    assert _children_left() == []


async def test_a_call_waiting_for_a_worker_is_withdrawn_when_cancelled(tmp_path: Path) -> None:
    executor = ProcessExecutor(max_workers=1)
    marker, never = tmp_path / "pid", tmp_path / "never"
    first = asyncio.create_task(executor.call(_pid_then_sleep, {"path": str(marker)}, "first"))
    await _wait_for_file(marker)
    second = asyncio.create_task(
        executor.call(_pid_then_sleep, {"path": str(never), "seconds": 0}, "second"))
    await asyncio.sleep(0.1)
    second.cancel()
    first.cancel()
    await asyncio.gather(first, second, return_exceptions=True)
    assert await executor.aclose(grace=0) == ["first"]
    assert not never.exists(), "the waiting call never reached a worker"
    assert _children_left() == []


async def test_aclose_fails_calls_still_waiting_for_a_worker(tmp_path: Path) -> None:
    executor = ProcessExecutor(max_workers=1)
    marker = tmp_path / "pid"
    first = asyncio.create_task(executor.call(_pid_then_sleep, {"path": str(marker)}, "first"))
    await _wait_for_file(marker)
    waiting = [asyncio.create_task(executor.call(_burn, {"n": 10}, f"w{i}")) for i in range(3)]
    await asyncio.sleep(0.05)
    assert await executor.aclose(grace=0) == ["first"]
    outcomes = await asyncio.gather(*waiting, first, return_exceptions=True)
    assert [type(o) for o in outcomes[:3]] == [RuntimeError] * 3
    assert "closed" in str(outcomes[0])
    assert isinstance(outcomes[3], concurrent.futures.process.BrokenProcessPool)
    assert _children_left() == []


async def test_aclose_waits_for_calls_that_end_within_the_grace(tmp_path: Path) -> None:
    executor = ProcessExecutor()
    marker = tmp_path / "pid"
    task = asyncio.create_task(
        executor.call(_pid_then_sleep, {"path": str(marker), "seconds": 0.3}, "short"))
    await _wait_for_file(marker)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert await executor.aclose(grace=5.0) == []
    assert _children_left() == []


async def test_calls_after_aclose_are_refused() -> None:
    executor = ProcessExecutor()
    assert await executor.call(_burn, {"n": 10}, "before") == _burn(10)
    await executor.aclose(0)
    with pytest.raises(RuntimeError, match="closed"):
        await executor.call(_burn, {"n": 10}, "after")


async def test_aclose_of_an_unused_executor_is_a_no_op() -> None:
    executor = ProcessExecutor()
    assert await executor.aclose(1.0) == []
    assert await executor.aclose(1.0) == []
    assert _children_left() == []


async def test_warm_starts_every_worker_and_can_be_repeated(executor: ProcessExecutor) -> None:
    await executor.warm()
    pool: Any = executor._pool
    workers = set(pool._processes)
    assert len(workers) == os.cpu_count()
    await executor.warm()
    assert set(pool._processes) == workers
    pids = await asyncio.gather(*(executor.call(os.getpid, {}, f"p{i}") for i in range(4)))
    assert set(pids) <= workers, "calls use the warmed workers, none is added"


# ------------------------------------------------------------- through the engine

async def test_a_process_node_runs_in_another_process_through_the_engine() -> None:
    registry = registry_of(square_elsewhere)
    graph = graph_of([("sq", "t.square_elsewhere", {"x": 7})])
    result, _ = await run_graph(graph, registry)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    outputs = result.outputs["sq"]
    assert outputs["square"] == 49
    assert outputs["pid"] != os.getpid()
    assert _children_left() == [], "the run closed its pool"


async def test_a_failing_process_node_reports_the_worker_traceback_only() -> None:
    registry = registry_of(fail_elsewhere)
    result, _ = await run_graph(graph_of([("f", "t.fail_elsewhere", {"x": 8})]), registry)
    assert result.status is RunStatus.FAILED
    rec = result.nodes["f"]
    assert rec.error == "ValueError: x is too big: 8"
    text = rec.traceback or ""
    assert text.startswith("Traceback (most recent call last):")
    assert "in fail_elsewhere" in text and "in _must_be_small" in text
    assert 'raise ValueError(f"x is too big: {x}")' in text
    assert "loom/engine" not in text and "concurrent/futures" not in text
    assert text.count("ValueError: x is too big: 8") == 1, "said once, at the end"
    assert text.rstrip().endswith("ValueError: x is too big: 8")


async def test_stopping_a_run_terminates_its_running_process_node(tmp_path: Path) -> None:
    registry = registry_of(sleep_elsewhere)
    marker = tmp_path / "pid"
    graph = graph_of([("s", "t.sleep_elsewhere", {"path": str(marker)})])
    manager = ExecutionManager(graph, registry, stop_grace=0.1)
    task = asyncio.create_task(manager.run())
    pid = int(await _wait_for_file(marker))
    manager.request_stop()
    result = await asyncio.wait_for(task, 10)
    assert result.status is RunStatus.STOPPED
    assert states(result) == {"s": "stopped"}
    assert result.abandoned == ["s"]
    assert not _alive(pid)
    assert _children_left() == []


# ------------------------------------------- workers end with the parent (issue 9)

@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
async def test_cutting_the_lifeline_ends_a_busy_worker_and_the_processes_it_started(
        tmp_path: Path) -> None:
    # What a parent's death does (its end of the pipe closes), done by hand here.
    executor = ProcessExecutor()
    marker = tmp_path / "pids"
    task = asyncio.create_task(executor.call(_spin_with_a_child, {"path": str(marker)}, "spin"))
    worker, child = (int(x) for x in (await _wait_for_file(marker)).split())
    try:
        assert os.getpgid(worker) == worker, "a worker leads its own process group"
        assert os.getpgid(child) == worker, "what a node starts is in its worker's group"
        ignored = int(next(line.split()[1] for line in Path(f"/proc/{worker}/status").read_text()
                           .splitlines() if line.startswith("SigIgn:")), 16)
        assert ignored & (1 << (signal.SIGINT - 1)), "a worker ignores Ctrl+C: its parent stops it"
        assert executor._lifeline is not None
        executor._lifeline.close()
        with pytest.raises(concurrent.futures.process.BrokenProcessPool):
            await asyncio.wait_for(task, 10)
        deadline = time.monotonic() + 10
        while _alive(worker) or _alive(child):
            assert time.monotonic() < deadline, "the worker or its child outlived the lifeline"
            await asyncio.sleep(0.02)
    finally:
        for pid in (worker, child):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        await executor.aclose(0)
    assert _children_left() == []


async def test_stopping_terminates_the_processes_a_running_node_started(tmp_path: Path) -> None:
    executor = ProcessExecutor()
    marker = tmp_path / "pids"
    task = asyncio.create_task(executor.call(_spin_with_a_child, {"path": str(marker)}, "spin"))
    worker, child = (int(x) for x in (await _wait_for_file(marker)).split())
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert await executor.aclose(grace=0) == ["spin"]
    deadline = time.monotonic() + 10
    while _alive(worker) or _alive(child):
        assert time.monotonic() < deadline, "the worker's child survived the stop"
        await asyncio.sleep(0.02)
    assert _children_left() == []


_BESIDE_PACK = """
    import asyncio
    from loom import node

    @node
    async def quick(seconds: float = 0.1) -> str:
        await asyncio.sleep(seconds)
        return "in time"

    @node(executor="process")
    def square(x: int = 3) -> int:
        return x * x
"""


def test_an_async_node_keeps_its_timeout_while_the_process_pool_starts(tmp_path: Path) -> None:
    # Issue 9 finding 8: starting the pool (the forkserver imports Loom, 0.3-0.45 s)
    # blocked the loop, so this node's 0.2 s timeout fired in 3 runs of 3. Each
    # `loom run` is a fresh process: its forkserver starts cold, as for users.
    pack = tmp_path / "beside"
    pack.mkdir()
    (pack / "besidepack.py").write_text(textwrap.dedent(_BESIDE_PACK))
    graph = Graph(name="async beside process")
    graph.settings.max_concurrency = 2
    graph.add_node(Node("a", "besidepack.quick", metadata={"timeout": 0.2}))  # starts first
    graph.add_node(Node("p", "besidepack.square"))
    path = tmp_path / "beside.loom"
    save_graph(graph, path)
    for _ in range(3):
        proc = subprocess.run([sys.executable, "-m", "loom", "run", str(path), "--nodes", str(pack),
                               "--json"], capture_output=True, text=True, timeout=60, check=False)
        result = json.loads(proc.stdout)
        node_a = result["nodes"]["a"]
        assert (node_a["state"], node_a["error"]) == ("done", None), result
        assert result["status"] == "succeeded" and result["outputs"]["p"] == {"out": 9}
