"""Execution strategies, one module per ``execution_mode``.

:data:`STRATEGIES` is the one table from mode name to strategy object; a new
mode is a new module plus one line here.
"""

from __future__ import annotations

from .base import Setting, Strategy
from .conditional import ConditionalStrategy
from .event import EventStrategy
from .loop import LoopStrategy
from .parallel import ParallelStrategy
from .sequential import SequentialStrategy
from .switch import SwitchStrategy

STRATEGIES: dict[str, Strategy] = {
    s.mode: s for s in (SequentialStrategy(), ConditionalStrategy(), SwitchStrategy(),
                        LoopStrategy(), ParallelStrategy(), EventStrategy())
}

__all__ = ["STRATEGIES", "ConditionalStrategy", "EventStrategy", "LoopStrategy",
           "ParallelStrategy",
           "SequentialStrategy", "Setting", "Strategy", "SwitchStrategy"]
