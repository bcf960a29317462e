"""File nodes: reading and writing text and JSON files, listing folders.

These do I/O, so they run in a worker thread (never ``cheap``). A leading ``~``
in a path means the home folder; relative paths are relative to the folder
the run was started from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loom import node


def _path(path: str) -> Path:
    return Path(path).expanduser()


@node(category="Files")
def read_text(path: str, encoding: str = "utf-8") -> str:
    """The contents of a text file."""
    return _path(path).read_text(encoding=encoding)


@node(category="Files")
def write_text(path: str, text: str, encoding: str = "utf-8",
               create_dirs: bool = False) -> str:
    """Write text to a file (replacing it) and pass on its path."""
    target = _path(path)
    if create_dirs:
        target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding=encoding)
    return str(target)


@node(category="Files")
def read_json(path: str, encoding: str = "utf-8") -> Any:
    """The value stored in a JSON file."""
    with _path(path).open(encoding=encoding) as f:
        return json.load(f)


@node(category="Files")
def write_json(path: str, value: Any, indent: int | None = 2, encoding: str = "utf-8",
               create_dirs: bool = False) -> str:
    """Write a value to a file as JSON (replacing it) and pass on its path."""
    target = _path(path)
    text = json.dumps(value, indent=indent, ensure_ascii=False) + "\n"
    if create_dirs:
        target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding=encoding)
    return str(target)


@node(category="Files")
def list_dir(path: str = ".", pattern: str = "*") -> list:
    """Sorted paths of the entries of a folder whose names match pattern (e.g. *.txt)."""
    folder = _path(path)
    if not folder.is_dir():
        raise NotADirectoryError(f"not a folder: {folder}")
    return sorted(str(p) for p in folder.glob(pattern))


@node(category="Files")
def exists(path: str) -> bool:
    """Is there a file or folder at path?"""
    return _path(path).exists()
