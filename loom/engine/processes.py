"""The process executor: CPU-bound node functions in a per-run pool of worker processes.

A run's ProcessExecutor owns one concurrent.futures.ProcessPoolExecutor. Calls go
to the workers as cloudpickle bytes (node functions from folder packs and closures
cannot be imported by name there) and come back as small outcome objects built in
the worker (:class:`_Returned`, :class:`_Raised`), so that neither an unpicklable
result nor an exception that cannot be rebuilt can break the pool. Workers start
from a forkserver (never plain ``fork``: the editor's process has Qt threads).
How the pool starts (off the event loop) and how its workers die with this
process, however it dies, is :mod:`loom.engine.process_pool`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import concurrent.futures.process
import contextlib
import functools
import io
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import threading
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cloudpickle  # type: ignore[import-untyped]  # ships no type information

from loom.registry.registry import PACK_PACKAGE

from .process_pool import (
    Lifeline,
    internals,
    run_in_thread,
    spawn_workers,
    start_pool,
    stop_broken_pool,
    stop_pool,
    submit,
)

#: Folder packs are imported as submodules of this synthetic package (see
#: loom.registry.registry); workers cannot import them, so they travel by value.
_PACK_PREFIX = PACK_PACKAGE + "."

#: Preloaded by the forkserver, so every worker starts with Loom already imported
#: (a fresh import of the engine costs about 0.2 s, and each run has its own workers),
#: and with Ctrl+C ignored (see loom.engine.forkserver_setup).
_PRELOAD = (__name__, __name__.rpartition(".")[0] + ".forkserver_setup")

_CLOSED = "the run's process executor is closed"

#: The stdlib's own "remote traceback" carrier: the worker's formatted traceback,
#: attached as ``__cause__`` (what concurrent.futures does for its own workers).
_RemoteTraceback = concurrent.futures.process._RemoteTraceback


def _start_method() -> str:
    # Never "fork": the parent runs an event loop, pool threads and (in the editor)
    # Qt threads, and forking a multi-threaded process can deadlock the child on a
    # lock some other thread held. "forkserver" forks from a single-threaded server
    # started by fork+exec; "spawn" (Windows) starts a fresh interpreter per worker.
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def start_forkserver() -> None:
    """Start the server that forks Loom's worker processes, if it is not running yet.

    The forkserver (and the stdlib's resource tracker it needs) is one long-lived
    helper process per Python process, shared by every process pool and stopped
    when this process exits; each holds one pipe open here for its lifetime. It is
    started with this module preloaded, so workers forked from it start in
    milliseconds. The call returns at once; the server finishes starting in the
    background, so an application can call this early (the editor at start-up)
    and its first process node does not wait. No-op where there is no forkserver
    (Windows) and inside worker processes.
    """
    if multiprocessing.parent_process() is not None or _start_method() != "forkserver":
        return
    from multiprocessing import forkserver  # noqa: PLC0415 - POSIX only: import where known to exist

    # The preload list can only be set before the server starts. It is not public:
    # read it so modules someone else asked for (default: __main__) are kept.
    server: Any = getattr(forkserver, "_forkserver", None)
    if server is not None and getattr(server, "_forkserver_pid", 0) is None:
        preload = list(getattr(server, "_preload_modules", ["__main__"]))
        missing = [name for name in _PRELOAD if name not in preload]
        if missing:
            forkserver.set_forkserver_preload([*preload, *missing])
    forkserver.ensure_running()


class ProcessCallError(Exception):
    """A worker's exception that could not be sent back as itself (it does not pickle)."""


class ProcessExecutor:
    """A per-run pool of worker processes, for CPU-bound sync nodes (``executor="process"``).

    Created by the engine for each run, it starts its pool on the first call (in a
    thread: the loop runs other nodes meanwhile) and its workers as calls need them
    (or all at once with :meth:`warm`); at most ``max_workers`` calls are in the
    pool at a time, the rest wait here, where cancelling them costs nothing. The
    function and its inputs are sent with cloudpickle; results and exceptions come
    back pickled, exceptions with the worker's traceback as ``__cause__``.

    Scripts that run graphs with process nodes must guard their top level with
    ``if __name__ == "__main__":``: worker processes import the main script (as
    every ``multiprocessing`` start method but "fork" does).
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self._max_workers = max_workers or os.cpu_count() or 1
        if sys.platform == "win32":  # the most processes Windows' pool can wait on
            self._max_workers = min(self._max_workers, 61)
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._lifeline: Lifeline | None = None  # the pool's; cut when the pool stops
        # The pool being started (in a thread): shared by the calls that need it and
        # awaited by aclose(), its owner.
        self._starting: asyncio.Task[None] | None = None
        self._running: dict[concurrent.futures.Future[Any], str] = {}
        # Only as many calls as workers enter the pool: a call submitted to a busy
        # pool is queued in a pipe, marked "running" and can no longer be cancelled.
        self._slots = asyncio.Semaphore(self._max_workers)
        self._closed = False

    async def call(self, func: Callable[..., Any], kwargs: dict[str, Any], label: str) -> Any:
        """Run ``func(**kwargs)`` in a worker process and return its result.

        Cancelling a call that is still waiting for a worker withdraws it; a call
        already running keeps its worker busy until it ends or :meth:`aclose`
        terminates it.
        """
        if self._closed:
            raise RuntimeError(_CLOSED)
        payload = _dump_call(func, kwargs)
        await self._slots.acquire()
        try:
            if self._closed:  # woken by aclose(), which frees one slot to wake the waiters
                raise RuntimeError(_CLOSED)
            future = await self._submit(payload)
        except BaseException:
            self._slots.release()  # when closed, this wakes the next waiting call
            raise
        self._running[future] = label
        future.add_done_callback(functools.partial(self._finished, asyncio.get_running_loop()))
        return unpack_outcome(await asyncio.wrap_future(future))

    async def warm(self) -> None:
        """Start every worker now, so the first calls do not wait for them. Safe to repeat."""
        if self._closed:
            raise RuntimeError(_CLOSED)
        pool = await self._started_pool()
        if len(internals(pool)._processes) >= self._max_workers:
            return
        # Starting a worker blocks until the forkserver has forked it, so not on the loop.
        await run_in_thread(functools.partial(spawn_workers, pool), "loom-process-warm")

    async def aclose(self, grace: float) -> list[str]:
        """Stop taking work, give running calls ``grace`` seconds, terminate the rest.

        Calls still waiting for a worker fail with ``RuntimeError``. Returns the
        labels of the calls whose workers were terminated. Afterwards no worker
        process, pool thread or pipe of this executor is left.
        """
        if not self._closed:
            self._closed = True
            self._slots.release()  # wakes the first waiting call; each passes it on
        starting = self._starting
        if starting is not None:
            # A pool it starts after the close it stops itself. asyncio.wait, not
            # gather: a cancelled aclose() must not cancel a start others may share.
            await asyncio.wait({starting})
            if not starting.cancelled():
                starting.exception()  # reported to the calls that waited for it
        pool, self._pool = self._pool, None
        lifeline, self._lifeline = self._lifeline, None
        if pool is None or lifeline is None:
            return []
        pending = [f for f in list(self._running) if not f.done()]
        if pending and grace > 0:
            waiters = [asyncio.wrap_future(f) for f in pending]
            _, late = await asyncio.wait(waiters, timeout=grace)
            for waiter in late:
                waiter.cancel()  # stops only this wait: running futures refuse to cancel
            for waiter in waiters:
                if waiter.done() and not waiter.cancelled():
                    waiter.exception()  # the caller of call() sees it; don't log it twice
        still = [label for f, label in list(self._running.items()) if not f.done()]
        await stop_pool(pool, lifeline, terminate=bool(still))
        return still

    # ------------------------------------------------------------------ internals
    async def _started_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        """The pool, started first (off the loop) if need be; all callers share one start."""
        while self._pool is None:
            if self._closed:
                raise RuntimeError(_CLOSED)
            if self._starting is None:
                self._starting = asyncio.create_task(self._start(), name="loom-process-start")
            # Shielded: a cancelled call must not abandon a start that others share.
            await asyncio.shield(self._starting)
        return self._pool

    async def _start(self) -> None:
        try:
            pool, lifeline = await start_pool(
                self._max_workers, multiprocessing.get_context(_start_method()), start_forkserver)
        finally:
            self._starting = None
        if self._closed:  # aclose() came meanwhile and is waiting for this start
            await stop_pool(pool, lifeline, terminate=False)
            return
        self._pool, self._lifeline = pool, lifeline

    async def _submit(self, payload: bytes) -> concurrent.futures.Future[Any]:
        pool = await self._started_pool()
        if self._closed:
            raise RuntimeError(_CLOSED)
        try:
            return submit(pool, _call_pickled, payload)
        except concurrent.futures.process.BrokenProcessPool:
            # A worker died (a crash in native code, os._exit): the stdlib then fails
            # the calls in flight and refuses new ones. Later calls get a new pool.
            if self._pool is pool and self._lifeline is not None:
                stop_broken_pool(pool, self._lifeline)
                self._pool = self._lifeline = None
            pool = await self._started_pool()
            if self._closed:
                raise RuntimeError(_CLOSED) from None
            return submit(pool, _call_pickled, payload)

    def _finished(self, loop: asyncio.AbstractEventLoop,
                  future: concurrent.futures.Future[Any]) -> None:
        # Runs in the pool's manager thread (or on the loop for a cancelled future).
        self._running.pop(future, None)
        # RuntimeError: the loop is closed, so nobody is waiting for a slot any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._slots.release)


def _type_name(obj: object) -> str:
    cls = type(obj)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]  # cloudpickle is untyped
    """cloudpickle, but code sent by value keeps its file name.

    cloudpickle (3.1) renames the file of every code object it sends to
    ``<dynamic-code>`` (for reproducible bytes); tracebacks from the worker would
    then name no file and show no source line.
    """

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is types.CodeType:
            reduced = self.dispatch_table[types.CodeType](obj)  # cloudpickle's own reducer
            if isinstance(reduced, tuple) and len(reduced) == 2:  # (constructor, arguments)
                return _code_in_file, (*reduced, obj.co_filename)
            return reduced
        return super().reducer_override(obj)


def _code_in_file(rebuild: Callable[..., types.CodeType], args: tuple[Any, ...],
                  filename: str) -> types.CodeType:
    return rebuild(*args).replace(co_filename=filename)


def _cloudpickle(obj: object) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buffer.getvalue()


def _dump_call(func: Callable[..., Any], kwargs: dict[str, Any]) -> bytes:
    _pickle_packs_by_value()
    try:
        return _cloudpickle((func, kwargs))
    except Exception as exc:
        name = getattr(func, "__qualname__", repr(func))
        raise TypeError(f"cannot send {name} and its inputs to a worker process: "
                        f"{type(exc).__name__}: {exc}") from exc


def _pickle_packs_by_value() -> None:
    # cloudpickle sends functions and classes of importable modules by name; pack
    # modules (loom_nodes.<stem>) are importable here, being in sys.modules, but not
    # in a worker that never loaded the pack. Registering their package covers every
    # pack module (cloudpickle checks parent packages), so inputs whose classes come
    # from another pack travel too. The registration is global to this process.
    package = sys.modules.get(PACK_PACKAGE)
    if package is not None and PACK_PACKAGE not in cloudpickle.list_registry_pickle_by_value():
        cloudpickle.register_pickle_by_value(package)


def unpack_outcome(outcome: Any) -> Any:
    """What :func:`_call_pickled` sent back, as the call's result or exception."""
    if isinstance(outcome, _Raised):
        # typeshed types the argument as a traceback; the class stores and prints a str
        raise outcome.exception() from _RemoteTraceback(outcome.remote_text())  # type: ignore[arg-type]
    if isinstance(outcome, _Unloadable):
        raise TypeError(outcome.message)
    return outcome


# ---------------------------------------------------------------- worker side

class _Terminated(BaseException):  # not an Exception: node code must not catch it
    """Raised in a worker by SIGTERM during a call, so the node's ``finally`` blocks run."""


def _terminate(signum: int, frame: types.FrameType | None) -> None:
    raise _Terminated


def _call_pickled(payload: bytes) -> _Returned | _Raised:
    """Worker side of :meth:`ProcessExecutor.call`: load the call, run it, pack the outcome.

    During the call SIGTERM (how a stopped run ends its workers) unwinds the node's
    code, so its ``finally`` blocks and context managers clean up, and then ends the
    worker at once; between calls it keeps its default action (end quietly). Only in
    a process executor's workers, which run calls on their main thread.
    """
    # Only where signals can be handled: a Dask worker runs calls in its own threads.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main else None
    try:
        func, kwargs = pickle.loads(payload)  # cloudpickle output loads with pickle
        _adopt_pack_module(func)
        result = func(**kwargs)
    except _Terminated:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(128 + signal.SIGTERM)  # as SIGTERM would have; the clean-up has run
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
        return _Raised.capture(exc)
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
    return _Returned.capture(result)


def _adopt_pack_module(func: Any) -> None:
    # A pack function arrives by value, with the globals it uses but no module: its
    # module name (loom_nodes.x) cannot be imported here, so pickle could not send
    # back an instance of a class of that pack (a result or an exception), which
    # pickle names by module and qualified name. Give the name a stand-in module
    # holding the function's globals; the parent loads the same names from the
    # real module, so classes keep their identity.
    name = getattr(func, "__module__", None)
    namespace = getattr(func, "__globals__", None)
    if not (isinstance(name, str) and name.startswith(_PACK_PREFIX)
            and isinstance(namespace, dict)):
        return
    if PACK_PACKAGE not in sys.modules:
        package = types.ModuleType(PACK_PACKAGE)
        package.__path__ = []
        sys.modules[PACK_PACKAGE] = package
    module = sys.modules.get(name)
    if module is None:
        module = sys.modules[name] = types.ModuleType(name)
        module.__loom_stand_in__ = True  # type: ignore[attr-defined]
    if getattr(module, "__loom_stand_in__", False):
        vars(module).update(namespace)


def _dumps(obj: object) -> tuple[bytes | None, str]:
    """Pickle ``obj`` (cloudpickle if plain pickle cannot); ``(None, why)`` if neither can."""
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), ""
    except Exception as exc:  # noqa: BLE001 - any failure: try harder, then report
        why = f"{type(exc).__name__}: {exc}"
    try:
        # e.g. a lambda, or a class of a pack that the function's globals do not name
        return _cloudpickle(obj), ""
    except Exception:  # noqa: BLE001 - the first error is the clearer one
        return None, why


@dataclass(frozen=True)
class _Returned:
    """A worker's result, pickled in the worker; unpickled by the pool's manager thread."""

    data: bytes
    type_name: str

    @classmethod
    def capture(cls, result: object) -> _Returned | _Raised:
        data, why = _dumps(result)
        if data is None:
            return _Raised.capture(TypeError(
                f"the result, of type {_type_name(result)}, cannot be sent back "
                f"from the worker process: {why}"))
        return cls(data, _type_name(result))

    def __reduce__(self) -> tuple[Any, ...]:
        # Load the real value while unpickling, off the event loop (results can be big).
        return _load_returned, (self.data, self.type_name)


@dataclass(frozen=True)
class _Unloadable:
    message: str


def _load_returned(data: bytes, type_name: str) -> Any:
    # Runs in the parent's pool manager thread: an exception here would mark the
    # whole pool broken, so a result that does not load becomes a failed call.
    try:
        return pickle.loads(data)
    except Exception as exc:  # noqa: BLE001 - reported as the call's failure
        return _Unloadable(f"the result, of type {type_name}, came back from the worker "
                           f"process but cannot be loaded: {type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class _Raised:
    """A worker's exception: itself pickled (if it can be), plus its traceback as text."""

    data: bytes | None
    type_name: str
    message: str
    traceback: str
    why: str

    @classmethod
    def capture(cls, exc: BaseException) -> _Raised:
        text = _worker_traceback(exc)
        data, why = _dumps(exc)
        if data is not None:
            try:  # an exception whose __init__ needs other arguments pickles but does not load
                pickle.loads(data)
            except Exception as error:  # noqa: BLE001 - sent as text instead
                data, why = None, f"{type(error).__name__}: {error}"
        try:
            message = str(exc)
        except Exception:  # noqa: BLE001 - a broken __str__ must not lose the failure
            message = "<message unavailable>"
        return cls(data, _type_name(exc), message, text, why)

    def exception(self) -> BaseException:
        """The worker's exception, or a :class:`ProcessCallError` standing in for it."""
        why = self.why
        if self.data is not None:
            try:
                exc = pickle.loads(self.data)
            except Exception as error:  # noqa: BLE001 - fall back to the stand-in
                exc, why = None, f"{type(error).__name__}: {error}"
            if isinstance(exc, BaseException):
                return exc
        return ProcessCallError(f"{self.type_name}: {self.message} "
                                f"(the exception could not be sent back: {why})")

    def remote_text(self) -> str:
        """The worker's traceback, framed the way concurrent.futures frames its own."""
        return f'\n"""\n{self.traceback}"""'


def _worker_traceback(exc: BaseException) -> str:
    # Formatted here, where the frames are, with the same filter as in-process
    # failures (engine and pool frames left out).
    try:
        from .invoke import format_error  # noqa: PLC0415 - invoke imports this module

        return format_error(exc)[1]
    except Exception:  # noqa: BLE001 - never lose the original failure to a formatting bug
        return "".join(traceback.format_exception(exc))
