"""Loom: build and run node graphs in Python.

The public authoring API is small: ``from loom import node`` (and ``Branch`` for
conditional nodes, ``predicate`` for their ``condition_func``). The graph model lives
in :mod:`loom.graph`, the engine in :mod:`loom.engine`, the registry in
:mod:`loom.registry`.
"""

from loom.registry.spec import Branch, node, predicate

__version__ = "0.1.0"
__all__ = ["Branch", "__version__", "node", "predicate"]
