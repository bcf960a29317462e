"""Live run state on the canvas: state colours, badges, the taken port, a pulse.

Transient by design: it lives on the node items only (``LoomNodeItem.exec_state``,
``badge``, ``taken_port``, ``stale``, ``problem``), so it is never saved, never on the
undo stack, and gone when a node is rebuilt. Running nodes pulse from one timer for all
of them. States go *stale* (drawn dimmed) when the graph is edited after the run that
set them; validation problems outline their nodes until the graph is checked again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

from PySide6.QtCore import QObject, QTimer

from .nodes import LoomNode
from .style import STATES

#: pulse timer period: smooth enough for a border that breathes, cheap for many nodes
_PULSE_MS = 60


class LiveStates:
    """Run state of the nodes of one canvas (``nodes`` is the canvas's id index)."""

    def __init__(self, nodes: Mapping[str, LoomNode], parent: QObject) -> None:
        self._nodes = nodes
        self._running: set[str] = set()
        #: a state was shown since the last clear or dimming (else an edit has nothing
        #: to dim, and a 10,000-node graph is not walked on every edit)
        self._fresh = False
        self._timer = QTimer(parent)
        self._timer.setInterval(_PULSE_MS)
        self._timer.timeout.connect(self._pulse)

    def set_state(self, node_id: str, state: str | None, badge: str | None) -> None:
        """Show a state (one of :data:`style.STATES`, or None) and a badge."""
        if state is not None and state not in STATES:
            raise ValueError(f"unknown state {state!r} (known: {', '.join(sorted(STATES))})")
        node = self._nodes.get(node_id)
        if node is None:
            return
        node.view.set_exec_state(state, badge)
        node.view.set_stale(False)  # a state from the run under way is current
        if state is not None or badge:
            self._fresh = True
        if state == "running":
            self._running.add(node_id)
            if not self._timer.isActive():
                self._timer.start()
        else:
            self._running.discard(node_id)
            if not self._running:
                self._timer.stop()

    def state(self, node_id: str) -> tuple[str | None, str | None, str | None]:
        """(state, badge, taken port) of a node; all None for an unknown id."""
        node = self._nodes.get(node_id)
        if node is None:
            return None, None, None
        view = node.view
        return view.exec_state, view.badge or None, view.taken_port

    def set_port_taken(self, node_id: str, port: str | None) -> None:
        """Highlight a node's taken output port (None clears it)."""
        node = self._nodes.get(node_id)
        if node is not None:
            node.view.set_taken_port(port)

    def clear(self) -> None:
        """Forget every state, badge and taken port."""
        for node in self._nodes.values():
            view = node.view
            if view.exec_state is not None or view.badge or view.taken_port:
                view.set_exec_state(None, None)
                view.set_taken_port(None)
            view.set_stale(False)
        self._running.clear()
        self._timer.stop()
        self._fresh = False

    def mark_stale(self) -> int:
        """Dim every shown state: the graph changed since the run that set them.

        Returns how many nodes were dimmed now (0 when none showed a fresh state)."""
        if not self._fresh:
            return 0
        self._fresh = False
        count = 0
        for node in self._nodes.values():
            view = node.view
            if not view.stale and (view.exec_state is not None or view.badge):
                view.set_stale(True)
                count += 1
        return count

    def stale(self, node_id: str) -> bool:
        """Whether a node's shown state is from before the last edit."""
        node = self._nodes.get(node_id)
        return node is not None and node.view.stale

    def set_problems(self, problems: Mapping[str, str]) -> None:
        """Outline these nodes (node id -> "error" or "warning"); every other loses its
        outline."""
        for node_id, node in self._nodes.items():
            node.view.set_problem(problems.get(node_id))

    def problem(self, node_id: str) -> str | None:
        """The validation outline a node shows: "error", "warning" or None."""
        node = self._nodes.get(node_id)
        return None if node is None else node.view.problem

    def _pulse(self) -> None:
        phase = 0.5 + 0.5 * math.sin(time.monotonic() * 6.0)
        for node_id in list(self._running):
            node = self._nodes.get(node_id)
            if node is None or node.view.exec_state != "running":
                self._running.discard(node_id)
                continue
            node.view.pulse = phase
            node.view.update()
        if not self._running:
            self._timer.stop()
