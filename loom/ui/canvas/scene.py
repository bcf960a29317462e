"""The canvas's state and its primitive, non-undoable edits.

:class:`SceneModel` owns the nodes on a NodeGraphQt graph, indexed by loom id, and
does every change the undo commands (``commands.py``) are made of: insert and remove
nodes, link and unlink wires, change a node's data (rebuilding its ports), move.
Everything is addressed by loom id and port name, never by NodeGraphQt object, so a
command still works after the objects it once touched were rebuilt (ports after a
property change, nodes after undo or a node-pack reload).

It also remembers the graph as loaded (``base``): node and wire order, graph-level
keys, and the wires the canvas could not draw (``hidden``: a second wire into one
input, a repeated wire, a port the node does not have). Those are written back
unchanged while both their nodes exist, so a file loads and saves byte for byte.
"""

from __future__ import annotations

import contextlib
import gc
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from PySide6.QtWidgets import QGraphicsScene

from loom.engine import STRATEGIES, Strategy, ports_of
from loom.graph import Connection, Graph, Node
from loom.registry import PortSpec, Registry

from .items import LoomPortItem
from .node_item import LoomNodeItem
from .nodes import (
    ID,
    METADATA,
    NAME,
    PROPERTIES,
    TYPE,
    LoomNode,
    NodeTypes,
    Ports,
    node_data,
)
from .viewer import wire_color

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from NodeGraphQt import NodeGraph
    from NodeGraphQt.base.commands import PortConnectedCmd, PortDisconnectedCmd

#: batches at least this big switch off scene indexing, repaints and the cyclic GC
_BULK = 64
_UNSET: Any = object()


@dataclass(frozen=True)
class Snapshot:
    """Everything needed to put a node back: its data, file position and ports.

    ``ports`` is kept for missing node types only: theirs come from wires that
    may be gone by the time the node returns.
    """

    data: Node
    seq: int
    ports: Ports | None = None


class SceneModel:
    """Nodes by loom id on one NodeGraphQt graph, and the primitive edits."""

    def __init__(self, graph: NodeGraph, registry: Registry) -> None:
        self.graph = graph
        self.viewer = graph.viewer()
        self.scene: QGraphicsScene = graph.scene()
        self.types = NodeTypes(graph, registry)
        self.registry = registry
        self.nodes: dict[str, LoomNode] = {}
        self.base = Graph()
        self.hidden: list[Connection] = []
        self.next_seq = 0
        #: highest numeric suffix of any ``n<number>`` id seen this session: new ids
        #: go above it, so an id never comes back for a different node
        self.id_floor = 0
        #: called with each node item added (the canvas hooks frame updates on it)
        self.on_item_added: Any = None

    # ------------------------------------------------------------------ reading
    def get(self, node_id: str) -> LoomNode:
        """The node with this id; ``KeyError`` names the id."""
        try:
            return self.nodes[node_id]
        except KeyError:
            raise KeyError(f"no node with id {node_id!r}") from None

    def ordered(self) -> list[LoomNode]:
        """Nodes in file order (loaded nodes first, new ones in creation order)."""
        return sorted(self.nodes.values(), key=lambda n: n.loom_seq)

    def new_id(self, taken: Iterable[str] = ()) -> str:
        """A fresh ``n<number>`` id above every id seen this session."""
        used = set(taken)
        candidate = self.id_floor + 1
        while f"n{candidate}" in self.nodes or f"n{candidate}" in used:
            candidate += 1
        self.id_floor = candidate
        return f"n{candidate}"

    def note_id(self, node_id: str) -> None:
        """Raise the id floor past an id in use."""
        if node_id.startswith("n") and node_id[1:].isdigit():
            self.id_floor = max(self.id_floor, int(node_id[1:]))

    def wires(self) -> list[Connection]:
        """Every wire drawn on the canvas."""
        out: list[Connection] = []
        for node in self.nodes.values():
            out.extend(self.wires_from(node))
        return out

    def wires_from(self, node: LoomNode) -> Iterator[Connection]:
        """The wires leaving one node, in port order."""
        src = node.loom_id
        for port in node.view.outputs:
            for pipe in port.connected_pipes:
                target = pipe.input_port
                yield Connection(src, port.name, target.node.loom_id, target.name)

    def wires_of(self, node: LoomNode) -> list[Connection]:
        """Every wire touching one node (leaving first, then arriving)."""
        out = list(self.wires_from(node))
        dst = node.loom_id
        for port in node.view.inputs:
            for pipe in port.connected_pipes:
                source = pipe.output_port
                out.append(Connection(source.node.loom_id, source.name, dst, port.name))
        return out

    def snapshot(self, node: LoomNode) -> Snapshot:
        """What :meth:`insert` needs to rebuild this node."""
        ports = None if node.SPEC is not None else (
            list(node.loom_ports[0]), list(node.loom_ports[1]))
        return Snapshot(node_data(node), node.loom_seq, ports)

    # ------------------------------------------------------------------ ports
    def ports_for(self, data: Node, graph: Graph | None = None) -> Ports:
        """The ports a node shows: ``ports_of`` for installed types, else its wires'."""
        ins, outs = ports_of(data, self.registry, graph)
        return list(ins), list(outs)

    @staticmethod
    def missing_ports(graph: Graph, missing: Iterable[str] | None = None) -> dict[str, Ports]:
        """Ports of the nodes whose type is not installed, from the graph's wires.

        ``missing`` names those nodes (None: every node of ``graph``, for a graph that
        holds only wires or only missing nodes). Only they get ports this way: an
        installed node's ports come from its type, never from its wires.
        One pass over the wires (``ports_of`` scans them per node, which is
        quadratic for a big graph full of missing nodes).
        """
        wanted = None if missing is None else set(missing)
        ins: dict[str, dict[str, PortSpec]] = {}
        outs: dict[str, dict[str, PortSpec]] = {}
        for c in graph.connections:
            if wanted is None or c.src_node in wanted:
                outs.setdefault(c.src_node, {}).setdefault(c.src_port, PortSpec(c.src_port))
            if wanted is None or c.dst_node in wanted:
                ins.setdefault(c.dst_node, {}).setdefault(c.dst_port, PortSpec(c.dst_port))
        return {node_id: (list(ins.get(node_id, {}).values()),
                          list(outs.get(node_id, {}).values()))
                for node_id in set(ins) | set(outs)}

    # ------------------------------------------------------------------ inserting
    @contextlib.contextmanager
    def bulk(self, size: int) -> Iterator[None]:
        """Batch many scene changes: no BSP index, no repaints, no cyclic GC meanwhile.

        Adding items to an indexed scene re-indexes per item; the GC would rescan
        the growing set of Qt wrappers over and over (see DEVELOPERS.md, engine notes).
        """
        if size < _BULK:
            yield
            return
        gc_on = gc.isenabled()
        gc.disable()
        index = self.scene.itemIndexMethod()
        self.scene.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.NoIndex)
        self.viewer.setUpdatesEnabled(False)
        try:
            yield
        finally:
            self.scene.setItemIndexMethod(index)
            self.viewer.setUpdatesEnabled(True)
            if gc_on:
                gc.enable()

    def insert(self, snapshots: Sequence[Snapshot], wires: Sequence[Connection] = (),
               ports: dict[str, Ports] | None = None) -> list[LoomNode]:
        """Create nodes and the wires given (those whose ports exist and are free).

        ``ports`` overrides the computed ports by node id (used for missing types).
        """
        made: list[LoomNode] = []
        with self.bulk(len(snapshots) + len(wires)):
            for snap in snapshots:
                made.append(self._build(snap, (ports or {}).get(snap.data.id)))
            for node in made:
                self._add(node)
            for wire in wires:
                self.link(wire)
        return made

    def _build(self, snap: Snapshot, ports: Ports | None) -> LoomNode:
        data = snap.data
        cls = self.types.class_for(data.type)
        if cls.SPEC is not None:
            ports = None  # an installed type's ports come from its spec, never from wires
        if ports is None:
            ports = snap.ports if cls.SPEC is None and snap.ports is not None else (
                ([], []) if cls.SPEC is None else self.ports_for(data))
        node = cls(data, ports, self.back_edges(data))
        node.loom_seq = snap.seq
        self._style(node)
        return node

    def _add(self, node: LoomNode) -> None:
        node_id = node.loom_id
        if node_id in self.nodes:
            raise ValueError(f"duplicate node id {node_id!r}")
        self.types.adopt(node)
        self.graph.model.nodes[node.id] = node
        view = node.view
        self.scene.addItem(view)
        view.draw_node()
        view.go_live()
        self.nodes[node_id] = node
        self.note_id(node_id)
        self.next_seq = max(self.next_seq, node.loom_seq + 1)
        if self.on_item_added is not None:
            self.on_item_added(view)

    def _style(self, node: LoomNode) -> None:
        """Per-node look that depends on data: conditional wires are green/red."""
        view: LoomNodeItem = node.view
        view.conditional = self.mode_of(node) == "conditional"

    def back_edges(self, data: Node) -> bool:
        """Does this node take wires back from its scope (a while loop)?

        Such a node's inputs take several wires: the first value and the carried one.
        """
        spec = self.registry.get(data.type)
        mode = data.metadata.get("execution_mode") or (spec.mode if spec else "sequential")
        strategy = STRATEGIES.get(str(mode))
        if strategy is None or type(strategy).back_edges is Strategy.back_edges:
            return False
        meta = {**spec.metadata, **data.metadata} if spec is not None else data.metadata
        return strategy.back_edges(replace(data, metadata=meta))

    def mode_of(self, node: LoomNode) -> str:
        """The node's execution mode (its metadata's, else its type's)."""
        mode = node.loom(METADATA).get("execution_mode")
        if isinstance(mode, str) and mode:
            return mode
        return node.SPEC.mode if node.SPEC is not None else "sequential"

    # ------------------------------------------------------------------ removing
    def remove(self, ids: Iterable[str]) -> tuple[list[Snapshot], list[Connection]]:
        """Remove nodes and their wires; returns what :meth:`insert` puts back."""
        doomed = sorted((self.get(i) for i in dict.fromkeys(ids)), key=lambda n: n.loom_seq)
        snaps = [self.snapshot(n) for n in doomed]
        wires: dict[tuple[str, str, str, str], Connection] = {}
        for node in doomed:
            for wire in self.wires_of(node):
                wires.setdefault(wire.key, wire)
        with self.bulk(len(doomed) + len(wires)):
            for wire in wires.values():
                self.unlink(wire)
            for node in doomed:
                self.graph.model.nodes.pop(node.id, None)
                node.view.delete()
                del self.nodes[node.loom_id]
        return snaps, list(wires.values())

    def clear(self) -> None:
        """Remove every node (no snapshots: used by load)."""
        with self.bulk(len(self.nodes)):
            for node in self.nodes.values():
                for port in node.view.inputs:
                    for pipe in list(port.connected_pipes):
                        pipe.delete()
                self.graph.model.nodes.pop(node.id, None)
                node.view.delete()
            self.nodes.clear()
        self.graph.model.nodes.clear()
        self.hidden = []

    # ------------------------------------------------------------------ wires
    def _ports(self, wire: Connection) -> tuple[Any, Any] | None:
        src = self.nodes.get(wire.src_node)
        dst = self.nodes.get(wire.dst_node)
        if src is None or dst is None:
            return None
        out = src.outputs().get(wire.src_port)
        inp = dst.inputs().get(wire.dst_port)
        if out is None or inp is None:
            return None
        return out, inp

    def link(self, wire: Connection) -> bool:
        """Draw a wire if both ports exist, it is not drawn yet and the input is free
        (or takes several wires). No type check here."""
        ports = self._ports(wire)
        if ports is None:
            return False
        out, inp = ports
        pipes = inp.view.connected_pipes
        if pipes and (not inp.view.multi_connection
                      or any(p.output_port is out.view for p in pipes)):
            return False
        # From the output side: Port.connect_to on an occupied input with acyclic
        # checks drops the old wire and makes no new one (qt-guide blocker #4).
        PortConnectedCmd(out, inp, False).redo()
        return True

    def unlink(self, wire: Connection) -> bool:
        """Remove a wire (tolerates a pipe the viewer already took away)."""
        ports = self._ports(wire)
        if ports is None:
            return False
        out, inp = ports
        linked = any(p.input_port is inp.view for p in out.view.connected_pipes)
        in_model = inp.model.connected_ports.get(out.node().id)
        if not linked and not (in_model and out.name() in in_model):
            return False
        PortDisconnectedCmd(out, inp, False).redo()
        # PortDisconnectedCmd leaves empty lists behind; NodeGraphQt's own serializer
        # would then report phantom connections.
        for model, key in ((out.model, inp.node().id), (inp.model, out.node().id)):
            if not model.connected_ports.get(key):
                model.connected_ports.pop(key, None)
        return True

    def place_hidden(self, node_id: str | None = None) -> None:
        """Draw the hidden wires (of one node, or all) that now fit."""
        keep: list[Connection] = []
        drawn = {w.key for w in self.wires()} if self.hidden else set()
        for wire in self.hidden:
            touches = node_id is None or node_id in (wire.src_node, wire.dst_node)
            if touches and wire.key not in drawn and self.link(wire):
                drawn.add(wire.key)
                continue
            keep.append(wire)
        self.hidden = keep

    # ------------------------------------------------------------------ data
    def set_data(self, node_id: str, *, name: Any = _UNSET, properties: Any = _UNSET,
                 metadata: Any = _UNSET) -> list[Connection]:
        """Change a node's name, properties or metadata; returns wires dropped.

        When ports change, ports that survive keep their items and wires; wires to
        ports that are gone are dropped (and returned, so undo can restore them).
        """
        node = self.get(node_id)
        if name is not _UNSET:
            node.set_loom(NAME, name)
            title = node.title_for(name, node.loom(TYPE))
            node.model.name = title
            node.view.name = title
        if properties is _UNSET and metadata is _UNSET:
            return []
        if properties is not _UNSET:
            node.set_loom(PROPERTIES, properties)
        if metadata is not _UNSET:
            node.set_loom(METADATA, metadata)
        self._style(node)
        dropped: list[Connection] = []
        if node.SPEC is not None:
            dropped = self.rebuild_ports(node, self.ports_for(node_data(node)))
        self.recolor(node)
        self.place_hidden(node_id)
        return dropped

    def rebuild_ports(self, node: LoomNode, ports: Ports) -> list[Connection]:
        """Make the node's port items match ``ports``; returns the wires dropped."""
        ins, outs = ports
        old_in = [p.name() for p in node.input_ports()]
        old_out = [p.name() for p in node.output_ports()]
        new_in = [p.name for p in ins]
        new_out = [p.name for p in outs]
        dropped: list[Connection] = []
        if old_in != new_in or old_out != new_out:
            keep_in, keep_out = set(new_in), set(new_out)
            for wire in self.wires_of(node):
                gone = (wire.dst_node == node.loom_id and wire.dst_port not in keep_in) or (
                    wire.src_node == node.loom_id and wire.src_port not in keep_out)
                if gone and self.unlink(wire):
                    dropped.append(wire)
            for port in [p for p in node.input_ports() if p.name() not in keep_in]:
                node.delete_input(port)
            for port in [p for p in node.output_ports() if p.name() not in keep_out]:
                node.delete_output(port)
            node.add_loom_ports(ports)
            self._reorder(node, new_in, new_out)
        by_name = {p.name: p for p in (*ins, *outs)}
        for item in (*node.view.inputs, *node.view.outputs):
            spec = by_name.get(item.name)
            if spec is not None and isinstance(item, LoomPortItem):
                item.loom_type = spec.type
                item.setToolTip("")
        node.loom_ports = (list(ins), list(outs))
        node.set_multi_inputs(self.back_edges(node_data(node)))
        node.view.draw_node()
        return dropped

    @staticmethod
    def _reorder(node: LoomNode, new_in: list[str], new_out: list[str]) -> None:
        # NodeGraphQt keeps port order in three places; all must follow the spec's.
        ins = {p.name(): p for p in node.input_ports()}
        outs = {p.name(): p for p in node.output_ports()}
        node._inputs = [ins[n] for n in new_in if n in ins]
        node._outputs = [outs[n] for n in new_out if n in outs]
        node.model.inputs = {p.name(): p.model for p in node._inputs}
        node.model.outputs = {p.name(): p.model for p in node._outputs}
        node.view.reorder_ports([p.view for p in node._inputs], [p.view for p in node._outputs])

    def recolor(self, node: LoomNode) -> None:
        """Re-colour the wires leaving a node (its mode or port types changed)."""
        for port in node.view.outputs:
            color = wire_color(port)
            for pipe in port.connected_pipes:
                pipe._color = color
                pipe.update()

    def move(self, node_id: str, pos: tuple[float, float]) -> None:
        """Put a node at a scene position."""
        node = self.get(node_id)
        node.view.setPos(float(pos[0]), float(pos[1]))
        node.model.pos = [float(pos[0]), float(pos[1])]

    def rename_id(self, node: LoomNode, new_id: str) -> None:
        """Give a node another loom id (copies NodeGraphQt made behind our back)."""
        if self.nodes.get(node.loom_id) is node:
            del self.nodes[node.loom_id]
        node.set_loom(ID, new_id)
        self.nodes[new_id] = node
        self.note_id(new_id)


def with_id(snap: Snapshot, node_id: str, seq: int) -> Snapshot:
    """The same node under another id and file position (paste, duplicate)."""
    return Snapshot(replace(snap.data, id=node_id), seq, snap.ports)
