"""Where node functions run: the Executor interface and the worker-thread executor.

An :class:`Executor` turns ``func(**kwargs)`` into an awaitable. Strategies never
see executors; the invoker picks one per node from its spec, so new executors
(processes in :mod:`loom.engine.processes`, later Dask) slot in without touching
strategies.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import concurrent.futures.process
import functools
import os
from collections.abc import Callable
from typing import Any, Protocol


class Executor(Protocol):
    """Runs sync node functions somewhere other than the event loop."""

    async def call(self, func: Callable[..., Any], kwargs: dict[str, Any], label: str) -> Any:
        """Run ``func(**kwargs)`` and return its result (or raise its exception).

        ``label`` names the call (the node id) in reports of calls that outlive a run.
        """

    async def aclose(self, grace: float) -> list[str]:
        """Shut down; wait up to ``grace`` seconds for running calls.

        Returns the labels of calls still running afterwards: abandoned (threads
        cannot be killed) or terminated (worker processes).
        """


class ThreadExecutor:
    """A per-run pool of worker threads, created on first use and shut down with the run."""

    def __init__(self, max_workers: int | None = None) -> None:
        self._max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._running: dict[concurrent.futures.Future[Any], str] = {}

    async def call(self, func: Callable[..., Any], kwargs: dict[str, Any], label: str) -> Any:
        """Run ``func(**kwargs)`` in a worker thread; cancelling stops waiting, not the thread."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self._max_workers, thread_name_prefix="loom-node")
        future = self._pool.submit(functools.partial(func, **kwargs))
        self._running[future] = label
        future.add_done_callback(self._running.pop)
        return await asyncio.wrap_future(future)

    async def aclose(self, grace: float) -> list[str]:
        """Stop taking work, give running calls ``grace`` seconds, report the rest."""
        pool, self._pool = self._pool, None
        if pool is None:
            return []
        pool.shutdown(wait=False, cancel_futures=True)
        pending = [f for f in list(self._running) if not f.done()]
        if pending and grace > 0:
            await asyncio.wait([asyncio.wrap_future(f) for f in pending], timeout=grace)
        still = [name for f, name in list(self._running.items()) if not f.done()]
        if not still:
            # Every worker is idle, so this returns as soon as each has read its
            # exit sentinel: microseconds, safe on the loop thread.
            pool.shutdown(wait=True)
        return still
