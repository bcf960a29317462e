"""``sequential``: run the function once and route its outputs.

The default mode. Per-node policies (timeout, retries, rate limits) wrap the
call itself and apply to every mode, so they are not this module's concern.
"""

from __future__ import annotations

from .base import Strategy


class SequentialStrategy(Strategy):
    """Call the function once; each output port gets its part of the result."""

    mode = "sequential"
