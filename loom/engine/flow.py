"""The flow: runs a set of planned nodes in dataflow order.

A node is ready when every wire into it has delivered (a ``join="first"`` node:
when the first value arrives). Ready nodes wait in a heap ordered by their
position in the file, so runs are deterministic. Up to ``limit`` nodes run at
once; with a limit of 1 each node is awaited inline (no Task per node), and
quick inline nodes never get a Task at any limit. A value or a
:class:`~loom.engine.values.Skip` travels along every wire; a node with a
skipped input is skipped itself and passes the same Skip on, so one root
reason explains a whole skipped region. Skips are routed with a work list, not
recursion, so chains of any length are fine.

The flow is also the unit loop and parallel strategies reuse for their bodies
and branches (``NodeCall.body``): it runs only its ``members``, starts from
``seeds`` (the values its owner hands in), keeps the outputs of the nodes whose
results the owner wants, and has its own context (a clone, for a parallel
branch). Its state lives in dicts sized by its members, so a loop over a big
graph's small body costs what the body costs.
"""

from __future__ import annotations

import asyncio
import copy
import heapq
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from typing import Any

from .context import RunContext, StopRequested
from .errors import BodyFailed, node_aborted
from .events import EventBus
from .executors import Executor
from .invoke import EXECUTOR_FACTORIES, NodeError, call_function, call_inline, format_error
from .limits import Limiters
from .plan import Plan, PlannedNode
from .policies import ERROR_PORT, call_with_policy
from .result import NodeRecord
from .scopes import CAPTURE_PREFIX
from .states import NodeState
from .values import Skip, preview

#: The loop gets control back at least this often (seconds) during long inline stretches,
#: so the editor repaints and Stop is heard even while thousands of quick nodes run.
YIELD_INTERVAL = 0.005
#: Nodes between two looks at the clock: few, since one node may take milliseconds
#: (8 nodes of 5 ms: 40 ms), yet not every node (the hot path's budget is ~1 µs).
_CHECK_EVERY = 8

_MISSING: Any = object()
# Enum members are descriptors on 3.11 (~0.1 µs a look-up); the hot path reads these.
_QUEUED, _RUNNING, _DONE = NodeState.QUEUED, NodeState.RUNNING, NodeState.DONE
_FAILED, _SKIPPED, _STOPPED = NodeState.FAILED, NodeState.SKIPPED, NodeState.STOPPED


class _Done:
    """An awaitable that is already complete: awaiting it does not give up the loop."""

    def __await__(self) -> Generator[None, None, None]:
        return
        yield


_COMPLETE = _Done()


class RunState:
    """What every flow of one run shares: the plan, records, root context, executors,
    limiters, the run's event-source services and its stop signals."""

    def __init__(self, plan: Plan, ctx: RunContext, records: list[NodeRecord], *,
                 max_waves: int | None = None,
                 executors: Mapping[str, Callable[[], Executor]] | None = None,
                 executor_override: str | None = None) -> None:
        self.plan = plan
        self.ctx = ctx
        self.bus: EventBus = ctx.bus
        self.records = records
        #: the context's own limiters: one set for the run, every wave included
        self.limiters: Limiters = ctx.limiters
        self._executors: dict[str, Executor] = {}
        self._factories = dict(EXECUTOR_FACTORIES if executors is None else executors)
        #: where sync nodes that could run anywhere go instead of their own executor
        #: (``loom run --executor dask``); None keeps each node's choice
        self.executor_override = executor_override
        #: set when a stop is requested: event sources stop, the rest may finish; the
        #: context's own, so nodes waiting on ``ctx.sleep`` wake on it
        self.stopping = ctx.stopping
        #: set when the run should end on its own (duration or max_waves reached)
        self.ending = asyncio.Event()
        #: waves in all the run may start (None: no limit); how many it started
        self.max_waves = max_waves
        self.waves_started = 0
        #: waves that failed (the run is then failed, though its sources went on)
        self.wave_failures = 0
        #: why the run is being stopped, as the nodes it cancels or never starts record it
        self.stop_reason = "run stopped"
        #: flow tasks that ignored cancellation past the clean-up deadline
        self.abandoned_tasks: list[asyncio.Task[None]] = []
        self._services: Any = None
        #: the run-wide yield clock: when some flow of this run last gave the loop a
        #: turn. One clock for all flows, so a loop whose every body run is a handful
        #: of inline nodes (never a long stretch on its own) still yields in time.
        self.last_yield = time.perf_counter()
        self._turn_pending = False

    def checkpoint(self) -> Awaitable[None]:
        """Give the loop a turn if nobody did for :data:`YIELD_INTERVAL` s (cheap otherwise).

        Flows call it as they start and loops before each item, so every flow,
        however nested, lets the editor repaint and a stop be heard.
        """
        if time.perf_counter() - self.last_yield > YIELD_INTERVAL:
            return self.give_turn()
        return _COMPLETE

    def give_turn(self) -> Awaitable[None]:
        """Yield to the loop now. Until the loop's next round starts, every other flow of
        the run that gets the loop (parallel items resumed in this same round) yields at
        once too: otherwise each would run its own 5 ms and ten parallel items would hold
        one round of the loop for 50 ms."""
        if not self._turn_pending:
            self._turn_pending = True
            self.last_yield = float("-inf")
            asyncio.get_running_loop().call_soon(self._next_round)
        return asyncio.sleep(0)

    def _next_round(self) -> None:
        self._turn_pending = False
        self.last_yield = time.perf_counter()

    def services(self) -> Any:
        """What the run's event sources share (one file-system observer), made on first use."""
        if self._services is None:
            # Imported here: only event graphs need watchdog and aiohttp loaded.
            from .sources import RunServices  # noqa: PLC0415

            self._services = RunServices()
        return self._services

    def claim_wave(self) -> bool:
        """Count a wave about to start; False once ``max_waves`` were started (the run
        then ends on its own)."""
        if self.max_waves is not None and self.waves_started >= self.max_waves:
            self.ending.set()
            return False
        self.waves_started += 1
        if self.max_waves is not None and self.waves_started >= self.max_waves:
            self.ending.set()
        return True

    async def close(self, grace: float) -> list[str]:
        """Release what the run holds: executors (waiting ``grace`` s for running calls)
        and source services. Returns what was still running: worker-thread calls, and
        nodes whose clean-up ignored cancellation."""
        still = await self.close_executors(grace)
        if self._services is not None:
            await self._services.aclose()
            self._services = None
        if self.abandoned_tasks:
            still += [self.plan.nodes[i].id for i, rec in enumerate(self.records)
                      if rec.state is _RUNNING]
        return still

    def executor(self, name: str) -> Executor:
        """The run's executor of this kind, created on first use."""
        executor = self._executors.get(name)
        if executor is None:
            factory = self._factories.get(name)
            if factory is None:
                raise NodeError(f"executor {name!r} is not available "
                                f"(available: inline, async, {', '.join(self._factories)})")
            executor = self._executors[name] = factory()
        return executor

    async def close_executors(self, grace: float) -> list[str]:
        """Shut every executor down; returns what was still running afterwards."""
        still: list[str] = []
        for executor in self._executors.values():
            still += await executor.aclose(grace)
        self._executors.clear()
        return still


class NodeCall:
    """One execution of one node, as a strategy sees it."""

    __slots__ = ("captured", "flow", "kwargs", "planned")

    def __init__(self, flow: Flow, planned: PlannedNode, kwargs: dict[str, Any]) -> None:
        self.flow = flow
        self.planned = planned
        #: values wired from outside into this node's scopes, handed in by its body flows
        self.captured: dict[str, Any] = {}
        if planned.index in flow.state.plan.members:
            for key in [k for k in kwargs if k.startswith(CAPTURE_PREFIX)]:
                self.captured[key] = kwargs.pop(key)
        self.kwargs = kwargs

    @property
    def node(self) -> Any:
        """The graph node being run."""
        return self.planned.node

    @property
    def label(self) -> str:
        """The node as messages name it."""
        return self.planned.node.label

    @property
    def ctx(self) -> RunContext:
        """The context of the flow this node runs in."""
        return self.flow.ctx

    async def invoke(self, **overrides: Any) -> Any:
        """Call the node's function with its inputs (``overrides`` replace some) under its
        policies (rate limit, timeout, retries); returns what the function returned."""
        planned, flow = self.planned, self.flow
        kwargs = {**self.kwargs, **overrides} if overrides else self.kwargs
        if not planned.policy.wraps_call:
            return await call_function(flow.state, planned, kwargs, flow.ctx)
        record = flow.state.records[planned.index]

        def on_retry(attempt: int, error: BaseException, wait: float) -> None:
            record.attempts = attempt
            flow.emit("node_retrying", node=planned.id, attempt=attempt,
                      error=format_error(error)[0], wait=wait)

        return await call_with_policy(
            planned.policy, lambda: call_function(flow.state, planned, kwargs, flow.ctx),
            flow.state.limiters, on_retry, kwargs, flow.state.stopping,
            lambda: StopRequested(f"node {planned.id}: run stopped"))

    def outputs(self, result: Any, exclude: Iterable[str] = ()) -> dict[str, Any]:
        """Spread a function's return value over its value ports.

        One port gets the whole value. Several ports take a tuple in port order
        or a dict by name; a port missing from the dict carries a skip.
        """
        ports = self.planned.value_outputs
        if exclude:
            ports = tuple(p for p in ports if p not in exclude)
        if len(ports) == 1:
            return {ports[0]: result}
        if not ports:
            return {}
        if isinstance(result, dict):
            unknown = [k for k in result if k not in ports]
            if unknown:
                raise NodeError(f"returned values for unknown output port(s) {unknown} "
                                f"(outputs: {', '.join(ports)})")
            return {p: result[p] if p in result else self.skip(f"{self.label} gave no value "
                                                               f"on {p!r}") for p in ports}
        if isinstance(result, (tuple, list)) and len(result) == len(ports):
            return dict(zip(ports, result, strict=True))
        raise NodeError(f"returned {type(result).__name__}; expected a tuple of "
                        f"{len(ports)} values ({', '.join(ports)}) or a dict by port name")

    def skip(self, reason: str) -> Skip:
        """A skip to put on a port, with this node as its origin."""
        return Skip(reason, self.planned.id)

    def emit(self, type_: str, **fields: Any) -> None:
        """Publish an event about this node."""
        self.flow.emit(type_, node=self.planned.id, **fields)

    # ------------------------------------------------------------------ scopes
    def members(self, ids: Iterable[str] | None = None) -> list[int]:
        """Indices of the nodes directly inside this node, all or only those in ``ids``."""
        plan = self.flow.state.plan
        direct = plan.members.get(self.planned.index, [])
        if ids is None:
            return list(direct)
        wanted = {plan.index[i] for i in ids if i in plan.index}
        return [i for i in direct if i in wanted]

    def result_node(self, ids: list[str]) -> int:
        """The node whose output is a body's or branch's result: the last one listed."""
        return self.flow.state.plan.index[ids[-1]]

    def body(self, members: list[int], keep: Iterable[int] = ()) -> Body:
        """Some of this node's members, prepared to run once per item, iteration or branch.

        ``keep`` names the nodes whose results the strategy will read.
        """
        return Body(self, members, keep)

    def handled(self, failure: BodyFailed) -> None:
        """Mark a body failure this node's own policy absorbed (a branch under
        ``on_error: continue``, a loop item under ``continue_on_error``) as handled,
        at every level it came through, so the result does not list it as unhandled."""
        index, records = self.flow.state.plan.index, self.flow.state.records
        for node_id in failure.chain:
            i = index.get(node_id)
            if i is not None and records[i].state is _FAILED:
                records[i].handled = True


class Body:
    """A scope of an owner node, wired up once and run many times (a Flow per run).

    Each run starts from the values of the owner's body ports for that run
    (``{"item": x, "index": k}``) plus the values the owner captured from outside.
    """

    def __init__(self, call: NodeCall, members: list[int], keep: Iterable[int]) -> None:
        plan, index = call.flow.state.plan, call.planned.index
        inside = set(members)
        self.call, self.members, self.keep = call, members, frozenset(keep)
        self._routes = [(port, dst, dst_port) for port, dst, dst_port in plan.wires_from(index)
                        if dst in inside]
        self._captured: list[tuple[int, str | None, Any]] = [
            (child, child_port, value) for name, value in call.captured.items()
            for child, child_port in plan.captures.get(index, {}).get(name, ())
            if child in inside]
        self._pending = {i: plan.nodes[i].n_deps for i in members}

    def flow(self, values: dict[str, Any], *, ctx: RunContext | None = None,
             scope: Any = None, cancel_reason: Callable[[], str | None] | None = None) -> Flow:
        """A flow for one run. ``scope`` names the run (an item index, a branch name):
        events from inside carry ``scope``, the path of ``[owner id, scope]`` pairs.
        ``cancel_reason`` says why, if the owner cancels this run itself (a timeout, a
        failed sibling); None there means the cancel came from further out."""
        seeds: list[tuple[int, str | None, Any]] = []
        for port, dst, dst_port in self._routes:
            if port not in values:
                raise NodeError(f"no value for body port {port!r} of {self.call.label}")
            seeds.append((dst, dst_port, values[port]))
        seeds += self._captured
        outer = self.call.flow
        return Flow(outer.state, self.members, outer.limit, ctx=ctx or outer.ctx, seeds=seeds,
                    keep=self.keep, scope=(*outer.scope, (self.call.planned.id, scope)),
                    pending=self._pending, parent=outer, cancel_reason=cancel_reason)


class Flow:
    """Runs ``members`` of a plan to completion (or until cancelled)."""

    def __init__(self, run: RunState, members: Iterable[int], limit: int, *,
                 ctx: RunContext | None = None, seeds: Iterable[tuple[int, str | None, Any]] = (),
                 keep: Iterable[int] = (), scope: tuple[tuple[str, Any], ...] = (),
                 pending: dict[int, int] | None = None, parent: Flow | None = None,
                 cancel_reason: Callable[[], str | None] | None = None) -> None:
        # Only the top-level flow stops starting nodes once a stop is requested; flows
        # inside a running node (its loop items, branches, event waves) are work under
        # way, which may finish within the stop's grace period.
        self._halt: asyncio.Event | None = run.stopping if not scope else None
        self.state = run
        self.ctx = ctx or run.ctx
        self.limit = max(1, limit)
        plan = run.plan
        self._nodes = plan.nodes
        self._records = run.records
        self._edge_port = plan.edge_port
        self._edge_dst = plan.edge_dst
        self._edge_dst_port = plan.edge_dst_port
        self._members = list(members)
        nodes = self._nodes
        self._pending: dict[int, int] = (dict(pending) if pending is not None else
                                          {i: nodes[i].n_deps for i in self._members})
        self._arrived: dict[int, dict[str, Any]] = {}
        self._skip: dict[int, Skip] = {}
        self._fired: set[int] = set()
        self._ready: list[int] = []
        #: long-running nodes (event sources) ready to start: never held back by the limit
        self._long_ready: list[int] = []
        self._seeds = list(seeds)
        self._keep = frozenset(keep)
        #: outputs (or the Skip) of the ``keep`` nodes once they have run
        self.kept: dict[int, dict[str, Any] | Skip] = {}
        #: members that failed with nobody handling it (``on_error`` stop)
        self.failures: list[int] = []
        self._errors: dict[int, tuple[str, str]] = {}
        #: failed owners among the members -> the body failure that failed them (node ids
        #: inward), so an outer owner that handles the failure can mark every level
        self._chains: dict[int, tuple[str, ...]] = {}
        #: where this flow runs: ``(owner id, item index or branch name)`` pairs from the top
        self.scope = scope
        self._tag = {"scope": [list(pair) for pair in scope]} if scope else {}
        self._since_check = 0
        #: the flow of the node that runs this one (None at the top)
        self.parent = parent
        self._cancel_reason = cancel_reason

    def stop_reason(self) -> str:
        """Why this flow's running nodes are being cancelled: the innermost owner that
        cancelled its own work says why (``cancelled: timeout of 2 s``); otherwise the
        run was stopped."""
        flow: Flow | None = self
        while flow is not None:
            if flow._cancel_reason is not None:
                reason = flow._cancel_reason()
                if reason:
                    return reason
            flow = flow.parent
        return self.state.stop_reason

    def emit(self, type_: str, **fields: Any) -> None:
        """Publish an event, stamped with this flow's scope when it runs inside a node."""
        if self.ctx.bus.active:
            self.ctx.emit(type_, **fields, **self._tag)

    def result(self, i: int) -> Any:
        """A kept node's result, as loops and branches report it: its ``out`` port, else
        its ``results`` (a nested loop or parallel node), else its only port, else a
        dict of its ports; None when it was skipped or failed."""
        outputs = self.kept.get(i)
        if outputs is None or isinstance(outputs, Skip):
            return None
        for port in ("out", "results"):
            if port in outputs:
                return outputs[port]
        if len(outputs) == 1:
            return next(iter(outputs.values()))
        return dict(outputs)

    def first_failure(self) -> BodyFailed:
        """The first unhandled failure of this flow, as an exception its owner can raise."""
        i = self.failures[0]
        error, trace = self._errors[i]
        label = self._nodes[i].label
        return BodyFailed(f"{label}: {error}", self._nodes[i].id, error, trace,
                          self._chains.get(i, ()))

    # ------------------------------------------------------------------ driving
    async def run(self) -> None:
        """Run every member; returns when all are done, failed or skipped."""
        for i in self._members:
            if self._pending[i] == 0:
                self._queue(i)
        for dst, dst_port, value in self._seeds:
            skip = self._deliver(dst, dst_port, value)
            if skip is not None:
                self._skip_downstream(dst, skip, mark=True)
        try:
            await self.state.checkpoint()  # a loop's quick body runs: see RunState
            if self.limit == 1 and not self._long_ready and not any(
                    self._nodes[i].long_running for i in self._members):
                await self._run_serial()
            else:
                await self._run_concurrent()
        except asyncio.CancelledError:
            if self.parent is not None:
                self._skip_unstarted()
            raise

    def _skip_unstarted(self) -> None:
        """A body flow cancelled by its owner: members it never started are skipped,
        saying why (the top-level flow's are left to the manager, which knows the run's
        status)."""
        reason: Skip | None = None
        for i in self._members:
            if self._records[i].state in (NodeState.PENDING, _QUEUED):
                if reason is None:
                    reason = Skip(self.stop_reason(), self.scope[-1][0] if self.scope else "")
                self._mark_skipped(i, reason)

    async def _run_serial(self) -> None:
        ready, nodes, pop, clock = self._ready, self._nodes, heapq.heappop, time.perf_counter
        state = self.state
        bus, halt = state.bus, self._halt
        since_check = 0
        while ready:
            if halt is not None and halt.is_set():
                return  # stopping: start nothing new (what is queued is reported skipped)
            i = pop(ready)
            planned = nodes[i]
            if planned.inline:
                if (planned.direct is not None and not planned.mutable_defaults
                        and not bus.active and not self._keep):
                    self._run_direct(i, planned, planned.direct)
                else:
                    self._execute_inline(i)
            else:
                # Not counted as a yield: an async node may return without awaiting.
                await self._execute(i)
            since_check += 1
            if since_check >= _CHECK_EVERY:  # see RunState.checkpoint; inlined here
                since_check = 0
                if clock() - state.last_yield > YIELD_INTERVAL:
                    await state.give_turn()

    async def _run_concurrent(self) -> None:
        ready, nodes = self._ready, self._nodes
        running: dict[asyncio.Task[None], int] = {}
        background = 0  # long-running nodes among `running`: they do not count
        try:
            while True:
                halted = self._halt is not None and self._halt.is_set()
                while self._long_ready and not halted:
                    i = self._long_ready.pop()
                    running[asyncio.ensure_future(self._execute(i))] = i
                    background += 1
                while ready and len(running) - background < self.limit and not halted:
                    i = heapq.heappop(ready)
                    if nodes[i].inline:
                        self._execute_inline(i)
                        await self._checkpoint()
                    else:
                        running[asyncio.ensure_future(self._execute(i))] = i
                if not running:
                    return
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if nodes[running.pop(task)].long_running:
                        background -= 1
                    task.result()
        finally:
            if running:
                await _cancel_and_wait(running)

    def _checkpoint(self) -> Awaitable[None]:
        """Give the loop a turn now and then during long stretches of inline nodes."""
        self._since_check += 1
        if self._since_check >= _CHECK_EVERY:
            self._since_check = 0
            return self.state.checkpoint()
        return _COMPLETE

    # ------------------------------------------------------------------ one node
    def _begin(self, i: int) -> tuple[PlannedNode, dict[str, Any], float]:
        planned, rec = self._nodes[i], self._records[i]
        kwargs = self._arrived.pop(i, None)
        if kwargs is None:
            kwargs = dict(planned.defaults)
        for key in planned.mutable_defaults:
            if kwargs.get(key) is planned.defaults[key]:
                kwargs[key] = copy.deepcopy(kwargs[key])
        if rec.error is not None or rec.reason is not None:
            _forget_last_run(rec)
        rec.state = _RUNNING
        rec.inputs = kwargs
        rec.attempts = 1
        started = time.perf_counter()
        rec.started = started - self.ctx.started
        if self.ctx.bus.active:
            self.emit("node_started", node=planned.id)
        return planned, kwargs, started

    def _execute_inline(self, i: int) -> None:
        """Run a quick sync node right here: no coroutine, no Task.

        This is the hot path of big graphs of small nodes (~1 µs of the per-node
        budget); ``planned.direct`` skips even the strategy call when routing is plain.
        """
        planned, kwargs, started = self._begin(i)
        direct = planned.direct
        try:
            if direct is not None:
                outputs = {direct[1]: direct[0](**kwargs)}
            else:
                result = call_inline(planned, kwargs, self.ctx)
                outputs = planned.strategy.route(NodeCall(self, planned, kwargs), result)
        except Exception as exc:  # noqa: BLE001 - a node's failure is data, never the engine's crash
            self._fail(i, exc, started)
            return
        except BaseException as exc:  # noqa: BLE001 - SystemExit & co. from node code: see NodeAborted
            self._fail(i, _aborted(exc), started)
            return
        self._succeed(i, outputs, started)

    def _run_direct(self, i: int, planned: PlannedNode,
                    direct: tuple[Callable[..., Any], str]) -> None:
        """The hot path: :meth:`_execute_inline` for a plain node while nobody listens.

        Same effect for nodes with ``planned.direct``, no list/dict defaults and no
        bus subscriber, folded into one frame: on a graph of 10,000 small nodes
        every call saved here is saved 10,000 times.
        """
        rec = self._records[i]
        kwargs = self._arrived.pop(i, None)
        if kwargs is None:
            kwargs = dict(planned.defaults)
        if rec.error is not None or rec.reason is not None:
            _forget_last_run(rec)
        rec.state = _RUNNING
        rec.inputs = kwargs
        rec.attempts = 1
        started = time.perf_counter()
        rec.started = started - self.ctx.started
        func, port = direct
        try:
            value = func(**kwargs)
        except Exception as exc:  # noqa: BLE001 - a node's failure is data, never the engine's crash
            self._fail(i, exc, started)
            return
        except BaseException as exc:  # noqa: BLE001 - SystemExit & co. from node code: see NodeAborted
            self._fail(i, _aborted(exc), started)
            return
        rec.state = _DONE
        rec.duration_ms = (time.perf_counter() - started) * 1000.0
        rec.outputs = {port: value}
        # Plain routing has one value port and no control edges: every wire carries value.
        if planned.edge_hi > planned.edge_lo:
            dsts, dst_ports = self._edge_dst, self._edge_dst_port
            for e in range(planned.edge_lo, planned.edge_hi):
                skip = self._deliver(dsts[e], dst_ports[e], value)
                if skip is not None:
                    self._skip_downstream(dsts[e], skip, mark=True)

    async def _execute(self, i: int) -> None:
        planned, kwargs, started = self._begin(i)
        try:
            outputs = await planned.strategy.execute(NodeCall(self, planned, kwargs))
        except asyncio.CancelledError as exc:
            if not _being_cancelled():
                # The node's own code raised CancelledError; nobody asked us to stop.
                self._fail(i, exc, started)
                return
            self._stopped(i, started)
            raise
        except Exception as exc:  # noqa: BLE001 - a node's failure is data, never the engine's crash
            self._fail(i, exc, started)
            return
        except BaseException as exc:  # noqa: BLE001 - SystemExit & co. from node code: see NodeAborted
            self._fail(i, _aborted(exc), started)
            return
        self._succeed(i, outputs, started)

    def _succeed(self, i: int, outputs: dict[str, Any], started: float) -> None:
        rec = self._records[i]
        rec.state = _DONE
        rec.duration_ms = (time.perf_counter() - started) * 1000.0
        clean = outputs
        for value in outputs.values():
            if value.__class__ is Skip:
                clean = {k: v for k, v in outputs.items() if v.__class__ is not Skip}
                break
        rec.outputs = clean
        if i in self._keep:
            self.kept[i] = clean
        if self.ctx.bus.active:
            self.emit("node_finished", node=self._nodes[i].id, duration_ms=rec.duration_ms,
                      outputs={k: preview(v) for k, v in clean.items()})
        self._route(i, outputs)

    def _stopped(self, i: int, started: float) -> None:
        rec = self._records[i]
        rec.state = _STOPPED
        rec.duration_ms = (time.perf_counter() - started) * 1000.0
        rec.reason = self.stop_reason()
        self.emit("node_stopped", node=self._nodes[i].id, reason=rec.reason,
                  duration_ms=rec.duration_ms)

    def _fail(self, i: int, exc: BaseException, started: float) -> None:
        planned, rec = self._nodes[i], self._records[i]
        if isinstance(exc, StopRequested) and self.ctx.stop_flag.is_set():
            self._stopped(i, started)
            self._skip_downstream(i, Skip(self.state.stop_reason, planned.id))
            return
        rec.state = _FAILED
        rec.duration_ms = (time.perf_counter() - started) * 1000.0
        rec.outputs = None  # what an earlier item or iteration gave is not this run's
        rec.error, rec.traceback = format_error(exc)
        trace = getattr(exc, "node_traceback", None)
        if isinstance(trace, str):
            rec.traceback = trace  # a body node's failure: show where it really happened
        on_error = planned.policy.on_error
        rec.handled = on_error != "stop"
        # A loop or parallel node's numbers as far as it got travel with its failure.
        info = getattr(exc, "execution_info", None)
        extra = {"execution_info": info} if isinstance(info, dict) else {}
        self.emit("node_failed", node=planned.id, error=rec.error, traceback=rec.traceback,
                  duration_ms=rec.duration_ms, handled=rec.handled, **extra)
        if on_error == "continue":
            self._route(i, {p.name: None for p in planned.outputs})
        elif on_error == "error_output":
            error = {"node": planned.id, "error": rec.error, "traceback": rec.traceback}
            skip = Skip(f"{planned.label} failed; its error went to {ERROR_PORT!r}", planned.id)
            self._route(i, {p.name: error if p.name == ERROR_PORT else skip
                            for p in planned.outputs})
        else:
            self.failures.append(i)
            self._errors[i] = (rec.error, rec.traceback)
            if isinstance(exc, BodyFailed):
                self._chains[i] = exc.chain
            failed = Skip(f"upstream failed: {planned.label}", planned.id)
            if i in self._keep:
                self.kept[i] = failed
            self._skip_downstream(i, failed)

    # ------------------------------------------------------------------ routing
    def _queue(self, i: int) -> None:
        self._records[i].state = _QUEUED
        if self._nodes[i].long_running:
            self._long_ready.append(i)
        else:
            heapq.heappush(self._ready, i)
        if self.state.bus.active:
            self.emit("node_queued", node=self._nodes[i].id)

    def _route(self, i: int, outputs: dict[str, Any]) -> None:
        """Deliver a node's outputs along its wires."""
        planned = self._nodes[i]
        ports, dsts, dst_ports = self._edge_port, self._edge_dst, self._edge_dst_port
        for e in range(planned.edge_lo, planned.edge_hi):
            value = outputs.get(ports[e], _MISSING)
            if value is _MISSING:
                value = Skip(f"{planned.label} gave no value on {ports[e]!r}", planned.id)
            skip = self._deliver(dsts[e], dst_ports[e], value)
            if skip is not None:
                self._skip_downstream(dsts[e], skip, mark=True)

    def _skip_downstream(self, i: int, skip: Skip, mark: bool = False) -> None:
        """Skip everything that now cannot run because ``i`` passes on ``skip``.

        A work list rather than recursion, so a skip can cross any number of nodes.
        """
        dsts, dst_ports = self._edge_dst, self._edge_dst_port
        work = [(i, skip, mark)]
        while work:
            j, reason, mark_j = work.pop()
            if mark_j:
                self._mark_skipped(j, reason)
            for e in range(self._nodes[j].edge_lo, self._nodes[j].edge_hi):
                next_skip = self._deliver(dsts[e], dst_ports[e], reason)
                if next_skip is not None:
                    work.append((dsts[e], next_skip, True))

    def _deliver(self, dst: int, dst_port: str | None, value: Any) -> Skip | None:
        """Hand one value to one input; returns a Skip if that makes the node skipped."""
        pending = self._pending
        left = pending.get(dst)
        if left is None:
            return None  # not a member of this flow (a body node, or outside a body)
        left -= 1
        pending[dst] = left
        target = self._nodes[dst]
        if value.__class__ is Skip:
            if target.join_first:
                return value if left == 0 and dst not in self._fired else None
            first = self._skip.setdefault(dst, value)
            if left == 0 and target.join_present and dst in self._arrived:
                self._queue(dst)  # some input carried a value: run with those that did
                return None
            return first if left == 0 else None
        if dst_port is not None:
            arrived = self._arrived.get(dst)
            if arrived is None:
                arrived = self._arrived[dst] = dict(target.defaults)
            arrived[dst_port] = value
        if target.join_first:
            if dst not in self._fired:
                self._fired.add(dst)
                self._queue(dst)
            return None
        if left == 0:
            skip = self._skip.get(dst)
            if skip is not None and not target.join_present:
                return skip
            self._queue(dst)
        return None

    def _mark_skipped(self, i: int, skip: Skip) -> None:
        rec = self._records[i]
        rec.state = _SKIPPED
        rec.reason = skip.reason
        self._arrived.pop(i, None)
        if i in self._keep:
            self.kept[i] = skip
        if self.state.bus.active:
            self.emit("node_skipped", node=self._nodes[i].id, reason=skip.reason)


def _forget_last_run(rec: NodeRecord) -> None:
    """A body node runs again (next item, iteration, wave): its record shows this run
    only, never a state of this run beside the error of the last."""
    rec.error = rec.traceback = rec.reason = None
    rec.handled = False


def _aborted(exc: BaseException) -> Exception:
    """A node's SystemExit, KeyboardInterrupt, GeneratorExit…, as the failure it stands for."""
    aborted = node_aborted(exc)
    aborted.__cause__ = exc
    return aborted


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _cancel_and_wait(tasks: dict[asyncio.Task[None], int]) -> None:
    """Cancel running node tasks and wait for their cleanup to finish."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
