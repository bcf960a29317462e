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
from types import FrameType
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
    """``("Type: message", traceback)`` showing only the user's code.

    Frames of the engine, asyncio and the thread pool are left out, and so are
    frames of functions that set ``__tracebackhide__ = True`` (the pytest
    convention; the code node uses it so its source lines come first).
    """
    te = traceback.TracebackException.from_exception(exc)
    seen: set[int] = set()
    current: BaseException | None = exc
    part: traceback.TracebackException | None = te
    while current is not None and part is not None and id(current) not in seen:
        seen.add(id(current))
        frames = [(f, n) for f, n in traceback.walk_tb(current.__traceback__) if _shown(f)]
        if frames:
            part.stack = traceback.StackSummary.extract(frames)
        current, part = ((current.__cause__, part.__cause__) if current.__cause__ is not None
                         else (current.__context__, part.__context__))
    message = "".join(te.format_exception_only()).strip()
    return message, "".join(te.format())


def _shown(frame: FrameType) -> bool:
    return (not frame.f_code.co_filename.startswith(_PLUMBING)
            and not frame.f_locals.get("__tracebackhide__", False))
