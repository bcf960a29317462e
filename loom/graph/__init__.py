"""The graph model and the ``.loom`` file format. Imports nothing but the stdlib."""

from .errors import LoomFileError
from .fileformat import dumps_graph, graph_document, load_graph, loads_graph, save_graph
from .migrations import Migration, MigrationError, MigrationRegistry
from .model import DEFAULT_EXECUTION_MODE, Connection, Graph, GraphSettings, Node

__all__ = [
    "DEFAULT_EXECUTION_MODE",
    "Connection",
    "Graph",
    "GraphSettings",
    "LoomFileError",
    "Migration",
    "MigrationError",
    "MigrationRegistry",
    "Node",
    "dumps_graph",
    "graph_document",
    "load_graph",
    "loads_graph",
    "save_graph",
]
