"""Hot reload of node packs: a changed pack file is loaded again without a restart.

:class:`PackWatcher` watches the ``*.py`` files of node-pack folders (the
built-in ``nodes/`` and the ``--nodes`` folders) with one watchdog Observer.
Watchdog's thread only hands each event over to the Qt thread (a queued
signal); everything else happens there: a per-file 300 ms debounce (an editor's
save is several events), then ``registry.reload_file(path)``. The registry is
therefore only ever touched on the Qt thread.

``Registry.reload_file`` keeps a file's previous node types when the new version
fails to import (a syntax error mid-edit), so the canvas keeps working, and
reports the problem; a deleted file's types are removed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from loom.registry import Registry, builtin_pack_dir

log = logging.getLogger(__name__)

#: a file is reloaded once it has been quiet this long
DEBOUNCE_MS = 300
#: how long stop() waits for watchdog's threads
JOIN_TIMEOUT = 5.0

_RELEVANT = (FileModifiedEvent, FileCreatedEvent, FileMovedEvent, FileDeletedEvent,
             FileClosedEvent)


def pack_folders(extra: Iterable[str | Path] = ()) -> list[Path]:
    """The folders the editor watches: the built-in packs, then ``--nodes`` folders."""
    return [builtin_pack_dir(), *(Path(p) for p in extra)]


def is_pack_file(path: Path) -> bool:
    """A module ``Registry.load_dir`` would load: ``*.py``, not ``_private`` or hidden."""
    return path.suffix == ".py" and not path.name.startswith(("_", "."))


class _Bridge(QObject):
    """Carries a path from watchdog's thread to the Qt thread (queued connection)."""

    path_changed = Signal(str)


class _Handler(FileSystemEventHandler):
    """Runs on watchdog's thread: its only job is to hand paths over."""

    def __init__(self, bridge: _Bridge) -> None:
        super().__init__()
        self._bridge = bridge
        self.active = True

    def on_any_event(self, event: FileSystemEvent) -> None:
        if not self.active or event.is_directory or not isinstance(event, _RELEVANT):
            return
        paths = [event.src_path]
        if isinstance(event, FileMovedEvent):
            paths.append(event.dest_path)  # editors save by renaming a temp file
        for raw in paths:
            path = Path(raw.decode() if isinstance(raw, bytes) else raw)
            if is_pack_file(path):
                try:
                    self._bridge.path_changed.emit(str(path))
                except RuntimeError:  # the bridge is gone: the watcher was deleted
                    return


class PackWatcher(QObject):
    """Reloads node packs whose files change.

    Signals:
        reloaded(list, list): ``(type_ids, problems)`` after a file was reloaded:
            the ids that file defined before or after (sorted), and the problems
            of that load as strings (empty when it went well).
    """

    reloaded = Signal(list, list)

    def __init__(self, registry: Registry, folders: Iterable[str | Path],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.registry = registry
        seen: dict[Path, None] = {}
        for folder in folders:
            seen[Path(folder).resolve()] = None
        self.folders = list(seen)
        self._bridge = _Bridge(self)
        # Queued: the slot runs on this object's (the Qt) thread, whoever emits.
        self._bridge.path_changed.connect(self._schedule, Qt.ConnectionType.QueuedConnection)
        self._handler: _Handler | None = None
        self._observer: BaseObserver | None = None
        self._timers: dict[str, QTimer] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start watching (idempotent). Missing folders are skipped."""
        if self._observer is not None:
            return
        folders = [f for f in self.folders if f.is_dir()]
        if not folders:
            return
        self._handler = _Handler(self._bridge)
        try:
            self._observer = self._start(Observer(), folders)
        except OSError as exc:
            # inotify limits (ENOSPC/EMFILE): polling is slower but always works.
            log.warning("watching node packs by polling: %s", exc)
            self._observer = self._start(PollingObserver(timeout=1.0), folders)

    def _start(self, observer: BaseObserver, folders: list[Path]) -> BaseObserver:
        assert self._handler is not None
        try:
            for folder in folders:
                observer.schedule(self._handler, str(folder), recursive=False)
            observer.start()
        except OSError:
            # Observer() opened its inotify descriptor and thread already.
            observer.stop()
            if observer.is_alive():
                observer.join(JOIN_TIMEOUT)
            raise
        return observer

    def stop(self) -> None:
        """Stop watching and join watchdog's threads; pending reloads are dropped."""
        if self._handler is not None:
            self._handler.active = False
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(JOIN_TIMEOUT)
        for timer in self._timers.values():
            timer.stop()
            timer.deleteLater()
        self._timers.clear()

    def is_running(self) -> bool:
        """True between start() and stop()."""
        return self._observer is not None

    # ------------------------------------------------------------------ on the Qt thread
    def _schedule(self, path: str) -> None:
        if self._observer is None:
            return  # an event that crossed over after stop()
        timer = self._timers.get(path)
        if timer is None:
            timer = QTimer(self)
            timer.setSingleShot(True)
            timer.setInterval(DEBOUNCE_MS)
            timer.timeout.connect(lambda p=path: self._fire(p))
            self._timers[path] = timer
        timer.start()  # restarts: the file must be quiet for the whole interval

    def _fire(self, path: str) -> None:
        timer = self._timers.pop(path, None)
        if timer is not None:
            timer.deleteLater()
        self.reload(Path(path))

    def reload(self, path: str | Path) -> tuple[list[str], list[str]]:
        """Load one pack file again now and emit ``reloaded``; returns what it emits.

        A file that no longer exists has its types removed. A file that fails to
        import keeps its previous types (registered again) and reports why.
        """
        ids, problems = self.registry.reload_file(path)
        self.reloaded.emit(ids, problems)
        return ids, problems
