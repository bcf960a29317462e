"""Rate limiters: one set per run, shared by the ``rate_limit`` policy and the
``control.rate_limit`` node (the context holds it, so every branch, loop item and
event wave of the run sees the same limiter for a key).

Kept apart from :mod:`.policies` so the context module can hold the run's limiters
without importing the strategies.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiolimiter import AsyncLimiter


def is_finite(value: int | float) -> bool:
    """True for a number ``float()`` can hold that is neither NaN nor infinite."""
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


@dataclass(frozen=True)
class RateLimit:
    """Calls sharing ``key`` across a run start at most ``per_second`` times a second."""

    key: str
    per_second: float
    #: calls that may start at once before the spacing applies (the bucket's size)
    burst: int = 1
    #: the input port whose value is the key (None: ``key`` itself)
    key_from: str | None = None

    def resolve(self, inputs: Mapping[str, Any]) -> RateLimit:
        """The limit for one call: with ``key_from``, keyed by that input's value."""
        if self.key_from is None:
            return self
        value = str(inputs.get(self.key_from))
        return RateLimit(f"{self.key}:{value}" if self.key else value, self.per_second,
                         self.burst)


def rate_problem(per_second: Any, burst: Any) -> str | None:
    """What is wrong with a rate (``per_second``, ``burst``), or None."""
    if isinstance(per_second, bool) or not isinstance(per_second, (int, float)) \
            or not is_finite(per_second) or per_second <= 0 or not is_finite(1.0 / per_second):
        # The limiter refills every 1/per_second s: both must be real, finite numbers.
        return 'needs "per_second", a number above 0'
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1 \
            or not is_finite(burst):
        return 'needs "burst", a whole number of 1 or more'
    if not is_finite(burst / per_second):
        return '"burst" / "per_second" is too large'
    return None


class Limiters:
    """The run's rate limiters, one per key, shared by every flow, branch and wave of the
    run: both the ``rate_limit`` policy and the ``control.rate_limit`` node use these, so
    a key names one limit whichever of them uses it."""

    def __init__(self) -> None:
        self._limiters: dict[str, tuple[float, AsyncLimiter]] = {}

    def get(self, limit: RateLimit) -> AsyncLimiter:
        """The limiter for a key; the first rate (and burst) declared for a key is the one
        used."""
        found = self._limiters.get(limit.key)
        if found is None:
            # A bucket of ``burst`` slots draining r a second: with burst 1 calls are
            # spaced 1/r s apart, so no one-second window can hold more than r of them.
            found = (limit.per_second,
                     AsyncLimiter(limit.burst, limit.burst / limit.per_second))
            self._limiters[limit.key] = found
        return found[1]


async def acquire(limiter: AsyncLimiter, stopping: asyncio.Event | None) -> float | None:
    """Take a token, waiting for one if need be; returns the seconds waited.

    The wait ends at once when ``stopping`` is set: then no token is taken and the
    result is None (the caller raises its ``StopRequested``; the context module
    imports this one, so this one does not import it).
    """
    if limiter.has_capacity():
        await limiter.acquire()  # capacity is there: takes it without giving up the loop
        return 0.0
    loop = asyncio.get_running_loop()
    started = loop.time()
    if stopping is None:
        await limiter.acquire()
        return loop.time() - started
    if stopping.is_set():
        return None
    taking = asyncio.ensure_future(limiter.acquire())
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait((taking, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Both are owned here: whichever did not finish is cancelled and awaited.
        for task in (taking, stopped):
            task.cancel()
        await asyncio.gather(taking, stopped, return_exceptions=True)
    if not (taking.done() and not taking.cancelled() and taking.exception() is None):
        return None
    return loop.time() - started


