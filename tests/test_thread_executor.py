"""The worker-thread executor: daemon workers that never hold up the process's exit."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from helpers import graph_of, registry_of

from loom import node
from loom.engine import ExecutionManager, NodeAborted, RunStatus
from loom.engine.executors import ThreadExecutor


async def test_calls_run_in_daemon_threads_and_return_their_results() -> None:
    executor = ThreadExecutor()
    seen: list[threading.Thread] = []

    def work(x: int) -> int:
        seen.append(threading.current_thread())
        return x * 2

    assert await executor.call(work, {"x": 21}, "n") == 42
    assert seen[0] is not threading.main_thread() and seen[0].daemon
    assert await executor.aclose(0) == []
    assert not seen[0].is_alive(), "an idle worker ends with the executor"


async def test_exceptions_of_any_kind_reach_the_caller_and_the_worker_survives() -> None:
    executor = ThreadExecutor(max_workers=1)

    def boom(kind: type[BaseException]) -> None:
        raise kind("no")

    with pytest.raises(ValueError, match="no"):
        await executor.call(boom, {"kind": ValueError}, "a")
    # A SystemExit (KeyboardInterrupt, …) comes back as the node's failure, NodeAborted,
    # never as itself: past the awaiting coroutine asyncio would end the loop with it.
    with pytest.raises(NodeAborted, match="SystemExit") as caught:
        await executor.call(boom, {"kind": SystemExit}, "b")
    assert isinstance(caught.value.__cause__, SystemExit)
    assert await executor.call(lambda: "still here", {}, "c") == "still here"
    assert await executor.aclose(0) == []


async def test_workers_are_reused_and_bounded() -> None:
    executor = ThreadExecutor(max_workers=2)
    gate = threading.Event()
    names: set[str] = set()

    def hold() -> None:
        names.add(threading.current_thread().name)
        gate.wait(10)

    calls = [asyncio.ensure_future(executor.call(hold, {}, f"n{i}")) for i in range(5)]
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.gather(*calls)
    for _ in range(5):
        await executor.call(hold, {}, "again")
    assert len(names) <= 2, names
    assert await executor.aclose(0) == []


async def test_close_reports_calls_still_running_and_cancels_queued_ones() -> None:
    executor = ThreadExecutor(max_workers=1)
    release = threading.Event()
    running = asyncio.ensure_future(executor.call(release.wait, {"timeout": 10}, "busy"))
    queued = asyncio.ensure_future(executor.call(lambda: "never", {}, "queued"))
    await asyncio.sleep(0.05)
    assert await executor.aclose(0.05) == ["busy"]
    with pytest.raises(asyncio.CancelledError):
        await queued
    release.set()
    assert await running is True
    with pytest.raises(RuntimeError, match="shut down"):
        await executor.call(lambda: None, {}, "late")


def test_an_abandoned_call_does_not_hold_up_the_process_exit() -> None:
    # Before: worker threads were concurrent.futures' and were joined at exit, so the
    # process lived on until the 60 s call returned.
    script = textwrap.dedent("""
        import asyncio, time
        from loom.engine.executors import ThreadExecutor

        async def main():
            executor = ThreadExecutor()
            call = asyncio.ensure_future(executor.call(lambda: time.sleep(60), {}, "sleepy"))
            await asyncio.sleep(0.1)
            call.cancel()
            print(await executor.aclose(0.1), flush=True)

        asyncio.run(main())
    """)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=50, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['sleepy']"
    # A bound on "exits at all", far below the 60 s the call takes (not a speed claim).
    assert time.monotonic() - started < 40


release_stuck = threading.Event()


@node(id="t.stuck_thread")
def stuck_thread() -> str:
    release_stuck.wait(30)  # never looks at ctx.stop_requested
    return "late"


async def test_a_second_stop_does_not_wait_for_worker_threads() -> None:
    # Before: the second request cancelled the flow, then the run still waited the whole
    # stop_grace (30 s here) for the thread before reporting.
    release_stuck.clear()
    manager = ExecutionManager(graph_of([("s", "t.stuck_thread")]),
                               registry_of(stuck_thread), stop_grace=30)
    task = asyncio.ensure_future(manager.run())
    while manager.records.get("s") is None or manager.records["s"].state.value != "running":
        await asyncio.sleep(0.01)
    manager.request_stop()
    manager.request_stop(grace=0)
    try:
        done, _ = await asyncio.wait({task}, timeout=15)
        assert done, "the run still waited for its worker thread after the second stop"
        result = task.result()
        assert result.status is RunStatus.STOPPED
        assert result.abandoned == ["s"] and result.cancelled == ["s"]
    finally:
        release_stuck.set()  # let the abandoned thread end before the leak check
        await asyncio.wait({task}, timeout=40)
