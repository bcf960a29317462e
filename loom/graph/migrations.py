"""Per-node-type versions and the hooks that upgrade old node data.

A node type declares its current version (``@node(version=2, migrations={1: fn})``);
a node saved by an older version carries ``type_version`` 1 in the file. On load,
each step ``fn(node) -> None`` upgrades the node in place from version *k* to *k+1*.
A step that is not registered means the data did not change shape at that version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .model import Graph, Node

Migration = Callable[[Node], None]


class MigrationError(Exception):
    """A migration step raised."""


@dataclass
class MigrationRegistry:
    """Current version and upgrade steps for each node type id."""

    _current: dict[str, int] = field(default_factory=dict)
    _steps: dict[tuple[str, int], Migration] = field(default_factory=dict)

    def declare(self, type_id: str, version: int) -> None:
        """Record that ``type_id`` is currently at ``version``."""
        self._current[type_id] = version

    def register(self, type_id: str, from_version: int, step: Migration) -> None:
        """Register the step that upgrades ``type_id`` data from ``from_version``."""
        self._steps[(type_id, from_version)] = step

    def current_version(self, type_id: str) -> int | None:
        """The installed version of a type, or ``None`` when the type is unknown."""
        return self._current.get(type_id)

    def upgrade(self, node: Node) -> bool:
        """Bring one node up to its type's current version. True when it changed."""
        current = self._current.get(node.type)
        # A node newer than the installed type is left as it is: validation blocks
        # running it and saving writes it back untouched.
        if current is None or node.version >= current:
            return False
        for version in range(node.version, current):
            step = self._steps.get((node.type, version))
            if step is None:
                continue
            try:
                step(node)
            except Exception as exc:  # a migration is plugin code: report, don't crash
                raise MigrationError(
                    f"upgrading node {node.id!r} ({node.type}) from version {version} "
                    f"failed: {type(exc).__name__}: {exc}"
                ) from exc
        node.type_version = current
        return True

    def upgrade_graph(self, graph: Graph) -> list[str]:
        """Upgrade every node; returns the ids of nodes that changed."""
        return [node.id for node in graph if self.upgrade(node)]
