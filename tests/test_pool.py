"""The Pool behind loops and parallel nodes: first error, cancellation, stop, 3.11 traps.

(Jobs never raise SystemExit or KeyboardInterrupt: the engine turns those from node
code into NodeAborted before they reach a task, where asyncio would re-raise them out
of the event loop.)"""

from __future__ import annotations

import asyncio

import pytest

from loom.engine.concurrency import Pool


async def test_a_failing_job_leaves_the_caller_not_cancelled() -> None:
    """On 3.11 a TaskGroup whose child fails cancels its parent and never takes it back
    when the group's body had already ended: everything after then saw a cancel."""
    cleaned: list[int] = []

    async def job(k: int) -> None:
        try:
            if k == 1:
                raise ValueError("item 1")
            await asyncio.sleep(10)
        finally:
            cleaned.append(k)

    with pytest.raises(ValueError, match="item 1"):
        await Pool(4, 3).run(job)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    assert sorted(cleaned) == [0, 1, 2], "the others were cancelled and cleaned up"
    await asyncio.sleep(0.01)  # a stray cancel would land here


async def test_stop_starts_no_more_jobs() -> None:
    ran: list[int] = []
    stop = asyncio.Event()

    async def job(k: int) -> None:
        ran.append(k)
        if k == 2:
            stop.set()
        await asyncio.sleep(0)

    pool = Pool(100, 2)
    await pool.run(job, stop=stop.is_set)
    assert pool.started == len(ran) < 100
    assert max(ran) <= 4
