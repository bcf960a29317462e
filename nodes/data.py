"""Data nodes: converting between values and JSON text."""

from __future__ import annotations

import json
from typing import Any

from loom import node


@node(category="Data", cheap=True)
def parse_json(text: str) -> Any:
    """The value a JSON text describes."""
    return json.loads(text)


@node(category="Data", cheap=True)
def to_json(value: Any, indent: int | None = None, sort_keys: bool = False) -> str:
    """A value as JSON text (one line unless indent is set)."""
    return json.dumps(value, indent=indent, sort_keys=sort_keys, ensure_ascii=False)
