"""The strategy interface: how a node with a given ``execution_mode`` runs.

A strategy is a stateless object chosen per node by its mode. At plan time it
declares the node's effective output ports, the nodes that wait for its
decision (control edges) and checks its settings. At run time
:meth:`Strategy.execute` receives a :class:`~loom.engine.flow.NodeCall` and
returns a value (or a :class:`~loom.engine.values.Skip`) for each output port;
strategies that call the function exactly once implement only
:meth:`Strategy.route`. The flow routes those values; strategies never touch
the scheduler.
"""

from __future__ import annotations

import contextlib
import math
import reprlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from loom.graph import Node
from loom.registry import PortSpec

from ..limits import is_finite

if TYPE_CHECKING:
    from ..flow import NodeCall
    from ..plan import Plan, PlannedNode


@dataclass(frozen=True)
class Setting:
    """One metadata setting of a mode, as the inspector shows and validation checks it.

    ``kind`` is one of ``int``, ``float``, ``bool``, ``str``, ``choice``, ``node_ids``
    (a list of node ids), ``node_id``, ``node_id_lists`` (a list of lists of ids, or
    an object of named lists), ``object`` or ``list``.
    """

    name: str
    kind: str
    default: Any = None
    description: str = ""
    choices: tuple[str, ...] = ()
    minimum: float | None = None


class _Shown(reprlib.Repr):
    """A short repr that never fails on what a hand-edited file may hold."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxlist, self.maxdict, self.maxtuple = 3, 4, 4, 4
        self.maxstring, self.maxother, self.maxlong = 40, 40, 40

    def repr_int(self, x: int, level: int) -> str:
        # repr() of an int over 4,300 digits raises ValueError (CPython's limit).
        digits = int(x.bit_length() * math.log10(2)) + 1
        if digits > self.maxlong:
            sign = "a negative" if x < 0 else "an"
            return f"{sign} integer of about {digits} digits"
        return repr(x)


_SHOWN = _Shown()
SHOWN_LIMIT = 80


def shown(value: Any) -> str:
    """``value`` as a validation message shows it: short, and never raising.

    Settings come from files people edit by hand, so they may hold anything JSON
    can: a 5,000-digit integer, a list nested thousands deep, a huge string.
    """
    try:
        text = _SHOWN.repr(value)
    except Exception:  # noqa: BLE001 - a value's own __repr__ may raise anything
        return f"a {type(value).__name__}"
    return text if len(text) <= SHOWN_LIMIT else text[:SHOWN_LIMIT - 3] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_setting(setting: Setting, value: Any, known_ids: Mapping[str, Any]) -> str | None:
    """A message saying what is wrong with one setting's value, or None.

    Never raises, whatever the value: files are edited by hand and fuzzed.
    """
    kind, seen = setting.kind, shown(value)
    if kind == "int" and not _is_int(value):
        return f"must be an integer, not {seen}"
    if kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return f"must be a number, not {seen}"
    if kind == "float" and not is_finite(value):
        # NaN passes every comparison with a minimum, and none of these is a duration.
        return f"must be a finite number, not {seen}"
    if kind == "bool" and not isinstance(value, bool):
        return f"must be true or false, not {seen}"
    if kind == "str" and not isinstance(value, str):
        return f"must be a string, not {seen}"
    if kind == "choice" and not (isinstance(value, str) and value in setting.choices):
        return f"must be one of {', '.join(setting.choices)}, not {seen}"
    if kind == "object" and not isinstance(value, dict):
        return f"must be an object, not {seen}"
    if kind == "list" and not isinstance(value, list):
        return f"must be a list, not {seen}"
    if (kind in ("int", "float") and setting.minimum is not None
            and value < setting.minimum):
        return f"must be at least {setting.minimum:g}, not {seen}"
    if kind == "node_id":
        return _check_ids([value], known_ids)
    if kind == "node_ids":
        if not isinstance(value, list):
            return f"must be a list of node ids, not {seen}"
        return _check_ids(value, known_ids)
    if kind == "node_id_lists":
        groups = list(value.values()) if isinstance(value, dict) else value
        if not isinstance(groups, list) or not all(isinstance(v, list) for v in groups):
            return f"must be a list of lists of node ids (or an object of named lists), not {seen}"
        return _check_ids([i for branch in groups for i in branch], known_ids)
    return None


def _check_ids(ids: Sequence[Any], known_ids: Mapping[str, Any]) -> str | None:
    bad = [i for i in ids if not isinstance(i, str)]
    if bad:
        return f"node ids must be strings, not {shown(bad[0])}"
    missing = [i for i in ids if i not in known_ids]
    if missing:
        return f"names node(s) that do not exist: {', '.join(map(shown, missing))}"
    return None


def node_ids(value: Any) -> list[str]:
    """The strings of a setting meant to list node ids; anything else is left out.

    Validation reports the rest (:func:`check_setting`); plan-time code reads ids
    through this so junk in a hand-edited file can never reach a dict look-up.
    """
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


class Strategy:
    """Base strategy: run the function once and route its outputs (sequential)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.node_independent = not cls.settings and all(
            getattr(cls, name) is getattr(Strategy, name)
            for name in ("output_ports", "control_edges", "validate", "scopes", "body_ports",
                         "back_edges", "check_plan"))

    #: the ``execution_mode`` value this strategy serves
    mode: ClassVar[str] = ""
    #: metadata settings of this mode (besides ``execution_mode``)
    settings: ClassVar[tuple[Setting, ...]] = ()
    #: True when execute() only calls the function once: a cheap node under this
    #: mode can then run inline on the loop, without a Task of its own
    single_call: ClassVar[bool] = True
    #: True when ports, control edges and checks never look at the node (set
    #: automatically); the planner then binds all such nodes of a type at once
    node_independent: ClassVar[bool] = True
    #: metadata keys this mode interprets itself, which per-node policies then leave
    #: alone (a loop's max_retries retries an item, a parallel node's timeout a branch)
    owned_settings: ClassVar[frozenset[str]] = frozenset()
    #: the node's scope is everything downstream of it (event sources run it per wave)
    owns_downstream: ClassVar[bool] = False
    #: the node runs until the run ends (an event source): flows start it beside the
    #: other nodes, outside their concurrency limit
    long_running: ClassVar[bool] = False

    def output_ports(self, node: Node, outputs: tuple[PortSpec, ...]) -> tuple[PortSpec, ...]:
        """The node's output ports under this mode (the spec's, by default)."""
        return outputs

    def control_edges(self, node: Node) -> dict[str, list[str]]:
        """Nodes that wait for one of this node's output ports without taking its value.

        Maps a port to node ids: they run if the port carries a value and are
        skipped if it carries a skip.
        """
        return {}

    def scopes(self, node: Node) -> list[list[str]]:
        """Groups of node ids this node runs itself (a loop body, parallel branches).

        Those nodes do not run in the flow around this node; the strategy runs them
        through ``NodeCall.body``.
        """
        return []

    def body_ports(self, node: Node) -> tuple[str, ...]:
        """Output ports whose wires into the node's scopes carry a value per run of them
        (``("*",)``: every output port)."""
        return ()

    def back_edges(self, node: Node) -> bool:
        """May nodes of this node's scopes wire back into it (a while loop's carried values)?"""
        return False

    def check_plan(self, planned: PlannedNode, plan: Plan) -> list[str]:
        """Problems only the wired-up plan shows (scopes, back edges); after validate()."""
        return []

    def validate(self, node: Node, known_ids: Mapping[str, Any]) -> list[str]:
        """Messages about this node's settings; the default checks them against :attr:`settings`."""
        problems = []
        for setting in self.settings:
            if setting.name in node.metadata and node.metadata[setting.name] is not None:
                message = check_setting(setting, node.metadata[setting.name], known_ids)
                if message:
                    problems.append(f"metadata.{setting.name} {message}")
        return problems

    def read_settings(self, node: Node) -> frozenset[str]:
        """The metadata keys this mode reads on this node (besides ``execution_mode`` and
        the policies); validation warns about any other key, which is kept but unused."""
        names = self._setting_names
        if names is None:
            names = type(self)._setting_names = frozenset(s.name for s in self.settings)
        return names

    _setting_names: ClassVar[frozenset[str] | None] = None

    def setting(self, node: Node, name: str) -> Any:
        """A setting's value on this node, or its default."""
        value = node.metadata.get(name)
        if value is None:
            for setting in self.settings:
                if setting.name == name:
                    return setting.default
        return value

    def route(self, call: NodeCall, result: Any) -> dict[str, Any]:
        """Turn the function's result into a value or a Skip per output port.

        Strategies that call the function once (``single_call``) override only
        this; the flow may then call the function inline and route without a
        coroutine, which is what keeps quick nodes at a few microseconds.
        """
        return call.outputs(result)

    async def execute(self, call: NodeCall) -> dict[str, Any]:
        """Run the node; return a value or a Skip for every output port.

        Strategies that run more than the function once (loops, parallel
        branches) override this and set ``single_call = False``.
        """
        return self.route(call, await call.invoke())


@contextlib.contextmanager
def numbers_kept(call: NodeCall, info: dict[str, Any]) -> Iterator[None]:
    """Around a loop or parallel run: however it ends, ``info`` (with ``duration_ms``)
    goes to the node's record, and to the error's ``execution_info`` when it fails."""
    started = time.perf_counter()
    try:
        yield
    except Exception as exc:
        info["duration_ms"] = (time.perf_counter() - started) * 1000.0
        exc.execution_info = dict(info)  # type: ignore[attr-defined]
        raise
    finally:
        info["duration_ms"] = (time.perf_counter() - started) * 1000.0
        call.flow.state.records[call.planned.index].execution_info = dict(info)
