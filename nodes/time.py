"""Time nodes: waiting, and the current time.

Loom loads this pack by file path under a private module name, so the
``import time`` below is the standard library, not this file.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Any

from loom import node
from loom.engine import NodeContext


@node(category="Time")
async def delay(value: Any = None, seconds: float = 1.0, ctx: NodeContext | None = None) -> Any:
    """Wait for seconds, then pass value on (waits on the loop; Stop interrupts it)."""
    if seconds < 0:
        raise ValueError(f"delay: seconds must not be negative, got {seconds}")
    if ctx is None:  # called as a plain function, outside a run
        await asyncio.sleep(seconds)
    else:
        await ctx.sleep(seconds)  # wakes at once on a stop, not after the grace period
    return value


@node(category="Time", cheap=True)
def now() -> str:
    """The current date and time in UTC, as ISO-8601 text."""
    return datetime.datetime.now(datetime.UTC).isoformat()


@node(category="Time", cheap=True)
def timestamp() -> float:
    """Seconds since 1970-01-01 UTC (Unix time)."""
    return time.time()
