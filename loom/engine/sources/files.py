"""``file_change``: a trigger when files under ``watch_path`` change.

Threads. watchdog delivers events on the Observer's dispatcher thread. The
handler there does one thing: ``loop.call_soon_threadsafe`` hands the raw event
to the loop (nothing is filtered, matched or stored on that thread, so no lock
is needed). Everything else runs on the loop. The run's one Observer comes from
``services.observer()``; each source adds its own watch and removes it when it
stops. If the OS refuses a watch (inotify limits: ``ENOSPC`` "watch limit
reached", ``EMFILE`` "instance limit reached"), the source falls back to its own
``PollingObserver``, which scans every :attr:`FileChangeSource.poll_interval`
seconds (1 s) instead; ``start()`` reports ``"backend": "polling"`` then.

Matching. Patterns are matched by this module with :func:`fnmatch.fnmatchcase`
on paths relative to the watched folder, written with ``/``, gitignore-style:

- a pattern without ``/`` matches a file's *name* at any depth (``*.txt``);
- a pattern with ``/`` matches the path relative to the folder (``src/*.py``;
  fnmatch's ``*`` also crosses ``/``);
- leading ``**/`` is dropped (``**/*.txt`` is ``*.txt``), so globs written for
  watchdog's ``full_match`` still work;
- a pattern starting with ``/`` matches the absolute path.

A move matches when its source or its destination matches. When ``watch_path``
is a file, its folder is watched (so editors that save by renaming a temporary
file over it are seen) and only events on that file count; ``patterns`` is not
used then. Paths are reported absolute, with symlinks in ``watch_path`` resolved.

Kinds are ``created``, ``modified`` (attribute changes such as ``touch`` count
as modified), ``deleted`` and ``moved``; open/close events are ignored. The
folder's own "modified" (which only echoes a change inside it) is ignored too.

Debounce (trailing edge, per path). Each event pushes its path's deadline to
``debounce_ms`` after it; a path triggers once it has been quiet that long, with
every kind seen meanwhile. Pending paths live in a dict ordered by deadline
(a path is moved to the end when it gets a new event), so the earliest deadline
is always the first entry. At most :data:`MAX_PENDING` paths wait at once;
events for further paths are dropped and counted, and the next payload reports
the count in ``dropped``.

Payload: ``{"type": "file_change", "path", "kind" (the last), "kinds" (sorted),
"dest_path" (moves only), "time": ISO-8601 UTC, "dropped"}``.

Bursts. A trigger waits for a wave slot in the event node's queue, whose default
size for this source is :data:`QUEUE_SIZE` (a 1,000-file copy fits). A path that
triggers again while its earlier trigger still waits there is merged into that
one (:func:`coalesce`, counted in the node's ``coalesced`` stat): its one wave
sees the latest change, so a burst of saves to a few files never fills the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any

from watchdog.events import (
    DirAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import ObservedWatch
from watchdog.observers.polling import PollingObserver

from ..strategies.base import Setting, shown
from ._common import cancel_and_wait, check_values, failure_of, resolve, utc_now
from .base import SourceServices, Trigger
from .services import log, stop_observer

KINDS = ("created", "modified", "deleted", "moved")
#: paths waiting for their quiet period at once; events for more are dropped
MAX_PENDING = 10_000
#: the event node's default ``queue_size`` for this source: triggers waiting for a
#: wave slot (a folder of 1,000 files copied at once must not lose any)
QUEUE_SIZE = 10_000

FILE_CHANGE_SETTINGS: tuple[Setting, ...] = (
    Setting("watch_path", "str", None, "the file or folder to watch"),
    Setting("patterns", "list", ["*"], "globs the changed path must match (a list, or one "
            "string with commas); without '/' they match the file name"),
    Setting("recursive", "bool", False, "watch subfolders too"),
    Setting("events", "list", list(KINDS), "which kinds of change trigger", choices=KINDS),
    Setting("debounce_ms", "int", 200, "a path triggers once it has been quiet this long",
            minimum=0),
    Setting("ignore_directories", "bool", True, "ignore changes to folders themselves"),
)
_REQUIRED = frozenset({"watch_path"})

# Event classes per kind, for the watch's event_filter: watchdog then asks the OS
# only for what is wanted and never wakes us for opens and closes.
_FILE_CLASSES: dict[str, tuple[type[FileSystemEvent], ...]] = {
    "created": (FileCreatedEvent,), "modified": (FileModifiedEvent, FileAttribEvent),
    "deleted": (FileDeletedEvent,), "moved": (FileMovedEvent,),
}
_DIR_CLASSES: dict[str, tuple[type[FileSystemEvent], ...]] = {
    "created": (DirCreatedEvent,), "modified": (DirModifiedEvent, DirAttribEvent),
    "deleted": (DirDeletedEvent,), "moved": (DirMovedEvent,),
}
_KIND_OF = {"created": "created", "modified": "modified", "attrib": "modified",
            "deleted": "deleted", "moved": "moved"}
_WATCH_LIMITS = (errno.ENOSPC, errno.EMFILE)


def _check_watch_path(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return None
    return f"must be a path (a non-empty string), not {shown(value)}"


def _check_patterns(value: Any) -> str | None:
    if isinstance(value, str) or (isinstance(value, list)
                                  and all(isinstance(p, str) for p in value)):
        return None
    return f"must be a list of globs or one comma-separated string, not {shown(value)}"


def _check_events(value: Any) -> str | None:
    if (isinstance(value, list) and value
            and all(isinstance(k, str) and k in KINDS for k in value)):
        return None
    return f"must be a non-empty list of {', '.join(KINDS)}, not {shown(value)}"


_VALIDATORS = {"watch_path": _check_watch_path, "patterns": _check_patterns,
               "events": _check_events}


def check_file_change(metadata: Mapping[str, Any]) -> list[str]:
    """Messages about a file_change source's settings."""
    return check_values(FILE_CHANGE_SETTINGS, metadata, _REQUIRED, _VALIDATORS)


def split_patterns(value: str | list[str]) -> list[str]:
    """The globs of a ``patterns`` setting: a list, or one comma-separated string."""
    items = value.split(",") if isinstance(value, str) else value
    return [p.strip() for p in items if p.strip()]


class PathMatcher:
    """Matches absolute paths under ``root`` against gitignore-style globs (see module doc)."""

    def __init__(self, root: Path, patterns: list[str]) -> None:
        self._root = root
        self._names: list[str] = []
        self._relative: list[str] = []
        self._absolute: list[str] = []
        for given in patterns:
            pattern = given.replace(os.sep, "/")
            if pattern.startswith("/"):
                self._absolute.append(pattern)
                continue
            while pattern.startswith("**/"):
                pattern = pattern[3:]
            (self._relative if "/" in pattern else self._names).append(pattern)

    def __call__(self, path: str) -> bool:
        """True when ``path`` (absolute) matches one of the patterns."""
        try:
            relative = PurePosixPath(Path(path).relative_to(self._root)).as_posix()
        except ValueError:
            return False
        name = relative.rsplit("/", 1)[-1]
        absolute = Path(path).as_posix()
        return (any(fnmatchcase(name, p) for p in self._names)
                or any(fnmatchcase(relative, p) for p in self._relative)
                or any(fnmatchcase(absolute, p) for p in self._absolute))


class _Handoff(FileSystemEventHandler):
    """Runs on the Observer's thread: hands each raw event to the loop, nothing more."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 deliver: Callable[[FileSystemEvent], None]) -> None:
        self._loop = loop
        self._deliver = deliver

    def dispatch(self, event: FileSystemEvent) -> None:
        """Schedule ``deliver(event)`` on the loop; events after the loop closed are dropped."""
        if self._loop.is_closed():
            return
        # The loop may close between the check and the call.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._deliver, event)


@dataclass
class _Pending:
    """A path waiting for its quiet period."""

    deadline: float
    kind: str = ""
    kinds: set[str] = field(default_factory=set)
    dest_path: str = ""


# Handlers each watch has, per Observer. watchdog shares one watch between
# schedule() calls with the same path and options, and unschedule() removes every
# handler of it; two sources watching the same folder must not unwatch each other.
_watch_users: weakref.WeakKeyDictionary[Any, Counter[ObservedWatch]] = (
    weakref.WeakKeyDictionary())
_watch_lock = threading.Lock()


def _attach(observer: Any, handler: FileSystemEventHandler, root: str, recursive: bool,
            event_filter: list[type[FileSystemEvent]]) -> ObservedWatch:
    with _watch_lock:
        watch: ObservedWatch = observer.schedule(handler, root, recursive=recursive,
                                                 event_filter=event_filter)
        _watch_users.setdefault(observer, Counter())[watch] += 1
        return watch


def _detach(observer: Any, handler: FileSystemEventHandler, watch: ObservedWatch) -> None:
    with _watch_lock:
        users = _watch_users.setdefault(observer, Counter())
        users[watch] -= 1
        # KeyError: the observer already dropped the watch (it was stopped, or the
        # watched folder was deleted).
        with contextlib.suppress(KeyError):
            if users[watch] > 0:
                observer.remove_handler_for_watch(handler, watch)
            else:
                del users[watch]
                observer.unschedule(watch)


class FileChangeSource:
    """Triggers, debounced per path, when files under a folder (or one file) change."""

    #: seconds between scans when falling back to polling
    poll_interval: float = 1.0

    def __init__(self, settings: Mapping[str, Any], trigger: Trigger, node_id: str,
                 services: SourceServices) -> None:
        values = resolve(FILE_CHANGE_SETTINGS, settings, check_file_change(settings))
        self._watch_path = str(values["watch_path"])
        self._patterns = split_patterns(values["patterns"]) or ["*"]
        self._recursive = bool(values["recursive"])
        self._kinds = frozenset(values["events"])
        self._debounce = values["debounce_ms"] / 1000.0
        self._ignore_dirs = bool(values["ignore_directories"])
        self._trigger = trigger
        self._node_id = node_id
        self._services = services
        self._root = Path()
        self._only: str | None = None
        self._match: Callable[[str], bool] = lambda path: False
        self._pending: dict[str, _Pending] = {}
        self._dropped = 0
        self._wake = asyncio.Event()
        self._finished = asyncio.Event()
        self._accepting = False
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._handler: _Handoff | None = None
        self._observer: Any = None
        self._watch: ObservedWatch | None = None
        self._polling: Any = None

    async def start(self) -> dict[str, Any]:
        """Start watching; raises FileNotFoundError if ``watch_path`` does not exist."""
        if self._task is not None or self._finished.is_set():
            raise RuntimeError("a file_change source starts only once")
        path = Path(self._watch_path).expanduser()
        try:
            path = path.resolve(strict=True)
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotFoundError(errno.ENOENT, f"watch_path does not exist: {path}",
                                    str(path)) from None
        if path.is_dir():
            self._root, self._only = path, None
            self._match = PathMatcher(path, self._patterns)
        else:
            only = str(path)
            self._root, self._only = path.parent, only
            self._match = lambda candidate: candidate == only
        loop = self._loop = asyncio.get_running_loop()
        self._accepting = True
        self._task = loop.create_task(self._debounce_loop(loop),
                                      name=f"loom file_change {self._node_id}")
        self._task.add_done_callback(self._ended)
        self._handler = _Handoff(loop, self._deliver)
        try:
            backend = await self._schedule()
        except BaseException:
            await self.aclose()
            raise
        return {"watch_path": str(path), "recursive": self._recursive,
                "patterns": list(self._patterns), "backend": backend}

    async def wait_done(self) -> None:
        """Return once stopped (a watch never ends on its own); re-raises a failure."""
        await self._finished.wait()
        if self._failure is not None:
            raise self._failure

    async def stop_accepting(self) -> None:
        """Remove the watch and stop the debounce task; waves already triggered go on.

        Changes still waiting for their quiet period are discarded.
        """
        self._accepting = False
        self._pending.clear()
        observer, watch, self._watch = self._observer, self._watch, None
        if watch is not None and self._handler is not None:
            # unschedule() joins the watch's emitter thread: not on the loop.
            await asyncio.to_thread(_detach, observer, self._handler, watch)
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self._finished.set()

    async def aclose(self) -> None:
        """Stop, and stop the fallback polling observer if one was started. Idempotent."""
        await self.stop_accepting()
        polling, self._polling = self._polling, None
        if polling is not None:
            await stop_observer(polling, 5.0)

    async def _schedule(self) -> str:
        assert self._handler is not None
        classes = [*(c for k in self._kinds for c in _FILE_CLASSES[k])]
        if not self._ignore_dirs:
            classes += [c for k in self._kinds for c in _DIR_CLASSES[k]]
        args = (self._handler, str(self._root), self._recursive, classes)
        try:
            self._observer = self._services.observer()
            # A recursive watch walks the whole tree: off the loop.
            self._watch = await asyncio.to_thread(_attach, self._observer, *args)
            return "native"
        except OSError as exc:
            if exc.errno not in _WATCH_LIMITS:
                raise
            log.warning("file watch limit reached (%s); polling %s every %g s instead",
                        exc, self._root, self.poll_interval)
        self._polling = PollingObserver(timeout=self.poll_interval)
        self._polling.start()
        self._observer = self._polling
        self._watch = await asyncio.to_thread(_attach, self._polling, *args)
        return "polling"

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._failure = failure_of(task)
        self._finished.set()

    def _deliver(self, event: FileSystemEvent) -> None:
        """On the loop: filter one raw event and push its path's deadline back."""
        if not self._accepting or self._loop is None:
            return
        kind = _KIND_OF.get(event.event_type)
        if kind is None or kind not in self._kinds:
            return
        if event.is_directory and self._ignore_dirs:
            return
        path = os.fsdecode(event.src_path)
        dest = os.fsdecode(event.dest_path) if kind == "moved" else ""
        if kind == "modified" and event.is_directory and path == str(self._root):
            return
        if not (self._match(path) or (dest and self._match(dest))):
            return
        entry = self._pending.pop(path, None)
        if entry is None:
            if len(self._pending) >= MAX_PENDING:
                self._dropped += 1
                return
            entry = _Pending(0.0)
        entry.deadline = self._loop.time() + self._debounce
        entry.kind = kind
        entry.kinds.add(kind)
        if dest:
            entry.dest_path = dest
        # Re-inserted at the end, so the dict stays ordered by deadline.
        self._pending[path] = entry
        self._wake.set()

    async def _debounce_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            path, entry = next(iter(self._pending.items()))
            delay = entry.deadline - loop.time()
            if delay > 0:
                # New events only add later deadlines, so sleeping until this one
                # never oversleeps another path.
                await asyncio.sleep(delay)
                continue
            del self._pending[path]
            self._emit(path, entry)

    def _emit(self, path: str, entry: _Pending) -> None:
        payload: dict[str, Any] = {"type": "file_change", "path": path, "kind": entry.kind,
                                   "kinds": sorted(entry.kinds)}
        if entry.dest_path:
            payload["dest_path"] = entry.dest_path
        payload["time"] = utc_now()
        payload["dropped"], self._dropped = self._dropped, 0
        self._trigger(payload)


def coalesce_key(payload: Mapping[str, Any]) -> str | None:
    """The path a trigger is about: triggers with the same key may be merged."""
    path = payload.get("path")
    return path if isinstance(path, str) else None


def coalesce(queued: dict[str, Any], later: Mapping[str, Any]) -> None:
    """Merge a later trigger for the same path into one still waiting (in place).

    The wave then sees the latest change: the last kind and time, every kind seen,
    the latest move destination, and the drops counted by both.
    """
    queued["kind"] = later["kind"]
    queued["kinds"] = sorted({*queued.get("kinds", ()), *later.get("kinds", ())})
    if "dest_path" in later:
        queued["dest_path"] = later["dest_path"]
    queued["time"] = later["time"]
    queued["dropped"] = int(queued.get("dropped", 0)) + int(later.get("dropped", 0))
