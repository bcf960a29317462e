"""Compiling a graph into a run plan, and checking it before anything runs.

:func:`compile_plan` binds every node to its spec and strategy, works out its
effective ports, the values of unwired inputs, and the wiring as index lists the
flow can follow without lookups. Every problem found on the way becomes an
:class:`Issue` naming the node; a plan with error issues must not run.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import heapq
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from loom.graph import DEFAULT_EXECUTION_MODE, Graph, Node
from loom.registry import NodeSpec, PortSpec, Registry, compatible, value_matches

from .strategies import STRATEGIES, Strategy


@dataclass(frozen=True)
class Issue:
    """One problem with a graph: ``error`` blocks a run, ``warning`` does not."""

    severity: str
    message: str
    node: str | None = None

    def __str__(self) -> str:
        return f"{self.node}: {self.message}" if self.node else self.message

    def to_json(self) -> dict[str, Any]:
        """Plain-data form for ``--json`` output and events."""
        return {"severity": self.severity, "node": self.node, "message": self.message}


class GraphValidationError(Exception):
    """Raised by :meth:`ExecutionManager.run` when the graph has error issues."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        errors = [i for i in issues if i.severity == "error"]
        lines = "\n".join(f"  - {i}" for i in errors)
        super().__init__(f"the graph cannot run ({len(errors)} problem(s)):\n{lines}")


#: A wire as the flow follows it: (destination node index, input port or None for control).
Target = tuple[int, str | None]


class PlannedNode:
    """A node bound to its spec and strategy, with its wiring resolved to indices.

    A plain slotted class rather than a dataclass: plans of 100,000 nodes are
    built on every run, and this constructor is most of that cost.
    """

    __slots__ = ("defaults", "direct", "fanout", "index", "inline", "inputs", "join_first",
                 "mode", "mutable_defaults", "n_deps", "node", "outputs", "spec", "strategy",
                 "value_outputs", "wired")

    def __init__(self, index: int, node: Node, spec: NodeSpec | None, strategy: Strategy,
                 mode: str, inputs: Mapping[str, PortSpec], outputs: tuple[PortSpec, ...],
                 value_outputs: tuple[str, ...], defaults: Mapping[str, Any],
                 join_first: bool = False, inline: bool = False,
                 direct: tuple[Callable[..., Any], str] | None = None) -> None:
        self.index = index
        self.node = node
        self.spec = spec
        self.strategy = strategy
        self.mode = mode
        #: wireable input ports by name (may be shared between nodes: never mutate)
        self.inputs = inputs
        #: ports the engine routes (the strategy may add some, e.g. true/false)
        self.outputs = outputs
        #: ports filled from the function's return value
        self.value_outputs = value_outputs
        #: keyword arguments for everything not wired: defaults overridden by
        #: properties (may be shared between nodes: copy before changing)
        self.defaults = defaults
        #: output port -> wires leaving it
        self.fanout: dict[str, list[Target]] = {}
        self.wired: set[str] = set()
        #: how many wires (data and control) must deliver before the node is ready
        self.n_deps = 0
        #: ready on the first value that arrives (merge nodes)
        self.join_first = join_first
        #: quick enough to run on the loop without a coroutine or Task of its own
        self.inline = inline
        #: for the commonest node (inline, no ctx, one value port, plain routing):
        #: the function to call and the port its result goes to, so the flow can
        #: skip the general path; None otherwise
        self.direct = direct
        #: defaults that are lists or dicts: each call gets its own copy, so a node
        #: that changes its input does not change the graph's properties
        self.mutable_defaults: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """The node's id."""
        return self.node.id

    @property
    def label(self) -> str:
        """The node as messages name it."""
        return self.node.label

    def output(self, name: str) -> PortSpec | None:
        """The routed output port with this name."""
        for port in self.outputs:
            if port.name == name:
                return port
        return None


@dataclass(eq=False)
class Plan:
    """Everything a run needs, computed once: nodes in file order and the issues found."""

    graph: Graph
    nodes: list[PlannedNode]
    index: dict[str, int]
    issues: list[Issue]

    @property
    def errors(self) -> list[Issue]:
        """The issues that block a run."""
        return [i for i in self.issues if i.severity == "error"]


class _Collector:
    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def error(self, node: Node | None, message: str) -> None:
        self.issues.append(Issue("error", message, node.label if node else None))

    def warning(self, node: Node | None, message: str) -> None:
        self.issues.append(Issue("warning", message, node.label if node else None))


def _ports_of_missing(node: Node, graph: Graph) -> tuple[dict[str, PortSpec], tuple[PortSpec, ...]]:
    # A type that is not installed keeps the ports its wires name.
    ins = {c.dst_port: PortSpec(c.dst_port) for c in graph.connections if c.dst_node == node.id}
    outs = {c.src_port: PortSpec(c.src_port) for c in graph.connections if c.src_node == node.id}
    return ins, tuple(outs.values())


def _bind(index: int, node: Node, graph: Graph, registry: Registry,
          strategies: Mapping[str, Strategy], out: _Collector) -> PlannedNode:
    spec = registry.get(node.type)
    mode = node.metadata.get("execution_mode") if node.metadata else None
    if not (mode and isinstance(mode, str)):
        mode = spec.mode if spec is not None else DEFAULT_EXECUTION_MODE
    strategy = strategies.get(mode)
    if strategy is None:
        out.error(node, f"unknown execution_mode {mode!r} (known: {', '.join(strategies)})")
        strategy = strategies[DEFAULT_EXECUTION_MODE]
    if spec is None:
        out.error(node, f"node type {node.type!r} is not installed")
        missing_in, missing_out = _ports_of_missing(node, graph)
        return PlannedNode(index, node, None, strategy, mode, missing_in, missing_out,
                           tuple(p.name for p in missing_out), {})
    if node.type_version is not None and node.type_version > spec.version:
        out.error(node, f"saved by version {node.version} of {node.type!r}, newer than the "
                        f"installed version {spec.version}")
    in_ports, out_ports = spec.ports_for(node.properties)
    inputs = (_input_table(spec) if in_ports is spec.inputs
              else {p.name: p for p in in_ports})
    defaults: Mapping[str, Any] = spec.base_defaults
    if node.properties:
        defaults = dict(defaults)
        for key, value in node.properties.items():
            if key in inputs or key in spec.param_names:
                defaults[key] = value
            elif key not in (spec.dynamic_inputs, spec.dynamic_outputs):
                out.warning(node, f"property {key!r} is not a port or parameter of {node.type}")
    inline = (spec.executor == "inline" and spec.kind in ("function", "generator")
              and strategy.single_call)
    direct = None
    if (inline and spec.kind == "function" and not spec.wants_ctx and len(out_ports) == 1
            and type(strategy).route is Strategy.route):
        direct = (spec.func, out_ports[0].name)
    names = spec.output_names if out_ports is spec.outputs else tuple(p.name for p in out_ports)
    return PlannedNode(index, node, spec, strategy, mode, inputs,
                       strategy.output_ports(node, out_ports), names, defaults,
                       spec.join == "first", inline, direct)


@functools.cache
def _input_table(spec: NodeSpec) -> Mapping[str, PortSpec]:
    return {p.name: p for p in spec.inputs}


def _wire(plan: Plan, out: _Collector) -> None:
    nodes, index = plan.nodes, plan.index
    for conn in plan.graph.connections:
        src, dst = nodes[index[conn.src_node]], nodes[index[conn.dst_node]]
        src_port = src.output(conn.src_port)
        dst_port = dst.inputs.get(conn.dst_port)
        if src_port is None:
            names = ", ".join(p.name for p in src.outputs) or "none"
            out.error(src.node, f"has no output port {conn.src_port!r} (outputs: {names}); "
                                f"wired to {dst.id}.{conn.dst_port}")
            continue
        if dst_port is None:
            names = ", ".join(dst.inputs) or "none"
            out.error(dst.node, f"has no input port {conn.dst_port!r} (inputs: {names}); "
                                f"wired from {src.id}.{conn.src_port}")
            continue
        if conn.dst_port in dst.wired:
            out.error(dst.node, f"input {conn.dst_port!r} has more than one wire")
            continue
        if not compatible(src_port.type, dst_port.type):
            out.error(dst.node, f"input {conn.dst_port!r} expects {dst_port.type} but "
                                f"{src.label} output {conn.src_port!r} gives {src_port.type}")
        dst.wired.add(conn.dst_port)
        src.fanout.setdefault(conn.src_port, []).append((dst.index, conn.dst_port))
        dst.n_deps += 1


def _control(plan: Plan) -> None:
    for planned in plan.nodes:
        for port, ids in planned.strategy.control_edges(planned.node).items():
            for node_id in ids:
                target = plan.index.get(node_id)
                if target is not None and target != planned.index:
                    planned.fanout.setdefault(port, []).append((target, None))
                    plan.nodes[target].n_deps += 1


def _check_inputs(plan: Plan, out: _Collector) -> None:
    for planned in plan.nodes:
        if planned.spec is None:
            continue
        defaults, properties = planned.defaults, planned.node.properties
        if planned.join_first and not planned.wired:
            out.error(planned.node, "has no input wired (it passes on the first that arrives)")
        for name, port in planned.inputs.items():
            if name in planned.wired:
                continue
            if name not in defaults and not planned.join_first:
                out.error(planned.node, f"required input {name!r} is not connected "
                                        "and has no value")
            elif name in properties and not value_matches(properties[name], port.type,
                                                          port.nullable):
                out.error(planned.node, f"property {name!r} should be {port.type}, "
                                        f"not {properties[name]!r}")
        # A wired port's value comes from the wire; never pass a stale default too.
        if any(name in defaults for name in planned.wired):
            planned.defaults = {k: v for k, v in defaults.items() if k not in planned.wired}
        planned.mutable_defaults = tuple(k for k, v in planned.defaults.items()
                                         if isinstance(v, (list, dict)))


def _check_cycles(plan: Plan, out: _Collector) -> None:
    # Kahn's algorithm, iterative so a 100,000-node chain is fine.
    indegree = [0] * len(plan.nodes)
    for planned in plan.nodes:
        for targets in planned.fanout.values():
            for dst, _ in targets:
                indegree[dst] += 1
    ready = [i for i, d in enumerate(indegree) if d == 0]
    heapq.heapify(ready)
    seen = 0
    while ready:
        i = heapq.heappop(ready)
        seen += 1
        for targets in plan.nodes[i].fanout.values():
            for dst, _ in targets:
                indegree[dst] -= 1
                if indegree[dst] == 0:
                    heapq.heappush(ready, dst)
    if seen == len(plan.nodes):
        return
    cycle = _find_cycle(plan, [i for i, d in enumerate(indegree) if d > 0])
    names = " -> ".join(plan.nodes[i].label for i in cycle)
    out.error(None, f"the graph has a cycle: {names} (only a while loop may close a cycle)")


def _find_cycle(plan: Plan, stuck: list[int]) -> list[int]:
    # Every stuck node has a stuck predecessor; walking predecessors must repeat.
    stuck_set = set(stuck)
    preds: dict[int, int] = {}
    for i in stuck:
        for targets in plan.nodes[i].fanout.values():
            for dst, _ in targets:
                if dst in stuck_set:
                    preds.setdefault(dst, i)
    order: dict[int, int] = {}
    node = stuck[0]
    while node not in order:
        order[node] = len(order)
        node = preds[node]
    walk = list(order)[order[node]:]
    return [*reversed(walk), walk[-1]]


def compile_plan(graph: Graph, registry: Registry,
                 strategies: Mapping[str, Strategy] | None = None) -> Plan:
    """Bind, wire and check a graph. Never raises for problems in the graph."""
    with _gc_paused():
        return _compile(graph, registry, STRATEGIES if strategies is None else strategies)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    # Compiling allocates a few acyclic objects per node; on big graphs the cyclic
    # collector would rescan the growing plan over and over (measured: 2-3 µs of
    # a ~5 µs per-node cost at 10,000 nodes). Nothing here creates cycles to collect.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _compile(graph: Graph, registry: Registry, strategies: Mapping[str, Strategy]) -> Plan:
    out = _Collector()
    index = {node_id: i for i, node_id in enumerate(graph.nodes)}
    nodes = [_bind(i, node, graph, registry, strategies, out)
             for i, node in enumerate(graph.nodes.values())]
    plan = Plan(graph, nodes, index, out.issues)
    for planned in nodes:
        for message in planned.strategy.validate(planned.node, index):
            out.error(planned.node, message)
    _wire(plan, out)
    _control(plan)
    _check_inputs(plan, out)
    _check_cycles(plan, out)
    return plan


def validate(graph: Graph, registry: Registry) -> list[Issue]:
    """All problems with a graph, errors first; an empty list means it can run."""
    issues = compile_plan(graph, registry).issues
    return sorted(issues, key=lambda i: i.severity != "error")
