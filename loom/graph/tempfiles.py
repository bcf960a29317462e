"""Temporary files beside a ``.loom`` file while it is saved, and their clean-up.

A save writes ``.NAME.loom.PID.HEX.tmp`` next to the target and renames it over the
target. A process killed between the two leaves that file behind. Its name carries
the writer's process id, so the next save or open of ``NAME.loom`` can tell a
leftover (its writer is gone) from another writer's save in progress (left alone).
The same holds for the backup's own temporary file (``.NAME.loom.bak.PID.HEX.tmp``).

Temporary files from before the PID was in the name (``.NAME.loom.HEX.tmp``) carry
no owner; they are removed once older than :data:`LEGACY_AGE` seconds, which no
save takes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import time
from pathlib import Path

#: Seconds after which a temporary file without a PID in its name counts as stale.
LEGACY_AGE = 600.0

_SUFFIX = re.compile(r"(?:(?P<pid>\d+)\.)?[0-9a-f]{8}\.tmp")


def create_temp(beside: Path) -> tuple[int, str]:
    """A new file next to ``beside``, created like any new file (0666 less the umask).

    (tempfile.mkstemp would make it 0600, and a first save would keep that.)
    """
    for _ in range(100):
        path = beside.with_name(f".{beside.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), str(path)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {beside}")


def remove_stale(target: Path) -> list[str]:
    """Remove temporary files of ``target`` (and of its ``.bak``) whose writer is gone.

    Best effort, never raises: clean-up must not stop a save or an open. Returns
    the paths removed.
    """
    removed: list[str] = []
    with contextlib.suppress(OSError):
        entries = list(os.scandir(target.parent))
        for prefix in (f".{target.name}.", f".{target.name}.bak."):
            for entry in entries:
                if entry.name.startswith(prefix) and _is_stale(entry, prefix):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                        removed.append(entry.path)
    return removed


def _is_stale(entry: os.DirEntry[str], prefix: str) -> bool:
    match = _SUFFIX.fullmatch(entry.name, len(prefix))
    if match is None or not entry.is_file(follow_symlinks=False):
        return False
    pid = match.group("pid")
    if pid is None:
        return time.time() - entry.stat(follow_symlinks=False).st_mtime > LEGACY_AGE
    return not _alive(int(pid))


def _alive(pid: int) -> bool:
    """True when a process with this id exists (ours, or anyone's we may not signal)."""
    if pid <= 0:
        return False  # no writer has such an id (and kill(0, ...) would mean our group)
    if pid == os.getpid():
        return True
    if os.name != "posix":
        # No cheap liveness check without extra modules: keep the file (never remove
        # what a live writer may still rename).
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError as exc:
        return exc.errno != errno.ESRCH  # EPERM: it exists, owned by someone else
    return True
