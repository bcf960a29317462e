"""Text nodes: changing, combining, splitting and searching strings."""

from __future__ import annotations

import re
from typing import Any

from loom import node


@node(category="Text", cheap=True)
def upper(text: str, suffix: str = "") -> str:
    """Upper-case the text, then add suffix."""
    return text.upper() + suffix


@node(category="Text", cheap=True)
def lower(text: str) -> str:
    """Lower-case the text."""
    return text.lower()


@node(category="Text", cheap=True)
def strip(text: str, chars: str | None = None) -> str:
    """Remove chars (whitespace when empty) from both ends of the text."""
    return text.strip(chars or None)


@node(category="Text", cheap=True)
def concat(a: str, b: str, separator: str = "") -> str:
    """a, then separator, then b."""
    return f"{a}{separator}{b}"


@node(category="Text", cheap=True)
def format_(template: str, values: dict = {}) -> str:  # noqa: B006 - never mutated; the engine copies it
    """Fill {name} fields of template from the values dict (Python str.format)."""
    return template.format(**values)


@node(category="Text", cheap=True)
def to_text(value: Any) -> str:
    """Any value as text (Python str())."""
    return str(value)


@node(category="Text", cheap=True)
def split(text: str, separator: str | None = None, maxsplit: int = -1) -> list:
    """Split the text at separator (runs of whitespace when empty) into a list."""
    return text.split(separator or None, maxsplit)


@node(category="Text", cheap=True)
def join(items: list, separator: str = "") -> str:
    """Join a list into one text, separator between items (items become text)."""
    return separator.join(item if isinstance(item, str) else str(item) for item in items)


@node(category="Text", cheap=True)
def replace(text: str, old: str, new: str = "", count: int = -1) -> str:
    """Replace occurrences of old with new (all of them unless count >= 0)."""
    return text.replace(old, new, count)


@node(category="Text", cheap=True)
def length(text: str) -> int:
    """Number of characters in the text."""
    return len(text)


@node(category="Text", cheap=True)
def contains(text: str, part: str) -> bool:
    """Is part somewhere in the text?"""
    return part in text


@node(category="Text", cheap=True)
def starts_with(text: str, prefix: str) -> bool:
    """Does the text begin with prefix?"""
    return text.startswith(prefix)


@node(category="Text", cheap=True)
def ends_with(text: str, suffix: str) -> bool:
    """Does the text end with suffix?"""
    return text.endswith(suffix)


# Not cheap: a user-supplied pattern can backtrack for a long time, so it runs in a thread.
@node(category="Text")
def regex_findall(text: str, pattern: str, ignore_case: bool = False) -> list:
    """Every match of a regular expression (with groups: a list of the groups per match)."""
    flags = re.IGNORECASE if ignore_case else 0
    return [list(m) if isinstance(m, tuple) else m for m in re.findall(pattern, text, flags)]
