"""``switch``: match the function's result against cases and take one port.

Settings: ``cases`` is a list of ``{"values": [...], "port": "name"}``; the
first case holding a value equal to the result wins (``1`` does not match
``true``: booleans only equal booleans). No match takes the ``default`` port
(named by ``metadata.default``, ``"default"`` unless set). Every case port and
the default port are outputs; the taken one carries the value, the others a skip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loom.graph import Node
from loom.registry import PortSpec

from .base import Setting, Strategy

if TYPE_CHECKING:
    from ..flow import NodeCall

DEFAULT_PORT = "default"


class SwitchStrategy(Strategy):
    """One output port per case plus a default; the matching one carries the value."""

    mode = "switch"
    settings = (
        Setting("cases", "list", [], 'cases, each {"values": [...], "port": "name"}'),
        Setting("default", "str", DEFAULT_PORT, "port taken when no case matches"),
    )

    def output_ports(self, node: Node, outputs: tuple[PortSpec, ...]) -> tuple[PortSpec, ...]:
        """The function's own outputs plus one port per case and the default port."""
        names = [p.name for p in outputs]
        for port in [*(port for port, _ in _cases(node)), _default(node)]:
            if port not in names:
                names.append(port)
        own = {p.name for p in outputs}
        return outputs + tuple(PortSpec(n) for n in names if n not in own)

    def validate(self, node: Node, known_ids: Any) -> list[str]:
        """Each case is an object with a list of values and an optional port name."""
        problems = super().validate(node, known_ids)
        cases = node.metadata.get("cases", [])
        for i, case in enumerate(cases if isinstance(cases, list) else []):
            if not isinstance(case, dict) or not isinstance(case.get("values", []), list):
                problems.append(f'metadata.cases[{i}] must be {{"values": [...], "port": "name"}}')
            elif "port" in case and not (isinstance(case["port"], str) and case["port"]):
                problems.append(f"metadata.cases[{i}].port must be a port name")
        return problems

    def route(self, call: NodeCall, value: Any) -> dict[str, Any]:
        """Find the first matching case; skip every other case port."""
        taken = _default(call.node)
        for port, values in _cases(call.node):
            if any(_same(value, v) for v in values):
                taken = port
                break
        ports = [p for p, _ in _cases(call.node)] + [_default(call.node)]
        outputs = call.outputs(value, exclude=ports)
        skip = call.skip(f"{call.label} took {taken!r}")
        for port in ports:
            outputs[port] = value if port == taken else skip
        call.emit("branch_taken", port=taken)
        return outputs


def _cases(node: Node) -> list[tuple[str, list[Any]]]:
    cases = node.metadata.get("cases")
    if not isinstance(cases, list):
        return []
    result = []
    for i, case in enumerate(cases):
        if isinstance(case, dict):
            port, values = case.get("port"), case.get("values")
            result.append((port if isinstance(port, str) and port else f"case_{i}",
                           values if isinstance(values, list) else []))
    return result


def _default(node: Node) -> str:
    port = node.metadata.get("default")
    return port if isinstance(port, str) and port else DEFAULT_PORT


def _same(a: Any, b: Any) -> bool:
    # True == 1 in Python; a switch on JSON values should not confuse them.
    return isinstance(a, bool) == isinstance(b, bool) and a == b
