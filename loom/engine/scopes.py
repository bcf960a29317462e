"""Scopes: the nodes a loop or parallel node runs itself, and wires that cross into them.

A node whose strategy lists scopes (a loop's ``body``, a parallel node's branches)
*owns* those nodes: they do not run in the flow around it but once per item,
iteration or branch, in a flow of their own. Ownership nests; a node listed by
several owners belongs to the innermost one.

Wires are sorted out at plan time so that every flow only ever sees its own nodes:

- a wire between nodes of the same scope is an ordinary wire;
- a wire from an owner's *body port* (``item``, ``index``, a while loop's ``out``,
  a parallel node's ``value``) into its scope carries a fresh value each run of it;
- a wire from outside into a scope is *captured*: it is rerouted to a capture port
  (``@node.port``) on the outermost owner it crosses, so that owner waits for the
  value, and each owner hands it one level further in when it runs its scope;
- a wire from a while loop's body back into the loop node is a *back edge*: it
  carries the next iteration's value and does not count as a dependency;
- any other wire out of a scope is an error: results leave a loop or a parallel
  node through that node's own outputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .plan import Plan, PlannedNode, _Collector

TOP = -1
CAPTURE_PREFIX = "@"


def capture_port(node_id: str, port: str) -> str:
    """The name a captured wire into ``node_id.port`` takes on the owners it crosses."""
    return f"{CAPTURE_PREFIX}{node_id}.{port}"


def resolve_owners(plan: Plan, out: _Collector) -> None:
    """Fill ``plan.owner`` and ``plan.members`` from the strategies' scopes."""
    listed_by: dict[int, list[int]] = {}
    for planned in plan.nodes:
        if planned.strategy.node_independent:
            continue
        if planned.strategy.owns_downstream:
            groups = [_downstream(plan, planned.id)]
        else:
            groups = planned.strategy.scopes(planned.node)
        if not groups:
            continue
        for node_id in {i for group in groups for i in group}:
            target = plan.index.get(node_id)
            if target is None:
                continue  # validation of the setting already named it
            if target == planned.index:
                out.error(planned.node, "lists itself in its own body or branches")
                continue
            listed_by.setdefault(target, []).append(planned.index)
    ancestors, cyclic = _ancestors(plan, listed_by, out)
    for target, owners in listed_by.items():
        if target in cyclic:
            continue  # reported; an owner chain that loops back would never end
        inner = [o for o in owners if all(p == o or p in ancestors[o] for p in owners)]
        if len(inner) != 1:
            names = " and ".join(plan.nodes[o].label for o in owners)
            out.error(plan.nodes[target].node, f"is listed by {names}, which do not nest; "
                                               "a node can run in one body or branch only")
            continue
        plan.owner[target] = inner[0]
    for i, owner in enumerate(plan.owner):
        if owner != TOP:
            plan.members.setdefault(owner, []).append(i)


def _downstream(plan: Plan, start: str) -> list[str]:
    """Every node a wire path leads to from ``start`` (not ``start`` itself)."""
    after: dict[str, list[str]] = {}
    for conn in plan.graph.connections:
        after.setdefault(conn.src_node, []).append(conn.dst_node)
    seen: dict[str, None] = {}
    stack = list(after.get(start, ()))
    while stack:
        node_id = stack.pop()
        if node_id != start and node_id not in seen:
            seen[node_id] = None
            stack.extend(after.get(node_id, ()))
    return list(seen)


def _ancestors(plan: Plan, listed_by: dict[int, list[int]], out: _Collector
               ) -> tuple[dict[int, set[int]], set[int]]:
    """Every owner that (transitively) lists each owner, and the owners on an ownership
    cycle (reported)."""
    result: dict[int, set[int]] = {}
    cyclic: set[int] = set()
    for start in {o for owners in listed_by.values() for o in owners}:
        seen: set[int] = set()
        stack = list(listed_by.get(start, ()))
        while stack:
            o = stack.pop()
            if o == start:
                out.error(plan.nodes[start].node, "is inside its own body or branches "
                                                  "(through the nodes that list it)")
                cyclic.add(start)
                break
            if o not in seen:
                seen.add(o)
                stack.extend(listed_by.get(o, ()))
        result[start] = seen
    return result, cyclic


def owners_of(plan: Plan, i: int) -> Iterable[int]:
    """The owners of node ``i``, innermost first."""
    owner = plan.owner[i]
    while owner != TOP:
        yield owner
        owner = plan.owner[owner]


def is_inside(plan: Plan, i: int, scope: int) -> bool:
    """Does node ``i`` run (at any depth) inside ``scope`` (TOP contains everything)?"""
    return scope == TOP or scope in owners_of(plan, i)


class WireRouter:
    """Sorts wires into ordinary, body, captured and back edges (see the module doc)."""

    def __init__(self, plan: Plan, out: _Collector, edges: list[tuple[int, str, int, str | None]]
                 ) -> None:
        self.plan, self.out, self.edges = plan, out, edges

    def route(self, src: PlannedNode, port: str, dst: PlannedNode, dst_port: str) -> str | None:
        """Add the wire where it belongs: ``"edge"``, ``"back"``, or None when not allowed."""
        plan = self.plan
        inward = is_inside(plan, dst.index, src.index) and src.index != dst.index
        body_ports = src.strategy.body_ports(src.node) if inward else ()
        if inward and "*" not in body_ports and port not in body_ports:
            ports = ", ".join(body_ports) or "none"
            self.out.error(src.node, f"output {port!r} cannot feed {dst.label} inside its own "
                                     f"body or branches (ports that can: {ports})")
            return None
        src_scope = src.index if inward else plan.owner[src.index]
        dst_scope = plan.owner[dst.index]
        if dst_scope == src_scope:
            self.add(src.index, port, dst.index, dst_port)
            return "edge"
        if is_inside(plan, src.index, dst.index) and src.index != dst.index:
            return "back" if self._back_edge(src, port, dst, dst_port) else None
        if not is_inside(plan, dst.index, src_scope):
            where = plan.nodes[plan.owner[src.index]].label
            self.out.error(src.node, f"runs inside {where} and cannot feed {dst.label} outside "
                                     "it; results leave through that node's own outputs")
            return None
        self._capture(src.index, port, dst, dst_port, src_scope)
        return "edge"

    def add(self, src: int, port: str, dst: int, dst_port: str | None) -> None:
        """An ordinary wire (or control dependency when ``dst_port`` is None)."""
        self.edges.append((src, port, dst, dst_port))
        self.plan.nodes[dst].n_deps += 1

    def _capture(self, src: int, port: str, dst: PlannedNode, dst_port: str,
                 src_scope: int) -> None:
        plan = self.plan
        chain = []  # the owners of dst the wire crosses, innermost first
        for owner in owners_of(plan, dst.index):
            if owner == src_scope:
                break
            chain.append(owner)
        name = capture_port(dst.id, dst_port)
        self.add(src, port, chain[-1], name)
        for outer, inner in zip(reversed(chain), list(reversed(chain))[1:], strict=False):
            plan.captures.setdefault(outer, {}).setdefault(name, []).append((inner, name))
            plan.nodes[inner].n_deps += 1
        plan.captures.setdefault(chain[0], {}).setdefault(name, []).append((dst.index, dst_port))
        dst.n_deps += 1

    def _back_edge(self, src: PlannedNode, port: str, dst: PlannedNode, dst_port: str) -> bool:
        plan = self.plan
        if not dst.strategy.back_edges(dst.node):
            self.out.error(src.node, f"feeds {dst.label}, which runs it: a cycle (only a while "
                                     "loop's body may wire back into the loop node)")
            return False
        if plan.owner[src.index] != dst.index:
            self.out.error(src.node, f"wires back into {dst.label} from a nested body; a back "
                                     "edge must come from a node of the loop's own body")
            return False
        plan.back_edges.setdefault(dst.index, []).append((src.index, port, dst_port))
        return True

    def same_scope(self, src: PlannedNode, dst: PlannedNode) -> bool:
        """Control edges (true_path / false_path) may not cross scopes."""
        return self.plan.owner[src.index] == self.plan.owner[dst.index]
