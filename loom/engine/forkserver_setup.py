"""Preloaded by Loom's forkserver only: its worker processes start with Ctrl+C ignored.

A terminal's Ctrl+C goes to its whole foreground process group. Workers leave that
group (they lead their own, see :mod:`loom.engine.process_pool`), but one still
starting is in it: a SIGINT then killed it, which broke the whole pool and took its
busy workers down without their process groups. Workers never need Ctrl+C: their
parent stops them (or their lifeline does). The forkserver restores in each worker
the handlers it had after its preloads, so ignoring SIGINT here, at preload, makes
every worker start with it ignored (the forkserver ignores it anyway).

Acts only inside a forkserver (``python -c`` running multiprocessing.forkserver),
so importing it anywhere else changes nothing.
"""

from __future__ import annotations

import signal
import sys


def _in_forkserver() -> bool:
    return sys.argv[:1] == ["-c"] and "multiprocessing.forkserver" in sys.modules


if _in_forkserver():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
