"""Running asyncio on Qt's event loop (qasync), and the fixes it needs on this stack.

qasync 0.28 turns every timer delay into ``startTimer(int(delay * 1000))``: an
infinite delay (``asyncio.sleep(math.inf)``, a Dask LocalCluster starting) raises
OverflowError, and delays above 2**31-1 ms overflow Qt's int. :func:`install` wraps
``_SimpleTimer.add_callback`` once: infinite delays get no Qt timer at all (nothing
can ever fire them; cancelling still works) and finite ones are clamped.
"""

from __future__ import annotations

import math
from typing import Any

import qasync

_MAX_DELAY = (2**31 - 1) / 1000


def install() -> None:
    """Patch qasync's timer once per process (idempotent)."""
    timer_class: Any = qasync._SimpleTimer  # the one place that starts Qt timers
    if getattr(timer_class.add_callback, "_loom_patched", False):
        return
    original = timer_class.add_callback

    def add_callback(self: Any, handle: Any, delay: float = 0) -> Any:
        if math.isinf(delay):
            return handle  # never due: no Qt timer; the handle can still be cancelled
        return original(self, handle, min(max(delay, 0.0), _MAX_DELAY))

    add_callback._loom_patched = True  # type: ignore[attr-defined]
    timer_class.add_callback = add_callback


def new_loop(app: Any) -> qasync.QEventLoop:
    """A qasync loop on ``app``, with the fixes above installed."""
    install()
    return qasync.QEventLoop(app)
