"""``conditional``: the function's result picks a path.

Semantics: the node's function runs once. Its result decides by truthiness,
unless it is a :class:`~loom.registry.Branch`, which carries the decision and
the value separately (``control.if`` returns one so its input value leaves by
the port taken). The node gets ``true`` and ``false`` output ports: the taken
one carries the value, the other a skip, so whatever hangs off it is skipped
and the skip propagates. ``metadata.true_path`` / ``false_path`` name nodes
that wait for the decision even when their data comes from elsewhere (a control
dependency); both forms may be used together. Any other output ports of the
function (``out``) carry the value whatever the decision.

``metadata.condition_func`` (DESIGN's use case 2) names a registered predicate
(``@loom.predicate``; built-ins in ``nodes/control.py``): it is applied to the
node's result (a ``Branch``'s value) and its truthiness decides instead; the
result is still the value passed on. An unknown name is a validation error.

Assumption: if/elif/else is a chain of conditional nodes; joins after a branch
go through a ``control.merge`` node, because a plain node with a skipped input
is itself skipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loom.graph import Node
from loom.registry import Branch, PortSpec

from .base import Setting, Strategy

if TYPE_CHECKING:
    from ..flow import NodeCall
    from ..plan import Plan, PlannedNode

TRUE, FALSE = "true", "false"


class ConditionalStrategy(Strategy):
    """Route the value to ``true`` or ``false`` and skip the other path."""

    mode = "conditional"
    settings = (
        Setting("true_path", "node_ids", [], "nodes that run only when the condition holds"),
        Setting("false_path", "node_ids", [], "nodes that run only when it does not"),
        Setting("condition_func", "str", None, "a registered predicate applied to the "
                "result: it decides, the result is still the value passed on"),
    )

    def output_ports(self, node: Node, outputs: tuple[PortSpec, ...]) -> tuple[PortSpec, ...]:
        """The function's own outputs plus ``true`` and ``false``."""
        names = {p.name for p in outputs}
        extra = tuple(PortSpec(p) for p in (TRUE, FALSE) if p not in names)
        return outputs + extra

    def control_edges(self, node: Node) -> dict[str, list[str]]:
        """Nodes in ``true_path`` / ``false_path`` wait for the matching port."""
        return {TRUE: _ids(node.metadata.get("true_path")),
                FALSE: _ids(node.metadata.get("false_path"))}

    def validate(self, node: Node, known_ids: Any) -> list[str]:
        """Settings are lists of existing ids, and no node is on both paths."""
        problems = super().validate(node, known_ids)
        both = (set(_ids(node.metadata.get("true_path")))
                & set(_ids(node.metadata.get("false_path"))))
        if both:
            problems.append(f"nodes on both true_path and false_path: {', '.join(sorted(both))}")
        return problems

    def check_plan(self, planned: PlannedNode, plan: Plan) -> list[str]:
        """``condition_func`` names a registered predicate."""
        name = planned.node.metadata.get("condition_func")
        if isinstance(name, str) and name not in plan.predicates:
            known = ", ".join(sorted(plan.predicates)) or "none"
            return [f"metadata.condition_func {name!r} is not a registered predicate "
                    f"(known: {known})"]
        return []

    def route(self, call: NodeCall, result: Any) -> dict[str, Any]:
        """Decide, then fill the taken port and skip the other."""
        if isinstance(result, Branch):
            decision, value = bool(result.condition), result.value
        else:
            decision, value = bool(result), result
        name = call.node.metadata.get("condition_func")
        if name is not None:
            decision = bool(call.flow.state.plan.predicates[name](value))
        taken, other = (TRUE, FALSE) if decision else (FALSE, TRUE)
        outputs = call.outputs(value, exclude=(TRUE, FALSE))
        outputs[taken] = value
        outputs[other] = call.skip(f"{call.label} took {taken!r}")
        call.emit("branch_taken", port=taken)
        return outputs


def _ids(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
