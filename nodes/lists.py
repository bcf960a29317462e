"""List nodes: building, slicing, reordering and combining lists.

Every node returns a new list; the lists it is given are never changed, so
one list can safely feed several nodes.
"""

from __future__ import annotations

from typing import Any

from loom import node


@node(category="Lists", cheap=True)
def range_(start: int = 0, stop: int = 10, step: int = 1) -> list:
    """Whole numbers from start up to (not including) stop, step apart."""
    return list(range(start, stop, step))


@node(category="Lists", cheap=True)
def length(items: list) -> int:
    """Number of items in the list."""
    return len(items)


@node(category="Lists", cheap=True)
def get(items: list, index: int = 0) -> Any:
    """The item at index (negative counts from the end)."""
    try:
        return items[index]
    except IndexError:
        raise IndexError(f"index {index} is out of range for a list of "
                         f"{len(items)} item(s)") from None


@node(category="Lists", cheap=True)
def append(items: list, item: Any) -> list:
    """A new list: the items, then item."""
    return [*items, item]


@node(category="Lists", cheap=True)
def concat(a: list, b: list) -> list:
    """A new list: the items of a, then those of b."""
    return [*a, *b]


@node(category="Lists", cheap=True)
def slice_(items: list, start: int | None = None, stop: int | None = None,
           step: int | None = None) -> list:
    """items[start:stop:step], as in Python (empty bounds mean the ends)."""
    return list(items[start:stop:step])


@node(category="Lists", cheap=True)
def reverse(items: list) -> list:
    """The items in reverse order."""
    return list(reversed(items))


@node(category="Lists", cheap=True)
def sort(items: list, reverse: bool = False) -> list:
    """The items sorted ascending (descending with reverse)."""
    return sorted(items, reverse=reverse)


@node(category="Lists", cheap=True)
def unique(items: list) -> list:
    """The items without repeats, first occurrence kept, order kept."""
    seen: set[Any] = set()
    result: list[Any] = []
    for item in items:
        # true and 1 are different JSON values, though Python finds them equal
        key = (isinstance(item, bool), item)
        try:
            if key in seen:
                continue
            seen.add(key)
        except TypeError:  # unhashable (a list or dict): compare by equality instead
            if item in result:
                continue
        result.append(item)
    return result


@node(category="Lists", cheap=True)
def flatten(items: list) -> list:
    """One level of nesting removed: [[1, 2], 3, [4]] gives [1, 2, 3, 4]."""
    result: list[Any] = []
    for item in items:
        if isinstance(item, (list, tuple)):
            result.extend(item)
        else:
            result.append(item)
    return result


@node(category="Lists", cheap=True)
def filter_none(items: list) -> list:
    """The items that are not null (None)."""
    return [item for item in items if item is not None]


@node(category="Lists", cheap=True)
def zip_(a: list, b: list) -> list:
    """Pairs [a[i], b[i]], as many as the shorter list has."""
    return [[x, y] for x, y in zip(a, b, strict=False)]


@node(category="Lists", params=["inputs"], dynamic_inputs="inputs", cheap=True)
def collect(inputs: str = "a, b", **values: Any) -> list:
    """A list of every input's value, in the order ``inputs`` names them (a fan-in)."""
    names = [n.strip() for n in inputs.split(",") if n.strip()]
    return [values[n] for n in names if n in values]
