"""Dict nodes: reading, building and combining dictionaries (JSON objects).

Every node returns a new dict; the dicts it is given are never changed.
"""

from __future__ import annotations

from typing import Any

from loom import node


@node(category="Dicts", cheap=True)
def get(data: dict, key: str, default: Any = None) -> Any:
    """The value under key, or default when the key is absent."""
    return data.get(key, default)


@node(category="Dicts", cheap=True)
def set_(data: dict, key: str, value: Any) -> dict:
    """A new dict: data with key set to value."""
    return {**data, key: value}


@node(category="Dicts", cheap=True)
def remove(data: dict, key: str) -> dict:
    """A new dict: data without key (no error when it is absent)."""
    return {k: v for k, v in data.items() if k != key}


@node(category="Dicts", cheap=True)
def keys(data: dict) -> list:
    """The keys, in order."""
    return list(data)


@node(category="Dicts", cheap=True)
def values(data: dict) -> list:
    """The values, in key order."""
    return list(data.values())


@node(category="Dicts", cheap=True)
def merge(a: dict, b: dict) -> dict:
    """A new dict with the entries of a, then b (b wins on shared keys; not recursive)."""
    return {**a, **b}


@node(category="Dicts", cheap=True)
def from_pairs(pairs: list) -> dict:
    """A dict from a list of [key, value] pairs (a later pair wins)."""
    result: dict[Any, Any] = {}
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"item {i} should be a [key, value] pair, not {pair!r}")
        result[pair[0]] = pair[1]
    return result


@node(category="Dicts", cheap=True)
def pick(data: dict, keys: list) -> dict:
    """A new dict with only the listed keys (keys that are absent are left out)."""
    return {k: data[k] for k in keys if k in data}
