"""Node authoring (``@node``) and the registry of node types."""

from .registry import ENTRY_POINT_GROUP, LoadProblem, Registry, builtin_pack_dir
from .spec import REQUIRED, Branch, NodeSpec, PortSpec, build_spec, node, port_names, spec_of
from .types import ANY, accepted_sources, compatible, port_type, value_matches

__all__ = [
    "ANY",
    "ENTRY_POINT_GROUP",
    "REQUIRED",
    "Branch",
    "LoadProblem",
    "NodeSpec",
    "PortSpec",
    "Registry",
    "accepted_sources",
    "build_spec",
    "builtin_pack_dir",
    "compatible",
    "node",
    "port_names",
    "port_type",
    "spec_of",
    "value_matches",
]
