"""Compiling a graph into a run plan, and checking it before anything runs.

:func:`compile_plan` binds every node to its spec and strategy, works out its
effective ports, the values of unwired inputs, and the wiring as index lists the
flow can follow without lookups. Every problem found on the way becomes an
:class:`Issue` naming the node; a plan with error issues must not run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from loom.graph import DEFAULT_EXECUTION_MODE, Graph, Node
from loom.registry import NodeSpec, PortSpec, Registry, compatible, value_matches

from .policies import ERROR_PORT, PLAIN, SETTINGS, Policy, parse_policy
from .scopes import TOP, WireRouter, resolve_owners
from .strategies import STRATEGIES, Strategy
from .strategies.base import shown


@dataclass(frozen=True)
class Issue:
    """One problem with a graph: ``error`` blocks a run, ``warning`` does not."""

    severity: str
    message: str
    #: how messages name the node (``name (id)``), for people
    node: str | None = None
    #: the node's id, for tools (an editor selects the node by it)
    node_id: str | None = None

    def __str__(self) -> str:
        return f"{self.node}: {self.message}" if self.node else self.message

    def to_json(self) -> dict[str, Any]:
        """Plain-data form for ``--json`` output and events."""
        return {"severity": self.severity, "node": self.node, "node_id": self.node_id,
                "message": self.message}


class GraphValidationError(Exception):
    """Raised by :meth:`ExecutionManager.run` when the graph has error issues."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        errors = [i for i in issues if i.severity == "error"]
        lines = "\n".join(f"  - {i}" for i in errors)
        super().__init__(f"the graph cannot run ({len(errors)} problem(s)):\n{lines}")


#: A wire while the plan is built: (source index, source port, destination index,
#: destination port, or None for a control dependency).
Edge = tuple[int, str, int, str | None]


class PlannedNode:
    """A node bound to its spec and strategy, with its wiring resolved to indices.

    A plain slotted class rather than a dataclass: plans of 100,000 nodes are
    built on every run, and this constructor is most of that cost.
    """

    __slots__ = ("defaults", "direct", "edge_hi", "edge_lo", "index", "inline", "inputs",
                 "join_first", "join_present", "long_running", "mode", "mutable_defaults",
                 "n_deps", "node", "outputs", "policy", "required", "spec", "strategy",
                 "value_outputs")

    def __init__(self, index: int, node: Node, spec: NodeSpec | None, strategy: Strategy,
                 mode: str, inputs: Mapping[str, PortSpec], outputs: tuple[PortSpec, ...],
                 value_outputs: tuple[str, ...], defaults: Mapping[str, Any],
                 join_first: bool = False, inline: bool = False,
                 direct: tuple[Callable[..., Any], str] | None = None,
                 policy: Policy = PLAIN) -> None:
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
        #: the wires leaving this node are ``plan.edge_*[edge_lo:edge_hi]``
        self.edge_lo = 0
        self.edge_hi = 0
        #: how many wires (data and control) must deliver before the node is ready
        self.n_deps = 0
        #: ready on the first value that arrives (merge nodes)
        self.join_first = join_first
        #: ready once every input delivered, with the values that arrived; skipped only
        #: when every input is skipped (a merge in mode "all")
        self.join_present = False
        #: quick enough to run on the loop without a coroutine or Task of its own
        self.inline = inline
        #: for the commonest node (inline, no ctx, one value port, plain routing):
        #: the function to call and the port its result goes to, so the flow can
        #: skip the general path; None otherwise
        self.direct = direct
        #: timeout, retries, rate limit and on_error from the node's metadata
        self.policy = policy
        #: runs until the run ends (an event source), beside the other nodes
        self.long_running = strategy.long_running
        #: defaults that are lists or dicts: each call gets its own copy, so a node
        #: that changes its input does not change the graph's properties
        self.mutable_defaults: tuple[str, ...] = ()
        #: inputs that must be wired or given a property
        self.required: tuple[str, ...] = ()

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
    """Everything a run needs, computed once: nodes in file order and the issues found.

    Wires are stored flat, grouped by source node (``PlannedNode.edge_lo/hi``
    index into the three ``edge_*`` lists): a plan then holds about one
    garbage-collected object per node instead of several, which matters because
    CPython's collector rescans every live container (measured: a third of a
    10,000-node run went to the collector with per-node wire dicts).
    """

    graph: Graph
    nodes: list[PlannedNode]
    index: dict[str, int]
    issues: list[Issue]
    #: per wire: the source port, the destination node index and input port
    #: (None: a control dependency, which carries readiness but no value)
    edge_port: list[str] = field(default_factory=list)
    edge_dst: list[int] = field(default_factory=list)
    edge_dst_port: list[str | None] = field(default_factory=list)
    #: the node each node runs inside (loop or parallel node), or TOP (-1)
    owner: list[int] = field(default_factory=list)
    #: owner -> the nodes directly inside it, in file order
    members: dict[int, list[int]] = field(default_factory=dict)
    #: owner -> capture port -> where it hands the value when running its scope
    captures: dict[int, dict[str, list[tuple[int, str]]]] = field(default_factory=dict)
    #: while node -> (body node, its port, the loop node's input port) carried back
    back_edges: dict[int, list[tuple[int, str, str]]] = field(default_factory=dict)
    #: the registry's ``@predicate`` functions by name (``condition_func``)
    predicates: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)

    def wires_from(self, i: int) -> Iterator[tuple[str, int, str | None]]:
        """The wires leaving node ``i``: (port, destination index, destination port)."""
        lo, hi = self.nodes[i].edge_lo, self.nodes[i].edge_hi
        return zip(self.edge_port[lo:hi], self.edge_dst[lo:hi], self.edge_dst_port[lo:hi],
                   strict=True)

    @property
    def errors(self) -> list[Issue]:
        """The issues that block a run."""
        return [i for i in self.issues if i.severity == "error"]


class _Collector:
    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def error(self, node: Node | None, message: str) -> None:
        self._add("error", node, message)

    def warning(self, node: Node | None, message: str) -> None:
        self._add("warning", node, message)

    def _add(self, severity: str, node: Node | None, message: str) -> None:
        self.issues.append(Issue(severity, message, node.label if node else None,
                                 node.id if node else None))


def _ports_of_missing(node: Node, graph: Graph) -> tuple[dict[str, PortSpec], tuple[PortSpec, ...]]:
    ins = {c.dst_port: PortSpec(c.dst_port) for c in graph.connections if c.dst_node == node.id}
    outs = {c.src_port: PortSpec(c.src_port) for c in graph.connections if c.src_node == node.id}
    return ins, tuple(outs.values())


@dataclass(frozen=True, eq=False)
class _Binding:
    """What every node of one type under one mode shares, worked out once per compile."""

    spec: NodeSpec
    strategy: Strategy
    mode: str
    inputs: Mapping[str, PortSpec]
    params: Mapping[str, PortSpec]
    outputs: tuple[PortSpec, ...]
    value_outputs: tuple[str, ...]
    required: tuple[str, ...]
    mutable: tuple[str, ...]
    inline: bool
    direct: tuple[Callable[..., Any], str] | None
    #: ports and checks do not depend on the node's own properties or metadata
    static: bool


def _binding(spec: NodeSpec, strategy: Strategy, mode: str, node: Node) -> _Binding:
    in_ports, out_ports = spec.ports_for(node.properties)
    inline = (spec.executor == "inline" and spec.kind in ("function", "generator")
              and strategy.single_call)
    direct = None
    if (inline and spec.kind == "function" and not spec.wants_ctx and len(out_ports) == 1
            and type(strategy).route is Strategy.route):
        direct = (spec.func, out_ports[0].name)
    static = (spec.dynamic_inputs is None and spec.dynamic_outputs is None
              and spec.variant is None and spec.check is None and strategy.node_independent)
    return _Binding(
        spec, strategy, mode, {p.name: p for p in in_ports}, {p.name: p for p in spec.params},
        strategy.output_ports(node, out_ports), tuple(p.name for p in out_ports),
        tuple(p.name for p in in_ports if p.required),
        tuple(k for k, v in spec.base_defaults.items() if isinstance(v, (list, dict))),
        inline, direct, static)


class _Binder:
    """Binds nodes to specs and strategies, reusing one binding per (type, mode)."""

    def __init__(self, graph: Graph, registry: Registry, strategies: Mapping[str, Strategy],
                 out: _Collector) -> None:
        self.graph, self.registry, self.strategies, self.out = graph, registry, strategies, out
        self._cache: dict[tuple[str, str | None], _Binding] = {}

    def bind(self, index: int, node: Node) -> PlannedNode:
        own_keys = node.metadata.keys()
        spec = self.registry.get(node.type)
        if spec is not None and spec.metadata and not spec.metadata.keys() <= node.metadata.keys():
            # The type's default settings (a while loop's loop_type, a timer's interval)
            # apply where the node does not say; the graph's own node is left as it is.
            node = dataclasses.replace(node, metadata={**spec.metadata, **node.metadata})
        meta = node.metadata
        mode = meta.get("execution_mode") if meta else None
        if mode is not None and not isinstance(mode, str):
            # Junk here would otherwise be a dict key below (a list: TypeError).
            self.out.error(node, f"metadata.execution_mode must be a string, not {shown(mode)}")
            mode = None
        binding = self._cache.get((node.type, mode))
        if binding is None or not binding.static:
            binding = self._binding(node, mode)
            if binding is None:
                return self._missing(index, node, mode)
        spec, out = binding.spec, self.out
        if spec.check is not None:
            _check_node(spec, node, out)
        if node.type_version is not None and node.type_version > spec.version:
            out.error(node, f"saved by version {node.version} of {node.type!r}, newer than the "
                            f"installed version {spec.version}")
        defaults: Mapping[str, Any] = spec.base_defaults
        mutable = binding.mutable
        if node.properties:
            defaults = dict(defaults)
            for key, value in node.properties.items():
                port = binding.inputs.get(key) or binding.params.get(key)
                if port is not None:
                    defaults[key] = value
                    _check_property(node, port, value, out)
                    if isinstance(value, (list, dict)) and key not in mutable:
                        mutable = (*mutable, key)
                elif key not in (spec.dynamic_inputs, spec.dynamic_outputs):
                    out.warning(node, f"property {key!r} is not a port or parameter of "
                                      f"{node.type}")
        policy, outputs, inline, direct = PLAIN, binding.outputs, binding.inline, binding.direct
        if node.metadata:
            policy, problems = parse_policy(node.metadata, binding.strategy.owned_settings)
            for message in problems:
                out.error(node, message)
            key_from = policy.rate_limit.key_from if policy.rate_limit else None
            if key_from is not None and key_from not in binding.inputs:
                out.error(node, f"metadata.rate_limit key_from {key_from!r} is not an input "
                                f"port of {node.type}")
            _warn_unread(node, own_keys, binding.strategy, binding.mode, out)
            if policy.on_error == "error_output":
                outputs = (*outputs, PortSpec(ERROR_PORT, "dict"))
            if policy.wraps_call:
                inline, direct = False, None
        planned = PlannedNode(index, node, spec, binding.strategy, binding.mode, binding.inputs,
                              outputs, binding.value_outputs, defaults,
                              spec.join == "first", inline, direct, policy)
        planned.mutable_defaults = mutable
        planned.required = binding.required
        if spec.join_param is not None and defaults.get(spec.join_param) == "all":
            planned.join_first, planned.join_present = False, True
        return planned

    def _strategy(self, node: Node, mode: Any, spec: NodeSpec | None) -> tuple[str, Strategy]:
        name = mode if mode and isinstance(mode, str) else (
            spec.mode if spec is not None else DEFAULT_EXECUTION_MODE)
        strategy = self.strategies.get(name)
        if strategy is None:
            self.out.error(node, f"unknown execution_mode {name!r} "
                                 f"(known: {', '.join(self.strategies)})")
            strategy = self.strategies[DEFAULT_EXECUTION_MODE]
        return name, strategy

    def _binding(self, node: Node, mode: Any) -> _Binding | None:
        spec = self.registry.get(node.type)
        if spec is None:
            return None
        name, strategy = self._strategy(node, mode, spec)
        binding = _binding(spec.for_node(node.properties), strategy, name, node)
        self._cache[(node.type, mode)] = binding
        return binding

    def _missing(self, index: int, node: Node, mode: Any) -> PlannedNode:
        # A type that is not installed keeps the ports its wires name, so the
        # rest of the graph still wires up and every other problem is reported.
        name, strategy = self._strategy(node, mode, None)
        self.out.error(node, f"node type {node.type!r} is not installed")
        ins, outs = _ports_of_missing(node, self.graph)
        return PlannedNode(index, node, None, strategy, name, ins, outs,
                           tuple(p.name for p in outs), {})


#: metadata keys every node's run reads, whatever its mode
_READ_BY_ALL = frozenset({"execution_mode", *(s.name for s in SETTINGS)})


def _warn_unread(node: Node, keys: Any, strategy: Strategy, mode: str, out: _Collector) -> None:
    """A warning per metadata key (of the node's own) that its mode never reads: the key
    stays in the file, but a setting silently ignored would look like it works."""
    if keys <= _READ_BY_ALL:
        return  # the common case: only the mode and policies
    read = strategy.read_settings(node)
    for key in keys:
        if key not in _READ_BY_ALL and key not in read:
            kind = node.metadata.get("loop_type") if mode == "loop" else None
            what = f"{mode!r} ({kind})" if isinstance(kind, str) else repr(mode)
            name = key if isinstance(key, str) and key.isidentifier() and len(key) <= 40 \
                else shown(key)
            out.warning(node, f"metadata.{name} is not read by execution mode {what}: "
                              "it is kept in the file but has no effect")


def _wire(plan: Plan, out: _Collector, router: WireRouter,
          wired: set[tuple[int, str]]) -> None:
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
        if src_port.type != dst_port.type and not compatible(src_port.type, dst_port.type):
            out.error(dst.node, f"input {conn.dst_port!r} expects {dst_port.type} but "
                                f"{src.label} output {conn.src_port!r} gives {src_port.type}")
        kind = router.route(src, conn.src_port, dst, conn.dst_port)
        if kind != "edge":
            continue  # a back edge (a while loop's carried value) or an error, reported
        key = (dst.index, conn.dst_port)
        if key in wired:
            out.error(dst.node, f"input {conn.dst_port!r} has more than one wire")
        wired.add(key)


def _control(plan: Plan, out: _Collector, router: WireRouter) -> None:
    for planned in plan.nodes:
        if planned.strategy.node_independent:
            continue  # the base strategy has no control edges
        for port, ids in planned.strategy.control_edges(planned.node).items():
            for node_id in ids:
                target = plan.index.get(node_id)
                if target is None or target == planned.index:
                    continue
                if not router.same_scope(planned, plan.nodes[target]):
                    out.error(planned.node, f"{port}_path names {node_id!r}, which runs in "
                                            "another loop body or branch")
                    continue
                router.add(planned.index, port, target, None)


def _lay_out(plan: Plan, edges: list[Edge]) -> None:
    """Store the wires grouped by source node, keeping their order (a counting sort)."""
    nodes = plan.nodes
    start = [0] * (len(nodes) + 1)
    for src, *_ in edges:
        start[src + 1] += 1
    for i in range(len(nodes)):
        start[i + 1] += start[i]
        nodes[i].edge_lo, nodes[i].edge_hi = start[i], start[i]
    ports: list[str] = [""] * len(edges)
    dsts = [0] * len(edges)
    dst_ports: list[str | None] = [None] * len(edges)
    for src, port, dst, dst_port in edges:
        slot = nodes[src].edge_hi
        ports[slot], dsts[slot], dst_ports[slot] = port, dst, dst_port
        nodes[src].edge_hi = slot + 1
    plan.edge_port, plan.edge_dst, plan.edge_dst_port = ports, dsts, dst_ports


def _check_inputs(plan: Plan, out: _Collector, wired: set[tuple[int, str]]) -> None:
    for planned in plan.nodes:
        if planned.spec is None:
            continue
        i, defaults = planned.index, planned.defaults
        if planned.join_first or planned.join_present:
            if not any((i, name) in wired for name in planned.inputs):
                out.error(planned.node, "has no input wired (it passes on the first that "
                                        "arrives)" if planned.join_first else
                          "has no input wired (it passes on every input that arrives)")
            continue
        for name in planned.required:
            if name not in defaults and (i, name) not in wired:
                out.error(planned.node, f"required input {name!r} is not connected "
                                        "and has no value")
        # A wired port's value comes from the wire; never pass a stale default too.
        if any((i, name) in wired for name in defaults):
            planned.defaults = {k: v for k, v in defaults.items() if (i, k) not in wired}
            planned.mutable_defaults = tuple(k for k in planned.mutable_defaults
                                             if (i, k) not in wired)


def _check_node(spec: NodeSpec, node: Node, out: _Collector) -> None:
    assert spec.check is not None
    try:
        problems = spec.check({**spec.base_defaults, **node.properties})
    except Exception as exc:  # noqa: BLE001 - a pack's check failing is a problem to report, not a crash of validation
        out.error(node, f"its properties could not be checked ({type(exc).__name__}: {exc})")
        return
    for message in problems:
        out.error(node, message)


def _check_property(node: Node, port: PortSpec, value: Any, out: _Collector) -> None:
    if not value_matches(value, port.type, port.nullable):
        out.error(node, f"property {port.name!r} should be {port.type}, not {shown(value)}")
    elif port.choices and value not in port.choices and not (value is None and port.nullable):
        options = ", ".join(map(repr, port.choices))
        out.error(node, f"property {port.name!r} must be one of {options}, not {shown(value)}")


def _check_cycles(plan: Plan, out: _Collector) -> None:
    # Kahn's algorithm (iterative, so a 100,000-node chain is fine) over the wires
    # as stored: back edges of while loops are not among them; captured values
    # handed down through owners are not wires (the owner runs before its scope).
    nodes, edge_dst = plan.nodes, plan.edge_dst
    indegree = [0] * len(nodes)
    for dst in edge_dst:
        indegree[dst] += 1
    ready = [i for i, d in enumerate(indegree) if d == 0]
    seen = 0
    while ready:
        i = ready.pop()
        seen += 1
        for e in range(nodes[i].edge_lo, nodes[i].edge_hi):
            dst = edge_dst[e]
            indegree[dst] -= 1
            if indegree[dst] == 0:
                ready.append(dst)
    if seen == len(nodes):
        return
    cycle = _find_cycle(plan, [i for i, d in enumerate(indegree) if d > 0])
    names = " -> ".join(plan.nodes[i].label for i in cycle)
    out.error(None, f"the graph has a cycle: {names} (only a while loop may close a cycle)")


def _find_cycle(plan: Plan, stuck: list[int]) -> list[int]:
    # Every stuck node has a stuck predecessor; walking predecessors must repeat.
    stuck_set = set(stuck)
    preds: dict[int, int] = {}
    for i in stuck:
        for _, dst, _ in plan.wires_from(i):
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
    binder = _Binder(graph, registry, strategies, out)
    nodes = [binder.bind(i, node) for i, node in enumerate(graph.nodes.values())]
    # A copy: a pack reloaded during the run must not change what this run calls.
    plan = Plan(graph, nodes, index, out.issues, predicates=dict(registry.predicates))
    for planned in nodes:
        if not planned.strategy.node_independent:
            for message in planned.strategy.validate(planned.node, index):
                out.error(planned.node, message)
    plan.owner = [TOP] * len(nodes)
    resolve_owners(plan, out)
    edges: list[Edge] = []
    wired: set[tuple[int, str]] = set()
    router = WireRouter(plan, out, edges)
    _wire(plan, out, router, wired)
    _control(plan, out, router)
    for planned in nodes:
        if not planned.strategy.node_independent:
            for message in planned.strategy.check_plan(planned, plan):
                out.error(planned.node, message)
    _lay_out(plan, edges)
    _check_inputs(plan, out, wired)
    _check_cycles(plan, out)
    return plan


def ports_of(node: Node, registry: Registry, graph: Graph | None = None
             ) -> tuple[list[PortSpec], list[PortSpec]]:
    """A node's input and output ports as a run would see them.

    The editor draws these: they follow the node's properties (a code node's
    ``inputs``) and its execution mode's settings (a switch's cases, a
    conditional's true/false, a loop's item/index). A type that is not installed
    gets the ports its wires in ``graph`` name.
    """
    graph = graph if graph is not None else Graph()
    out = _Collector()
    planned = _Binder(graph, registry, STRATEGIES, out).bind(0, node)
    return list(planned.inputs.values()), list(planned.outputs)


def validate(graph: Graph, registry: Registry) -> list[Issue]:
    """All problems with a graph, errors first; an empty list means it can run."""
    issues = compile_plan(graph, registry).issues
    return sorted(issues, key=lambda i: i.severity != "error")
