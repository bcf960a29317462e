"""Copying plain JSON values (dicts, lists, scalars) quickly.

The canvas hands out copies of node properties and metadata so that callers cannot
change its state behind the undo stack; ``copy.deepcopy`` is several times slower
for these small trees and the editor copies every node on each save.
"""

from __future__ import annotations

from typing import Any


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON-like value (dicts and lists are copied, the rest shared)."""
    if isinstance(value, dict):
        return {k: copy_json(v) if isinstance(v, (dict, list)) else v for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) if isinstance(v, (dict, list)) else v for v in value]
    return value
