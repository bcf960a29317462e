"""The Dask executor: node calls on a Dask distributed cluster (``executor="dask"``).

A run's DaskExecutor holds one asynchronous ``distributed.Client`` on the run's
event loop: to the scheduler at ``scheduler`` or, without an address, to a
LocalCluster it starts on 127.0.0.1 and closes with the run. Dask is an optional
extra (``pip install 'loom[dask]'``); nothing here imports it until a run needs it.

Calls travel exactly as they do to the process executor (:mod:`.processes`): the
function and its inputs as cloudpickle bytes, with node packs pickled by value, so
workers that never imported ``nodes/`` or a ``--nodes`` folder can run pack
functions; Loom itself must be installed on the workers (it runs the call there and
packs the outcome). Results and exceptions come back as outcome objects built on the
worker, exceptions with the worker's traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

from .processes import _call_pickled, _dump_call, unpack_outcome

#: Worker processes of a LocalCluster started for a run (one thread each: node
#: functions are assumed CPU-bound and not thread-safe).
LOCAL_WORKERS = 2

#: Seconds to wait for a scheduler before saying it cannot be reached.
CONNECT_TIMEOUT = 10.0

_CLOSED = "the run's Dask executor is closed"
_EXTRA = "the Dask executor needs the 'dask' extra: pip install 'loom[dask]'"


class ExecutorUnavailableError(Exception):
    """An executor cannot run anything: its cluster is unreachable or not installed."""


class DaskExecutor:
    """Node calls on a Dask cluster, for one run.

    ``scheduler`` is an address such as ``tcp://10.0.0.5:8786``; None starts a
    LocalCluster of ``workers`` processes on 127.0.0.1, owned by this executor.
    :meth:`start` connects (the first call does it otherwise). Cancelling a call
    cancels its Dask future; :meth:`aclose` cancels every future still pending,
    closes the client and the cluster this executor started.
    """

    def __init__(self, scheduler: str | None = None, *, workers: int = LOCAL_WORKERS,
                 connect_timeout: float | None = None) -> None:
        self.scheduler = scheduler
        self._workers = workers
        self._timeout = CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
        self._client: Any = None
        self._cluster: Any = None
        self._starting: asyncio.Future[None] | None = None
        self._closed = False
        self._pending: dict[Any, str] = {}  # Dask future -> node id
        self._cancels: set[asyncio.Future[Any]] = set()

    async def start(self) -> None:
        """Connect to the scheduler (or start the LocalCluster); safe to repeat.

        Raises :class:`ExecutorUnavailableError` when Dask is not installed or the
        scheduler cannot be reached; the executor is then closed.
        """
        if self._closed:
            raise RuntimeError(_CLOSED)
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._connect())
        # Shielded: one caller's cancellation must not abort the start the others await.
        await asyncio.shield(self._starting)

    async def _connect(self) -> None:
        try:
            from distributed import Client, LocalCluster  # noqa: PLC0415 - optional extra
        except ImportError as exc:
            raise ExecutorUnavailableError(f"{_EXTRA} ({exc})") from exc
        try:
            if self.scheduler is None:
                # Every server on 127.0.0.1 only: dashboard_address=None would mean the
                # default, port 8787 on every interface.
                self._cluster = await LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=self._workers, threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address="127.0.0.1:0", asynchronous=True,
                    silence_logs=logging.ERROR)
                address = self._cluster.scheduler_address
            else:
                address = self.scheduler
            self._client = await Client(  # type: ignore[no-untyped-call]
                address, asynchronous=True, timeout=self._timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            await self._release()
            where = (f"the Dask scheduler at {self.scheduler}" if self.scheduler is not None
                     else "a local Dask cluster")
            raise ExecutorUnavailableError(f"cannot reach {where}: {exc}") from exc
        except BaseException:
            await self._release()
            raise

    async def call(self, func: Callable[..., Any], kwargs: dict[str, Any], label: str) -> Any:
        """Run ``func(**kwargs)`` on a Dask worker and return its result.

        Cancelling the call cancels its future on the cluster: a queued call never
        runs; a running one is released (its worker finishes it and drops the result).
        """
        payload = _dump_call(func, kwargs)
        await self.start()
        if self._closed:
            raise RuntimeError(_CLOSED)
        future = self._client.submit(_call_pickled, payload, pure=False,
                                     key=f"loom-{label}-{uuid.uuid4().hex}")
        self._pending[future] = label
        try:
            outcome = await future
        except asyncio.CancelledError:
            self._cancel([future])
            raise
        finally:
            self._pending.pop(future, None)
        return unpack_outcome(outcome)

    async def aclose(self, grace: float) -> list[str]:
        """Give pending calls ``grace`` seconds, cancel the rest, close client and cluster.

        Returns the node ids of the calls it cancelled. A LocalCluster this executor
        started is closed, which ends its worker processes; on a cluster it only
        connected to, cancelled calls that were already running finish there unseen.
        """
        self._closed = True
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        pending = dict(self._pending)
        if pending and grace > 0:
            waiters = [asyncio.ensure_future(_settled(f)) for f in pending]
            await asyncio.wait(waiters, timeout=grace)
            for waiter in waiters:
                waiter.cancel()  # stops only this wait
            await asyncio.gather(*waiters, return_exceptions=True)
        still = [label for future, label in pending.items() if not future.done()]
        if still:
            self._cancel([f for f in pending if not f.done()])
        if self._cancels:
            await asyncio.gather(*self._cancels, return_exceptions=True)
        await self._release()
        return still

    # ------------------------------------------------------------------ internals
    def _cancel(self, futures: list[Any]) -> None:
        # Client.cancel is a coroutine on an asynchronous client; an awaiting caller
        # may itself be cancelled, so the executor owns the request and aclose() awaits it.
        if self._client is None or not futures:
            return
        request = asyncio.ensure_future(self._client.cancel(futures, force=True))
        self._cancels.add(request)
        request.add_done_callback(self._cancels.discard)

    async def _release(self) -> None:
        client, self._client = self._client, None
        cluster, self._cluster = self._cluster, None
        if client is not None:
            with contextlib.suppress(OSError, TimeoutError):
                await client.close()
        if cluster is not None:
            await cluster.close()


async def _settled(future: Any) -> None:
    # The caller of call() sees the outcome; here only the waiting matters.
    with contextlib.suppress(Exception):
        await future
