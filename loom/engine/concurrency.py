"""A bounded pool of jobs with structured cancellation, for loops and parallel nodes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Pool:
    """Runs ``job(0) … job(count-1)``, at most ``limit`` at once, starting in index order.

    ``limit`` workers pull indices from a shared counter, so 10,000 items cost 100
    tasks, not 10,000. The first job that raises cancels the others (their
    ``finally`` blocks run before :meth:`run` returns) and its exception propagates
    as itself, not wrapped in an ExceptionGroup. Cancelling the caller cancels every
    job and waits for their clean-up. ``peak`` is the highest number of jobs that
    actually ran at the same moment (measured, not assumed from ``limit``).
    """

    def __init__(self, count: int, limit: int) -> None:
        self.count = count
        self.limit = max(1, limit)
        self.active = 0
        self.peak = 0

    async def run(self, job: Callable[[int], Awaitable[None]]) -> None:
        """Run every job; raises the first job's exception, if any."""
        indices = iter(range(self.count))

        async def worker() -> None:
            for k in indices:
                self.active += 1
                self.peak = max(self.peak, self.active)
                try:
                    await job(k)
                finally:
                    self.active -= 1

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.limit, self.count)):
                    group.create_task(worker())
        except BaseExceptionGroup as errors:
            raise _first_leaf(errors) from None


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
