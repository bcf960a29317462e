"""The life of a run's worker processes: started off the event loop, tied to the parent.

Two things the stdlib's ProcessPoolExecutor does not do, and the helpers around
it that :class:`loom.engine.processes.ProcessExecutor` uses:

* **Workers die with their parent.** Each pool has a *lifeline*: a pipe whose
  write end only the parent holds. Every worker watches the read end (a thread
  blocked reading it, and on Linux a SIGIO from the kernel, which needs no GIL)
  and ends its process group at end-of-file, which the kernel signals however the
  parent died - SIGKILL included. Workers lead their own process group, so the
  processes a node started die with them; once the workers are gone, the
  forkserver and the resource tracker see the end-of-file of their own pipes
  (the workers held them open) and exit too.
* **Start-up never blocks the loop.** The first worker waits for the forkserver
  to start and import Loom (0.3-0.45 s); :func:`start_pool` does that in a
  thread, so the loop keeps running other nodes meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

T = TypeVar("T")

#: Seconds a worker gets to exit (after its exit sentinel or SIGTERM) before SIGKILL.
EXIT_TIMEOUT = 2.0


class Lifeline:
    """The parent's side of a pool's lifeline: closing it (or dying) ends the workers."""

    def __init__(self) -> None:
        # os.pipe() descriptors are not inherited by exec'd children, and the
        # forkserver passes workers only the descriptors they are sent: the write
        # end stays in this process alone, so its death is the pipe's end-of-file.
        self.reader, self._writer = multiprocessing.Pipe(duplex=False)

    def close(self) -> None:
        """Close both ends: a worker still alive then ends at once. Safe to repeat."""
        self._writer.close()
        self.reader.close()


def watch_parent(reader: Connection) -> None:
    """Worker initializer: lead a process group, and end it when ``reader`` hits end-of-file."""
    if sys.platform != "win32":  # no process groups there: the worker alone ends
        with contextlib.suppress(OSError):  # already a group or session leader: fine as it is
            os.setpgid(0, 0)
    if sys.platform == "linux":
        _sigio_on_eof(reader.fileno())
    threading.Thread(target=_wait_for_eof, args=(reader,), name="loom-lifeline",
                     daemon=True).start()


def _sigio_on_eof(fd: int) -> None:
    # The kernel sends SIGIO (default action: terminate) to a pipe reader's owner
    # when the last writer closes. That ends a worker stuck in native code that
    # never releases the GIL, where the watcher thread could never run. The fd was
    # passed from the parent, so every worker shares one open file description,
    # and its owner is per description: reopen the pipe through /proc to get one
    # of this worker's own.
    import fcntl  # noqa: PLC0415 - POSIX only: imported where known to exist

    try:
        own = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return  # no /proc: the watcher thread alone
    owner = -os.getpid() if os.getpgrp() == os.getpid() else os.getpid()  # the group if led
    fcntl.fcntl(own, fcntl.F_SETOWN, owner)
    fcntl.fcntl(own, fcntl.F_SETFL, fcntl.fcntl(own, fcntl.F_GETFL) | os.O_ASYNC)
    # Kept open for the worker's life (it is the registration); the parent may have
    # died before this ran, in which case no SIGIO comes and the thread acts.


def _wait_for_eof(reader: Connection) -> None:
    # Connection, not os.read: on Windows its fileno() is a pipe handle, not an fd.
    try:
        while True:
            reader.recv_bytes()  # nobody writes; wait until the parent's end closes
    except (EOFError, OSError):
        pass  # end-of-file, or closed under us: the same news
    _end_own_group()


def _end_own_group() -> None:
    pid = os.getpid()
    if sys.platform != "win32" and os.getpgrp() == pid:
        os.killpg(pid, signal.SIGKILL)  # only a group this worker leads, never its parent's
    os._exit(1)


# ------------------------------------------------------------------ parent side

def internals(pool: concurrent.futures.ProcessPoolExecutor) -> Any:
    """The pool's private state.

    ProcessPoolExecutor has no public API (before 3.14's terminate_workers) to
    list, pre-start or stop its worker processes; these private attributes have
    been stable since 3.9: _processes (pid -> Process), _shutdown_lock,
    _spawn_process(), _start_executor_manager_thread(), _shutdown_thread, _broken.
    """
    return pool


async def start_pool(max_workers: int, mp_context: Any,
                     before: Callable[[], None]) -> tuple[concurrent.futures.ProcessPoolExecutor,
                                                           Lifeline]:
    """A new pool with its lifeline and first worker, started off the loop.

    ``before`` runs first in the same thread (it starts the forkserver). Creating
    the pool's queues and forking its first worker wait for the forkserver and the
    resource tracker; nothing of that happens on the event loop thread.
    """
    lifeline = Lifeline()
    lock = threading.Lock()
    handed: list[concurrent.futures.ProcessPoolExecutor] = []  # the pool, once created
    abandoned = False  # the await was cancelled: whoever comes second stops the pool

    def create() -> concurrent.futures.ProcessPoolExecutor:
        pool = None
        try:
            before()
            pool = concurrent.futures.ProcessPoolExecutor(
                max_workers, mp_context=mp_context, initializer=watch_parent,
                initargs=(lifeline.reader,))
            # The first worker only: the first submit() starts the pool's manager
            # thread after spawning what it needs, so the manager watches them all.
            spawn_workers(pool, 1, manage=False)
        except BaseException:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            lifeline.close()  # a worker started before the failure ends with it
            raise
        with lock:
            handed.append(pool)
            if not abandoned:
                return pool
        pool.shutdown(wait=True, cancel_futures=True)  # in this thread: it may block
        lifeline.close()
        raise RuntimeError("the process pool's start was cancelled")  # nobody awaits it

    done, thread = in_thread(create, "loom-process-start")
    try:
        pool = await done
    except asyncio.CancelledError:
        with lock:
            abandoned = True
            orphan = handed[0] if handed else None
        if orphan is not None:  # created, but its result came too late to be taken
            orphan.shutdown(wait=False, cancel_futures=True)
            lifeline.close()  # its worker ends now
        raise
    finally:
        if done.done() and not done.cancelled():
            thread.join()  # it has nothing left to do but return
    return pool, lifeline


def spawn_workers(pool: concurrent.futures.ProcessPoolExecutor, count: int | None = None, *,
                  manage: bool = True) -> None:
    """Start workers until the pool has ``count`` (default: all). Blocks: not on the loop.

    With ``manage`` the pool's manager thread is started (if not yet) once they
    exist. A manager thread waits on the sentinels of the workers that existed when
    it last woke: submit() wakes it *before* spawning a worker, so a worker spawned
    after it started may crash unnoticed (CPython 3.11) until something else wakes it.
    """
    inner = internals(pool)
    with inner._shutdown_lock:  # submit() holds it while it spawns, too
        if inner._shutdown_thread or inner._broken:
            return
        wanted = inner._max_workers if count is None else min(count, inner._max_workers)
        for _ in range(len(inner._processes), wanted):
            inner._spawn_process()
        if inner._executor_manager_thread is not None:
            inner._executor_manager_thread_wakeup.wakeup()  # to watch the new ones too
        elif manage:  # it starts waiting with the new workers' sentinels
            inner._start_executor_manager_thread()


def submit(pool: concurrent.futures.ProcessPoolExecutor, func: Callable[..., T],
           *args: Any) -> concurrent.futures.Future[T]:
    """``pool.submit``, making sure a worker it spawns is watched (see :func:`spawn_workers`)."""
    inner = internals(pool)
    before = len(inner._processes)
    future = pool.submit(func, *args)
    if len(inner._processes) != before:
        with contextlib.suppress(OSError, ValueError):  # shut down meanwhile: nothing to watch
            inner._executor_manager_thread_wakeup.wakeup()
    return future


def _signal(processes: list[BaseProcess], kill: bool) -> None:
    # Only processes whose sentinel is not ready yet (the forkserver writes the exit
    # status there): the pid of one that exited may already belong to someone else.
    alive = [p for p in processes if not multiprocessing.connection.wait([p.sentinel], 0)]
    sig = signal.SIGKILL if kill else signal.SIGTERM
    for process in alive:
        pid = process.pid
        # A worker leading its own group (see watch_parent) takes the processes its
        # node started with it; one still starting is in its parent's group, which
        # must not be signalled as a whole.
        with contextlib.suppress(OSError):
            if sys.platform != "win32" and pid is not None and os.getpgid(pid) == pid:
                os.killpg(pid, sig)
                continue
        if kill:
            process.kill()
        else:
            process.terminate()


def _close_processes(processes: list[BaseProcess]) -> None:
    # The pool joins its workers but leaves closing them to the garbage collector;
    # close() releases each one's two pipes to the forkserver now.
    for process in processes:
        with contextlib.suppress(ValueError):  # still running: not after the pool's join
            process.close()


async def stop_pool(pool: concurrent.futures.ProcessPoolExecutor, lifeline: Lifeline, *,
                    terminate: bool) -> None:
    """Shut ``pool`` down (terminating busy workers if asked), then cut its lifeline."""
    processes = list(internals(pool)._processes.values())  # shutdown() forgets them
    if terminate:
        # The pool's manager thread sees the worker die, fails its call with
        # BrokenProcessPool, terminates the other workers and tears the pool down.
        _signal(processes, kill=False)
    # shutdown(wait=True) sends idle workers their exit sentinel and joins the
    # manager thread: that waits for processes, so not on the loop thread.
    stopped, thread = in_thread(
        functools.partial(pool.shutdown, wait=True, cancel_futures=True), "loom-process-stop")
    try:
        done, _ = await asyncio.wait({stopped}, timeout=EXIT_TIMEOUT)
        if not done:  # a worker ignores SIGTERM, or hangs in its own exit handlers
            _signal(processes, kill=True)
        await stopped
    except asyncio.CancelledError:
        _signal(processes, kill=True)
        lifeline.close()
        raise
    finally:
        if stopped.done():
            thread.join()  # it has nothing left to do but return
            _close_processes(processes)
            lifeline.close()


def stop_broken_pool(pool: concurrent.futures.ProcessPoolExecutor, lifeline: Lifeline) -> None:
    """Release a pool whose worker crashed (the stdlib already terminates the others)."""
    processes = list(internals(pool)._processes.values())
    # The manager thread has already terminated every worker and is joining them:
    # this returns as soon as they are gone (milliseconds).
    pool.shutdown(wait=True)
    _close_processes(processes)
    lifeline.close()


async def run_in_thread(func: Callable[[], T], name: str) -> T:
    """``func()`` in a new short-lived thread, awaited; its result or exception.

    Cancelling the await does not stop ``func``: the caller still gets no result,
    and the thread ends on its own.
    """
    done, thread = in_thread(func, name)
    try:
        return await done
    finally:
        if done.done():
            thread.join()  # it has nothing left to do but return


def in_thread(func: Callable[[], T], name: str) -> tuple[asyncio.Future[T], threading.Thread]:
    """Run ``func`` in a new short-lived thread; the future resolves when it returns.

    Not the loop's default executor: its threads outlive the call (and the run).
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if not done.done():
            if error is None:
                done.set_result(result)
            else:
                done.set_exception(error)

    def run() -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = func()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(settle, result, error)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return done, thread
