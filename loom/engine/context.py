"""What a node sees of its run: the ``ctx`` parameter.

:class:`RunContext` is one per run (or per parallel branch, as a clone);
:class:`NodeContext` is what a node function receives when it has a parameter
named ``ctx``: progress, logging, the stop flag and the run variables.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from .events import Event, EventBus
from .values import preview
from .variables import Variables


class StopRequested(Exception):
    """Raised by :meth:`NodeContext.check_stop` when the run is being stopped."""


class RunContext:
    """Run-wide state shared by every node of a run (or of one parallel branch)."""

    def __init__(self, bus: EventBus, *, variables: Mapping[str, Any] | None = None,
                 run_id: str | None = None) -> None:
        self.bus = bus
        self.run_id = run_id or uuid.uuid4().hex[:12]
        # A deep copy: runs must not change the variables they were started with.
        self.vars = Variables(copy.deepcopy(dict(variables or {})))
        #: a threading.Event so nodes running in worker threads can poll it
        self.stop_flag = threading.Event()
        #: set together with ``stop_flag`` (the run state's ``stopping``): what async
        #: code on the loop awaits to wake on a stop (:meth:`NodeContext.sleep`)
        self.stopping = asyncio.Event()
        self.started = time.perf_counter()

    def clone(self) -> RunContext:
        """A context for a parallel branch or loop item: same run, bus, clock and stop
        flag; variables layered copy-on-write over these, so its writes (nested ones
        included) stay its own. O(1) whatever the number of variables."""
        clone = RunContext.__new__(RunContext)
        clone.bus, clone.run_id = self.bus, self.run_id
        clone.stop_flag, clone.stopping, clone.started = (self.stop_flag, self.stopping,
                                                          self.started)
        clone.vars = self.vars.child()
        return clone

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self.started

    def event(self, type_: str, **fields: Any) -> Event:
        """Build an event dict stamped with the run id and time."""
        return {"type": type_, "run": self.run_id, "t": time.perf_counter() - self.started,
                **fields}

    def emit(self, type_: str, **fields: Any) -> None:
        """Publish an event if anyone listens (safe from worker threads)."""
        if self.bus.active:
            self.bus.publish({"type": type_, "run": self.run_id,
                              "t": time.perf_counter() - self.started, **fields})


class NodeContext:
    """The ``ctx`` a node function may ask for.

    Safe to use from a worker thread: events hop to the loop by themselves.
    """

    __slots__ = ("_run", "node_id")

    def __init__(self, run: RunContext, node_id: str) -> None:
        self._run = run
        self.node_id = node_id

    @property
    def run_id(self) -> str:
        """Id of the current run."""
        return self._run.run_id

    @property
    def vars(self) -> Variables:
        """Run variables: a mapping shared by the nodes of a run; each parallel branch and
        parallel loop item works on its own copy-on-write clone."""
        return self._run.vars

    @property
    def stop_requested(self) -> bool:
        """True once the run is being stopped; long loops should check it and return."""
        return self._run.stop_flag.is_set()

    def check_stop(self) -> None:
        """Raise :class:`StopRequested` if the run is being stopped."""
        if self._run.stop_flag.is_set():
            raise StopRequested(f"node {self.node_id}: run stopped")

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on the loop, or until the run is stopped: then raise
        :class:`StopRequested` at once (a stop does not wait out the delay)."""
        self.check_stop()
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._run.stopping.wait()
        self.check_stop()

    def progress(self, fraction: float | None = None, message: str | None = None,
                 **extra: Any) -> None:
        """Report progress (0..1) and/or a status message to the editor and CLI."""
        self._run.emit("node_progress", node=self.node_id, progress=fraction, message=message,
                       **{k: preview(v) for k, v in extra.items()})

    def log(self, message: str, level: str = "info") -> None:
        """Write a line to the run log."""
        self._run.emit("log", node=self.node_id, level=level, message=str(message))
