"""Copy and paste as ``.loom`` text.

A copied selection is a complete ``.loom`` document (its nodes and the wires among
them), so pasting into a text editor gives a file Loom opens, and pasting a file's
text onto the canvas imports it. Pasted nodes get fresh ids; wires and node-id
settings (a loop's body, branches) among the copies follow the new ids.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QMimeData
from PySide6.QtWidgets import QApplication

from loom.graph import Connection, Graph, LoomFileError, dumps_graph, loads_graph

from .nodes import node_data, snap_position
from .references import follow, rewrite_refs
from .scene import SceneModel, Snapshot

#: the clipboard format; the same text is also offered as text/plain
MIME = "application/x-loom-graph"


def fragment(model: SceneModel, ids: list[str]) -> Graph:
    """The nodes with these ids (file order) and the wires among them."""
    chosen = set(ids)
    graph = Graph()
    for node in model.ordered():
        if node.loom_id in chosen:
            graph.nodes[node.loom_id] = node_data(node)
    for node in model.ordered():
        if node.loom_id in chosen:
            graph.connections.extend(w for w in model.wires_from(node) if w.dst_node in chosen)
    return graph


def put(graph: Graph) -> None:
    """Put a fragment on the system clipboard."""
    text = dumps_graph(graph, "<clipboard>")
    mime = QMimeData()
    mime.setData(MIME, text.encode("utf-8"))
    mime.setText(text)
    QApplication.clipboard().setMimeData(mime)


def key(graph: Graph) -> str:
    """The canonical text of a fragment (to tell repeated pastes of the same nodes)."""
    return dumps_graph(graph, "<clipboard>")


def take(model: SceneModel) -> Graph | None:
    """The fragment on the clipboard, or None when it holds no loom graph."""
    mime = QApplication.clipboard().mimeData()
    if mime.hasFormat(MIME):
        text = bytes(mime.data(MIME).data()).decode("utf-8", "replace")
    elif mime.hasText():
        text = mime.text()
    else:
        return None
    if '"format"' not in text:  # plain text that is not a .loom document: not ours
        return None
    try:
        return loads_graph(text, "<clipboard>", migrations=model.registry.migrations)
    except LoomFileError:
        return None


def reissue(model: SceneModel, graph: Graph, offset: tuple[float, float]
            ) -> tuple[list[Snapshot], list[Connection]]:
    """Snapshots and wires for pasting a fragment: fresh ids, shifted positions."""
    mapping: dict[str, str] = {}
    for node_id in graph.nodes:
        mapping[node_id] = model.new_id(mapping.values())
    missing = SceneModel.missing_ports(graph)
    dx, dy = offset
    snaps: list[Snapshot] = []
    for i, node in enumerate(graph):
        spec = model.registry.get(node.type)
        mode = node.metadata.get("execution_mode") or (spec.mode if spec else "sequential")
        metadata = rewrite_refs(node.metadata, str(mode), follow(mapping))
        data = replace(node, id=mapping[node.id],
                       position=snap_position(node.position[0] + dx, node.position[1] + dy),
                       metadata=node.metadata if metadata is None else metadata)
        ports = None if spec is not None else missing.get(node.id, ([], []))
        snaps.append(Snapshot(data, model.next_seq + i, ports))
    wires = [Connection(mapping[c.src_node], c.src_port, mapping[c.dst_node], c.dst_port)
             for c in graph.connections]
    return snaps, wires
