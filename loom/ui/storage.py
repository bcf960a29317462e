"""Where the editor keeps its own files: recent files, run preferences and autosaves.

Everything lives under the user data folder (platformdirs), or under
``$LOOM_DATA_DIR`` when set (tests point it at a temporary folder). Autosaves are
``.loom`` files written with loom.graph's atomic save, one per editor session, with a
small JSON note saying which process wrote it and for which file; an autosave whose
process is gone is what a crash left behind, and the next start offers to recover it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from loom.graph import Graph, save_graph

MAX_RECENT = 10


def data_dir() -> Path:
    """The editor's own folder (created on first use)."""
    root = Path(os.environ.get("LOOM_DATA_DIR") or platformdirs.user_data_dir("loom", "Loom"))
    root.mkdir(parents=True, exist_ok=True)
    return root


class RecentFiles:
    """The most recently opened or saved files, newest first."""

    def __init__(self, root: Path | None = None) -> None:
        self.file = (root or data_dir()) / "recent.json"

    def list(self) -> list[str]:
        """Paths that still exist, newest first."""
        try:
            paths = json.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        return [p for p in paths if isinstance(p, str) and Path(p).exists()][:MAX_RECENT]

    def add(self, path: str | os.PathLike[str]) -> None:
        """Put a file first."""
        entry = str(Path(path).resolve())
        paths = [entry] + [p for p in self.list() if p != entry]
        with contextlib.suppress(OSError):  # a read-only home must not stop saving a graph
            self.file.write_text(json.dumps(paths[:MAX_RECENT], indent=2), encoding="utf-8")


class RunPreferences:
    """Where runs go (Run > Run On), kept between sessions."""

    def __init__(self, root: Path | None = None) -> None:
        self.file = (root or data_dir()) / "run.json"

    def load(self) -> dict[str, str | None]:
        """``{"executor": None or "dask", "scheduler": None or an address}``; a missing
        or damaged file gives the default (run here)."""
        try:
            saved = json.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = {}
        if not isinstance(saved, dict) or saved.get("executor") != "dask":
            return {"executor": None, "scheduler": None}
        scheduler = saved.get("scheduler")
        return {"executor": "dask",
                "scheduler": scheduler if isinstance(scheduler, str) and scheduler else None}

    def save(self, options: dict[str, str | None]) -> None:
        """Remember the choice (silently kept in memory only if the folder is read-only)."""
        with contextlib.suppress(OSError):
            self.file.write_text(json.dumps(options, indent=2), encoding="utf-8")


@dataclass(frozen=True)
class Recovery:
    """An autosave left by a session that did not end cleanly."""

    autosave: Path
    original: str | None
    saved_at: float

    def discard(self) -> None:
        """Delete the autosave and its note."""
        for file in (self.autosave, self.autosave.with_suffix(".json")):
            with contextlib.suppress(FileNotFoundError):
                file.unlink()


class Autosave:
    """This session's autosave: written while there are unsaved changes, removed on save/exit."""

    def __init__(self, root: Path | None = None) -> None:
        self.folder = (root or data_dir()) / "autosave"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.file = self.folder / f"{uuid.uuid4().hex}.loom"

    def write(self, graph: Graph, original: str | None) -> None:
        """Save a copy of the unsaved graph (atomic) and note whose it is."""
        save_graph(graph, self.file, backup=False)
        note = {"pid": os.getpid(), "original": original, "saved_at": time.time()}
        self.file.with_suffix(".json").write_text(json.dumps(note), encoding="utf-8")

    def clear(self) -> None:
        """Nothing unsaved any more (saved, discarded or closed cleanly)."""
        Recovery(self.file, None, 0.0).discard()

    def orphans(self) -> list[Recovery]:
        """Autosaves of sessions whose process is gone, newest first."""
        found = []
        for note_file in self.folder.glob("*.json"):
            autosave = note_file.with_suffix(".loom")
            try:
                note = json.loads(note_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if autosave == self.file or not autosave.exists() or _alive(note.get("pid")):
                continue
            found.append(Recovery(autosave, note.get("original"), float(note.get("saved_at", 0))))
        return sorted(found, key=lambda r: r.saved_at, reverse=True)


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
