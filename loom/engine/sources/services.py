"""What one run shares between its event sources: a single watchdog Observer."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from watchdog.observers import Observer

log = logging.getLogger("loom.sources")


class RunServices:
    """The run's shared services (implements :class:`~loom.engine.sources.base.SourceServices`).

    One Observer serves every file-change source of the run: each Observer costs a
    dispatcher thread and an inotify descriptor, while its watches share them. It
    is created on first use, so runs without file sources start no thread.
    """

    def __init__(self, join_timeout: float = 5.0) -> None:
        self._observer: Any = None
        self._closed = False
        self._join_timeout = join_timeout

    def observer(self) -> Any:
        """The run's Observer, created and started on the first call.

        Raises OSError when the OS refuses (inotify instance limit: EMFILE); the
        file source then falls back to polling. Raises RuntimeError after aclose().
        """
        if self._closed:
            raise RuntimeError("the run's services are closed")
        if self._observer is None:
            observer = Observer()
            try:
                observer.start()
            except BaseException:
                # The constructor already opened the inotify descriptor and its
                # reader thread; stop() releases them even if start() failed.
                observer.stop()
                raise
            self._observer = observer
        return self._observer

    async def aclose(self) -> bool:
        """Stop the Observer and wait for its threads; True when they all ended.

        Idempotent. See :func:`stop_observer`.
        """
        self._closed = True
        observer, self._observer = self._observer, None
        if observer is None:
            return True
        return await stop_observer(observer, self._join_timeout)


async def stop_observer(observer: Any, timeout: float) -> bool:
    """Stop a watchdog observer and join it off the loop; True when its threads ended.

    Both calls block (``stop()`` already joins the emitter and inotify threads), so
    they run in a worker thread and the loop keeps serving. Waiting is bounded by
    ``timeout``: a thread that hangs is reported, not waited for.
    """
    def stop_and_join() -> bool:
        observer.stop()
        observer.join(timeout)
        return not observer.is_alive()

    # run_in_executor gives a plain Future, not a Task: if the join overruns,
    # nothing is left in the loop's task list.
    done = asyncio.get_running_loop().run_in_executor(None, stop_and_join)
    done.add_done_callback(_report_failure)
    finished, _ = await asyncio.wait({done}, timeout=timeout + 1.0)
    ended = bool(finished) and not done.cancelled() and done.exception() is None \
        and done.result()
    if not ended:
        log.warning("the file watcher did not stop within %g s", timeout)
    return ended


def _report_failure(done: asyncio.Future[bool]) -> None:
    # Retrieves the exception even when nobody waits any more (no "exception was
    # never retrieved" at garbage collection), and says what went wrong.
    if not done.cancelled() and done.exception() is not None:
        log.warning("stopping the file watcher failed: %r", done.exception())
