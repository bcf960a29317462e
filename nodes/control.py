"""Control nodes: if, switch, merge and the Python code node, and the built-in
predicates a conditional node's ``condition_func`` may name.

Their ids and ports are stable (DESIGN.md, "built-in control nodes"): graphs and
docs rely on them. They are written with the public ``@node`` API only.
"""

from __future__ import annotations

import ast
import functools
import inspect
import linecache
from collections.abc import Callable, Mapping
from typing import Any, Literal

from loom import Branch, node, predicate
from loom.engine.limits import rate_problem
from loom.registry import port_names


@node(id="control.if", category="Control", outputs=["true", "false"], mode="conditional",
      cheap=True)
def if_(value: Any = None, condition: Any = None) -> Branch:
    """Send ``value`` out of ``true`` or ``false``.

    The decision is the truthiness of ``condition``, or of ``value`` itself when
    ``condition`` is left empty. The port not taken carries nothing, so the
    nodes after it are skipped.
    """
    return Branch(value if condition is None else condition, value)


# ------------------------------------------------- predicates for condition_func


@predicate
def truthy(value: Any) -> bool:
    """Python's truth: not None, 0, "", an empty list or dict, False."""
    return bool(value)


@predicate
def is_none(value: Any) -> bool:
    """The value is None (null)."""
    return value is None


@predicate
def not_none(value: Any) -> bool:
    """The value is anything but None (0 and "" included)."""
    return value is not None


@predicate
def is_empty(value: Any) -> bool:
    """None, or a string, list or object without items."""
    if value is None:
        return True
    try:
        return len(value) == 0
    except TypeError:
        return False


@predicate
def not_empty(value: Any) -> bool:
    """Not None, and a string, list or object with items (or a value without a length)."""
    return not is_empty(value)


def _rate_check(properties: Mapping[str, Any]) -> list[str]:
    """A rate that could never limit anything is a validation error, found before a run."""
    message = rate_problem(properties.get("per_second"), properties.get("burst"))
    return [message] if message else []


@node(id="control.rate_limit", category="Control", outputs=["value", "waited_ms", "limited"],
      params=["per_second", "burst", "mode"], check=_rate_check)
async def rate_limit(ctx: Any, value: Any = None, key: Any = "default", per_second: float = 1.0,
                     burst: int = 1, mode: Literal["wait", "try"] = "wait") -> dict[str, Any]:
    """Pass ``value`` on once a token of the limiter named by ``key`` is free.

    ``key`` is an input, so a limit can be per user or per item; the limiter of a key
    holds ``burst`` tokens refilled ``per_second`` a second, and is shared by the whole
    run: every branch, loop item and wave of an event graph, and any ``rate_limit``
    policy using the same key. ``waited_ms`` tells how long the value waited. In
    ``try`` mode the node never waits: without a free token the value leaves by
    ``limited`` instead and ``value`` / ``waited_ms`` carry nothing (as the port not
    taken by an if). A stop ends a wait at once.
    """
    waited = await ctx.rate_limit(str(key), per_second, burst, wait=mode != "try")
    if waited is None:
        return {"limited": value}
    return {"value": value, "waited_ms": round(waited * 1000.0, 3)}


@node(id="control.switch", category="Control", outputs=[], mode="switch", cheap=True,
      metadata={"cases": [{"values": [], "port": "case_0"}], "default": "default"})
def switch(value: Any) -> Any:
    """Send ``value`` out of the port of the first case listing it, else ``default``.

    Cases live in the node's metadata: ``[{"values": [1, 2], "port": "small"}, ...]``.
    """
    return value


@node(id="control.merge", category="Control", join="first", join_param="mode",
      params=["inputs", "mode"], dynamic_inputs="inputs", cheap=True)
def merge(inputs: str = "a, b", mode: Literal["first", "all"] = "first",
          **values: Any) -> Any:
    """Join branches: pass on the first value that arrives, or wait for all of them.

    ``inputs`` lists the input ports. With ``mode`` ``first`` (the default) the
    first value to arrive on any input leaves by ``out``; the others may be skipped.
    With ``all`` the merge waits until every input has delivered and sends out an
    object of the values that arrived, keyed by port in the order ``inputs`` lists
    them (inputs that were skipped are left out: n8n's "wait for both"). Either way
    the merge is skipped only when all of its inputs are.
    """
    if mode == "all":
        order = [p.strip() for p in inputs.split(",") if p.strip()]
        return {**{p: values[p] for p in order if p in values},
                **{p: v for p, v in values.items() if p not in order}}
    return next(iter(values.values()), None)


@node(id="control.for_each", category="Control", outputs=[], mode="loop", cheap=True,
      metadata={"loop_type": "for_each", "body": []})
def for_each(items: list) -> list:
    """Run the nodes in ``metadata.body`` once per item.

    ``item`` and ``index`` feed the body; ``results`` holds the body's last node's value
    for each item, in order; ``errors`` and ``execution_info`` tell how it went.
    """
    return items


@node(id="control.while", category="Control", mode="loop", cheap=True,
      metadata={"loop_type": "while", "body": [], "max_iterations": 1000})
def while_(value: Any = None, condition: Any = None) -> Any:
    """Run the nodes in ``metadata.body`` while ``condition`` (or, if empty, ``value``) holds.

    ``out`` feeds the body the current value each iteration and, once the condition
    fails, passes the last value on. Wire a body node back into ``value`` (and
    ``condition``) to carry the next iteration's value.
    """
    return Branch(value if condition is None else condition, value)


@node(id="control.parallel", category="Control", outputs=[], mode="parallel", cheap=True,
      metadata={"parallel_branches": []})
def parallel(value: Any = None) -> Any:
    """Run the branches in ``metadata.parallel_branches`` at the same time.

    ``value`` goes into every branch; ``results`` holds each branch's last node's value.
    """
    return value


def _code_check(properties: Mapping[str, Any]) -> list[str]:
    """A body that does not compile is a validation error with its line (never run)."""
    source = str(properties.get("code") or "")
    try:
        compile(_tree(source, _params(properties)), "<code>", "exec")
    except (SyntaxError, ValueError) as exc:
        return [_syntax_message(exc, source)]
    return []


def _code_variant(properties: Mapping[str, Any]) -> Callable[..., Any] | None:
    """A body that awaits runs as an async node, on the event loop."""
    return _code_async if _awaits(str(properties.get("code") or "")) else None


@node(id="control.code", category="Control", params=["code", "inputs", "outputs"],
      dynamic_inputs="inputs", dynamic_outputs="outputs", check=_code_check,
      variant=_code_variant)
def code(ctx: Any, code: str = "return value", inputs: str = "value", outputs: str = "out",
         **values: Any) -> Any:
    """Run Python: the ``code`` property is the body of a function.

    The inputs (named in ``inputs``) are its parameters, and ``ctx`` is the run
    context. ``return`` gives the output; with several ``outputs``, return a
    tuple in that order or a dict by name. Errors point at the line of this code.
    A body that uses ``await`` (``await ctx.sleep(1)``, ``await asyncio.sleep(0)``)
    is an ``async def`` and runs on the event loop; any other body runs in a worker
    thread. A body that does not compile is a validation error, found before a run.
    The code is not sandboxed: it can do whatever Python can.
    """
    __tracebackhide__ = True  # errors should point at the user's code, not this wrapper
    func = _compile(code, tuple(values), f"<code node {ctx.node_id}>")
    if inspect.iscoroutinefunction(func):
        # Only a caller that bypasses the engine's plan gets here (the plan runs such
        # a body through _code_async); running it in a thread could never await.
        raise TypeError("this code awaits: it runs as an async node (the engine picks "
                        "that when the graph is planned)")
    return func(ctx=ctx, **values)


async def _code_async(ctx: Any, code: str = "return value", inputs: str = "value",
                      outputs: str = "out", **values: Any) -> Any:
    """The code node for a body that awaits: ``code`` compiled as an ``async def``."""
    __tracebackhide__ = True  # errors should point at the user's code, not this wrapper
    func = _compile(code, tuple(values), f"<code node {ctx.node_id}>")
    return await func(ctx=ctx, **values)


def _params(properties: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(port_names(properties.get("inputs", "value")))


def _syntax_message(exc: SyntaxError | ValueError, source: str) -> str:
    if isinstance(exc, SyntaxError):
        line = f"line {exc.lineno}: " if exc.lineno else ""
        # Errors found compiling the tree (not parsing) carry no text: take the line.
        lines = source.splitlines()
        text = exc.text or (lines[exc.lineno - 1] if exc.lineno and
                            0 < exc.lineno <= len(lines) else "")
        text = f" ({text.strip()})" if text.strip() else ""
        return f"code does not compile: {line}{exc.msg}{text}"
    return f"code does not compile: {exc}"  # e.g. a null character in the source


def _awaits(source: str) -> bool:
    """Does the body itself await (``await``, ``async for``, ``async with``)?

    Functions defined inside it do not count: their awaits are their own.
    """
    try:
        module = ast.parse(source or "pass")
    except (SyntaxError, ValueError):
        return False  # reported by the check; it never runs
    pending: list[ast.AST] = list(module.body)
    while pending:
        item = pending.pop()
        if isinstance(item, (ast.Await, ast.AsyncFor, ast.AsyncWith)):
            return True
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        pending.extend(ast.iter_child_nodes(item))
    return False


def _tree(source: str, params: tuple[str, ...]) -> ast.Module:
    # The source becomes the body of `def __code__(<inputs>, *, ctx)` (`async def`
    # when it awaits), built from the AST so line numbers are the user's own.
    module = ast.parse(source or "pass", filename="<code>")
    args = ast.arguments(posonlyargs=[], args=[ast.arg(p) for p in params], vararg=None,
                         kwonlyargs=[ast.arg("ctx")], kw_defaults=[None], kwarg=None,
                         defaults=[])
    kind = ast.AsyncFunctionDef if _awaits(source) else ast.FunctionDef
    func = kind(name="__code__", args=args, body=module.body or [ast.Pass()],
                decorator_list=[], returns=None, type_comment=None, lineno=1, col_offset=0)
    return ast.fix_missing_locations(ast.Module(body=[func], type_ignores=[]))


@functools.lru_cache(maxsize=256)
def _compile(source: str, params: tuple[str, ...], filename: str) -> Callable[..., Any]:
    # Registering the source in linecache lets tracebacks print the offending line.
    tree = _tree(source, params)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {}
    exec(compile(tree, filename, "exec"), namespace)  # running it is this node's purpose
    result: Callable[..., Any] = namespace["__code__"]
    return result
