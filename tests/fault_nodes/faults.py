"""A node pack that misbehaves on purpose, for tests (issue 9: the fault pack).

Loaded by path (``Registry.load_file``) so process nodes travel by value like any
pack's. Every ``raise_*`` node raises the exception ``kind`` names (its ``x`` input
only lets a wire trigger it), wherever it runs: ``cheap`` (inline on the loop),
``async``, ``thread``, ``process`` and ``generator`` (a sync generator in a worker
thread that yields once first).
Other nodes return values that cannot be printed or are huge, never end, or
ignore cancellation. Nothing a node here does may crash the host.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from loom import node

KINDS = ("SystemExit", "KeyboardInterrupt", "GeneratorExit", "custom", "exit_code",
         "unprintable")


class CustomBase(BaseException):  # not an Exception: that is the point
    """A BaseException of a library's own (neither Exception nor one Python knows)."""


class Unprintable(Exception):
    """An exception whose ``str`` and ``repr`` raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class NoPrint:
    """A value whose ``str`` and ``repr`` raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def fault(kind: str) -> None:
    """Raise what ``kind`` names."""
    if kind == "SystemExit":
        sys.exit("a library gave up")
    if kind == "exit_code":
        sys.exit(3)
    if kind == "KeyboardInterrupt":
        raise KeyboardInterrupt
    if kind == "GeneratorExit":
        raise GeneratorExit
    if kind == "custom":
        raise CustomBase("custom base exception")
    if kind == "unprintable":
        raise Unprintable
    raise ValueError(f"unknown fault kind {kind!r}")


@node(id="fault.raise_cheap", cheap=True)
def raise_cheap(kind: str = "SystemExit", x: Any = None) -> str:
    """Raise ``kind`` inline on the loop."""
    fault(kind)
    return "unreachable"


@node(id="fault.raise_async")
async def raise_async(kind: str = "SystemExit", x: Any = None) -> str:
    """Raise ``kind`` in a coroutine, after giving up the loop once."""
    await asyncio.sleep(0)
    fault(kind)
    return "unreachable"


@node(id="fault.raise_thread")
def raise_thread(kind: str = "SystemExit", x: Any = None) -> str:
    """Raise ``kind`` in a worker thread."""
    fault(kind)
    return "unreachable"


@node(id="fault.raise_process", executor="process")
def raise_process(kind: str = "SystemExit", x: Any = None) -> str:
    """Raise ``kind`` in a worker process."""
    fault(kind)
    return "unreachable"


@node(id="fault.raise_generator")
def raise_generator(kind: str = "SystemExit", x: Any = None) -> Any:
    """Yield one item, then raise ``kind`` (drained in a worker thread)."""
    yield 1
    fault(kind)


@node(id="fault.unprintable", cheap=True)
def unprintable() -> Any:
    """A value nobody can print."""
    return NoPrint()


@node(id="fault.huge_int", cheap=True)
def huge_int() -> int:
    """An integer of 5,000 digits (more than ``str()`` converts by default)."""
    return 10 ** 5000


@node(id="fault.huge_list", cheap=True)
def huge_list() -> list[int]:
    """A list of a million items."""
    return list(range(1_000_000))


@node(id="fault.forever")
async def forever(value: Any = None) -> Any:
    """Never ends on its own (a cancel ends it)."""
    while True:
        await asyncio.sleep(3600)


@node(id="fault.ignores_cancel")
async def ignores_cancel(value: Any = None) -> Any:
    """Swallows cancellation for a while, then ends (clean-up that takes too long)."""
    for _ in range(40):
        try:
            await asyncio.sleep(0.1)
        except asyncio.CancelledError:
            continue
    return value


@node(id="fault.spin_thread")
def spin_thread(seconds: float = 1.0) -> str:
    """Busy in a worker thread for ``seconds``, never looking at a stop."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return "done"


@node(id="fault.passes", cheap=True)
def passes(value: Any = None) -> str:
    """Downstream of a fault: must never run when the fault fails."""
    return "ran"
