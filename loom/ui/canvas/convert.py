"""From the canvas back to a loom ``Graph``, in the order the file had.

The rule that makes an unedited file save byte for byte, and an edit a small diff:

- nodes: the loaded nodes in file order (each node remembers its position in the
  file, ``loom_seq``, also across delete and undo), then new nodes in creation order;
- wires: the file's wires in file order while they exist (and the ones the canvas
  could not draw while both their nodes exist), then new wires sorted by source
  node, source port, target node and target port;
- graph name, settings, ``ui`` and unknown keys: as loaded.
"""

from __future__ import annotations

from loom.graph import Connection, Graph, GraphSettings

from .jsoncopy import copy_json
from .nodes import LoomNode, node_data
from .scene import SceneModel


def to_graph(model: SceneModel) -> Graph:
    """The graph the canvas shows (every value a copy)."""
    base = model.base
    graph = Graph(
        name=base.name,
        settings=GraphSettings(base.settings.max_concurrency,
                               copy_json(base.settings.extra), base.settings.timeout),
        ui=copy_json(base.ui), graph_extra=copy_json(base.graph_extra),
        extra=copy_json(base.extra),
    )
    ordered = model.ordered()
    for node in ordered:
        data = node_data(node)
        graph.nodes[data.id] = data
    graph.connections = _wires(model, ordered)
    return graph


def _wires(model: SceneModel, ordered: list[LoomNode]) -> list[Connection]:
    drawn: dict[tuple[str, str, str, str], Connection] = {}
    for node in ordered:
        for wire in model.wires_from(node):
            drawn.setdefault(wire.key, wire)
    hidden = {id(c) for c in model.hidden}
    nodes = model.nodes
    out: list[Connection] = []
    used: set[tuple[str, str, str, str]] = set()
    for conn in model.base.connections:
        key = conn.key
        if key in drawn and key not in used:
            used.add(key)
            out.append(_copy(conn))
        elif id(conn) in hidden and conn.src_node in nodes and conn.dst_node in nodes:
            out.append(_copy(conn))
    fresh = [w for key, w in drawn.items() if key not in used]
    if fresh:
        fresh.sort(key=lambda w: _order(model, w))
        out.extend(fresh)
    return out


def _order(model: SceneModel, wire: Connection) -> tuple[int, int, int, int]:
    src, dst = model.nodes[wire.src_node], model.nodes[wire.dst_node]
    src_names = [p.name for p in src.view.outputs]
    dst_names = [p.name for p in dst.view.inputs]
    return (src.loom_seq, src_names.index(wire.src_port), dst.loom_seq,
            dst_names.index(wire.dst_port))


def _copy(conn: Connection) -> Connection:
    return Connection(conn.src_node, conn.src_port, conn.dst_node, conn.dst_port,
                      copy_json(conn.extra))
