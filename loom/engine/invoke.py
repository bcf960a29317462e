"""Calling a node's function: context injection, executors, generators, errors.

Async functions are awaited on the loop. Sync functions run in a worker thread
(so the editor never freezes) unless the spec says ``cheap``, in which case
they run inline on the loop. Generators are drained into a list, reporting each
item as progress. Strategies reach this through ``NodeCall.invoke``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import concurrent.futures.process
import traceback
from collections.abc import Callable, Generator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import aiolimiter
import tenacity

from .context import NodeContext, RunContext
from .dask_executor import DaskExecutor
from .errors import NodeAborted, node_aborted
from .executors import Executor, ThreadExecutor
from .processes import ProcessExecutor
from .values import preview

if TYPE_CHECKING:
    from loom.registry import NodeSpec

    from .flow import RunState
    from .plan import PlannedNode

#: Frames from these folders are plumbing, not the user's code; tracebacks leave them out
#: (tenacity and aiolimiter wrap a node's call when it has retries or a rate limit).
_PLUMBING = (*(str(Path(m.__file__).resolve().parent)
               for m in (asyncio, concurrent.futures, tenacity, aiolimiter) if m.__file__),
             str(Path(__file__).resolve().parent))

#: Executors a node may name, by ``@node(executor=...)``; one instance per run.
EXECUTOR_FACTORIES: dict[str, Callable[[], Executor]] = {"thread": ThreadExecutor,
                                                         "process": ProcessExecutor,
                                                         "dask": DaskExecutor}

#: Run-wide executor choices (``loom run --executor``); None keeps each node's own.
RUN_EXECUTORS = ("local", "dask")


class NodeError(Exception):
    """A node could not be called at all (as opposed to raising inside its function)."""


async def call_function(run: RunState, planned: PlannedNode, kwargs: dict[str, Any],
                        ctx: RunContext) -> Any:
    """Run a node's function with ``kwargs`` where its spec says, and return its result.

    ``ctx`` is the context of the flow the node runs in (a parallel branch has its own).
    """
    spec = planned.spec
    if spec is None:
        raise NodeError(f"node type {planned.node.type!r} is not installed")
    if spec.wants_ctx:
        kwargs = {**kwargs, "ctx": NodeContext(ctx, planned.id)}
    func, kind = spec.func, spec.kind
    try:
        if kind == "async":
            return await func(**kwargs)
        if kind == "async_generator":
            items = []
            async for item in func(**kwargs):
                items.append(item)
                ctx.emit("node_progress", node=planned.id, items=len(items),
                         item=preview(item))
            return items
        if spec.executor == "inline":
            return call_inline(planned, kwargs, ctx)
        executor = run.executor(executor_name(spec, run.executor_override))
        if kind == "generator":
            return await executor.call(_drain, {"func": func, "kwargs": kwargs, "ctx": ctx,
                                                "node_id": planned.id}, planned.id)
        return await executor.call(func, kwargs, planned.id)
    except (Exception, asyncio.CancelledError):
        raise  # a failure, or a cancel the flow tells apart from a stop
    except BaseException as exc:
        # Raised here, inside the node's coroutine: past it, asyncio would re-raise a
        # SystemExit or KeyboardInterrupt out of the event loop and end the program.
        raise node_aborted(exc) from exc


def executor_name(spec: NodeSpec, override: str | None) -> str:
    """The executor a node runs on, given the run's choice (see RUN_EXECUTORS).

    ``"dask"`` sends every node that would leave the loop (thread and process
    nodes) to the cluster if it is :attr:`~NodeSpec.portable`. ``"local"`` keeps
    Dask nodes on this machine, in the process executor.
    """
    own = spec.executor
    if override == "dask" and own in ("thread", "process") and spec.portable:
        return "dask"
    if override == "local" and own == "dask":
        return "process"
    return own


def call_inline(planned: PlannedNode, kwargs: dict[str, Any], ctx: RunContext) -> Any:
    """Call a quick sync function right on the loop (``cheap`` nodes)."""
    spec = planned.spec
    if spec is None:
        raise NodeError(f"node type {planned.node.type!r} is not installed")
    if spec.wants_ctx:
        kwargs = {**kwargs, "ctx": NodeContext(ctx, planned.id)}
    if spec.kind == "generator":
        return _drain(spec.func, kwargs, ctx, planned.id)
    return spec.func(**kwargs)


def _drain(func: Callable[..., Any], kwargs: dict[str, Any], ctx: RunContext,
           node_id: str) -> list[Any]:
    items = []
    for item in func(**kwargs):
        items.append(item)
        ctx.emit("node_progress", node=node_id, items=len(items), item=preview(item))
    return items


def format_error(exc: BaseException) -> tuple[str, str]:
    """``("Type: message", traceback)`` showing only the user's code.

    Frames of the engine, asyncio and the thread pool are left out, and so are
    frames of functions that set ``__tracebackhide__ = True`` (the pytest
    convention; the code node uses it so its source lines come first).
    """
    te = traceback.TracebackException.from_exception(exc)
    shown = te
    seen: set[int] = set()
    current: BaseException | None = exc
    part: traceback.TracebackException | None = te
    newer: tuple[traceback.TracebackException, str] | None = None  # the link to `part`
    while current is not None and part is not None and id(current) not in seen:
        seen.add(id(current))
        frames = [(f, n) for f, n in traceback.walk_tb(current.__traceback__) if _shown(f)]
        if frames or isinstance(current, NodeAborted):
            # A NodeAborted is raised by the engine only: none of its frames are the user's.
            part.stack = traceback.StackSummary.extract(frames)
        remote = current.__cause__
        if isinstance(remote, _RemoteTraceback):
            # Raised in a worker process (the process executor, or a process pool
            # the node used itself): the user's frames are in the worker's traceback.
            worker = _WorkerTraceback(remote.tb)
            if frames:  # user code on this side too: show both, worker first
                part.__cause__ = worker
            elif newer is None:  # only plumbing here: the worker's traceback is all
                shown = worker
            else:
                setattr(newer[0], newer[1], worker)
            break
        link = "__cause__" if current.__cause__ is not None else "__context__"
        newer = (part, link)
        current, part = getattr(current, link), getattr(part, link)
    message = "".join(te.format_exception_only()).strip()
    if type(exc).__module__.startswith("loom."):
        # The engine's own errors: the class name is enough, and a body failure's
        # message already names the node and its error.
        message = str(exc) if getattr(exc, "bare_message", False) else \
            f"{type(exc).__name__}: {exc}"
    return message, "".join(shown.format())


#: What concurrent.futures (and the process executor) attach as ``__cause__`` to an
#: exception from a worker process: the worker's formatted traceback, as text.
_RemoteTraceback = concurrent.futures.process._RemoteTraceback


class _WorkerTraceback(traceback.TracebackException):
    """Stands in a traceback chain for a worker's traceback, printed as the worker wrote it.

    The worker formats its traceback where its frames are (the process executor
    uses :func:`format_error` there); only the text crosses the process boundary.
    """

    def __init__(self, text: str) -> None:
        # No super().__init__(): there is no exception object here to read.
        for quote in ('\n"""\n', "\n'''\n"):  # how concurrent.futures frames the text
            if text.startswith(quote) and text.endswith(quote[1:4]):
                text = text[len(quote):-3]
        self.text = text if text.endswith("\n") else text + "\n"
        # What TracebackException.format() reads of a part of the chain.
        self.stack = traceback.StackSummary()
        self.exceptions = None
        self.__cause__ = self.__context__ = None
        self.__suppress_context__ = False
        self.__notes__ = None
        self.max_group_width, self.max_group_depth = 15, 10

    def format_exception_only(self, **_: Any) -> Generator[str, None, None]:
        """The worker's whole traceback (it ends with the exception's own line)."""
        yield self.text


def _shown(frame: FrameType) -> bool:
    return (not frame.f_code.co_filename.startswith(_PLUMBING)
            and not frame.f_locals.get("__tracebackhide__", False))
