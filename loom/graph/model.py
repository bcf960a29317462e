"""The graph model: plain dataclasses, no behaviour beyond bookkeeping.

A :class:`Graph` is what a ``.loom`` file holds. It knows nothing about node
types, ports or execution: those come from the registry and the engine. Keys a
newer Loom wrote and this one does not know are kept in ``extra`` dicts so they
are written back unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

#: Execution mode used when neither the node's metadata nor its type names one.
DEFAULT_EXECUTION_MODE = "sequential"


@dataclass
class Connection:
    """A wire from an output port to an input port, by node id and port name."""

    src_node: str
    src_port: str
    dst_node: str
    dst_port: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity of the wire, ignoring unknown keys."""
        return (self.src_node, self.src_port, self.dst_node, self.dst_port)


@dataclass
class Node:
    """One node of a graph.

    ``properties`` holds values for input ports that are not connected (and for
    properties of dynamic nodes such as the code node); ``metadata`` holds the
    execution mode and its settings. ``type_version`` is the version of the node
    type that wrote it (``None`` when the file did not say, meaning 1).
    """

    id: str
    type: str
    name: str = ""
    position: tuple[float, float] = (0.0, 0.0)
    properties: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    type_version: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> int:
        """The node type version this node's data follows (1 when unstated)."""
        return 1 if self.type_version is None else self.type_version

    @property
    def label(self) -> str:
        """How messages name the node: ``name (id)`` or just the id."""
        return f"{self.name} ({self.id})" if self.name and self.name != self.id else self.id


@dataclass
class GraphSettings:
    """Graph-wide settings. ``max_concurrency`` bounds how many ready nodes run at once;
    ``timeout`` (seconds, None: none) bounds the whole run, which then stops as on a stop
    request and ends ``failed`` ("run timeout of S s")."""

    max_concurrency: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None


@dataclass
class Graph:
    """A whole graph: nodes in file order, the wires between them, and settings."""

    name: str = ""
    settings: GraphSettings = field(default_factory=GraphSettings)
    nodes: dict[str, Node] = field(default_factory=dict)
    connections: list[Connection] = field(default_factory=list)
    ui: dict[str, Any] = field(default_factory=dict)
    #: unknown keys inside the top-level ``graph`` object
    graph_extra: dict[str, Any] = field(default_factory=dict)
    #: unknown top-level keys
    extra: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, node_id: str) -> Node:
        """The node with this id; ``KeyError`` names the id when there is none."""
        try:
            return self.nodes[node_id]
        except KeyError:
            raise KeyError(f"no node with id {node_id!r}") from None

    def add_node(self, node: Node) -> Node:
        """Add a node; its id must be new."""
        if node.id in self.nodes:
            raise ValueError(f"duplicate node id {node.id!r}")
        self.nodes[node.id] = node
        return node

    def remove_node(self, node_id: str) -> Node:
        """Remove a node and every wire touching it."""
        node = self.nodes.pop(node_id)
        self.connections = [
            c for c in self.connections if node_id not in (c.src_node, c.dst_node)
        ]
        return node

    def connect(self, src_node: str, src_port: str, dst_node: str, dst_port: str) -> Connection:
        """Add a wire between two existing nodes.

        Wiring rules (one wire per input, port names, types) are checked by
        validation, which knows the node types; this only needs the nodes to exist.
        """
        for nid in (src_node, dst_node):
            if nid not in self.nodes:
                raise KeyError(f"no node with id {nid!r}")
        conn = Connection(src_node, src_port, dst_node, dst_port)
        self.connections.append(conn)
        return conn

    def new_node_id(self, prefix: str = "n") -> str:
        """A fresh, readable id (``n1``, ``n2``, …) not used by any node."""
        highest = 0
        for node_id in self.nodes:
            tail = node_id[len(prefix):]
            if node_id.startswith(prefix) and tail.isdigit():
                highest = max(highest, int(tail))
        candidate = f"{prefix}{highest + 1}"
        while candidate in self.nodes:  # e.g. prefix "n1" and a node "n11" (tail "1")
            highest += 1
            candidate = f"{prefix}{highest + 1}"
        return candidate
