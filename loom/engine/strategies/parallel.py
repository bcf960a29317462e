"""``parallel``: run branches of nodes concurrently, each on a clone of the context.

``metadata.parallel_branches`` lists the branches: a list of lists of node ids
(each branch is named after its last node) or an object of named lists. A
branch's result is the value of its *last node listed* (its ``out`` port, its
``results`` for a nested loop or parallel node, or its only port, or a dict of
all its ports). The node's function runs first; its
result goes into every branch along wires from the node's ``value`` port
(``control.parallel`` passes on its optional ``value`` input).

No branch sees another's writes to ``ctx.vars``, nested values included (each
works on a copy-on-write clone). Settings:

- ``max_concurrency``: branches at once (default: all);
- ``timeout``: seconds per branch; ``global_timeout``: seconds for all of them;
- ``on_error``: ``fail_fast`` (default: the first failure cancels the branches
  still running, whose ``finally`` blocks run, and fails the node with that
  error), ``continue`` (failed branches leave ``null`` in their slot and an entry
  in ``errors``), ``ignore`` (failed branches are left out of ``results``);
  Blok's ``fail-fast`` and ``continue-partial`` are accepted for ``fail_fast`` and
  ``continue`` (and kept as written in the file);
- ``merge_strategy``: ``object`` (results by branch name, default) or ``array``
  (in branch order);
- ``strategy``: ``sequential`` runs the branches one after another (debugging);
- ``max_retries`` (attempts per branch, default 1) and ``retry_wait`` (seconds before
  the first retry, doubling): a failed or timed-out branch runs again, whole, on a
  fresh clone of the context (``node_retrying`` with ``branch`` says so); only its
  last attempt's failure counts. No retry once the ``global_timeout`` passed or a stop
  was requested.

A node cancelled because its branch timed out or a sibling failed records why
(``cancelled: timeout of 2 s``, ``cancelled: sibling branch 'b' failed (fail_fast)``);
failed branches that ``continue`` or ``ignore`` absorbed are marked handled.

Outputs: ``results``, ``errors`` and ``execution_info`` (``total``, ``completed``,
``failed``, ``duration_ms`` and ``concurrent_peak``, measured). Each branch's
result is published as ``branch_completed`` the moment it finishes. A parallel node
that fails keeps these numbers, as far as it got: in its record's
``execution_info`` (``loom run --json``) and the error's ``execution_info`` attribute.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from loom.graph import Node
from loom.registry import PortSpec

from ..concurrency import Pool
from ..context import StopRequested
from ..errors import BodyFailed
from ..values import preview
from .base import Setting, Strategy, numbers_kept

if TYPE_CHECKING:
    from ..flow import NodeCall
    from ..plan import Plan, PlannedNode

PARALLEL_PORTS = ("results", "errors", "execution_info", "value")
ON_ERROR = ("fail_fast", "continue", "ignore")
#: Blok's names for the same policies
ON_ERROR_ALIASES = {"fail-fast": "fail_fast", "continue-partial": "continue"}
BODY_PORT = "value"


class BranchTimeout(TimeoutError):
    """A branch ran past its ``timeout`` or the node's ``global_timeout``."""


class ParallelStrategy(Strategy):
    """Concurrent branches with isolation, limits, timeouts and an error policy."""

    mode = "parallel"
    single_call = False
    owned_settings = frozenset({"timeout", "on_error", "max_retries", "retry_wait"})
    settings = (
        Setting("parallel_branches", "node_id_lists", [], "the branches: lists of node ids "
                "(or an object of named lists); a branch's last node gives its result"),
        Setting("max_concurrency", "int", None, "branches at once (default: all)", minimum=1),
        Setting("timeout", "float", None, "seconds each branch may take", minimum=0),
        Setting("global_timeout", "float", None, "seconds all branches may take", minimum=0),
        Setting("on_error", "choice", "fail_fast", "what a failed branch does (fail-fast, "
                "continue-partial: Blok's names for fail_fast, continue)",
                choices=ON_ERROR + tuple(ON_ERROR_ALIASES)),
        Setting("merge_strategy", "choice", "object", "results by branch name, or in order",
                choices=("object", "array")),
        Setting("strategy", "choice", "parallel", "sequential runs branches one by one",
                choices=("parallel", "sequential")),
        Setting("max_retries", "int", 1, "attempts per branch (1: no retry)", minimum=1),
        Setting("retry_wait", "float", 0.0, "seconds before retrying a branch; doubles",
                minimum=0),
    )

    def output_ports(self, node: Node, outputs: tuple[PortSpec, ...]) -> tuple[PortSpec, ...]:
        """results, errors, execution_info, and value (into the branches)."""
        own = {p.name for p in outputs}
        types = {"errors": "list", "execution_info": "dict"}
        return outputs + tuple(PortSpec(p, types.get(p, "any")) for p in PARALLEL_PORTS
                               if p not in own)

    def scopes(self, node: Node) -> list[list[str]]:
        """The branches."""
        return [ids for _, ids in branches(node)]

    def body_ports(self, node: Node) -> tuple[str, ...]:
        """``value`` feeds every branch."""
        return (BODY_PORT,)

    def validate(self, node: Node, known_ids: Any) -> list[str]:
        """Branches are required, non-empty, with distinct names and no shared node."""
        problems = super().validate(node, known_ids)
        found = branches(node)
        if not found:
            problems.append("metadata.parallel_branches must list at least one branch")
        if any(not ids for _, ids in found):
            problems.append("metadata.parallel_branches has an empty branch")
        seen: dict[str, str] = {}
        for name, ids in found:
            for node_id in ids:
                if node_id in seen and seen[node_id] != name:
                    problems.append(f"node {node_id!r} is in branches {seen[node_id]!r} and "
                                    f"{name!r}")
                seen[node_id] = name
        names = [name for name, _ in found]
        if len(set(names)) != len(names):
            problems.append("two branches end in the same node; name them with an object")
        return problems

    def check_plan(self, planned: PlannedNode, plan: Plan) -> list[str]:
        """Each branch's last node runs directly in the branch."""
        return [f"branch {name!r}: its last node {ids[-1]!r} (its result) runs in a nested body"
                for name, ids in branches(planned.node)
                if ids and ids[-1] in plan.index
                and plan.owner[plan.index[ids[-1]]] != planned.index]

    async def execute(self, call: NodeCall) -> dict[str, Any]:
        """Run the branches; merge their results. However it ends, the numbers so far go
        to the record's ``execution_info`` (and the error's, when it fails)."""
        found = branches(call.node)
        info: dict[str, Any] = {"total": len(found), "completed": 0, "failed": 0,
                                "concurrent_peak": 0}
        with numbers_kept(call, info):
            return await self._run(call, found, info)

    async def _run(self, call: NodeCall, found: list[tuple[str, list[str]]],
                   info: dict[str, Any]) -> dict[str, Any]:
        node = call.node
        value = await call.invoke()
        on_error = str(self.setting(node, "on_error"))
        run = _Branches(call, found, value, ON_ERROR_ALIASES.get(on_error, on_error),
                        self.setting(node, "timeout"), info)
        run.attempts = int(self.setting(node, "max_retries"))
        run.retry_wait = float(self.setting(node, "retry_wait"))
        limit = self.setting(node, "max_concurrency") or len(run.found)
        pool = Pool(len(run.found), 1 if self.setting(node, "strategy") == "sequential"
                    else int(limit))
        global_timeout = self.setting(node, "global_timeout")
        run.global_timeout = None if global_timeout is None else float(global_timeout)
        run.deadline = asyncio.timeout(run.global_timeout)
        # A stop starts no more branches (those under way may finish in the grace period).
        stop = call.ctx.stop_flag.is_set
        try:
            async with run.deadline:
                await pool.run(run.branch, stop=stop)
        except TimeoutError:
            if not run.deadline.expired():
                raise  # a branch's own timeout under fail_fast: its error names the branch
            message = f"global_timeout of {run.global_timeout:g} s reached"
            run.time_out_the_rest(message)
            info["failed"] = len(run.failed)
            if run.on_error == "fail_fast":
                raise BranchTimeout(f"{call.label}: {message}") from None
        finally:
            info["concurrent_peak"] = pool.peak
        if pool.started < len(run.found) and stop():
            raise StopRequested(f"{call.label}: run stopped after {pool.started} of "
                                f"{len(run.found)} branches started")
        merged, errors = run.merged(str(self.setting(node, "merge_strategy")))
        # execute() adds duration_ms to this dict as it returns.
        outputs = call.outputs(value, exclude=PARALLEL_PORTS)
        outputs.update(results=merged, errors=errors, execution_info=info)
        outputs[BODY_PORT] = call.skip("value only feeds the branches")
        return outputs


class _Branches:
    """One parallel node's run: each branch's flow, result or failure."""

    def __init__(self, call: NodeCall, found: list[tuple[str, list[str]]], value: Any,
                 on_error: str, timeout: Any, info: dict[str, Any]) -> None:
        self.call, self.found, self.value = call, found, value
        #: the node's execution_info, counted as branches end
        self.info = info
        #: attempts per branch, and the wait before the first retry (doubling)
        self.attempts = 1
        self.retry_wait = 0.0
        self.on_error = on_error
        self.timeout = None if timeout is None else float(timeout)
        self.results: list[Any] = [None] * len(found)
        self.failed: dict[int, BodyFailed | BranchTimeout] = {}
        self.done: set[int] = set()
        self.record = call.flow.state.records[call.planned.index]
        self.record.iterations = 0
        #: the whole node's ``global_timeout`` and its deadline (set by execute)
        self.global_timeout: float | None = None
        self.deadline = asyncio.timeout(None)
        #: why branches still running are being cancelled, once one failed under fail_fast
        self.sibling_failed: str | None = None

    async def branch(self, k: int) -> None:
        """Run branch ``k`` on a clone of the context; record and publish how it ended."""
        call, (name, ids) = self.call, self.found[k]
        started = time.perf_counter()
        self.record.iterations += 1
        result_node = call.result_node(ids)
        try:
            attempt = 1
            while True:
                try:
                    result = await self._attempt(k, name, ids, result_node)
                    break
                except (BodyFailed, BranchTimeout) as exc:
                    if not await self._retry(name, attempt, exc):
                        raise
                    attempt += 1
        except (BodyFailed, BranchTimeout) as exc:
            self.failed[k] = exc
            self.info["failed"] += 1
            _completed(call, k, name, started, error=exc)
            if self.on_error == "fail_fast":
                if self.sibling_failed is None:
                    self.sibling_failed = f"cancelled: sibling branch {name!r} failed (fail_fast)"
                raise
            if isinstance(exc, BodyFailed):
                call.handled(exc)  # the node's on_error dealt with it
            return
        except asyncio.CancelledError:
            _completed(call, k, name, started, cancelled=True)
            raise
        self.results[k] = result
        self.done.add(k)
        self.info["completed"] += 1
        _completed(call, k, name, started, result=result)

    async def _attempt(self, k: int, name: str, ids: list[str], result_node: int) -> Any:
        """One run of branch ``k`` on a fresh clone of the context; its result."""
        call = self.call
        own = asyncio.timeout(self.timeout)

        def cancel_reason() -> str | None:
            # Asked by the branch's nodes as they are cancelled: whose deadline it was.
            if own.expired():
                return f"cancelled: timeout of {self.timeout:g} s"
            if self.deadline.expired():
                return f"cancelled: global_timeout of {self.global_timeout:g} s"
            return self.sibling_failed

        flow = call.body(call.members(ids), keep=[result_node]).flow(
            {BODY_PORT: self.value}, ctx=call.ctx.clone(), scope=name, cancel_reason=cancel_reason)
        try:
            async with own:
                await flow.run()
        except TimeoutError:
            if not own.expired():
                raise
            raise BranchTimeout(f"branch {name!r} timed out after "
                                f"{self.timeout:g} s") from None
        if flow.failures:
            raise flow.first_failure().within(f"branch {name!r}")
        return flow.result(result_node)

    async def _retry(self, name: str, attempt: int, error: BaseException) -> bool:
        """After a failed attempt: wait and say so if the branch gets another one."""
        if attempt >= self.attempts or self.call.ctx.stop_flag.is_set() \
                or self.sibling_failed is not None:
            return False
        wait = self.retry_wait * 2 ** (attempt - 1)
        self.call.emit("node_retrying", branch=name, attempt=attempt + 1, error=str(error),
                       wait=wait)
        if wait > 0:
            await asyncio.sleep(wait)
        return True

    def time_out_the_rest(self, message: str) -> None:
        """After the global timeout: every branch that had not ended has failed."""
        for k, (name, _) in enumerate(self.found):
            if k not in self.done and k not in self.failed:
                self.failed[k] = BranchTimeout(f"branch {name!r}: {message}")

    def merged(self, merge_strategy: str) -> tuple[Any, list[dict[str, Any]]]:
        """``results`` and ``errors`` as the policies say."""
        keep = [k for k in range(len(self.found))
                if k not in self.failed or self.on_error == "continue"]
        if merge_strategy == "array":
            merged: Any = [self.results[k] for k in keep]
        else:
            merged = {self.found[k][0]: self.results[k] for k in keep}
        errors = [] if self.on_error == "ignore" else [
            {"branch": self.found[k][0], "error": str(exc),
             "node": getattr(exc, "node_id", None)} for k, exc in sorted(self.failed.items())]
        return merged, errors


def branches(node: Node) -> list[tuple[str, list[str]]]:
    """``(name, node ids)`` of each branch, in order; malformed entries are left out."""
    raw = node.metadata.get("parallel_branches")
    if isinstance(raw, dict):
        pairs = list(raw.items())
    elif isinstance(raw, list):
        pairs = [(ids[-1] if isinstance(ids, list) and ids and isinstance(ids[-1], str) else
                  f"branch_{k}", ids) for k, ids in enumerate(raw)]
    else:
        return []
    return [(str(name), [i for i in ids if isinstance(i, str)]) for name, ids in pairs
            if isinstance(ids, list)]


def _completed(call: NodeCall, index: int, name: str, started: float, *, result: Any = None,
               error: BaseException | None = None, cancelled: bool = False) -> None:
    status = "cancelled" if cancelled else "failed" if error is not None else "done"
    call.emit("branch_completed", branch=name, index=index, total=len(branches(call.node)),
              status=status,
              duration_ms=(time.perf_counter() - started) * 1000.0,
              result=None if error is not None else preview(result),
              error=None if error is None else str(error))
