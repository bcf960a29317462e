"""Values that flow between nodes, and turning any value into something JSON can hold."""

from __future__ import annotations

import builtins
import itertools
import json
import math
import reprlib
import sys
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
#: Integers longer than this are summarised: Python refuses to turn ints over 4,300
#: digits into text (``sys.set_int_max_str_digits``), and the conversion is quadratic.
_MAX_INT_DIGITS = 4300
_LOG10_2 = math.log10(2)


def int_text(value: int, max_digits: int | None = None) -> str | None:
    """None when ``value`` can be written out in at most ``max_digits`` digits (and
    Python's own limit); else a summary such as ``<int of 20000 bits (~6021 digits)>``."""
    limit = _MAX_INT_DIGITS
    allowed = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    if allowed:
        limit = min(limit, allowed)
    if max_digits is not None:
        limit = min(limit, max_digits)
    bits = abs(value).bit_length()
    digits = int(bits * _LOG10_2) + 1  # an upper bound (off by at most one)
    if digits <= limit:
        return None
    sign = "negative " if value < 0 else ""
    return f"<{sign}int of {bits} bits (~{digits} digits)>"


def to_jsonable(value: Any, *, max_items: int = _MAX_ITEMS, max_str: int | None = None,
                _depth: int = 0) -> Any:
    """A strict-JSON version of ``value``; what JSON cannot hold becomes its repr. Never raises.

    Lists, tuples and dicts are converted item by item, up to ``max_items`` each (dict
    keys become strings); anything deeper than 32 levels becomes its repr.
    Strict JSON has no NaN or Infinity: non-finite floats become the strings
    ``"nan"``, ``"inf"`` and ``"-inf"``. Integers too long to write out (over 4,300
    digits, or ``max_str``) become a summary string. With ``max_str``, strings and
    reprs are cut to that length, and bytes are cut *before* their repr is made.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        summary = int_text(value, max_str)
        return value if summary is None else summary
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(float(value))
    if isinstance(value, str):
        return value if max_str is None or len(value) <= max_str else value[:max_str] + "…"
    if _depth >= _MAX_DEPTH:  # bounded: a full repr of what is deeper could recurse
        return short_repr(value, 1000 if max_str is None else max_str)
    depth = _depth + 1
    try:
        if isinstance(value, dict):
            return {_key(k): to_jsonable(v, max_items=max_items, max_str=max_str, _depth=depth)
                    for k, v in itertools.islice(value.items(), max_items)}
        if isinstance(value, (list, tuple)):
            return [to_jsonable(v, max_items=max_items, max_str=max_str, _depth=depth)
                    for v in itertools.islice(value, max_items)]
    except Exception:  # noqa: BLE001 - a container that fails while iterated (changed size…)
        return short_repr(value, max_str)
    return short_repr(value, max_str)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        summary = int_text(key)
        if summary is not None:
            return summary
    try:
        return str(key)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break reporting
        return short_repr(key, 200)


class _ShortRepr(reprlib.Repr):
    """``reprlib`` with a length budget: it cuts strings and containers before they are
    turned into text (so a 50 MB value costs nothing), stops at a depth (so recursive
    and very deep values end) and reports a failing ``__repr__`` instead of raising."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.maxlevel = 6
        self.maxdict = 25
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = 50
        self.maxdeque = self.maxarray = 50
        self.maxstring = self.maxother = max(limit, 8)
        self.maxlong = max(limit, 8)

    def repr1(self, x: Any, level: int) -> str:
        # reprlib looks handlers up by the type's name; subclasses of str and bytes
        # must be cut before rendering too, and never reach their own big __repr__.
        if isinstance(x, str) and type(x) is not str:
            x = str.__str__(x)
        elif isinstance(x, (bytes, bytearray)) and type(x) not in (bytes, bytearray):
            return self._cut(x, len(x))
        elif isinstance(x, int) and not isinstance(x, bool) and type(x) is not int:
            return self.repr_int(x, level)
        return super().repr1(x, level)

    def repr_int(self, x: int, level: int) -> str:
        summary = int_text(x, self.maxlong)
        return builtins.repr(x) if summary is None else summary

    def repr_bytes(self, x: bytes, level: int) -> str:
        return self._cut(x, len(x))

    def repr_bytearray(self, x: bytearray, level: int) -> str:
        return self._cut(x, len(x))

    def repr_memoryview(self, x: memoryview, level: int) -> str:
        return f"<memoryview of {x.nbytes} bytes>"

    def _cut(self, x: bytes | bytearray, size: int) -> str:
        if size <= self.maxstring:
            return builtins.repr(bytes(x))
        return f"<{size} bytes> {bytes(x[:self.maxstring])!r}…"

    def repr_instance(self, x: Any, level: int) -> str:
        try:
            text = builtins.repr(x)
        except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not break reporting
            return _failed_repr(x, exc)
        return text if len(text) <= self.maxother else text[:self.maxother] + "…"


def _failed_repr(value: Any, exc: BaseException) -> str:
    try:
        why = str(exc)
    except Exception:  # noqa: BLE001 - even the exception may be unprintable
        why = type(exc).__name__
    return f"<{type(value).__name__} (repr failed: {why[:200]})>"


def short_repr(value: Any, max_str: int | None = 200) -> str:
    """The repr of ``value`` in at most about ``max_str`` characters (None: the full repr);
    never raises, and cuts big strings, bytes and containers before rendering them."""
    try:
        if max_str is None:
            if isinstance(value, int) and not isinstance(value, bool):
                summary = int_text(value)
                if summary is not None:
                    return summary
            text = repr(value)
            if not isinstance(text, str):
                raise TypeError(f"__repr__ returned {type(text).__name__}")
            return text
        text = _ShortRepr(max_str).repr(value)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not break reporting
        return _failed_repr(value, exc)
    return text if len(text) <= max_str + 1 else text[:max_str] + "…"


def preview(value: Any) -> Any:
    """A small JSON-able preview of a value for events (a few items, short strings)."""
    return to_jsonable(value, max_items=20, max_str=200)


def dumps(value: Any) -> str:
    """Strict JSON text of ``value`` (no NaN or Infinity tokens); never raises.

    Plain data is written as it is; anything else (a non-finite float, an integer
    too long to write out, an object) first goes through :func:`to_jsonable`.
    """
    try:
        return json.dumps(value, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return json.dumps(to_jsonable(value, max_items=sys.maxsize), allow_nan=False)
