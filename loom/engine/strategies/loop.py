"""``loop``: run a body of nodes once per item (``for_each``) or while a condition holds.

The body is explicit: ``metadata.body`` lists its node ids. Those nodes run only
inside the loop, in a fresh flow per item or iteration, so nested loops start
clean on every outer iteration. Each run of the body emits ``loop_iteration``.

``for_each``
    The node's function returns the items (``control.for_each`` passes on its
    ``items`` input). Its ``item`` and ``index`` ports feed the body; ``results``
    (in item order, whatever the completion order), ``errors`` and
    ``execution_info`` leave the loop. An item's result is the value of the
    *last node listed in the body*: its ``out`` port (``results`` for a nested loop
    or parallel node), or its only port, or a dict of all its ports; ``None`` when
    that node was skipped.

    ``batch_size`` > 1 runs the body once per batch: ``item`` is then a list of up
    to that many items, ``index`` the batch number, and ``results`` holds one entry
    per batch. ``parallel`` runs up to ``max_concurrent`` items at once, each on a
    clone of the context. ``max_retries`` (attempts in all) and ``retry_wait`` rerun
    a failed item's whole body. A failed item fails the loop (cancelling the items
    still running) unless ``continue_on_error``: then its slot holds ``None`` and
    ``errors`` gets ``{"index", "node", "error"}``.

``while``
    Before each iteration the node's function is called with the loop's current
    inputs; its result decides by truthiness, or a :class:`~loom.registry.Branch`
    carries the decision and the value (``control.while`` continues while its
    ``condition``, or if that is empty its ``value``, is truthy). The value goes
    into the body along every wire from the loop node; wires from body nodes back
    into the loop node (or ``loop_back_to``: that node's first output into the
    loop's first input) carry the next iteration's inputs. When the decision is
    false the value leaves by the node's outputs. More than ``max_iterations``
    (1000; -1 for unbounded, for servers) fails the loop, naming it.
    ``loop_type: "infinite"`` (DESIGN's use case 1) is a while loop without that
    limit: it ends when its condition fails, on ``ctx.break_loop()`` or on a stop.

Leaving early: a body node calling ``ctx.break_loop()`` ends the innermost loop.
A for-each starts no more items (parallel: the items running finish); ``results``
then holds only the items that ran and ``execution_info.not_run`` counts the rest.
A while loop ends after the current iteration: its function reads the carried
values once more to give the output, its decision ignored. Either publishes
``loop_break`` (``by``: the node that asked).

``timeout`` (seconds) is a deadline for the whole loop, items or iterations and the
node's own calls included: when it passes, the body runs still going are cancelled
(their nodes record ``cancelled: timeout of S s``) and the loop fails with
:class:`~loom.engine.errors.LoopTimeout`.

A loop that fails keeps its numbers: the record's ``execution_info`` (``loom run
--json``: the node's ``execution_info``) and the error's ``execution_info``
attribute hold them as far as the loop got (for_each: ``total``, ``completed``,
``failed``, ``not_run``, ``duration_ms``, ``concurrent_peak``, and for batches
``batch_size``, ``items_total``, ``items_completed``, ``items_failed``; while:
``iterations`` and ``duration_ms``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_none,
)

from loom.graph import Node
from loom.registry import Branch, PortSpec

from ..concurrency import Pool
from ..context import LoopControl, StopRequested
from ..errors import BodyFailed, LoopLimitError, LoopTimeout
from ..values import preview
from .base import Setting, Strategy, node_ids, numbers_kept

if TYPE_CHECKING:
    from ..context import RunContext
    from ..flow import NodeCall
    from ..plan import Plan, PlannedNode

FOR_EACH, WHILE = "for_each", "while"
#: DESIGN's own name (use case 1): a while loop without an iteration limit. Kept as
#: written in the file; it runs as ``while`` with ``max_iterations`` -1.
INFINITE = "infinite"
LOOP_PORTS = ("item", "index", "results", "errors", "execution_info")
BODY_PORTS = ("item", "index")


class LoopStrategy(Strategy):
    """``for_each`` and ``while`` loops over an explicit body."""

    mode = "loop"
    single_call = False
    owned_settings = frozenset({"max_retries", "retry_wait", "timeout"})
    settings = (
        Setting("loop_type", "choice", FOR_EACH, "for_each: once per item; while: while the "
                "condition holds; infinite: while without an iteration limit",
                choices=(FOR_EACH, WHILE, INFINITE)),
        Setting("body", "node_ids", [], "the nodes run each time; the last one gives the result"),
        Setting("max_iterations", "int", 1000, "while: the most iterations (-1: no limit)",
                minimum=-1),
        Setting("batch_size", "int", 1, "for_each: items per run of the body", minimum=1),
        Setting("parallel", "bool", False, "for_each: run items concurrently"),
        Setting("max_concurrent", "int", 10, "for_each: items at once when parallel", minimum=1),
        Setting("continue_on_error", "bool", False, "for_each: a failed item leaves null and an "
                "error instead of failing the loop"),
        Setting("max_retries", "int", 1, "for_each: attempts per item (1: no retry)", minimum=1),
        Setting("retry_wait", "float", 0.0, "for_each: seconds before retrying an item; doubles",
                minimum=0),
        Setting("loop_back_to", "node_id", None, "while: the body node whose first output is "
                "carried back into the loop's first input"),
        Setting("timeout", "float", None, "seconds the whole loop may take", minimum=0),
    )
    #: settings only one loop type reads (validation warns about the others)
    only_for: ClassVar[dict[str, frozenset[str]]] = {
        FOR_EACH: frozenset({"batch_size", "parallel", "max_concurrent", "continue_on_error",
                             "max_retries", "retry_wait"}),
        WHILE: frozenset({"max_iterations", "loop_back_to"})}

    def read_settings(self, node: Node) -> frozenset[str]:
        """The loop's settings but the other loop type's (an infinite loop has no limit)."""
        unread = self.only_for[WHILE if self._type(node) == FOR_EACH else FOR_EACH]
        if self.setting(node, "loop_type") == INFINITE:
            unread |= {"max_iterations"}
        return super().read_settings(node) - unread

    # ------------------------------------------------------------------ plan time
    def _type(self, node: Node) -> str:
        """``for_each`` or ``while`` (``infinite`` is a while)."""
        kind = str(self.setting(node, "loop_type"))
        return WHILE if kind == INFINITE else kind

    def output_ports(self, node: Node, outputs: tuple[PortSpec, ...]) -> tuple[PortSpec, ...]:
        """``for_each`` adds item, index, results, errors and execution_info."""
        if self._type(node) != FOR_EACH:
            return outputs
        own = {p.name for p in outputs}
        types = {"index": "int", "results": "list", "errors": "list", "execution_info": "dict"}
        return outputs + tuple(PortSpec(p, types.get(p, "any")) for p in LOOP_PORTS
                               if p not in own)

    def scopes(self, node: Node) -> list[list[str]]:
        """The body."""
        body = node_ids(node.metadata.get("body"))
        return [body] if body else []

    def body_ports(self, node: Node) -> tuple[str, ...]:
        """``item`` and ``index`` for for_each; every output for while (the current value)."""
        return BODY_PORTS if self._type(node) == FOR_EACH else ("*",)  # "*": every output

    def back_edges(self, node: Node) -> bool:
        """A while loop's body wires the next iteration's inputs back into it."""
        return self._type(node) == WHILE

    def validate(self, node: Node, known_ids: Any) -> list[str]:
        """A body is required; loop_back_to must be in it."""
        problems = super().validate(node, known_ids)
        body = node.metadata.get("body")
        if not isinstance(body, list) or not body:
            problems.append("metadata.body must list the loop's body nodes")
        back = node.metadata.get("loop_back_to")
        if isinstance(body, list) and isinstance(back, str) and back not in body:
            problems.append(f"metadata.loop_back_to {back!r} is not in the body")
        return problems

    def check_plan(self, planned: PlannedNode, plan: Plan) -> list[str]:
        """The result node is directly in the body; a while loop has a carried value."""
        node = planned.node
        body = node.metadata.get("body")
        # Junk items were reported by validate(); only a clean body gets this far.
        if not isinstance(body, list) or not body or body != node_ids(body) \
                or body[-1] not in plan.index:
            return []
        last = plan.index[body[-1]]
        if plan.owner[last] != planned.index:
            return [f"the body's last node {body[-1]!r} (its result) runs in a nested body"]
        if self._type(node) == WHILE:
            return self._check_back_edges(planned, plan)
        return []

    def _check_back_edges(self, planned: PlannedNode, plan: Plan) -> list[str]:
        back = planned.node.metadata.get("loop_back_to")
        edges = plan.back_edges.setdefault(planned.index, [])
        if isinstance(back, str) and back in plan.index:
            src = plan.nodes[plan.index[back]]
            if plan.owner[src.index] != planned.index:
                return [f"metadata.loop_back_to {back!r} runs in a nested body"]
            if not any(s == src.index for s, _, _ in edges):
                if not src.outputs or not planned.inputs:
                    return [f"metadata.loop_back_to {back!r}: no output to carry back or no "
                            "input to carry it into"]
                edges.append((src.index, src.outputs[0].name, next(iter(planned.inputs))))
        if not edges:
            return ["a while loop needs a value carried back: wire a body node's output into "
                    "the loop node, or set metadata.loop_back_to"]
        return []

    # ------------------------------------------------------------------ run time
    async def execute(self, call: NodeCall) -> dict[str, Any]:
        """Run the loop under its deadline; the outputs depend on the loop type.

        However it ends, the numbers so far go to the record's ``execution_info``, and
        to the error's ``execution_info`` attribute when it fails.
        """
        timeout = self.setting(call.node, "timeout")
        seconds = None if timeout is None else float(timeout)
        deadline = asyncio.timeout(seconds)
        info: dict[str, Any] = {}
        reason = f"cancelled: timeout of {seconds:g} s" if seconds is not None else ""

        def timed_out() -> str | None:
            return reason if deadline.expired() else None

        with numbers_kept(call, info):
            try:
                async with deadline:
                    if self._type(call.node) == WHILE:
                        return await self._while(call, info, timed_out)
                    return await self._for_each(call, info, timed_out)
            except TimeoutError:
                if not deadline.expired():
                    raise  # a body's or the node's own timeout, not this loop's deadline
                raise LoopTimeout(f"{call.label}: the loop's timeout of {seconds:g} s passed "
                                  f"({_progress(info)})") from None

    async def _for_each(self, call: NodeCall, info: dict[str, Any],
                        timed_out: Callable[[], str | None]) -> dict[str, Any]:
        node = call.node
        value = await call.invoke()
        items = _as_items(value, call.label)
        batch = int(self.setting(node, "batch_size"))
        units = _units(items, batch, info)
        result_node = call.result_node(node.metadata["body"])
        parallel = bool(self.setting(node, "parallel"))
        keep_going = bool(self.setting(node, "continue_on_error"))
        attempts, wait = int(self.setting(node, "max_retries")), float(self.setting(node,
                                                                                   "retry_wait"))
        results: list[Any] = [None] * len(units)
        errors: list[dict[str, Any]] = []
        record = call.flow.state.records[call.planned.index]
        record.iterations = 0
        loop = LoopControl(call.label)
        loop_ctx = call.ctx.in_loop(loop)
        body = call.body(call.members(), keep=[result_node])
        # Once an item fails the loop, the items still running (parallel) are cancelled:
        # their nodes say which item it was.
        failed_item: list[str] = []

        def cancel_reason() -> str | None:
            return timed_out() or (failed_item[0] if failed_item else None)

        async def attempt_unit(k: int, ctx: RunContext, attempt: int) -> None:
            record.iterations += 1
            call.emit("loop_iteration", iteration=k, total=len(units), attempt=attempt,
                      item=preview(units[k]))
            flow = body.flow({"item": units[k], "index": k}, ctx=ctx, scope=k,
                             cancel_reason=cancel_reason)
            await flow.run()
            if flow.failures:
                raise flow.first_failure()
            results[k] = flow.result(result_node)
            _item_done(call, info, k, units, batch, results[k])

        async def run_unit(k: int) -> None:
            await call.flow.state.checkpoint()  # one body run may be too quick to yield on its own
            ctx = loop_ctx.clone() if parallel else loop_ctx
            try:
                if attempts == 1:  # tenacity costs ~60 µs an item; skip it when not retrying
                    await attempt_unit(k, ctx, 1)
                    return
                # A fresh retrying object per item: tenacity's keep per-run state.
                async for attempt in _retrying(attempts, wait):
                    with attempt:
                        await attempt_unit(k, ctx, attempt.retry_state.attempt_number)
            except BodyFailed as exc:
                _count(info, "failed", units[k], batch)
                if not keep_going:
                    if not failed_item:
                        failed_item.append(f"cancelled: item {k} failed")
                    raise exc.within(f"item {k}") from None
                call.handled(exc)
                errors.append({"index": k, "node": exc.node_id, "error": exc.error})

        pool = Pool(len(units), int(self.setting(node, "max_concurrent")) if parallel else 1)
        stop_flag = call.ctx.stop_flag
        # A stop or a break starts no more items (those under way finish: after a stop,
        # within the grace period).
        await _run_pool(pool, run_unit, lambda: stop_flag.is_set() or loop.broken, info)
        _items_ran(call, loop, pool.started, results)
        errors.sort(key=lambda e: e["index"])
        outputs = call.outputs(value, exclude=LOOP_PORTS)
        # execute() adds duration_ms to this dict as it returns.
        outputs.update(results=results, errors=errors, execution_info=info)
        return outputs

    async def _while(self, call: NodeCall, info: dict[str, Any],
                     timed_out: Callable[[], str | None]) -> dict[str, Any]:
        node = call.node
        unbounded = self.setting(node, "loop_type") == INFINITE
        limit = -1 if unbounded else int(self.setting(node, "max_iterations"))
        plan = call.flow.state.plan
        back = plan.back_edges.get(call.planned.index, [])
        body = call.body(call.members(), keep={src for src, _, _ in back})
        inputs = dict(call.kwargs)
        record = call.flow.state.records[call.planned.index]
        record.iterations = 0
        iteration = 0
        info["iterations"] = 0
        state, stop = call.flow.state, call.ctx.stop_flag
        loop = LoopControl(call.label)
        loop_ctx = call.ctx.in_loop(loop)
        while True:
            # Per iteration: an unlimited loop of quick nodes must still let the loop
            # run (the editor, a Stop) and end on a stop.
            await state.checkpoint()
            if stop.is_set():
                raise StopRequested(f"{call.label}: run stopped after {iteration} iterations")
            decision, value = _decide(await call.invoke(**inputs))
            if not decision:
                return call.outputs(value)
            if 0 <= limit <= iteration:
                raise LoopLimitError(f"{call.label} ran {limit} iterations (max_iterations) and "
                                     "its condition still holds")
            record.iterations = iteration + 1
            call.emit("loop_iteration", iteration=iteration, value=preview(value))
            flow = body.flow({p.name: value for p in call.planned.outputs}, ctx=loop_ctx,
                             scope=iteration, cancel_reason=timed_out)
            await flow.run()
            if flow.failures:
                raise flow.first_failure().within(f"iteration {iteration}")
            for src, port, into in back:
                outputs = flow.kept.get(src)
                if isinstance(outputs, dict) and port in outputs:
                    inputs[into] = outputs[port]
            iteration += 1
            info["iterations"] = iteration
            if loop.broken:
                # Ended early: the function reads the carried values once more to give
                # the output, as when its condition fails; its decision is ignored.
                call.emit("loop_break", by=loop.broken_by, ran=iteration)
                _, value = _decide(await call.invoke(**inputs))
                return call.outputs(value)


def _items_ran(call: NodeCall, loop: LoopControl, started: int, results: list[Any]) -> int:
    """How many items ran: all of them, or after a break those started (the rest leave
    ``results``, counted as not run). Fewer without a break means a stop: raise."""
    total = len(results)
    if started < total and not loop.broken:
        raise StopRequested(f"{call.label}: run stopped after {started} of {total} items")
    if loop.broken:
        del results[started:]
        call.emit("loop_break", by=loop.broken_by, ran=started, not_run=total - started)
    return started


async def _run_pool(pool: Pool, job: Callable[[int], Awaitable[None]],
                    stop: Callable[[], bool], info: dict[str, Any]) -> None:
    """Run the items; the peak and the items never started are counted however that ends."""
    try:
        await pool.run(job, stop=stop)
    finally:
        info["concurrent_peak"] = pool.peak
        info["not_run"] = pool.count - pool.started


def _units(items: list[Any], batch: int, info: dict[str, Any]) -> list[Any]:
    """What the body runs once for: the items, or batches of them; the counts start."""
    units = items if batch == 1 else [items[k:k + batch] for k in range(0, len(items), batch)]
    info.update(total=len(units), completed=0, failed=0, not_run=len(units), concurrent_peak=0)
    if batch > 1:  # total/completed/failed count batches; these count the items in them
        info.update(batch_size=batch, items_total=len(items), items_completed=0,
                    items_failed=0)
    return units


def _item_done(call: NodeCall, info: dict[str, Any], k: int, units: list[Any], batch: int,
               result: Any) -> None:
    """Count item (or batch) ``k`` as completed and publish its result (``item_completed``:
    an HTTP stream sends it as it happens)."""
    _count(info, "completed", units[k], batch)
    if call.ctx.bus.active:  # a preview per item costs; nobody may listen
        call.emit("item_completed", index=k, total=len(units), result=preview(result))


def _count(info: dict[str, Any], key: str, unit: Any, batch: int) -> None:
    """One more item (or batch) ``completed`` or ``failed``."""
    info[key] += 1
    if batch > 1:
        info[f"items_{key}"] += len(unit)


def _progress(info: dict[str, Any]) -> str:
    """How far a loop got, for its timeout's message."""
    if "iterations" in info:
        return f"after {info['iterations']} iterations"
    if "total" in info:
        return f"{info['completed']} of {info['total']} items done"
    return "before its items were known"


def _as_items(value: Any, label: str) -> list[Any]:
    if isinstance(value, (str, bytes, dict)) or value is None:
        raise TypeError(f"{label} needs a list of items to loop over, got "
                        f"{type(value).__name__}")
    try:
        return list(value)
    except TypeError:
        raise TypeError(f"{label} needs a list of items to loop over, got "
                        f"{type(value).__name__}") from None


def _decide(result: Any) -> tuple[bool, Any]:
    if isinstance(result, Branch):
        return bool(result.condition), result.value
    return bool(result), result


def _retrying(attempts: int, wait: float) -> AsyncRetrying:
    """Attempts of one item: a failed body reruns whole, waiting ``wait`` s, doubling."""
    return AsyncRetrying(stop=stop_after_attempt(attempts), reraise=True,
                         retry=retry_if_exception_type(BodyFailed),
                         wait=wait_exponential(multiplier=wait, min=wait) if wait > 0
                         else wait_none())
