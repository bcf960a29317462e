"""Calling a node's function: context injection, executors, generators, errors.

Async functions are awaited on the loop. Sync functions run in a worker thread
(so the editor never freezes) unless the spec says ``cheap``, in which case
they run inline on the loop. Generators are drained into a list, reporting each
item as progress. Strategies reach this through ``NodeCall.invoke``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .context import NodeContext
from .executors import Executor, ThreadExecutor
from .values import preview

if TYPE_CHECKING:
    from .flow import RunState
    from .plan import PlannedNode

#: Frames from these folders are plumbing, not the user's code; tracebacks leave them out.
_PLUMBING = (*(str(Path(m.__file__).resolve().parent)
                for m in (asyncio, concurrent.futures) if m.__file__),
             str(Path(__file__).resolve().parent))

#: Executors a node may name, by ``@node(executor=...)``; one instance per run.
EXECUTOR_FACTORIES: dict[str, Callable[[], Executor]] = {"thread": ThreadExecutor}


class NodeError(Exception):
    """A node could not be called at all (as opposed to raising inside its function)."""


async def call_function(run: RunState, planned: PlannedNode, kwargs: dict[str, Any]) -> Any:
    """Run a node's function with ``kwargs`` where its spec says, and return its result."""
    spec = planned.spec
    if spec is None:
        raise NodeError(f"node type {planned.node.type!r} is not installed")
    if spec.wants_ctx:
        kwargs = {**kwargs, "ctx": NodeContext(run.ctx, planned.id)}
    func, kind = spec.func, spec.kind
    if kind == "async":
        return await func(**kwargs)
    if kind == "async_generator":
        items = []
        async for item in func(**kwargs):
            items.append(item)
            run.ctx.emit("node_progress", node=planned.id, items=len(items), item=preview(item))
        return items
    if spec.executor == "inline":
        return call_inline(run, planned, kwargs)
    executor = run.executor(spec.executor)
    if kind == "generator":
        return await executor.call(_drain, {"func": func, "kwargs": kwargs, "run": run,
                                            "node_id": planned.id}, planned.id)
    return await executor.call(func, kwargs, planned.id)


def call_inline(run: RunState, planned: PlannedNode, kwargs: dict[str, Any]) -> Any:
    """Call a quick sync function right on the loop (``cheap`` nodes)."""
    spec = planned.spec
    if spec is None:
        raise NodeError(f"node type {planned.node.type!r} is not installed")
    if spec.wants_ctx:
        kwargs = {**kwargs, "ctx": NodeContext(run.ctx, planned.id)}
    if spec.kind == "generator":
        return _drain(spec.func, kwargs, run, planned.id)
    return spec.func(**kwargs)


def _drain(func: Callable[..., Any], kwargs: dict[str, Any], run: RunState,
           node_id: str) -> list[Any]:
    items = []
    for item in func(**kwargs):
        items.append(item)
        run.ctx.emit("node_progress", node=node_id, items=len(items), item=preview(item))
    return items


def format_error(exc: BaseException) -> tuple[str, str]:
    """``("Type: message", traceback)`` with the engine's own frames left out.

    What remains is the user's code: the node function, or the code node's
    source lines (registered under a ``<code node …>`` file name).
    """
    te = traceback.TracebackException.from_exception(exc, capture_locals=False)
    _trim(te)
    message = "".join(te.format_exception_only()).strip()
    return message, "".join(te.format())


def _trim(te: traceback.TracebackException) -> None:
    seen = set()
    while te is not None and id(te) not in seen:
        seen.add(id(te))
        frames = [f for f in te.stack if not f.filename.startswith(_PLUMBING)]
        te.stack = traceback.StackSummary.from_list(frames or list(te.stack))
        te = te.__cause__ or te.__context__  # type: ignore[assignment]
