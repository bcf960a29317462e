"""What a node sees of its run: the ``ctx`` parameter.

:class:`RunContext` is one per run (or per parallel branch, as a clone);
:class:`NodeContext` is what a node function receives when it has a parameter
named ``ctx``: progress, logging, the stop flag, the run variables (``ctx.vars``,
cloned per parallel branch), the run's shared state (``ctx.shared``, never cloned)
and ``ctx.break_loop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

from .events import Event, EventBus
from .limits import Limiters, RateLimit, acquire
from .values import preview
from .variables import Variables


class StopRequested(Exception):
    """Raised by :meth:`NodeContext.check_stop` when the run is being stopped."""


class SharedState(MutableMapping[str, Any]):
    """``ctx.shared``: values the whole run shares on purpose, parallel branches and
    parallel loop items included (``ctx.vars`` gives each of those its own clone).

    One per run, never cloned, and thread-safe: every operation holds one lock, and
    :meth:`update` / :meth:`increment` read, change and write a key as one step, so
    parallel items counting into one key never lose a count. Hold :attr:`lock`
    (``with ctx.shared.lock:``) to make several operations one step. Values are not
    copied: a list stored here is the same list for every node.

    It lives in the process that runs the graph: process and Dask nodes get no ``ctx``
    (a ``@node`` with ``ctx`` cannot take ``executor="process"``/``"dask"``, and
    ``loom run --executor dask`` keeps such nodes on local threads), and pickling it,
    to send it anywhere, raises :class:`TypeError`.
    """

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        #: re-entrant, so a node holding it may still call the methods here
        self.lock = threading.RLock()

    def __getitem__(self, key: str) -> Any:
        with self.lock:
            return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        with self.lock:
            self._data[key] = value

    def __delitem__(self, key: str) -> None:
        with self.lock:
            del self._data[key]

    def __iter__(self) -> Iterator[str]:
        with self.lock:
            return iter(list(self._data))  # a snapshot: other threads may change it

    def __len__(self) -> int:
        with self.lock:
            return len(self._data)

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        with self.lock:
            return self._data.get(key, default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, first setting it to ``default`` if missing (one step)."""
        with self.lock:
            return self._data.setdefault(key, default)

    def update_key(self, key: str, change: Callable[[Any], Any], default: Any = None) -> Any:
        """Set ``key`` to ``change(current value or default)`` in one step; returns it.

        ``change`` runs under the lock: keep it quick, and never wait inside it.
        """
        with self.lock:
            value = self._data[key] = change(self._data.get(key, default))
            return value

    def increment(self, key: str, by: int | float = 1) -> Any:
        """Add ``by`` to ``key`` (0 if missing) in one step; returns the new value."""
        return self.update_key(key, lambda value: value + by, 0)

    def snapshot(self) -> dict[str, Any]:
        """A shallow copy of everything, taken in one step."""
        with self.lock:
            return dict(self._data)

    def __reduce__(self) -> Any:
        raise TypeError("ctx.shared cannot leave the process that runs the graph (process "
                        "and Dask nodes get no ctx): pass the values it holds instead")

    def __repr__(self) -> str:
        return f"SharedState({self.snapshot()!r})"


class LoopControl:
    """One run of a loop node, as :meth:`NodeContext.break_loop` reaches it."""

    __slots__ = ("broken_by", "label")

    def __init__(self, label: str) -> None:
        self.label = label
        #: the id of the node that asked the loop to end early, once one did
        self.broken_by: str | None = None

    @property
    def broken(self) -> bool:
        """True once a body node called ``ctx.break_loop()``."""
        return self.broken_by is not None


class RunContext:
    """Run-wide state shared by every node of a run (or of one parallel branch)."""

    def __init__(self, bus: EventBus, *, variables: Mapping[str, Any] | None = None,
                 run_id: str | None = None) -> None:
        self.bus = bus
        self.run_id = run_id or uuid.uuid4().hex[:12]
        # A deep copy: runs must not change the variables they were started with.
        self.vars = Variables(copy.deepcopy(dict(variables or {})))
        #: shared by every clone: the run's one :class:`SharedState`
        self.shared = SharedState()
        #: the run's rate limiters (policy and ``control.rate_limit`` alike), shared by
        #: every clone, so by every branch, item and wave of the run
        self.limiters = Limiters()
        #: the innermost loop whose body this context runs (``ctx.break_loop()``)
        self.loop: LoopControl | None = None
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
        clone.shared, clone.loop, clone.limiters = self.shared, self.loop, self.limiters
        clone.vars = self.vars.child()
        return clone

    def in_loop(self, loop: LoopControl) -> RunContext:
        """This context (the same variables: nothing is cloned) for the body of ``loop``."""
        inner = copy.copy(self)
        inner.loop = loop
        return inner

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
    def shared(self) -> SharedState:
        """Run-wide shared state: one mapping for the whole run, never cloned, so
        parallel branches and items see each other's writes (a shared counter).
        Thread-safe; see :class:`SharedState` (``increment``, ``update_key``, ``lock``)."""
        return self._run.shared

    def break_loop(self) -> None:
        """End the innermost loop this node runs in, early.

        A for-each starts no more items (parallel: those running finish) and reports
        the rest as not run; a while loop ends after the current iteration. This
        node and the rest of the current item or iteration still run. Outside a loop
        body it raises :class:`RuntimeError`.
        """
        loop = self._run.loop
        if loop is None:
            raise RuntimeError(f"node {self.node_id}: ctx.break_loop() called outside a "
                               "loop body")
        if loop.broken_by is None:
            loop.broken_by = self.node_id

    @property
    def stop_requested(self) -> bool:
        """True once the run is being stopped; long loops should check it and return."""
        return self._run.stop_flag.is_set()

    def check_stop(self) -> None:
        """Raise :class:`StopRequested` if the run is being stopped."""
        if self._run.stop_flag.is_set():
            raise StopRequested(f"node {self.node_id}: run stopped")

    async def rate_limit(self, key: str, per_second: float, burst: int = 1, *,
                         wait: bool = True) -> float | None:
        """Take a token of the run's limiter for ``key`` (``burst`` tokens, refilled
        ``per_second`` a second; the first rate given for a key is the one used).

        Returns the seconds waited; with ``wait=False`` never waits and returns None
        when no token is free. A stop ends the wait with :class:`StopRequested`.
        """
        self.check_stop()
        limiter = self._run.limiters.get(RateLimit(key, float(per_second), burst))
        if not wait:
            if not limiter.has_capacity():
                return None
            await limiter.acquire()  # free: taken without giving up the loop
            return 0.0
        waited = await acquire(limiter, self._run.stopping)
        if waited is None:
            self.check_stop()  # stopped while waiting: raises StopRequested
            raise StopRequested(f"node {self.node_id}: run stopped")
        return waited

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
