"""``event``: a long-running source; each trigger starts a wave downstream.

The event node owns every node downstream of it (its scope is implicit). When it
runs, it starts its source (``event_type``: ``timer``, ``schedule``, ``file_change`` or
``http_request``, with that source's settings in the node's metadata) and keeps
running until the source has nothing more to produce (a timer's ``count``), the run
ends on its own (``max_waves``, ``duration``), or a stop is requested.

Each trigger starts a *wave*: a fresh flow over the downstream nodes whose ``event``
port (and any other port of the event node) carries the trigger's payload. Up to
``max_concurrent_waves`` waves run at once (default 1: in order); beyond that the
``overflow`` policy queues up to ``queue_size`` triggers or drops them (counted,
reported as ``event_dropped``). ``queue_size`` defaults to 100, or to the source's own
default (10,000 for ``file_change``). A source may merge a trigger into one of its
own still queued about the same thing (a file's path): counted as ``coalesced``.
Waves that may overlap run on clones of the context; one-at-a-time waves share it,
so they can keep state across triggers in ``ctx.vars``.
A failed wave fails the run's status but not the source: the next trigger still runs.
Each failed wave gets an ``error_id``, reported with its full error in a ``wave_failed``
event, so an HTTP answer can name the failure without showing its message.

Under overload the waves keep their pace: a wave slot that finishes takes the next
queued trigger itself (no new task waiting its turn behind every other ready
callback), and sources ask :meth:`_Waves.refuse_if_full` before building a payload,
so refusing a trigger costs a counter and never starves accepted work.

The wave's result, which the HTTP trigger sends back, is the value of
``response_node`` if set, else of the wave's last nodes (those wiring nowhere): one
value, or a dict by node id. If the node's own function has output ports, it is
called per trigger and its result feeds them (a function polled on a timer).

On stop: the source stops (an HTTP server closes its socket, open requests are still
answered), queued triggers are dropped, waves under way may finish within the grace
period, then are cancelled with everything else.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from loom.graph import Node
from loom.registry import PortSpec

from ..values import preview
from .base import Setting, Strategy

if TYPE_CHECKING:
    from ..flow import Body, NodeCall
    from ..plan import Plan, PlannedNode
    from ..sources import Coalescer
    from ..sources.base import EventSource, WaveResult

log = logging.getLogger("loom.engine.event")

EVENT_PORT = "event"
EVENT_TYPES = ("timer", "schedule", "file_change", "http_request")
#: the events of a wave that :meth:`_Waves.watch` passes on (an HTTP stream sends them)
WATCHED_EVENTS = ("branch_completed", "item_completed")


class EventStrategy(Strategy):
    """Start a source; run a wave through the downstream nodes per trigger."""

    mode = "event"
    single_call = False
    long_running = True
    owns_downstream = True
    settings = (
        Setting("event_type", "choice", "timer", "what triggers a wave", choices=EVENT_TYPES),
        Setting("max_concurrent_waves", "int", 1, "waves at once (1: one after another)",
                minimum=1),
        Setting("overflow", "choice", "queue", "a trigger while every wave slot is busy: "
                "queue it (up to queue_size) or drop it", choices=("queue", "drop")),
        Setting("queue_size", "int", 100, "triggers that may wait for a wave slot "
                "(file_change: 10,000 unless set)", minimum=1),
        Setting("response_node", "node_id", None, "the node whose value answers an HTTP "
                "request (default: the wave's last nodes)"),
    )

    def output_ports(self, node: Node, outputs: tuple[PortSpec, ...]) -> tuple[PortSpec, ...]:
        """The node's own outputs plus ``event`` (the trigger's payload)."""
        if any(p.name == EVENT_PORT for p in outputs):
            return outputs
        return (*outputs, PortSpec(EVENT_PORT, "dict"))

    def body_ports(self, node: Node) -> tuple[str, ...]:
        """Every output feeds the wave."""
        return ("*",)

    def validate(self, node: Node, known_ids: Any) -> list[str]:
        """The event type's own settings are checked too."""
        from ..sources import check_settings  # noqa: PLC0415 - watchdog/aiohttp only when used

        problems = super().validate(node, known_ids)
        kind = node.metadata.get("event_type", "timer")
        if kind in EVENT_TYPES:
            problems += check_settings(str(kind), node.metadata)
        return problems

    def read_settings(self, node: Node) -> frozenset[str]:
        """The event node's settings and its event type's."""
        from ..sources import SOURCE_SETTINGS  # noqa: PLC0415 - watchdog/aiohttp only when used

        kind = node.metadata.get("event_type", "timer")
        own = SOURCE_SETTINGS.get(kind, ()) if isinstance(kind, str) else ()
        return super().read_settings(node) | {s.name for s in own}

    def check_plan(self, planned: PlannedNode, plan: Plan) -> list[str]:
        """Event nodes run at the top of the graph; the response node is in the wave."""
        problems = []
        if plan.owner[planned.index] != -1:
            problems.append("an event source cannot run inside a loop body or branch")
        response = planned.node.metadata.get("response_node")
        if isinstance(response, str) and response in plan.index and \
                plan.owner[plan.index[response]] != planned.index:
            problems.append(f"metadata.response_node {response!r} is not downstream of it")
        return problems

    async def execute(self, call: NodeCall) -> dict[str, Any]:
        """Run the source until it is done, the run ends, or a stop; drain the waves."""
        from ..sources import (  # noqa: PLC0415 - watchdog/aiohttp only when used
            COALESCERS,
            QUEUE_SIZES,
            SOURCES,
        )

        node = call.node
        kind = str(self.setting(node, "event_type"))
        queue_size = node.metadata.get("queue_size")
        if queue_size is None:
            queue_size = QUEUE_SIZES.get(kind, self.setting(node, "queue_size"))
        waves = _Waves(call, int(self.setting(node, "max_concurrent_waves")),
                       str(self.setting(node, "overflow")), int(queue_size),
                       self.setting(node, "response_node"))
        waves.coalescer = COALESCERS.get(kind)
        state = call.flow.state
        source = SOURCES[kind](node.metadata, waves, call.planned.id, state.services())
        try:
            info = await source.start()
            call.emit("event_source_ready", event_type=kind, **info)
            await waves.until_done(source)
            await source.stop_accepting()
            if state.stopping.is_set() or state.ending.is_set():
                # Queued triggers are not under way yet; a source that simply ran out
                # (a timer's count) still has them run.
                waves.drop_queued("the run is ending")
            await waves.drain()
        finally:
            await waves.cancel()
            await source.aclose()
        skip = call.skip(f"{call.label}: triggers only feed its waves")
        return {p.name: skip for p in call.planned.outputs}


class _Waves:
    """One event node's waves: starting, queueing, dropping, and their results.

    It is the source's trigger (``waves(payload)``) and its
    :class:`~loom.engine.sources.base.Admission`.
    """

    def __init__(self, call: NodeCall, limit: int, overflow: str, queue_size: int,
                 response_node: Any) -> None:
        self.call, self.limit, self.overflow, self.queue_size = call, limit, overflow, queue_size
        plan = call.flow.state.plan
        members = call.members()
        if isinstance(response_node, str) and response_node in plan.index:
            self.result_nodes = [plan.index[response_node]]
        else:  # the wave's last nodes: those with no wire out
            self.result_nodes = [i for i in members
                                 if plan.nodes[i].edge_lo == plan.nodes[i].edge_hi]
        self.body: Body = call.body(members, keep=self.result_nodes)
        self.running: set[asyncio.Task[None]] = set()
        self.queued: collections.deque[tuple[dict[str, Any], asyncio.Future[WaveResult]]] = \
            collections.deque()
        #: merges a trigger into a queued one about the same thing (set by the source type)
        self.coalescer: Coalescer | None = None
        self.queued_by_key: dict[Hashable, tuple[dict[str, Any],
                                                 asyncio.Future[WaveResult]]] = {}
        self.closed = False
        self.idle = asyncio.Event()
        self.idle.set()
        self.record = call.flow.state.records[call.planned.index]
        self.stats = self.record.stats = {"waves": 0, "completed": 0, "failed": 0,
                                          "dropped": 0, "coalesced": 0}
        self.record.iterations = 0
        #: wave number of each started trigger's future, until that future is done
        self.numbers: dict[asyncio.Future[WaveResult], int] = {}

    # ------------------------------------------------------------------ triggers
    def __call__(self, payload: dict[str, Any]) -> asyncio.Future[WaveResult] | None:
        """The source's trigger: see :meth:`trigger`."""
        return self.trigger(payload)

    def refuse_if_full(self) -> str | None:
        """Why a trigger now would be dropped, counting it as dropped; None if it would run
        or wait. No payload is built for a refused trigger, so its ``event_dropped``
        carries none."""
        if self.closed:
            why = "the run is ending"
        elif len(self.running) < self.limit or (
                self.overflow == "queue" and len(self.queued) < self.queue_size):
            return None
        else:
            why = "every wave slot is busy"
        self.stats["dropped"] += 1
        self.call.emit("event_dropped", reason=why, dropped=self.stats["dropped"],
                       payload=None)
        return why

    def trigger(self, payload: dict[str, Any]) -> asyncio.Future[WaveResult] | None:
        """A source's trigger: start, queue or drop a wave (see the module docstring)."""
        if self.closed:
            return None
        key = self.coalescer.key(payload) if self.coalescer else None
        if key is not None and key in self.queued_by_key:
            assert self.coalescer is not None
            queued, queued_future = self.queued_by_key[key]
            self.coalescer.merge(queued, payload)
            self.stats["coalesced"] += 1
            return queued_future
        future: asyncio.Future[WaveResult] = asyncio.get_running_loop().create_future()
        if len(self.running) < self.limit:
            if not self._start(payload, future):
                return None
        elif self.overflow == "queue" and len(self.queued) < self.queue_size:
            self.queued.append((payload, future))
            if key is not None:
                self.queued_by_key[key] = (payload, future)
        else:
            self._drop(payload, "every wave slot is busy")
            return None
        return future

    def _start(self, payload: dict[str, Any], future: asyncio.Future[WaveResult]) -> bool:
        number = self._claim(payload, future)
        if number is None:
            return False
        task = asyncio.ensure_future(self._slot(number, payload, future))
        self.running.add(task)
        self.idle.clear()
        task.add_done_callback(self._finished)
        return True

    def _claim(self, payload: dict[str, Any], future: asyncio.Future[WaveResult]) -> int | None:
        """Count a wave about to start and announce it; None (trigger dropped) past the
        run's max_waves."""
        if not self.call.flow.state.claim_wave():
            self._drop(payload, "the run reached its max_waves")
            future.cancel()
            return None
        self.stats["waves"] += 1
        number = int(self.stats["waves"])
        self.numbers[future] = number
        future.add_done_callback(self._forget)
        self.record.iterations = number
        self.call.emit("event_triggered", wave=number, payload=preview(payload))
        return number

    async def _slot(self, number: int, payload: dict[str, Any],
                    future: asyncio.Future[WaveResult]) -> None:
        """One wave slot: this wave, then each queued trigger in turn, in the same task."""
        while True:
            await self._wave(number, payload, future)
            if self.closed or not self.queued:
                return
            payload, future = self._pop_queued()
            claimed = self._claim(payload, future)
            if claimed is None:
                return
            number = claimed

    def _forget(self, future: asyncio.Future[WaveResult]) -> None:
        self.numbers.pop(future, None)

    def watch(self, future: asyncio.Future[WaveResult],
              fn: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Hand ``fn`` each ``branch_completed`` and ``item_completed`` event of the wave
        that ``future`` belongs to (queued or running), none of any other wave; returns
        the function that stops it (:class:`~loom.engine.sources.base.WaveWatch`).

        Events carry their flow's scope; a wave's flows all start with
        ``[event node id, wave number]``. Events are delivered a loop turn after they are
        published, yet before the code awaiting ``future`` resumes (both go through
        ``call_soon``, the events first)."""
        node_id = self.call.planned.id
        number: list[int] = []

        def deliver(batch: list[dict[str, Any]]) -> None:
            if not number:
                if future not in self.numbers:
                    return  # not started yet: no event can be of this wave
                number.append(self.numbers[future])
            mine = [node_id, number[0]]
            for event in batch:
                scope = event.get("scope")
                if scope and scope[0] == mine:
                    fn(event)

        return self.call.ctx.bus.subscribe(deliver, WATCHED_EVENTS)

    def _pop_queued(self) -> tuple[dict[str, Any], asyncio.Future[WaveResult]]:
        payload, future = self.queued.popleft()
        if self.coalescer is not None:
            key = self.coalescer.key(payload)
            if key is not None and self.queued_by_key.get(key, (None,))[0] is payload:
                del self.queued_by_key[key]
        return payload, future

    def _drop(self, payload: dict[str, Any], why: str) -> None:
        self.stats["dropped"] += 1
        self.call.emit("event_dropped", reason=why, dropped=self.stats["dropped"],
                       payload=preview(payload))

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.running.discard(task)
        while self.queued and len(self.running) < self.limit and not self.closed:
            payload, future = self._pop_queued()
            if not self._start(payload, future):
                break
        if not self.running:
            self.idle.set()

    # ------------------------------------------------------------------ one wave
    async def _wave(self, number: int, payload: dict[str, Any],
                    future: asyncio.Future[WaveResult]) -> None:
        from ..sources.base import WaveResult  # noqa: PLC0415 - see execute()

        call = self.call
        try:
            values: dict[str, Any] = {EVENT_PORT: payload}
            if call.planned.value_outputs:  # a function polled per trigger
                values.update(call.outputs(await call.invoke(event=payload)
                                           if "event" in call.planned.inputs
                                           else await call.invoke()))
            ctx = call.ctx.clone() if self.limit > 1 else call.ctx
            flow = self.body.flow(values, ctx=ctx, scope=number)
            await flow.run()
        except asyncio.CancelledError:
            if not future.done():
                future.set_result(WaveResult(False, error="the run was stopped"))
            raise
        except Exception as exc:  # noqa: BLE001 - the wave failed before its flow ran
            self._failed(number, future, f"{call.label}: {type(exc).__name__}: {exc}", "")
            return
        if flow.failures:
            failure = flow.first_failure()
            self._failed(number, future, str(failure), failure.node_traceback)
            return
        self.stats["completed"] += 1
        if not future.done():
            future.set_result(WaveResult(True, value=self._result(flow)))

    def _failed(self, number: int, future: asyncio.Future[WaveResult], error: str,
                 trace: str) -> None:
        """Count a failed wave and report it in full under a fresh error id."""
        from ..sources.base import WaveResult  # noqa: PLC0415 - see execute()

        self.stats["failed"] += 1
        self.call.flow.state.wave_failures += 1
        error_id = secrets.token_hex(6)
        self.call.emit("wave_failed", wave=number, error_id=error_id, error=error,
                       traceback=trace)
        log.info("%s: wave %d failed (error id %s): %s", self.call.label, number,
                    error_id, error)
        if not future.done():
            future.set_result(WaveResult(False, error=error, error_id=error_id))

    def _result(self, flow: Any) -> Any:
        if len(self.result_nodes) == 1:
            return flow.result(self.result_nodes[0])
        plan = self.call.flow.state.plan
        return {plan.nodes[i].id: flow.result(i) for i in self.result_nodes}

    # ------------------------------------------------------------------ lifetime
    async def until_done(self, source: EventSource) -> None:
        """Wait until the source is exhausted, the run ends on its own, or a stop."""
        state = self.call.flow.state
        waiters = [asyncio.ensure_future(source.wait_done()),
                   asyncio.ensure_future(state.stopping.wait()),
                   asyncio.ensure_future(state.ending.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    def drop_queued(self, why: str) -> None:
        """Triggers still waiting for a slot will not run."""
        from ..sources.base import WaveResult  # noqa: PLC0415 - see execute()

        self.closed = True
        while self.queued:
            payload, future = self._pop_queued()
            self._drop(payload, why)
            if not future.done():
                future.set_result(WaveResult(False, error=why))

    async def drain(self) -> None:
        """Wait for the waves under way and queued (a stop's grace period bounds this
        from outside)."""
        while self.running or self.queued:
            await self.idle.wait()
            if self.queued and not self.running:  # nothing left to start them
                self._finished_queue()
        self.closed = True

    def _finished_queue(self) -> None:
        while self.queued and len(self.running) < self.limit:
            payload, future = self._pop_queued()
            if not self._start(payload, future):
                break

    async def cancel(self) -> None:
        """Cancel the waves still running and wait for their clean-up."""
        self.closed = True
        for task in list(self.running):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self.running, return_exceptions=True)
