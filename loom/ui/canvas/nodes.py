"""Node classes built from registry specs, and the loom data each node carries.

Every node type gets a NodeGraphQt class made with ``type()`` (NodeGraphQt creates
nodes by class, with no arguments). Its type string must use ``[A-Za-z0-9_.]`` only
(drag-and-drop parses ``node:([\\w\\.]+)``), so loom type ids are mangled into class
names by :func:`class_name`; the real type id stays in the node's hidden properties.

A node's loom data lives in NodeGraphQt custom properties that no properties bin
shows (widget type HIDDEN): id, type, name, properties, metadata, type_version and the
unknown keys of the file. :func:`node_data` turns them back into a loom ``Node``.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

from loom.graph import Node
from loom.registry import NodeSpec, PortSpec, Registry

from . import style
from .items import LoomPortItem
from .jsoncopy import copy_json
from .node_item import LoomNodeItem

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from NodeGraphQt import BaseNode, NodeGraph
    from NodeGraphQt.base.model import NodeModel
    from NodeGraphQt.constants import NodePropWidgetEnum

Ports = tuple[list[PortSpec], list[PortSpec]]

IDENTIFIER = "loom"
MISSING_CLASS = "_missing"

# Hidden property names (NodeGraphQt custom properties).
ID = "loom_id"
TYPE = "loom_type"
NAME = "loom_name"
PROPERTIES = "loom_properties"
METADATA = "loom_metadata"
TYPE_VERSION = "loom_type_version"
EXTRA = "loom_extra"
HIDDEN_KEYS = (ID, TYPE, NAME, PROPERTIES, METADATA, TYPE_VERSION, EXTRA)

_TEMP_KEYS = ("_TEMP_property_widget_types", "_TEMP_property_attrs",
              "_TEMP_accept_connection_types", "_TEMP_reject_connection_types")


def class_name(type_id: str) -> str:
    """A class name for a loom type id, made of ``[A-Za-z0-9_]`` only.

    Injective: ``_`` becomes ``__``, ``.`` becomes ``_d`` and any other character
    ``_xHHHH``, so two type ids never share a class.
    """
    out = []
    for char in type_id:
        if char.isascii() and char.isalnum():
            out.append(char)
        elif char == "_":
            out.append("__")
        elif char == ".":
            out.append("_d")
        else:
            out.append(f"_x{ord(char):04x}")
    return "".join(out)


class LoomNode(BaseNode):  # type: ignore[misc]
    """A loom node on the canvas; subclassed once per node type.

    ``SPEC`` is the type's spec (None for :class:`MissingNode`). Construct with the
    loom data and the ports to show; NodeGraphQt's own factory calls the class with
    no arguments, which gives a default node of the type (the canvas then assigns
    it an id).
    """

    __identifier__ = IDENTIFIER
    NODE_NAME = "Node"
    SPEC: ClassVar[NodeSpec | None] = None
    TYPE_ID: ClassVar[str] = ""

    def __init__(self, data: Node | None = None, ports: Ports | None = None,
                 multi_inputs: bool = False) -> None:
        super().__init__(qgraphics_item=LoomNodeItem)
        # Ports follow properties and metadata, so they are removed and added later.
        self.model.port_deletion_allowed = True
        if data is None:
            data = default_node(self.SPEC, self.TYPE_ID or self.NODE_NAME, "")
        #: position in the file's node order (see Canvas.to_graph)
        self.loom_seq = 0
        #: the ports shown, as ``ports_of`` gave them (inputs, outputs)
        self.loom_ports: Ports = ([], [])
        self.model._custom_prop = {
            ID: data.id, TYPE: data.type, NAME: data.name,
            PROPERTIES: data.properties, METADATA: data.metadata,
            TYPE_VERSION: data.type_version, EXTRA: data.extra,
        }
        view: LoomNodeItem = self.view
        view.loom_id = data.id
        view.type_id = data.type
        spec = self.SPEC
        if spec is not None:
            view.category = spec.category
            view.description = spec.description
            view.title_color = style.category_color(spec.category)
        else:
            view.missing = True
            view.category = "not installed"
        title = self.title_for(data.name, data.type)
        self.model.name = title
        view.name = title
        x, y = data.position
        self.model.pos = [x, y]
        view.setPos(x, y)
        if ports is None and spec is not None:
            ins, outs = spec.ports_for(data.properties)
            ports = (list(ins), list(outs))
        self.add_loom_ports(ports or ([], []), multi_inputs)

    @classmethod
    def title_for(cls, name: str, type_id: str) -> str:
        """What the title bar says: the node's name, else its type's name."""
        return name or cls.NODE_NAME

    @property
    def loom_id(self) -> str:
        """The node's loom id."""
        return str(self.model._custom_prop[ID])

    def loom(self, key: str) -> Any:
        """One hidden loom property (see :data:`HIDDEN_KEYS`)."""
        return self.model._custom_prop[key]

    def set_loom(self, key: str, value: Any) -> None:
        """Set one hidden loom property (no undo: commands call this)."""
        self.model._custom_prop[key] = value
        if key == ID:
            self.view.loom_id = value
            self.view.setToolTip("")

    def add_loom_ports(self, ports: Ports, multi_inputs: bool = False) -> None:
        """Add port items for the ports the node does not have yet.

        Inputs take one wire, except on nodes that accept back edges (a while loop:
        the initial value and the value carried back both arrive at ``value``).
        """
        ins, outs = ports
        for spec in ins:
            if spec.name not in self.model.inputs:
                port = self.add_input(spec.name, multi_input=multi_inputs)
                _mark(port.view, spec.type)
        for spec in outs:
            if spec.name not in self.model.outputs:
                port = self.add_output(spec.name, multi_output=True)
                _mark(port.view, spec.type)
        self.loom_ports = (list(ins), list(outs))

    def set_multi_inputs(self, multi: bool) -> None:
        """Let every input take several wires (or one)."""
        for port in self.input_ports():
            port.model.multi_connection = multi
            port.view._multi_connection = multi


class MissingNode(LoomNode):
    """A node whose type is not installed: greyed, ports from its wires, data kept."""

    NODE_NAME = "Missing"

    @classmethod
    def title_for(cls, name: str, type_id: str) -> str:
        """A missing node without a name is titled by its type id."""
        return name or type_id


def _mark(view: Any, type_name: str) -> None:
    if isinstance(view, LoomPortItem):
        view.loom_type = type_name


#: Saved positions are multiples of this (in scene units).
POSITION_STEP = 0.1


def snap_position(x: float, y: float) -> tuple[float, float]:
    """A position the editor writes: rounded to :data:`POSITION_STEP`.

    A drag on a zoomed view lands on long floats (151.64233576642337) that make
    noisy diffs of the saved file. The editor rounds where it places a node (drag,
    add, drop, paste), not in loom.graph: a file is read and written exactly, so
    nodes that did not move keep their bytes and ``loom`` run/save are unaffected.
    """
    # ``+ 0.0`` turns -0.0 (round(-0.04, 1)) into 0.0, which prints as "0.0".
    return round(float(x), 1) + 0.0, round(float(y), 1) + 0.0


def default_node(spec: NodeSpec | None, type_id: str, node_id: str,
                 position: tuple[float, float] = (0.0, 0.0)) -> Node:
    """A new node of a type: the type's name and default metadata, no properties.

    Types past version 1 record their version, so a later load does not try to
    migrate a node that is already current. The position is snapped
    (:func:`snap_position`).
    """
    position = snap_position(*position)
    if spec is None:
        return Node(node_id, type_id, position=position)
    return Node(node_id, type_id, name=spec.name, position=position,
                metadata=copy_json(dict(spec.metadata)),
                type_version=spec.version if spec.version > 1 else None)


def node_data(node: LoomNode) -> Node:
    """The loom ``Node`` a canvas node shows (a copy: changing it changes nothing)."""
    props = node.model._custom_prop
    x, y = node.view.xy_pos
    return Node(
        id=props[ID], type=props[TYPE], name=props[NAME], position=(x, y),
        properties=copy_json(props[PROPERTIES]), metadata=copy_json(props[METADATA]),
        type_version=props[TYPE_VERSION], extra=copy_json(props[EXTRA]),
    )


class NodeTypes:
    """The node classes of one canvas: one per installed type, plus the placeholder."""

    def __init__(self, graph: NodeGraph, registry: Registry) -> None:
        self._graph = graph
        self._registry = registry
        self._classes: dict[str, type[LoomNode]] = {}
        self._common_done: set[str] = set()
        missing = type(MISSING_CLASS, (MissingNode,), {"__identifier__": IDENTIFIER})
        self._missing: type[LoomNode] = missing
        graph.register_nodes([missing, *(self._make(spec) for spec in registry)])

    @property
    def registry(self) -> Registry:
        """The registry the classes come from."""
        return self._registry

    def _make(self, spec: NodeSpec) -> type[LoomNode]:
        cls: type[LoomNode] = type(class_name(spec.type_id), (LoomNode,), {
            "__identifier__": IDENTIFIER, "NODE_NAME": spec.name, "SPEC": spec,
            "TYPE_ID": spec.type_id, "__doc__": spec.description or spec.name,
        })
        self._classes[spec.type_id] = cls
        return cls

    def class_for(self, type_id: str) -> type[LoomNode]:
        """The class for a type id: the installed type's, or the missing placeholder."""
        cls = self._classes.get(type_id)
        if cls is not None and cls.SPEC is self._registry.get(type_id):
            return cls
        spec = self._registry.get(type_id)
        if spec is None:
            return self._missing
        # New or reloaded type: a fresh class, swapped into NodeGraphQt's factory
        # (registering the same type string twice raises).
        cls = self._make(spec)
        factory_nodes = self._graph.node_factory.nodes
        if cls.type_ in factory_nodes:
            factory_nodes[cls.type_] = cls
        else:
            self._graph.register_nodes([cls])
        self._common_done.discard(cls.type_)
        return cls

    def type_id_of(self, node_type: str) -> str | None:
        """The loom type id behind a NodeGraphQt type string (palette drops, tab search)."""
        cls = self._graph.node_factory.nodes.get(node_type)
        if isinstance(cls, type) and issubclass(cls, LoomNode) and cls.TYPE_ID:
            return cls.TYPE_ID
        return None

    def adopt(self, node: LoomNode) -> None:
        """Make a node built outside ``NodeGraph.create_node`` a member of the graph.

        Does what ``NodeGraph.add_node`` does minus the unique-name search (O(n) per
        node) and the undo command: graph references, property widget types once
        per class, and dropping the model's temporary construction fields.
        """
        model = node.model
        node._graph = self._graph
        model._graph_model = self._graph.model
        type_ = node.type_
        if type_ not in self._common_done:
            widget_types = dict(model.__dict__.get("_TEMP_property_widget_types") or
                                NodeModel()._TEMP_property_widget_types)
            hidden = NodePropWidgetEnum.HIDDEN.value
            attrs = {name: {"widget_type": kind, "tab": "Node"}
                     for name, kind in widget_types.items()}
            attrs.update({key: {"widget_type": hidden, "tab": "Node"} for key in HIDDEN_KEYS})
            self._graph.model.set_node_common_properties({type_: attrs})
            self._common_done.add(type_)
        for key in _TEMP_KEYS:
            model.__dict__.pop(key, None)
