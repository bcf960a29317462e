"""The ``@node`` authoring API: a Python function becomes a node type.

The decorator reads the function's signature once and attaches a frozen
:class:`NodeSpec` to it as ``__loom_spec__``; the function itself is returned
unchanged, so it can still be called and tested as plain Python. Registries
collect specs from modules; nothing is registered globally at import time.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from loom.graph.migrations import Migration

from .types import ANY, port_type

#: Marker for "this port has no default" (required input).
REQUIRED: Any = inspect.Parameter.empty

Executor = Literal["inline", "thread", "process", "dask", "async"]
Join = Literal["all", "first"]
Kind = Literal["function", "async", "generator", "async_generator"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class PortSpec:
    """One input or output port (or a property that is not wired)."""

    name: str
    type: str = ANY
    default: Any = REQUIRED
    nullable: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def required(self) -> bool:
        """An input with no default must be wired or given a property value."""
        return self.default is REQUIRED


@dataclass(frozen=True)
class Branch:
    """What a conditional node may return: the decision and the value passed on.

    A conditional node returning anything else decides by that value's
    truthiness and passes the value itself. ``control.if`` returns
    ``Branch(condition, value)`` so the value leaves by the port taken.
    """

    condition: Any
    value: Any = None


@dataclass(frozen=True, eq=False)
class NodeSpec:
    """Everything the editor and the engine need to know about a node type."""

    type_id: str
    func: Callable[..., Any]
    name: str
    category: str
    description: str = ""
    inputs: tuple[PortSpec, ...] = ()
    outputs: tuple[PortSpec, ...] = ()
    #: parameters shown as properties but never wired (e.g. the code node's source)
    params: tuple[PortSpec, ...] = ()
    kind: Kind = "function"
    executor: Executor = "thread"
    wants_ctx: bool = False
    #: "first": ready when any input has a value (a merge); "all": when all have
    join: Join = "all"
    #: name of a parameter whose value picks the join per node: ``"first"`` as above,
    #: or ``"all"``: ready once every input has delivered, running with the inputs that
    #: carry a value and skipped only when all are skipped (a merge that waits)
    join_param: str | None = None
    #: name of a property listing extra input / output ports (code and merge nodes)
    dynamic_inputs: str | None = None
    dynamic_outputs: str | None = None
    #: metadata a new node of this type starts with, e.g. its execution mode
    metadata: Mapping[str, Any] = field(default_factory=dict)
    version: int = 1
    migrations: Mapping[int, Migration] = field(default_factory=dict)
    #: ``check(properties)``: problems with a node's properties (a code node's syntax),
    #: reported as validation errors, so they are found before anything runs
    check: Callable[[Mapping[str, Any]], Sequence[str]] | None = None
    #: ``variant(properties)``: another function to run for a node with these
    #: properties (a code node whose body awaits runs as an async function), or None
    variant: Callable[[Mapping[str, Any]], Callable[..., Any] | None] | None = None

    def for_node(self, properties: Mapping[str, Any]) -> NodeSpec:
        """The spec a node with these properties runs under: this one, or the
        :attr:`variant` it picks (same ports; its own function, kind and executor)."""
        if self.variant is None:
            return self
        func = self.variant({**self.base_defaults, **properties})
        if func is None or func is self.func:
            return self
        derived = self._variants.get(func)
        if derived is None:
            kind = _kind(func)
            executor: Executor = "async" if kind in ("async", "async_generator") else (
                "thread" if self.executor == "async" else self.executor)
            derived = dataclasses.replace(self, func=func, kind=kind, executor=executor,
                                          variant=None)
            self._variants[func] = derived
        return derived

    @functools.cached_property
    def _variants(self) -> dict[Callable[..., Any], NodeSpec]:
        # Derived specs, made once each: a plan of many code nodes shares them.
        return {}

    @functools.cached_property
    def mode(self) -> str:
        """The execution mode nodes of this type run under unless they say otherwise."""
        return str(self.metadata.get("execution_mode", "sequential"))

    @property
    def portable(self) -> bool:
        """Can its calls run in another process (``executor="process"`` or ``"dask"``)?

        Only a plain function without ``ctx``: the run context (bus, stop flag) and a
        generator's streaming stay in the process that runs the graph.
        """
        return self.kind == "function" and not self.wants_ctx

    @functools.cached_property
    def output_names(self) -> tuple[str, ...]:
        """Names of the static output ports, in order."""
        return tuple(p.name for p in self.outputs)

    @functools.cached_property
    def param_names(self) -> frozenset[str]:
        """Names of the property-only parameters."""
        return frozenset(p.name for p in self.params)

    @functools.cached_property
    def base_defaults(self) -> Mapping[str, Any]:
        """Default values of optional inputs and parameters (shared: never mutate)."""
        return {p.name: p.default for p in (*self.inputs, *self.params) if not p.required}

    def input(self, name: str) -> PortSpec | None:
        """The static input port or property-parameter with this name."""
        for port in (*self.inputs, *self.params):
            if port.name == name:
                return port
        return None

    def ports_for(self, properties: Mapping[str, Any]
                  ) -> tuple[tuple[PortSpec, ...], tuple[PortSpec, ...]]:
        """Input and output ports of a node with these properties.

        Static ports come from the signature; dynamic ones from the properties
        named by ``dynamic_inputs`` / ``dynamic_outputs`` (a list of names or a
        comma-separated string).
        """
        inputs, outputs = self.inputs, self.outputs
        if self.dynamic_inputs:
            names = port_names(properties.get(self.dynamic_inputs, self._default(
                self.dynamic_inputs)))
            inputs = inputs + tuple(PortSpec(n) for n in names if n not in
                                    {p.name for p in inputs})
        if self.dynamic_outputs:
            names = port_names(properties.get(self.dynamic_outputs, self._default(
                self.dynamic_outputs)))
            outputs = tuple(PortSpec(n) for n in names)
        return inputs, outputs

    def _default(self, name: str) -> Any:
        port = self.input(name)
        return None if port is None or port.required else port.default


def port_names(value: Any) -> list[str]:
    """Port names from a property: ``["a", "b"]`` or ``"a, b"``; blanks dropped."""
    if isinstance(value, str):
        items: Sequence[Any] = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        return []
    seen: dict[str, None] = {}
    for item in items:
        name = str(item).strip()
        if name and name.isidentifier():
            seen[name] = None
    return list(seen)


def _display_name(func_name: str) -> str:
    return func_name.strip("_").replace("_", " ").capitalize() or func_name


def _pack_name(func: Callable[..., Any]) -> str:
    # Packs loaded from a folder set __loom_pack__ to the file's stem, so that
    # nodes/text.py gives ids like "text.upper" wherever the folder lives.
    globals_ = getattr(func, "__globals__", {})
    return str(globals_.get("__loom_pack__") or func.__module__)


def _kind(func: Callable[..., Any]) -> Kind:
    if inspect.isasyncgenfunction(func):
        return "async_generator"
    if inspect.iscoroutinefunction(func):
        return "async"
    if inspect.isgeneratorfunction(func):
        return "generator"
    return "function"


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:  # noqa: BLE001 - unresolvable forward references: fall back to the raw strings
        return dict(getattr(func, "__annotations__", {}))


def _outputs(declared: Sequence[str] | Mapping[str, Any] | None,
             returns: Any) -> tuple[PortSpec, ...]:
    if declared is None:
        if returns is REQUIRED:
            return (PortSpec("out"),)
        name, nullable, choices = port_type(returns)
        return (PortSpec("out", name, nullable=nullable, choices=choices),)
    if isinstance(declared, Mapping):
        return tuple(PortSpec(n, *port_type(t)[:2]) for n, t in declared.items())
    return tuple(PortSpec(n) for n in declared)


def build_spec(func: Callable[..., Any], *, id: str | None = None,
               name: str | None = None, category: str | None = None,
               outputs: Sequence[str] | Mapping[str, Any] | None = None,
               params: Sequence[str] = (), cheap: bool = False,
               executor: Executor | None = None, join: Join = "all",
               join_param: str | None = None,
               dynamic_inputs: str | None = None, dynamic_outputs: str | None = None,
               mode: str | None = None, metadata: Mapping[str, Any] | None = None,
               version: int = 1, migrations: Mapping[int, Migration] | None = None,
               description: str | None = None,
               check: Callable[[Mapping[str, Any]], Sequence[str]] | None = None,
               variant: Callable[[Mapping[str, Any]], Callable[..., Any] | None] | None = None,
               ) -> NodeSpec:
    """Read a function's signature into a :class:`NodeSpec` (see :func:`node`)."""
    if not callable(func) or inspect.isclass(func):
        raise TypeError(f"@node needs a function, got {func!r}")
    where = f"{func.__module__}.{func.__qualname__}"
    hints = _hints(func)
    ins: list[PortSpec] = []
    props: list[PortSpec] = []
    wants_ctx = variadic = False
    for p in inspect.signature(func).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            variadic = True
            continue
        if p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY):
            raise TypeError(f"@node {where}: parameter {p.name!r} must be passable by name")
        if p.name == "ctx":
            wants_ctx = True
            continue
        type_name, nullable, choices = port_type(hints.get(p.name, Any))
        port = PortSpec(p.name, type_name, p.default, nullable or p.default is None, choices)
        (props if p.name in params else ins).append(port)
    if (dynamic_inputs or join == "first") and not variadic:
        raise TypeError(f"@node {where}: dynamic inputs arrive as **kwargs; add one")
    kind = _kind(func)
    if kind in ("async", "async_generator"):
        if executor not in (None, "async"):
            raise TypeError(f"@node {where}: an async function runs on the event loop; "
                            f"executor={executor!r} does not apply")
        chosen: Executor = "async"
    else:
        chosen = executor or ("inline" if cheap else "thread")
    meta = dict(metadata or {})
    if mode is not None:
        meta["execution_mode"] = mode
    spec = NodeSpec(
        type_id=id or f"{_pack_name(func)}.{func.__name__.strip('_')}",
        func=func,
        name=name or _display_name(func.__name__),
        category=category or _display_name(_pack_name(func).rpartition(".")[2]),
        description=inspect.cleandoc(description or func.__doc__ or ""),
        inputs=tuple(ins),
        outputs=_outputs(outputs, hints.get("return", REQUIRED)),
        params=tuple(props),
        kind=kind,
        executor=chosen,
        wants_ctx=wants_ctx,
        join=join,
        join_param=join_param,
        dynamic_inputs=dynamic_inputs,
        dynamic_outputs=dynamic_outputs,
        metadata=meta,
        version=version,
        migrations=dict(migrations or {}),
        check=check,
        variant=variant,
    )
    if chosen in ("process", "dask") and not spec.portable:
        raise TypeError(f"@node {where}: executor={chosen!r} needs a plain function "
                        "without a ctx parameter (ctx, with ctx.vars and ctx.shared, lives "
                        "in the process that runs the graph)")
    return spec


def node(func: F | None = None, /, **options: Any) -> Any:
    """Turn a function into a node type.

    Use bare (``@node``) or with options (``@node(category="Text")``):

    - ``id``: stable type id; default ``<pack>.<function>`` (``"text.upper"``).
    - ``name``, ``category``, ``description``: how the palette shows it.
    - ``outputs``: names (or ``{name: type}``) of several output ports; the
      function then returns a tuple in that order or a dict by name (a port left
      out of the dict produces nothing, so what hangs off it is skipped).
      Without it there is one output port, ``out``.
    - ``cheap=True``: a quick sync function runs on the event loop instead of a
      worker thread (saves ~50 µs per call; never use it for anything that blocks).
    - ``executor``: ``"thread"`` (default for sync functions), ``"inline"``,
      ``"process"`` or ``"dask"``; async functions always run on the loop.
    - ``mode`` / ``metadata``: default execution mode and settings of new nodes.
    - ``params``: parameters that are properties only, never wired.
    - ``join="first"``: ready when the first input arrives (merge nodes).
    - ``join_param``: a parameter whose value (``"first"`` or ``"all"``) picks the join
      per node; ``"all"`` waits for every input that is not skipped.
    - ``dynamic_inputs`` / ``dynamic_outputs``: a property listing extra ports.
    - ``version`` and ``migrations={old_version: fn(node)}``: upgrade saved nodes.
    - ``check=fn(properties) -> [message, ...]``: problems with a node's properties,
      reported by validation (``loom validate``, the editor) as errors naming the node.
      It must not run the node's work; it gets the defaults merged with the properties.
    - ``variant=fn(properties) -> function | None``: run another function (same
      parameters) for nodes with these properties, e.g. an ``async def`` one; None
      keeps this one.

    Parameters are input ports; a default makes the port optional and editable
    as a property; type hints become port types. A parameter named ``ctx``
    receives the run context instead of a port.
    """
    def decorate(f: F) -> F:
        spec = build_spec(f, **options)
        f.__loom_spec__ = spec  # type: ignore[attr-defined]
        return f

    return decorate(func) if func is not None else decorate


def predicate(func: F | None = None, /, *, name: str | None = None) -> Any:
    """Register a function as a named predicate for ``metadata.condition_func``.

    A conditional node naming it (``"condition_func": "is_empty"``) applies it to its
    result: the predicate's truthiness decides, the result is the value passed on.
    Use bare (``@predicate``) or named (``@predicate(name="nonempty")``); the name is
    the function's by default. Packs register predicates the way they register nodes.
    A predicate runs on the event loop as the node routes its result: keep it quick.
    """
    def decorate(f: F) -> F:
        if not callable(f) or inspect.isclass(f):
            raise TypeError(f"@predicate needs a function, got {f!r}")
        f.__loom_predicate__ = name or f.__name__  # type: ignore[attr-defined]
        return f

    return decorate(func) if func is not None else decorate


def predicate_name(obj: Any) -> str | None:
    """The name ``@predicate`` gave a function, if any."""
    found = getattr(obj, "__loom_predicate__", None)
    return found if isinstance(found, str) and callable(obj) else None


def spec_of(obj: Any) -> NodeSpec | None:
    """The spec ``@node`` attached to a function, if any."""
    spec = getattr(obj, "__loom_spec__", None)
    return spec if isinstance(spec, NodeSpec) else None
