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


class LoopTimeout(TimeoutError):
    """A for-each or while loop ran past its ``timeout``, a deadline for the whole loop."""


class NodeAborted(Exception):
    """Node code raised a BaseException that is not an Exception: ``SystemExit`` (a library
    calling ``sys.exit()``), ``KeyboardInterrupt``, ``GeneratorExit`` or a class of its own.

    Such an exception would end the run, the CLI or the editor; the node fails with this
    instead (the original is its ``__cause__``, so the traceback shows where it was raised).
    A real Ctrl+C never reaches node code as one: the CLI turns it into a stop.
    """


def node_aborted(exc: BaseException) -> NodeAborted:
    """The :class:`NodeAborted` standing for ``exc``; raise it ``from exc``."""
    try:
        detail = str(exc)
    except Exception:  # noqa: BLE001 - an unprintable exception still fails its node clearly
        detail = "<unprintable>"
    if len(detail) > 200:
        detail = detail[:200] + "…"
    kind = type(exc).__name__
    hint = " (sys.exit() called in the node?)" if isinstance(exc, SystemExit) else ""
    return NodeAborted(f"the node raised {kind}{f'({detail})' if detail else ''}{hint}; "
                       "a node cannot end the run, so only the node failed")
