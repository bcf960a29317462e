"""``Canvas``: a loom ``Graph`` on a NodeGraphQt canvas (API in DEVELOPERS.md, "The editor").

NodeGraphQt provides the view and the mouse (selection, dragging, live wires,
slicing, zoom). Every change to the graph goes through Loom's own undo commands
(``commands.py``) on NodeGraphQt's undo stack: the viewer's connection, move and
drop signals are re-routed here, away from NodeGraphQt's handlers, which would
build NodeGraphQt commands holding port objects that Loom rebuilds.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from PySide6.QtCore import QObject, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QKeySequence, QUndoStack
from PySide6.QtWidgets import QGraphicsView

from loom.graph import Connection, Graph, GraphSettings, Node
from loom.registry import PortSpec, Registry

from . import clipboard
from .commands import AddNodes, MoveNodes, RemoveNodes, Rewire, SetData
from .convert import to_graph
from .frames import FrameLayer, FrameNode, FrameSpec, frame_specs, wiring_groups
from .jsoncopy import copy_json
from .live import LiveStates
from .node_item import LoomNodeItem
from .nodes import (
    METADATA,
    NAME,
    PROPERTIES,
    TYPE,
    LoomNode,
    Ports,
    default_node,
    node_data,
    snap_position,
)
from .references import rewrite_refs, without
from .scene import SceneModel, Snapshot
from .viewer import LoomViewer, wire_allowed

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from NodeGraphQt import NodeGraph
    from NodeGraphQt.constants import PortTypeEnum
    from NodeGraphQt.qgraphics.port import PortItem

_IN = PortTypeEnum.IN.value
_OUT = PortTypeEnum.OUT.value
_FRAME_TYPES = {"loop": "control.for_each", "parallel": "control.parallel"}
_FRAME_MODES = frozenset({"loop", "parallel", "event"})
_PASTE_STEP = 40.0
_FIT_MARGIN = 40.0


class Canvas(QObject):
    """The editor's canvas: shows and edits one loom graph.

    Nodes are addressed by loom id. Every edit method is undoable through
    :attr:`undo_stack` and emits :attr:`graph_changed`; live run state
    (:meth:`set_state`) is neither saved nor undoable.
    """

    #: the selected node ids (file order) after every selection change: at once for
    #: select(), once per event-loop turn for the mouse, undo and deletions
    selection_changed = Signal(list)
    #: after any change to the graph (edits, undo, redo, load, reload)
    graph_changed = Signal()
    #: a node was double-clicked (its id)
    node_double_clicked = Signal(str)
    #: a wire the user drew was refused: why, in words ("str → float: Add.a accepts …")
    wire_refused = Signal(str)

    def __init__(self, registry: Registry, parent: QObject | None = None) -> None:
        super().__init__(parent)
        with warnings.catch_warnings():
            # NodeGraphQt's viewer builds distutils LooseVersions (deprecated).
            warnings.simplefilter("ignore", DeprecationWarning)
            self._stack = QUndoStack(self)
            self._viewer = LoomViewer(undo_stack=self._stack)
            self._graph = NodeGraph(self, viewer=self._viewer, undo_stack=self._stack)
        self._graph.set_acyclic(False)  # while loops wire back; validation checks cycles
        self._graph.set_pipe_collision(False)
        self._model = SceneModel(self._graph, registry)
        self._model.on_item_added = self._watch_item
        self._frames = FrameLayer(self._graph.scene())
        self._frames_members_dirty = True
        self._frames_geometry_dirty = True
        self._frame_timer = QTimer(self)
        self._frame_timer.setSingleShot(True)
        self._frame_timer.setInterval(0)
        self._frame_timer.timeout.connect(self._refresh_frames)
        # Mouse and undo changes to the selection are reported once per event-loop
        # turn: deleting k selected nodes changes the scene's selection k times.
        self._selection_timer = QTimer(self)
        self._selection_timer.setSingleShot(True)
        self._selection_timer.setInterval(0)
        self._selection_timer.timeout.connect(self._emit_selection)
        self._live = LiveStates(self._model.nodes, self)
        #: the undo stack's index before its last change (tells redo from undo)
        self._stack_index = 0
        self._selecting = False
        self._last_selection: list[str] = []
        self._paste_text = ""
        self._paste_count = 0
        #: the view was destroyed: its scene still reports selection changes while
        #: it empties, and nothing may be asked of the view any more
        self._closed = False
        self._viewer.destroyed.connect(self._on_view_destroyed)
        self._reroute_signals()

    # ------------------------------------------------------------------ wiring up
    def _reroute_signals(self) -> None:
        viewer, graph = self._viewer, self._graph
        for signal, theirs, ours in (
            (viewer.connection_changed, graph._on_connection_changed, self._on_connection_changed),
            (viewer.connection_sliced, graph._on_connection_sliced, self._on_connection_sliced),
            (viewer.moved_nodes, graph._on_nodes_moved, self._on_nodes_moved),
            (viewer.search_triggered, graph._on_search_triggered, self._on_search_triggered),
            (viewer.insert_node, graph._on_insert_node, None),
            (viewer.node_name_changed, graph._on_node_name_changed, None),
            (viewer.data_dropped, graph._on_node_data_dropped, None),
        ):
            signal.disconnect(theirs)
            if ours is not None:
                signal.connect(ours)
        viewer.drop_handler = self._on_drop
        viewer.key_handler = self._on_key
        viewer.refusal_handler = self.wire_refused.emit
        graph.node_double_clicked.connect(self._on_double_click)
        graph.scene().selectionChanged.connect(self._on_scene_selection)
        self._stack.indexChanged.connect(self._on_stack_changed)

    # ------------------------------------------------------------------ properties
    @property
    def widget(self) -> QGraphicsView:
        """The view to put in a window."""
        return self._viewer

    @property
    def undo_stack(self) -> QUndoStack:
        """The one undo stack every edit goes through."""
        return self._stack

    @property
    def node_graph(self) -> NodeGraph:
        """The underlying NodeGraphQt graph (for menus; edit through the Canvas API)."""
        return self._graph

    @property
    def registry(self) -> Registry:
        """The node types this canvas builds nodes from."""
        return self._model.registry

    # ------------------------------------------------------------------ whole graph
    def load(self, graph: Graph) -> None:
        """Replace the scene with a loom graph (bulk path; clears undo and run state).

        Wires the canvas cannot draw (a second wire into one input, a repeated
        wire, a port the node lacks) are kept and saved back while their nodes exist.
        """
        model = self._model
        self._selecting = True
        try:
            self.clear_states()
            self._live.set_problems({})
            model.clear()
            self._stack.clear()
            model.base = _base_copy(graph)
            model.next_seq = 0
            model.id_floor = 0
            registry = model.registry
            unknown = [n.id for n in graph if n.type not in registry]
            missing = SceneModel.missing_ports(graph, unknown) if unknown else {}
            snaps = [Snapshot(_copied(node), i) for i, node in enumerate(graph)]
            hidden: list[Connection] = []
            with model.bulk(len(snaps) + len(graph.connections)):
                model.insert(snaps, ports=missing)
                for conn in model.base.connections:
                    if not model.link(conn):
                        hidden.append(conn)
            model.hidden = hidden
        finally:
            self._selecting = False
        self._paste_text = ""
        self._mark_frames(members=True)
        self._emit_selection()
        self.graph_changed.emit()

    def to_graph(self) -> Graph:
        """The edited graph: file order kept, new nodes and wires appended, copies only."""
        self._adopt_foreign()
        return to_graph(self._model)

    # ------------------------------------------------------------------ reading
    def node_ids(self) -> list[str]:
        """Every node id, in file order."""
        return [n.loom_id for n in self._model.ordered()]

    def node(self, node_id: str) -> Node:
        """A copy of one node's data (position included)."""
        return node_data(self._model.get(node_id))

    def ports(self, node_id: str) -> tuple[list[PortSpec], list[PortSpec]]:
        """The node's input and output ports as shown (``ports_of`` for its data)."""
        ins, outs = self._model.get(node_id).loom_ports
        return list(ins), list(outs)

    def connections(self) -> list[Connection]:
        """Every wire drawn on the canvas (file order first)."""
        return to_graph(self._model).connections

    def selected_ids(self) -> list[str]:
        """The selected node ids, in file order."""
        nodes = self._model.nodes
        items = [i for i in self._graph.scene().selectedItems() if isinstance(i, LoomNodeItem)]
        chosen = [nodes[i.loom_id] for i in items if i.loom_id in nodes]
        return [n.loom_id for n in sorted(chosen, key=lambda n: n.loom_seq)]

    # ------------------------------------------------------------------ editing
    def add_node(self, type_id: str, pos: tuple[float, float] | None = None) -> str:
        """Add a node of an installed type (at ``pos``, else mid-view); returns its id."""
        spec = self._model.registry.get(type_id)
        if spec is None:
            raise KeyError(f"node type {type_id!r} is not installed")
        if pos is None:
            center = self._view_center()
            pos = (center.x() - 75.0, center.y() - 30.0)
        node_id = self._model.new_id()
        data = default_node(spec, type_id, node_id, (float(pos[0]), float(pos[1])))
        self._stack.push(AddNodes(self._model, [Snapshot(data, self._model.next_seq)],
                                  text=f"Add {spec.name}"))
        self.select([node_id])
        return node_id

    def set_name(self, node_id: str, name: str) -> None:
        """Rename a node (the title shows the type's name when ``name`` is empty)."""
        old = self._model.get(node_id).loom(NAME)
        if old != name:
            self._push_data(node_id, {"name": old}, {"name": name}, "Rename")

    def set_properties(self, node_id: str, properties: dict[str, Any]) -> None:
        """Replace a node's properties (ports follow, e.g. a code node's ``inputs``)."""
        old = self._model.get(node_id).loom(PROPERTIES)
        new = copy_json(dict(properties))
        if old != new:
            self._push_data(node_id, {"properties": copy_json(old)}, {"properties": new},
                            "Edit properties")

    def set_metadata(self, node_id: str, metadata: dict[str, Any]) -> None:
        """Replace a node's metadata (ports follow, e.g. a switch's cases)."""
        old = self._model.get(node_id).loom(METADATA)
        new = copy_json(dict(metadata))
        if old != new:
            self._push_data(node_id, {"metadata": copy_json(old)}, {"metadata": new},
                            "Edit settings")

    def set_position(self, node_id: str, pos: tuple[float, float]) -> None:
        """Move a node (undoable, like a mouse drag)."""
        old = tuple(self._model.get(node_id).view.xy_pos)
        new = snap_position(*pos)
        if old != new:
            self._stack.push(MoveNodes(self._model, {node_id: ((old[0], old[1]), new)}))

    def _push_data(self, node_id: str, before: dict[str, Any], after: dict[str, Any],
                   text: str) -> None:
        self._stack.push(SetData(self._model, node_id, before, after, text))

    def connect(  # type: ignore[override]  # the documented Canvas API name
            self, src: str, src_port: str, dst: str, dst_port: str) -> bool:
        """Wire an output to an input; a new wire into an occupied input replaces the old
        one (except on a while loop, whose inputs also take the value carried back).

        Returns False (and changes nothing) when a port does not exist, the wire
        would loop a node onto itself, or the port types are incompatible.
        """
        out = self._model.get(src).view.port_item(src_port, _OUT)
        inp = self._model.get(dst).view.port_item(dst_port, _IN)
        if out is None or inp is None or not wire_allowed(out, inp):
            return False
        wire = Connection(src, src_port, dst, dst_port)
        existing = [_wire(p.output_port, inp) for p in inp.connected_pipes]
        if any(w.key == wire.key for w in existing):
            return True
        replaced = [] if inp.multi_connection else existing
        self._stack.push(Rewire(self._model, replaced, [wire], "Connect"))
        return True

    def disconnect_wire(self, src: str, src_port: str, dst: str, dst_port: str) -> bool:
        """Remove one wire; False when there is no such wire."""
        wire = Connection(src, src_port, dst, dst_port)
        if all(w.key != wire.key for w in self._model.wires_of(self._model.get(dst))):
            return False
        self._stack.push(Rewire(self._model, [wire], [], "Disconnect"))
        return True

    def delete(self, ids: Iterable[str]) -> None:
        """Delete nodes, their wires, and other nodes' references to them (one undo step)."""
        doomed = [i for i in dict.fromkeys(ids) if i in self._model.nodes]
        if not doomed:
            return
        gone = set(doomed)
        self._stack.beginMacro(f"Delete {len(doomed)} node{'s' if len(doomed) > 1 else ''}")
        for node in self._model.ordered():
            if node.loom_id in gone:
                continue
            new = rewrite_refs(node.loom(METADATA), self._model.mode_of(node), without(gone))
            if new is not None:
                self._push_data(node.loom_id, {"metadata": copy_json(node.loom(METADATA))},
                                {"metadata": new}, "Edit settings")
        self._stack.push(RemoveNodes(self._model, doomed))
        self._stack.endMacro()

    def delete_selected(self) -> None:
        """Delete the selected nodes and selected wires."""
        wires = [_wire(p.output_port, p.input_port) for p in self._viewer.selected_pipes()
                 if p.input_port is not None and p.output_port is not None]
        ids = self.selected_ids()
        if wires and ids:
            self._stack.beginMacro("Delete")
            self._stack.push(Rewire(self._model, wires, [], "Disconnect"))
            self.delete(ids)
            self._stack.endMacro()
        elif wires:
            self._stack.push(Rewire(self._model, wires, [], "Disconnect"))
        elif ids:
            self.delete(ids)

    def copy(self) -> bool:
        """Copy the selected nodes (and wires among them) as ``.loom`` text."""
        ids = self.selected_ids()
        if not ids:
            return False
        clipboard.put(clipboard.fragment(self._model, ids))
        return True

    def paste(self) -> list[str]:
        """Paste copied nodes with fresh ids, offset from the originals; selects them."""
        fragment = clipboard.take(self._model)
        if fragment is None or not fragment.nodes:
            return []
        text = clipboard.key(fragment)
        self._paste_count = self._paste_count + 1 if text == self._paste_text else 1
        self._paste_text = text
        step = _PASTE_STEP * self._paste_count
        return self._add_fragment(fragment, (step, step), "Paste")

    def duplicate(self) -> list[str]:
        """Copy and paste the selection in one step, without touching the clipboard."""
        ids = self.selected_ids()
        if not ids:
            return []
        fragment = clipboard.fragment(self._model, ids)
        return self._add_fragment(fragment, (_PASTE_STEP, _PASTE_STEP), "Duplicate")

    def _add_fragment(self, fragment: Graph, offset: tuple[float, float], text: str) -> list[str]:
        snaps, wires = clipboard.reissue(self._model, fragment, offset)
        command = AddNodes(self._model, snaps, wires, f"{text} {len(snaps)} node"
                           f"{'s' if len(snaps) > 1 else ''}")
        self._stack.push(command)
        self.select(command.ids)
        return command.ids

    def select(self, ids: Iterable[str]) -> None:
        """Select exactly these nodes (emits ``selection_changed`` when it changes)."""
        nodes = self._model.nodes
        self._selecting = True
        try:
            self._graph.scene().clearSelection()
            for node_id in ids:
                node = nodes.get(node_id)
                if node is not None:
                    node.view.setSelected(True)
        finally:
            self._selecting = False
        self._emit_selection()

    def select_all(self) -> None:
        """Select every node."""
        self.select(self._model.nodes)

    def frame(self, ids: Sequence[str], kind: str) -> str:
        """Wrap nodes in a new loop (``kind="loop"``) or parallel node, left of them.

        A loop's body lists the nodes in wiring order; a parallel node gets one
        branch per group of connected nodes. Returns the new node's id.
        """
        type_id = _FRAME_TYPES.get(kind)
        if type_id is None:
            raise ValueError(f"kind must be 'loop' or 'parallel', not {kind!r}")
        spec = self._model.registry.get(type_id)
        if spec is None:
            raise KeyError(f"node type {type_id!r} is not installed")
        members = [self._model.get(i) for i in dict.fromkeys(ids)]
        if not members:
            raise ValueError("frame() needs at least one node")
        groups = wiring_groups(
            [(n.loom_id, (n.view.xy_pos[1], n.view.xy_pos[0], n.loom_seq)) for n in members],
            [(w.src_node, w.dst_node) for n in members for w in self._model.wires_from(n)])
        bounds = QRectF()
        for node in members:
            bounds = bounds.united(node.view.sceneBoundingRect())
        pos = (bounds.left() - 260.0, bounds.center().y() - 40.0)
        node_id = self._model.new_id()
        data = default_node(spec, type_id, node_id, pos)
        if kind == "loop":
            data.metadata["body"] = [n for group in groups for n in group]
        else:
            data.metadata["parallel_branches"] = groups
        self._stack.push(AddNodes(self._model, [Snapshot(data, self._model.next_seq)],
                                  text=f"Wrap in {spec.name}"))
        self.select([node_id])
        return node_id

    def undo(self) -> None:
        """Undo the last edit."""
        self._stack.undo()

    def redo(self) -> None:
        """Redo the last undone edit."""
        self._stack.redo()

    # ------------------------------------------------------------------ live state
    def set_state(self, node_id: str, state: str | None, badge: str | None = None) -> None:
        """Show a node's run state (``queued running done failed skipped stopped`` or
        None) and a short badge. Transient: never saved, never undone; unknown ids
        are ignored (a run may report a node deleted meanwhile)."""
        self._live.set_state(node_id, state, badge)

    def state(self, node_id: str) -> str | None:
        """The run state shown on a node (None: none, or no such node)."""
        return self._live.state(node_id)[0]

    def badge(self, node_id: str) -> str | None:
        """The badge shown on a node (None: none, or no such node)."""
        return self._live.state(node_id)[1]

    def taken_port(self, node_id: str) -> str | None:
        """The output port highlighted as taken on a node, if any."""
        return self._live.state(node_id)[2]

    def set_port_taken(self, node_id: str, port: str | None) -> None:
        """Highlight the output port a conditional or switch took (None clears it)."""
        self._live.set_port_taken(node_id, port)

    def clear_states(self) -> None:
        """Forget every node's run state, badge and taken port."""
        self._live.clear()

    def stale(self, node_id: str) -> bool:
        """Whether a node's run state is from before the last edit (drawn dimmed).

        Any edit that changes what runs (not a move) dims every shown state, as n8n
        does; the next run's states are fresh again."""
        return self._live.stale(node_id)

    def set_problems(self, problems: dict[str, str]) -> None:
        """Outline nodes with validation problems (node id -> "error"/"warning");
        every other node loses its outline."""
        self._live.set_problems(problems)

    def problem(self, node_id: str) -> str | None:
        """The validation outline a node shows: "error", "warning" or None."""
        return self._live.problem(node_id)

    # ------------------------------------------------------------------ view
    def fit_view(self) -> None:
        """Zoom to show every node (never closer than 100 %)."""
        bounds = self._bounds()
        viewer = self._viewer
        if bounds.isNull():
            viewer.reset_zoom()
            return
        bounds.adjust(-_FIT_MARGIN, -_FIT_MARGIN, _FIT_MARGIN, _FIT_MARGIN)
        port = viewer.viewport().rect()
        if bounds.width() < port.width() and bounds.height() < port.height():
            center = bounds.center()
            bounds = QRectF(0.0, 0.0, port.width(), port.height())
            bounds.moveCenter(center)
        viewer._scene_range = bounds
        viewer._update_scene()

    def center_on(self, node_id: str) -> None:
        """Scroll so a node is in the middle of the view (zoom unchanged)."""
        rect = self._model.get(node_id).view.sceneBoundingRect()
        viewer = self._viewer
        viewer._scene_range.translate(rect.center() - viewer._scene_range.center())
        viewer._update_scene()

    def _bounds(self) -> QRectF:
        # A union of node rectangles: scene.itemsBoundingRect() would also visit every
        # port and wire, and NodeGraphQt's fit builds an item group (6.8 s at 1,000 nodes).
        nodes = list(self._model.nodes.values())
        if not nodes:
            return QRectF()
        left = top = math.inf
        right = bottom = -math.inf
        for node in nodes:
            rect = node.view.sceneBoundingRect()
            left, top = min(left, rect.left()), min(top, rect.top())
            right, bottom = max(right, rect.right()), max(bottom, rect.bottom())
        bounds = QRectF(left, top, right - left, bottom - top)
        for item in self._frames.items():
            if item.isVisible():
                bounds = bounds.united(item.rect())
        return bounds

    def _view_center(self) -> QPointF:
        return QPointF(self._viewer.mapToScene(self._viewer.viewport().rect().center()))

    # ------------------------------------------------------------------ node types
    def reload_types(self, type_ids: Iterable[str]) -> None:
        """Rebuild the nodes of these types from their current specs, keeping wires.

        For hot reload: the registry already holds the new specs (or no longer holds
        a type, whose nodes then become missing placeholders). Not undoable; wires to
        ports that no longer exist are dropped.
        """
        wanted = set(type_ids)
        model = self._model
        targets = [n.loom_id for n in model.ordered() if n.loom(TYPE) in wanted]
        if not targets:
            return
        selected = self.selected_ids()
        states = {i: (model.nodes[i].view.exec_state, model.nodes[i].view.badge)
                  for i in targets}
        self._selecting = True
        try:
            snaps, wires = model.remove(targets)
            ports: dict[str, Ports] = {}
            now_missing = [s for s in snaps if s.data.type not in model.registry]
            if now_missing:
                wired = SceneModel.missing_ports(Graph(connections=wires))
                for snap in now_missing:
                    ports[snap.data.id] = snap.ports or wired.get(snap.data.id, ([], []))
            model.insert(snaps, wires, ports=ports)
        finally:
            self._selecting = False
        for node_id, (state, badge) in states.items():
            if state is not None or badge:
                self.set_state(node_id, state, badge)
        self.select(selected)
        self._mark_frames(members=True)
        self.graph_changed.emit()

    # ------------------------------------------------------------------ frames
    def frames(self) -> list[tuple[FrameSpec, QRectF]]:
        """The framed regions now drawn (loop bodies, branches, event waves)."""
        self._refresh_frames()
        return [(item.spec, item.rect()) for item in self._frames.items() if item.isVisible()]

    def _watch_item(self, item: LoomNodeItem) -> None:
        item.on_moved = self._on_item_moved

    def _on_item_moved(self, item: LoomNodeItem) -> None:
        if self._frames.items():
            self._mark_frames(members=False)

    def _mark_frames(self, members: bool) -> None:
        if members:
            self._frames_members_dirty = True
        self._frames_geometry_dirty = True
        if not self._frame_timer.isActive():
            self._frame_timer.start()

    def _refresh_frames(self) -> None:
        self._frame_timer.stop()
        if self._closed:
            return
        model = self._model
        if self._frames_members_dirty:
            self._frames_members_dirty = False
            owners = []
            for node in model.nodes.values():
                mode = model.mode_of(node)
                if mode in _FRAME_MODES:
                    spec_meta = node.SPEC.metadata if node.SPEC is not None else {}
                    owners.append(FrameNode(node.loom_id, node.view.name, mode,
                                            {**spec_meta, **node.loom(METADATA)}))
            specs = frame_specs(owners, model.nodes, self._downstream) if owners else []
            self._frames.sync(specs)
            self._frames_geometry_dirty = True
        if self._frames_geometry_dirty:
            self._frames_geometry_dirty = False
            self._frames.relayout(self._node_rect)

    def _downstream(self, node_id: str) -> list[str]:
        node = self._model.nodes.get(node_id)
        if node is None:
            return []
        return [pipe.input_port.node.loom_id for port in node.view.outputs
                for pipe in port.connected_pipes]

    def _node_rect(self, node_id: str) -> QRectF | None:
        node = self._model.nodes.get(node_id)
        return None if node is None else node.view.sceneBoundingRect()

    # ------------------------------------------------------------------ viewer events
    def _on_connection_changed(self, disconnected: list[Any], connected: list[Any]) -> None:
        removed = [_wire(a, b) for a, b in disconnected]
        added = [_wire(a, b) for a, b in connected if wire_allowed(a, b)]
        if removed or added:
            self._stack.push(Rewire(self._model, removed, added,
                                    "Connect" if added else "Disconnect"))

    def _on_connection_sliced(self, pairs: list[Any]) -> None:
        removed = [_wire(a, b) for a, b in pairs]
        if removed:
            self._stack.push(Rewire(self._model, removed, [], "Cut wires"))

    def _on_nodes_moved(self, moved: dict[Any, Any]) -> None:
        moves = {}
        for view, old in moved.items():
            if isinstance(view, LoomNodeItem) and view.loom_id in self._model.nodes:
                before = (float(old[0]), float(old[1]))
                # The command puts the node on the rounded spot the file will hold.
                after = snap_position(*view.xy_pos)
                if after == before:  # a twitch smaller than the step: no edit
                    self._model.move(view.loom_id, before)
                else:
                    moves[view.loom_id] = (before, after)
        if moves:
            self._stack.push(MoveNodes(self._model, moves))

    def _on_search_triggered(self, node_type: str, pos: tuple[float, float]) -> None:
        self._on_drop(node_type, pos)

    def _on_drop(self, type_id: str, pos: tuple[float, float]) -> None:
        loom_type = self._model.types.type_id_of(type_id) or type_id
        if loom_type in self._model.registry:
            self.add_node(loom_type, pos)

    def _on_double_click(self, node: Any) -> None:
        if isinstance(node, LoomNode):
            self.node_double_clicked.emit(node.loom_id)

    def _on_key(self, event: QKeyEvent) -> bool:
        key = event.key()
        mods = event.modifiers()
        plain = mods in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.KeypadModifier)
        ctrl = mods == Qt.KeyboardModifier.ControlModifier
        std = QKeySequence.StandardKey
        if event.matches(std.Undo):
            self.undo()
        elif event.matches(std.Redo) or (ctrl and key == Qt.Key.Key_Y):
            self.redo()
        elif event.matches(std.Copy):
            self.copy()
        elif event.matches(std.Paste):
            self.paste()
        elif event.matches(std.SelectAll):
            self.select_all()
        elif ctrl and key == Qt.Key.Key_D:
            self.duplicate()
        elif plain and key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.delete_selected()
        elif plain and key == Qt.Key.Key_F:
            self.fit_view()
        else:
            return False
        return True

    # ------------------------------------------------------------------ bookkeeping
    def _on_stack_changed(self, index: int) -> None:
        self._adopt_foreign()
        self._mark_frames(members=True)
        # The command just done (index - 1) or undone (index): unless it only moved
        # nodes, what runs changed and the last run's colours no longer describe it.
        before, self._stack_index = self._stack_index, index
        changed = self._stack.command(index - 1 if index > before else index)
        if changed is not None and not _moves_only(changed):
            self._live.mark_stale()
        self.graph_changed.emit()

    def _on_scene_selection(self) -> None:
        if not self._selecting and not self._closed and not self._selection_timer.isActive():
            self._selection_timer.start()

    def _on_view_destroyed(self, *args: Any) -> None:
        self._closed = True
        self._selection_timer.stop()
        self._frame_timer.stop()
        self._live.clear()

    def _emit_selection(self) -> None:
        self._selection_timer.stop()
        if self._closed:
            return
        ids = self.selected_ids()
        if ids != self._last_selection:
            self._last_selection = ids
            self.selection_changed.emit(ids)

    def _adopt_foreign(self) -> None:
        """Index nodes NodeGraphQt added on its own (its paste, tab search, palette).

        They carry copies of another node's loom id, or none: give them fresh ids,
        as Loom's own paste would. Cheap when nothing changed (one length check).
        """
        model = self._model
        theirs = self._graph.model.nodes
        if len(theirs) == len(model.nodes):
            return
        known = {id(n) for n in model.nodes.values()}
        for node in list(theirs.values()):
            if isinstance(node, LoomNode) and id(node) not in known:
                if not node.loom_id or node.loom_id in model.nodes:
                    model.rename_id(node, model.new_id())
                else:
                    model.nodes[node.loom_id] = node
                    model.note_id(node.loom_id)
                node.loom_seq = model.next_seq
                model.next_seq += 1
                node.view.go_live()
                self._watch_item(node.view)
                # NodeGraphQt made the name unique ("Add 1") and rebuilt the ports
                # untyped: back to the loom name and the node's real ports.
                model.set_data(node.loom_id, name=node.loom(NAME))
                if node.SPEC is not None:
                    model.rebuild_ports(node, model.ports_for(node_data(node)))
        present = {id(n) for n in theirs.values()}
        for node_id in [i for i, n in model.nodes.items() if id(n) not in present]:
            del model.nodes[node_id]


def _base_copy(graph: Graph) -> Graph:
    """What the canvas keeps of a loaded graph: everything but the nodes, copied.

    (Nodes keep their file position themselves; the caller may go on using the graph.)
    """
    return Graph(
        name=graph.name,
        settings=GraphSettings(graph.settings.max_concurrency, copy_json(graph.settings.extra),
                               graph.settings.timeout),
        connections=[Connection(c.src_node, c.src_port, c.dst_node, c.dst_port,
                                copy_json(c.extra)) for c in graph.connections],
        ui=copy_json(graph.ui), graph_extra=copy_json(graph.graph_extra),
        extra=copy_json(graph.extra))


def _copied(node: Node) -> Node:
    return Node(node.id, node.type, node.name, node.position, copy_json(node.properties),
                copy_json(node.metadata), node.type_version, copy_json(node.extra))


def _wire(a: PortItem, b: PortItem) -> Connection:
    out, inp = (a, b) if a.port_type == _OUT else (b, a)
    return Connection(out.node.loom_id, out.name, inp.node.loom_id, inp.name)


def _moves_only(command: Any) -> bool:
    """Whether an undo command (or macro) only moved nodes (what runs is unchanged)."""
    if isinstance(command, MoveNodes):
        return True
    count = command.childCount()
    return count > 0 and all(_moves_only(command.child(i)) for i in range(count))
