"""The ``.loom`` file format, version 1: the only code that reads or writes it.

Reading is strict and all-or-nothing: a file either becomes a whole :class:`Graph`
or raises one :class:`LoomFileError` naming the file, the JSON path and what was
expected. Nothing in a file is ever executed, imported or unpickled.

Writing is canonical (fixed key order, two-space indent, short containers on one
line) so a one-node change is a small diff and a file Loom wrote loads and saves
back to the same bytes. Saving is atomic and keeps ``NAME.loom.bak``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any

from .errors import LoomFileError
from .migrations import MigrationError, MigrationRegistry
from .model import Connection, Graph, GraphSettings, Node
from .tempfiles import create_temp, remove_stale

FORMAT = "loom"
VERSION = 1
#: Deeper JSON than this is refused: nothing legitimate nests so far, and every
#: later walk over property values (copying, previews) stays shallow.
MAX_DEPTH = 64
MAX_BYTES = 64 * 1024 * 1024
#: Containers whose one-line form fits within this width are written on one line.
LINE_WIDTH = 100

_TOP_KEYS = ("format", "version", "graph", "nodes", "connections", "ui")
_GRAPH_KEYS = ("name", "settings")
_SETTINGS_KEYS = ("max_concurrency", "timeout")
_NODE_KEYS = ("id", "type", "type_version", "name", "position", "properties", "metadata")
_CONN_KEYS = ("from", "to")


# --------------------------------------------------------------------------- reading


class _Invalid(Exception):
    """Internal: a problem at a JSON path, turned into LoomFileError at the boundary."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(problem)
        self.path = path
        self.problem = problem


class _DupDict(dict[str, Any]):
    """A JSON object that had a repeated key; reported with its path after parsing."""

    duplicate: str = ""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            dup = _DupDict(result)
            dup.duplicate = key
            dup.update(pairs)
            return dup
        result[key] = value
    return result


class _NonFinite:
    """Stands in for NaN / Infinity / 1e999 while parsing, so the error can name its path."""

    def __init__(self, text: str) -> None:
        self.text = text


def _finite_float(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def _describe(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "an integer", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_tree(root: Any) -> None:
    """Reject what JSON allowed but a file must not hold, naming its path.

    Deeper nesting than MAX_DEPTH, repeated keys, NaN/Infinity and numbers out of
    range, and lone surrogates (text that cannot be written back as UTF-8).
    Iterative, so no nesting can exhaust the stack.
    """
    stack: list[tuple[Any, str, int]] = [(root, "$", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            shown = path if len(path) <= 80 else path[:80] + "…"
            raise _Invalid(shown, f"nesting deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            if isinstance(value, _DupDict):
                raise _Invalid(path, f"key {value.duplicate!r} appears more than once")
            for key, item in value.items():
                if _SURROGATE.search(key):
                    raise _Invalid(path, f"key {key!r} is not valid Unicode text")
                stack.append((item, _child(path, key), depth + 1))
        elif isinstance(value, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))
        elif isinstance(value, _NonFinite):
            raise _Invalid(path, f"{value.text} is not a finite number (JSON has no NaN "
                                 "or Infinity)")
        elif isinstance(value, str) and _SURROGATE.search(value):
            raise _Invalid(path, "text holds a lone surrogate, which is not valid Unicode")


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key)}]"


def _expect(value: Any, kind: type | tuple[type, ...], path: str, what: str) -> Any:
    ok = isinstance(value, kind) and not (isinstance(value, bool) and bool not in _as_tuple(kind))
    if not ok:
        raise _Invalid(path, f"expected {what}, found {_describe(value)}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _extras(obj: dict[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in known}


def _non_empty_str(value: Any, path: str, what: str) -> str:
    _expect(value, str, path, what)
    if not value:
        raise _Invalid(path, f"expected {what}, found an empty string")
    return str(value)


def _parse_settings(obj: Any, path: str) -> GraphSettings:
    _expect(obj, dict, path, "an object of graph settings")
    # A null timeout is no timeout; it stays among the extras so it saves back as read.
    known = _SETTINGS_KEYS if obj.get("timeout") is not None else ("max_concurrency",)
    settings = GraphSettings(extra=_extras(obj, known))
    if "max_concurrency" in obj:
        value = _expect(obj["max_concurrency"], int, f"{path}.max_concurrency", "an integer")
        if value < 1:
            raise _Invalid(f"{path}.max_concurrency", f"expected an integer >= 1, found {value}")
        settings.max_concurrency = value
    if obj.get("timeout") is not None:
        # Kept as written (5 stays 5), so a file saves back byte for byte.
        settings.timeout = _coordinate(obj["timeout"], f"{path}.timeout")
        if not settings.timeout > 0:
            raise _Invalid(f"{path}.timeout", "expected a number of seconds above 0, "
                                              f"found {obj['timeout']}")
        settings.timeout = obj["timeout"]
    return settings


def _parse_node(obj: Any, path: str) -> Node:
    _expect(obj, dict, path, "a node object")
    for key in ("id", "type"):
        if key not in obj:
            raise _Invalid(path, f"node has no {key!r}")
    node = Node(
        id=_non_empty_str(obj["id"], f"{path}.id", "a node id string"),
        type=_non_empty_str(obj["type"], f"{path}.type", "a node type string"),
        name=_expect(obj.get("name", ""), str, f"{path}.name", "a string"),
        properties=_expect(obj.get("properties", {}), dict, f"{path}.properties", "an object"),
        metadata=_expect(obj.get("metadata", {}), dict, f"{path}.metadata", "an object"),
        extra=_extras(obj, _NODE_KEYS),
    )
    if "position" in obj:
        pos = _expect(obj["position"], list, f"{path}.position", "an array [x, y]")
        if len(pos) != 2:
            raise _Invalid(f"{path}.position", f"expected an array [x, y], found {len(pos)} items")
        node.position = (_coordinate(pos[0], f"{path}.position[0]"),
                         _coordinate(pos[1], f"{path}.position[1]"))
    if "type_version" in obj:
        version = _expect(obj["type_version"], int, f"{path}.type_version", "an integer")
        if version < 1:
            raise _Invalid(f"{path}.type_version", f"expected an integer >= 1, found {version}")
        node.type_version = version
    mode = node.metadata.get("execution_mode")
    if mode is not None:
        _non_empty_str(mode, f"{path}.metadata.execution_mode", "an execution mode string")
    return node


def _coordinate(value: Any, path: str) -> float:
    _expect(value, (int, float), path, "a number")
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if not math.isfinite(result):
        raise _Invalid(path, f"expected a finite number, found {str(value)[:20]}…")
    return result


def _parse_endpoint(value: Any, path: str, nodes: dict[str, Node]) -> tuple[str, str]:
    _expect(value, list, path, "an array [node id, port name]")
    if len(value) != 2:
        raise _Invalid(path, f"expected an array [node id, port name], found {len(value)} items")
    node_id = _non_empty_str(value[0], f"{path}[0]", "a node id string")
    port = _non_empty_str(value[1], f"{path}[1]", "a port name string")
    if node_id not in nodes:
        raise _Invalid(f"{path}[0]", f"no node with id {node_id!r} in this file")
    return node_id, port


def _parse_connection(obj: Any, path: str, nodes: dict[str, Node]) -> Connection:
    _expect(obj, dict, path, 'a connection object {"from": [...], "to": [...]}')
    for key in _CONN_KEYS:
        if key not in obj:
            raise _Invalid(path, f"connection has no {key!r}")
    src = _parse_endpoint(obj["from"], f"{path}.from", nodes)
    dst = _parse_endpoint(obj["to"], f"{path}.to", nodes)
    return Connection(src[0], src[1], dst[0], dst[1], extra=_extras(obj, _CONN_KEYS))


def _parse_document(doc: Any) -> Graph:
    _expect(doc, dict, "$", "a JSON object")
    if doc.get("format") != FORMAT:
        raise _Invalid("$.format", f'expected "{FORMAT}", found {json.dumps(doc.get("format"))}')
    version = doc.get("version")
    _expect(version, int, "$.version", "an integer format version")
    if version != VERSION:
        newer = " (written by a newer Loom)" if version > VERSION else ""
        raise _Invalid("$.version", f"version {version} is not supported{newer}; "
                                    f"this Loom reads version {VERSION}")
    graph = Graph(extra=_extras(doc, _TOP_KEYS))
    meta = _expect(doc.get("graph", {}), dict, "$.graph", "an object")
    graph.name = _expect(meta.get("name", ""), str, "$.graph.name", "a string")
    graph.settings = _parse_settings(meta.get("settings", {}), "$.graph.settings")
    graph.graph_extra = _extras(meta, _GRAPH_KEYS)
    graph.ui = _expect(doc.get("ui", {}), dict, "$.ui", "an object")

    first_seen: dict[str, int] = {}
    for i, raw in enumerate(_expect(doc.get("nodes", []), list, "$.nodes", "an array of nodes")):
        node = _parse_node(raw, f"$.nodes[{i}]")
        if node.id in first_seen:
            raise _Invalid(f"$.nodes[{i}].id", f"duplicate node id {node.id!r} "
                                               f"(first used at $.nodes[{first_seen[node.id]}])")
        first_seen[node.id] = i
        graph.nodes[node.id] = node

    # A wire repeated, or a second wire into one input, is a wiring problem that
    # validation reports by node and port; the file itself still loads whole.
    raw_conns = _expect(doc.get("connections", []), list, "$.connections", "an array")
    for i, raw in enumerate(raw_conns):
        graph.connections.append(_parse_connection(raw, f"$.connections[{i}]", graph.nodes))
    return graph


def loads_graph(data: str | bytes, source: str = "<string>", *,
                migrations: MigrationRegistry | None = None) -> Graph:
    """Parse ``.loom`` text. ``source`` names it in errors.

    With ``migrations``, nodes saved by older versions of their type are upgraded.
    """
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise LoomFileError(source, "", f"file is larger than {MAX_BYTES} bytes")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise LoomFileError(source, "", f"not UTF-8 text (byte {exc.start})") from None
    else:
        text = data
    try:
        doc = json.loads(text, object_pairs_hook=_pairs, parse_constant=_NonFinite,
                         parse_float=_finite_float)
        _check_tree(doc)
        graph = _parse_document(doc)
    except _Invalid as exc:
        raise LoomFileError(source, exc.path, exc.problem) from None
    except json.JSONDecodeError as exc:
        raise LoomFileError(source, "", f"invalid JSON at line {exc.lineno} column {exc.colno}: "
                                        f"{exc.msg}") from None
    except RecursionError:
        raise LoomFileError(source, "", f"nesting deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # e.g. an integer literal with too many digits
        raise LoomFileError(source, "", f"invalid JSON: {exc}") from None
    if migrations is not None:
        _upgrade(graph, migrations, source)
    return graph


def _upgrade(graph: Graph, migrations: MigrationRegistry, source: str) -> None:
    for i, node in enumerate(graph):
        try:
            migrations.upgrade(node)
        except MigrationError as exc:
            raise LoomFileError(source, f"$.nodes[{i}]", str(exc)) from exc


def load_graph(path: str | os.PathLike[str], *,
               migrations: MigrationRegistry | None = None) -> Graph:
    """Read a ``.loom`` file; raises :class:`LoomFileError` and nothing else.

    Temporary files that a crashed save of this file left beside it are removed.
    """
    name = os.fspath(path)
    remove_stale(Path(os.path.realpath(name)))
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise LoomFileError(name, "", f"cannot read: {exc.strerror or exc}") from None
    return loads_graph(data, name, migrations=migrations)


# --------------------------------------------------------------------------- writing


def _check_value(value: Any, path: str, depth: int = 0) -> None:
    """Only plain, finite JSON may go into a file; say where anything else is."""
    if depth > MAX_DEPTH:
        raise _Invalid(path, f"nesting deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise _Invalid(path, "text holds a lone surrogate, which is not valid Unicode")
        return
    if isinstance(value, int):
        if value.bit_length() > _MAX_INT_BITS:
            raise _Invalid(path, "integer too large to save (over 4300 digits)")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Invalid(path, f"{value} cannot be saved (JSON has no NaN or Infinity)")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str) or _SURROGATE.search(k):
                raise _Invalid(path, f"object key {k!r} is not a string of valid Unicode")
            _check_value(v, _child(path, k), depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_value(v, f"{path}[{i}]", depth + 1)
        return
    raise _Invalid(path, f"a value of type {type(value).__name__} cannot be saved as JSON")


#: Python refuses to print (and JSON to read back) integers over 4300 digits.
_MAX_INT_BITS = 14_000


def _scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _one_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(", ", ": "))


def _format(value: Any, indent: int, prefix_len: int, inline: bool = True) -> str:
    if not isinstance(value, (dict, list, tuple)):
        return _scalar(value)
    if not value:
        return "{}" if isinstance(value, dict) else "[]"
    if inline:
        flat = _one_line(value)
        if 2 * indent + prefix_len + len(flat) <= LINE_WIDTH:
            return flat
    pad = "  " * (indent + 1)
    if isinstance(value, dict):
        items = [f"{pad}{_scalar(k)}: {_format(v, indent + 1, len(k) + 4)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    items = [pad + _format(v, indent + 1, 0) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"


def _node_document(node: Node) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": node.id, "type": node.type}
    if node.type_version is not None:
        doc["type_version"] = node.type_version
    doc.update(name=node.name, position=[float(node.position[0]), float(node.position[1])],
               properties=node.properties, metadata=node.metadata)
    return _with_extra(doc, node.extra)


def _with_extra(doc: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    # Unknown keys follow the known ones and never replace them.
    for key, value in extra.items():
        doc.setdefault(key, value)
    return doc


def graph_document(graph: Graph) -> dict[str, Any]:
    """The graph as the plain JSON object a ``.loom`` file holds (key order included)."""
    own: dict[str, Any] = {"max_concurrency": graph.settings.max_concurrency}
    if graph.settings.timeout is not None:
        own["timeout"] = graph.settings.timeout
    settings = _with_extra(own, graph.settings.extra)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "graph": _with_extra({"name": graph.name, "settings": settings}, graph.graph_extra),
        "nodes": [_node_document(n) for n in graph],
        "connections": [_with_extra({"from": [c.src_node, c.src_port],
                                     "to": [c.dst_node, c.dst_port]}, c.extra)
                        for c in graph.connections],
        "ui": graph.ui,
    }
    return _with_extra(doc, graph.extra)


def dumps_graph(graph: Graph, source: str = "<graph>") -> str:
    """The canonical ``.loom`` text of a graph (ends with a newline)."""
    doc = graph_document(graph)
    try:
        _check_value(doc, "$")
        # What save writes, load must accept: check the document with the loader itself.
        _parse_document(doc)
    except _Invalid as exc:
        raise LoomFileError(source, exc.path, exc.problem) from None
    lines = []
    for key, value in doc.items():
        # The node list is always one node per block: nodes are what diffs are about.
        if key == "nodes" and value:
            body = ",\n".join("    " + _format(n, 2, 0, inline=False) for n in value)
            text = "[\n" + body + "\n  ]"
        else:
            text = _format(value, 1, len(key) + 4)
        lines.append(f"  {_scalar(key)}: {text}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def save_graph(graph: Graph, path: str | os.PathLike[str], *, backup: bool = True) -> None:
    """Write a graph atomically, keeping the previous file as ``NAME.loom.bak``.

    The text goes to a temporary file beside the target, is flushed and fsynced,
    then renamed over the target, so a crash leaves either the old or the new
    file, never half of one. A symlink is followed, not replaced. Temporary files
    that a crashed save of this file left behind are removed first.

    A read-only target (no write permission for us, or no write bit at all, which
    even root respects here, as editors do) is refused with :class:`LoomFileError`.
    """
    name = os.fspath(path)
    data = dumps_graph(graph, name).encode("utf-8")
    target = Path(os.path.realpath(name))
    _refuse_read_only(target, name)
    remove_stale(target)
    _atomic_write(target, data, name, backup)


def _refuse_read_only(target: Path, name: str) -> None:
    # Saving renames a new file over the target, which the folder's permission
    # allows even when the file's own forbids writing: check the file's.
    try:
        mode = target.stat().st_mode
    except OSError:
        return  # a new file, or one _atomic_write reports on
    if stat.S_ISREG(mode) and (not mode & 0o222 or not os.access(target, os.W_OK)):
        raise LoomFileError(name, "", "cannot save: the file is read-only "
                            "(make it writable, or save under another name)")


def _atomic_write(target: Path, data: bytes, name: str, backup: bool) -> None:
    tmp = None
    try:
        fd, tmp = _create_temp(target)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if target.exists():
            os.chmod(tmp, target.stat().st_mode & 0o7777)
            if backup:
                _replace_with_copy(target, target.with_name(target.name + ".bak"))
        os.replace(tmp, target)
        tmp = None
        _fsync_dir(target.parent)
    except OSError as exc:
        raise LoomFileError(name, "", f"cannot save: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            _remove_quietly(tmp)


def _create_temp(beside: Path) -> tuple[int, str]:
    return create_temp(beside)


def _replace_with_copy(src: Path, dst: Path) -> None:
    fd, tmp = _create_temp(dst)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        shutil.copymode(src, tmp)
        os.replace(tmp, dst)
    except OSError:
        _remove_quietly(tmp)
        raise


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable on POSIX; Windows cannot open directories.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

