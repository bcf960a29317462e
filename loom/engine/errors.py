"""Exceptions the engine raises about a run (as opposed to a node's own exceptions)."""

from __future__ import annotations


class BodyFailed(Exception):
    """A node inside a loop body or parallel branch failed; its owner decides what follows.

    ``node_traceback`` is the failing node's own traceback, shown for the owner too, so
    a failed loop points at the line inside its body that raised.
    """

    #: reported as its message alone ("item 3: parse: ValueError: …")
    bare_message = True

    def __init__(self, message: str, node_id: str, error: str, node_traceback: str,
                 inner: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.node_id = node_id
        self.error = error
        self.node_traceback = node_traceback
        #: the failed node, then (when it is a loop or parallel node failed by its own
        #: body) the nodes inside it that failed, innermost last
        self.chain = (node_id, *inner)

    def within(self, where: str) -> BodyFailed:
        """The same failure, its message prefixed with where it happened ("item 3")."""
        return BodyFailed(f"{where}: {self}", self.node_id, self.error, self.node_traceback,
                          self.chain[1:])


class LoopLimitError(Exception):
    """A while loop ran past its ``max_iterations``."""
