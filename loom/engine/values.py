"""Values that flow between nodes, and turning any value into something JSON can hold."""

from __future__ import annotations

import math
from typing import Any


class Skip:
    """What flows along a wire that carries no value: a path not taken, a failure upstream.

    One instance is created where the skip starts and passed on unchanged, so
    every node skipped because of it reports the same root reason.
    """

    __slots__ = ("origin", "reason")

    def __init__(self, reason: str, origin: str = "") -> None:
        self.reason = reason
        self.origin = origin

    def __repr__(self) -> str:
        return f"Skip({self.reason!r})"


#: How deep and how long :func:`to_jsonable` goes before it summarises.
_MAX_DEPTH = 32
_MAX_ITEMS = 10_000


def to_jsonable(value: Any, *, max_items: int = _MAX_ITEMS, max_str: int | None = None,
                _depth: int = 0) -> Any:
    """A JSON-serialisable version of ``value``; what JSON cannot hold becomes its repr.

    Containers are converted item by item (dict keys become strings); non-finite
    floats and anything deeper than 32 levels become their repr.
    """
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return value if max_str is None or len(value) <= max_str else value[:max_str] + "…"
    if _depth >= _MAX_DEPTH:
        return _short_repr(value, max_str)
    if isinstance(value, dict):
        items = list(value.items())[:max_items]
        return {str(k): to_jsonable(v, max_items=max_items, max_str=max_str, _depth=_depth + 1)
                for k, v in items}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, max_items=max_items, max_str=max_str, _depth=_depth + 1)
                for v in value[:max_items]]
    return _short_repr(value, max_str)


def _short_repr(value: Any, max_str: int | None) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not break reporting
        text = f"<{type(value).__name__} (repr failed: {exc})>"
    return text if max_str is None or len(text) <= max_str else text[:max_str] + "…"


def preview(value: Any) -> Any:
    """A small JSON-able preview of a value for events (a few items, short strings)."""
    return to_jsonable(value, max_items=20, max_str=200)
