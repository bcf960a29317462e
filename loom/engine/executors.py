"""Where node functions run: the Executor interface and the worker-thread executor.

An :class:`Executor` turns ``func(**kwargs)`` into an awaitable. Strategies never
see executors; the invoker picks one per node from its spec, so new executors
(processes in :mod:`loom.engine.processes`, later Dask) slot in without touching
strategies.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

from .errors import node_aborted

_WorkItem = tuple["concurrent.futures.Future[Any]", Callable[[], Any]]


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
    """A per-run pool of daemon worker threads, created on first use and shut down with the run.

    Not ``concurrent.futures.ThreadPoolExecutor``: its workers are joined when the
    interpreter exits, so one node stuck in a 60 s sleep (or an endless generator)
    would keep a stopped ``loom run`` alive. Threads cannot be killed; ours are
    daemons, so a call the run abandoned never holds up the process's exit.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self._max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._work: queue.SimpleQueue[_WorkItem | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()
        self._closed = False
        self._running: dict[concurrent.futures.Future[Any], str] = {}

    async def call(self, func: Callable[..., Any], kwargs: dict[str, Any], label: str) -> Any:
        """Run ``func(**kwargs)`` in a worker thread; cancelling stops waiting, not the thread."""
        if self._closed:
            raise RuntimeError("this thread executor is shut down")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._running[future] = label
        future.add_done_callback(self._forget)
        self._work.put((future, functools.partial(_guarded, functools.partial(func, **kwargs))))
        self._grow()
        return await asyncio.wrap_future(future)

    def _forget(self, future: concurrent.futures.Future[Any]) -> None:
        self._running.pop(future, None)

    def _grow(self) -> None:
        """Start a worker unless an idle one will take the item just queued."""
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # that worker is spoken for
                return
            if len(self._threads) >= self._max_workers:
                return
            thread = threading.Thread(target=self._worker, daemon=True,
                                      name=f"loom-node_{len(self._threads)}")
            self._threads.append(thread)
        thread.start()

    def _worker(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            future, call = item
            if future.set_running_or_notify_cancel():
                try:
                    result = call()
                except BaseException as exc:  # noqa: BLE001 - handed to the awaiting node
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del future, call, item  # the result must not live on in an idle worker
            with self._lock:
                self._idle += 1

    async def aclose(self, grace: float) -> list[str]:
        """Stop taking work, give running calls ``grace`` seconds, report the rest.

        Idle workers end at once; a worker still in a call is abandoned (reported by
        its label) and ends by itself when the call returns.
        """
        if self._closed:
            return []
        self._closed = True
        queued: list[_WorkItem] = []
        with contextlib.suppress(queue.Empty):
            while True:
                item = self._work.get_nowait()
                if item is not None:
                    queued.append(item)
        for future, _ in queued:
            future.cancel()
        pending = [f for f in list(self._running) if not f.done()]
        if pending and grace > 0:
            await asyncio.wait([asyncio.wrap_future(f) for f in pending], timeout=grace)
        still = [name for f, name in list(self._running.items()) if not f.done()]
        for _ in self._threads:
            self._work.put(None)  # one exit sentinel per worker, read once its call is done
        if not still:
            # Every worker is idle, so each exits as soon as it reads its sentinel:
            # microseconds, safe on the loop thread.
            for thread in self._threads:
                thread.join()
        return still


def _guarded(call: Callable[[], Any]) -> Any:
    """Run a node's call in a worker thread; a SystemExit, KeyboardInterrupt… it raises
    comes back as :class:`~loom.engine.errors.NodeAborted`, an ordinary failure, so it
    never crosses into the loop as an exception that would end it."""
    try:
        return call()
    except Exception:
        raise
    except BaseException as exc:
        raise node_aborted(exc) from exc
