"""The editor's canvas: a loom ``Graph`` shown and edited on a NodeGraphQt graph.

``Canvas`` is the API (see DEVELOPERS.md, "The Canvas API"); the modules behind it:

- ``canvas``: the ``Canvas`` QObject (signals, edit API, live state, view)
- ``scene``: ``SceneModel``, the state and the primitive non-undoable edits
- ``commands``: the undo commands built from those primitives
- ``nodes``: node classes from specs, and the loom data each node carries
- ``node_item`` / ``items``: the node graphics item; ports and wires
- ``live``: run states, badges and taken ports (never saved, never undone)
- ``viewer``: NodeGraphQt's viewer with typed wiring, drops and keys
- ``convert``: back to a ``Graph`` in file order; ``clipboard``: copy and paste
- ``frames``: loop-body, parallel-branch and event-wave regions (and the grouping
  ``frame()`` uses)
- ``references``: node ids inside metadata (body, branches, paths)
- ``style``: colours, fonts, sizes; ``jsoncopy``: fast copies of JSON values
"""

from .canvas import Canvas
from .frames import FrameSpec
from .viewer import NODE_MIME, node_mime_data

__all__ = ["NODE_MIME", "Canvas", "FrameSpec", "node_mime_data"]
