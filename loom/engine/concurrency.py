"""A bounded pool of jobs with structured cancellation, for loops and parallel nodes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Pool:
    """Runs ``job(0) … job(count-1)``, at most ``limit`` at once, starting in index order.

    ``limit`` workers pull indices from a shared counter, so 10,000 items cost 100
    tasks, not 10,000 (and a limit of 1 costs none: the jobs are awaited inline). The
    first job that raises cancels the others (their ``finally`` blocks run before
    :meth:`run` returns) and its exception propagates as itself. Cancelling the caller
    cancels every job and waits for their clean-up. ``peak`` is the highest number of
    jobs that actually ran at the same moment (measured, not assumed from ``limit``);
    ``started`` how many jobs were started (fewer than ``count`` after a stop).

    Plain tasks, not :class:`asyncio.TaskGroup`: on Python 3.11 a group whose child
    fails cancels its parent task and never takes that cancel back when the body has
    already ended (the parent then looks "being cancelled" to everything after), and it
    re-raises a child's SystemExit or KeyboardInterrupt past every handler.
    """

    def __init__(self, count: int, limit: int) -> None:
        self.count = count
        self.limit = max(1, limit)
        self.active = 0
        self.peak = 0
        self.started = 0

    async def run(self, job: Callable[[int], Awaitable[None]],
                  stop: Callable[[], bool] | None = None) -> None:
        """Run every job; raises the first job's exception, if any.

        ``stop`` is asked before each job starts: once it answers True no more jobs
        start (those running finish), and :attr:`started` tells how many did.
        """
        indices = iter(range(self.count))
        errors: list[BaseException] = []

        async def worker() -> None:
            for k in indices:
                if stop is not None and stop():
                    return
                self.started += 1
                self.active += 1
                self.peak = max(self.peak, self.active)
                try:
                    await job(k)
                except asyncio.CancelledError:
                    raise
                except BaseException as exc:
                    errors.append(exc)  # in the order they happened: the first one wins
                    raise
                finally:
                    self.active -= 1

        workers = min(self.limit, self.count)
        if workers <= 1:
            if workers == 1:
                await worker()
            return
        tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            await _cancel_all(tasks)
        if errors:
            raise errors[0]


async def _cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the tasks and wait until every one has ended, even if we are cancelled
    meanwhile (then re-raise that cancel once they have)."""
    for task in tasks:
        task.cancel()
    cancelled: asyncio.CancelledError | None = None
    while not all(task.done() for task in tasks):
        try:
            await asyncio.wait(tasks)
        except asyncio.CancelledError as exc:
            cancelled = exc
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: the error is reported by run(), not the loop
    if cancelled is not None:
        raise cancelled
