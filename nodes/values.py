"""Value nodes: constants typed in the inspector and fed into a graph.

Each node has one input, ``value``, whose default makes it a property; wiring
it turns the node into a pass-through of that type. List and dict defaults are
safe: the engine gives every call its own copy of a property value.
"""

from __future__ import annotations

from typing import Any

from loom import node


@node(category="Values", cheap=True)
def number(value: float = 0.0) -> float:
    """A number (float)."""
    return value


@node(category="Values", cheap=True)
def integer(value: int = 0) -> int:
    """A whole number."""
    return value


@node(category="Values", cheap=True)
def text(value: str = "") -> str:
    """A piece of text."""
    return value


@node(category="Values", cheap=True)
def boolean(value: bool = False) -> bool:
    """True or false."""
    return value


@node(category="Values", cheap=True)
def list_(value: list = []) -> list:  # noqa: B006 - the engine copies property values per call
    """A list of values."""
    return value


@node(category="Values", cheap=True)
def dict_(value: dict = {}) -> dict:  # noqa: B006 - the engine copies property values per call
    """A dictionary (JSON object)."""
    return value


@node(category="Values", cheap=True)
def json(value: Any = None) -> Any:
    """Any JSON value: a number, text, true/false, null, a list or an object."""
    return value
