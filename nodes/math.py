"""Math nodes: arithmetic on numbers and lists of numbers.

Ports are typed ``float``; whole numbers wire into them too, and the result
keeps Python's own type (``2 + 3`` gives ``5``, not ``5.0``). Errors such as
dividing by zero are raised as Python raises them, so the node shows the message.
"""

from __future__ import annotations

import math
import operator
import statistics
from collections.abc import Callable
from typing import Any, Literal

from loom import node

CompareOp = Literal["==", "!=", "<", "<=", ">", ">="]

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


@node(category="Math", cheap=True)
def add(a: float, b: float = 0.0) -> float:
    """a + b."""
    return a + b


@node(category="Math", cheap=True)
def subtract(a: float, b: float = 0.0) -> float:
    """a - b."""
    return a - b


@node(category="Math", cheap=True)
def multiply(a: float, b: float = 1.0) -> float:
    """a × b."""
    return a * b


@node(category="Math", cheap=True)
def divide(a: float, b: float = 1.0) -> float:
    """a ÷ b (dividing by zero fails the node)."""
    return a / b


@node(category="Math", cheap=True)
def power(base: float, exponent: float = 2.0) -> float:
    """base raised to exponent."""
    return base**exponent


@node(category="Math", cheap=True)
def modulo(a: float, b: float = 2.0) -> float:
    """Remainder of a ÷ b (Python's %, same sign as b)."""
    return a % b


@node(category="Math", cheap=True)
def negate(value: float) -> float:
    """-value."""
    return -value


@node(category="Math", cheap=True)
def abs_(value: float) -> float:
    """Absolute value."""
    return abs(value)


@node(category="Math", cheap=True)
def round_(value: float, ndigits: int = 0) -> float:
    """Round to ndigits decimal places (halves go to the even neighbour)."""
    return round(value, ndigits)


@node(category="Math", cheap=True)
def floor(value: float) -> int:
    """The largest whole number not above value."""
    return math.floor(value)


@node(category="Math", cheap=True)
def ceil(value: float) -> int:
    """The smallest whole number not below value."""
    return math.ceil(value)


@node(category="Math", cheap=True)
def min_(a: float, b: float) -> float:
    """The smaller of a and b."""
    return min(a, b)


@node(category="Math", cheap=True)
def max_(a: float, b: float) -> float:
    """The larger of a and b."""
    return max(a, b)


@node(category="Math", cheap=True)
def sum_(items: list) -> float:
    """Sum of a list of numbers (0 for an empty list)."""
    return sum(items)


@node(category="Math", cheap=True)
def mean(items: list) -> float:
    """Arithmetic mean of a list of numbers (an empty list fails the node)."""
    return statistics.fmean(items)


@node(category="Math", cheap=True)
def compare(a: Any, b: Any, op: CompareOp = "==") -> bool:
    """Compare a with b using op: ==, !=, <, <=, >, >=."""
    try:
        func = _COMPARE[op]
    except KeyError:
        raise ValueError(f"unknown comparison {op!r} (choose one of "
                         f"{', '.join(_COMPARE)})") from None
    return bool(func(a, b))


@node(category="Math", cheap=True)
def clamp(value: float, low: float = 0.0, high: float = 1.0) -> float:
    """Limit value to the range low..high."""
    if low > high:
        raise ValueError(f"clamp: low ({low}) is greater than high ({high})")
    return min(max(value, low), high)
