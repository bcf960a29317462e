"""Port types: a small vocabulary of names derived from type hints.

Port types are plain strings so they can be shown, saved and compared without
importing anything: ``any``, ``str``, ``int``, ``float``, ``bool``, ``bytes``,
``list``, ``dict``, ``none`` or a class's dotted name. Wiring is checked with
:func:`compatible`.
"""

from __future__ import annotations

import collections.abc as cabc
import types
import typing
from typing import Any

ANY = "any"

_SIMPLE: dict[Any, str] = {
    str: "str", int: "int", float: "float", bool: "bool", bytes: "bytes",
    list: "list", tuple: "list", set: "list", frozenset: "list",
    cabc.Sequence: "list", cabc.MutableSequence: "list", cabc.Iterable: "list",
    dict: "dict", cabc.Mapping: "dict", cabc.MutableMapping: "dict",
    type(None): "none", None: "none", Any: ANY, object: ANY,
}

#: (source type, destination type) pairs that may be wired although the names differ.
_WIDENING = {("int", "float"), ("none", "any")}


def port_type(hint: Any) -> tuple[str, bool, tuple[Any, ...]]:
    """Map a type hint to ``(type name, accepts None, literal choices)``."""
    if isinstance(hint, str):  # an unresolved forward reference
        return hint, False, ()
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        kinds = {port_type(type(c))[0] for c in choices}
        return (kinds.pop() if len(kinds) == 1 else ANY), False, tuple(choices)
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = len(members) != len(typing.get_args(hint))
        if len(members) == 1:
            name, _, choices = port_type(members[0])
            return name, nullable, choices
        return ANY, nullable, ()
    if origin is typing.Annotated:
        return port_type(typing.get_args(hint)[0])
    if origin is not None:
        hint = origin
    if hint in _SIMPLE:
        return _SIMPLE[hint], hint is None or hint is type(None), ()
    if isinstance(hint, type):
        if hint.__module__ == "builtins":
            return hint.__qualname__, False, ()
        return f"{hint.__module__}.{hint.__qualname__}", False, ()
    return ANY, False, ()


def compatible(source: str, target: str) -> bool:
    """May an output of type ``source`` be wired to an input of type ``target``?"""
    return (source == target or ANY in (source, target)
            or (source, target) in _WIDENING)


def accepted_sources(target: str) -> list[str]:
    """The output types an input of type ``target`` takes (widened ones first), as a
    person reads them: ``accepted_sources("float") == ["int", "float"]``. Every input
    also takes ``any``, which is left out; an ``any`` input takes everything."""
    if target == ANY:
        return [ANY]
    widened = sorted(src for src, dst in _WIDENING if dst == target and src != target)
    return [*widened, target]


_JSON_KINDS: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
    "list": (list, tuple), "dict": (dict,),
}


def value_matches(value: Any, type_name: str, nullable: bool) -> bool:
    """Does a JSON property value fit a port type? (Used to check properties.)"""
    if value is None:
        return nullable or type_name in (ANY, "none")
    kinds = _JSON_KINDS.get(type_name)
    if kinds is None:
        return True
    # bool is an int to Python, but not to a person typing a number.
    return isinstance(value, kinds) and (type_name == "bool" or not isinstance(value, bool))
