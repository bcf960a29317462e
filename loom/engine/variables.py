"""Run variables (``ctx.vars``) with cheap, isolated clones for parallel branches.

A parallel branch or a parallel loop item must not see its siblings' writes, nor
change what its parent sees, including writes into nested values
(``ctx.vars["cfg"]["x"] = 1``). Deep-copying every variable for every branch is
too slow (about 0.5-1 ms for 1,000 keys), so a branch gets a :class:`Variables`
*layer* over its parent instead: :meth:`Variables.child` costs O(1), and a
value is copied into the layer only when the branch first reads or writes it.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import fractions
import reprlib
import threading
import types
import uuid
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

__all__ = ["Variables"]

#: Marks "no value here"; never stored, never returned to callers.
_MISSING: Any = object()

#: Types whose values cannot change, so a layer may share them with its parent.
#: Exact types only: a subclass of ``int`` or ``str`` may carry mutable attributes.
_IMMUTABLE_TYPES: frozenset[type] = frozenset({
    type(None), bool, int, float, complex, str, bytes, range,
    type(Ellipsis), type(NotImplemented),
    decimal.Decimal, fractions.Fraction, uuid.UUID,
    datetime.date, datetime.datetime, datetime.time, datetime.timedelta, datetime.timezone,
    # deepcopy returns these unchanged anyway; listing them skips its machinery
    type, types.FunctionType, types.BuiltinFunctionType,
})

#: How much of the view :meth:`Variables.__repr__` shows.
_REPR_KEYS = 20
_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = 80
_REPR.maxother = 80
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = 10
_REPR.maxdict = 10


def _is_immutable(value: object) -> bool:
    """True if ``value`` can never change, so sharing it between layers is safe.

    Scalars, strings, bytes and a few stdlib value types are immutable; tuples
    and frozensets are when everything inside them is. Anything else (dicts,
    lists, sets, bytearrays, user objects) counts as mutable.
    """
    kind = type(value)
    if kind in _IMMUTABLE_TYPES:
        return True
    if (kind is tuple or kind is frozenset) and isinstance(value, (tuple, frozenset)):
        return all(_is_immutable(item) for item in value)
    return False


def _copy(value: Any, memo: dict[int, Any]) -> Any:
    """``copy.deepcopy(value, memo)``, faster for plain dicts, lists and sets.

    Exact ``dict``, ``list`` and ``set`` are copied here, immutable items inline
    without a call; anything else goes to ``copy.deepcopy`` with the same memo,
    following its protocol (``memo[id(original)] = copy``, originals kept alive
    in ``memo[id(memo)]``), so aliasing and cycles come out as with deepcopy.
    """
    kind = type(value)
    if kind in _IMMUTABLE_TYPES:
        return value
    found = memo.get(id(value), _MISSING)
    if found is not _MISSING:
        return found
    immutable = _IMMUTABLE_TYPES
    if kind is dict:
        copied: Any = {}
        memo[id(value)] = copied  # before the items: a dict may contain itself
        _keep_alive(value, memo)
        for key, item in value.items():
            copied[key if type(key) in immutable else _copy(key, memo)] = (
                item if type(item) in immutable else _copy(item, memo))
        return copied
    if kind is list:
        copied = []
        memo[id(value)] = copied
        _keep_alive(value, memo)
        append = copied.append
        for item in value:
            append(item if type(item) in immutable else _copy(item, memo))
        return copied
    if kind is set:  # set items are hashable, so never the set itself
        copied = {item if type(item) in immutable else _copy(item, memo) for item in value}
        memo[id(value)] = copied
        _keep_alive(value, memo)
        return copied
    return copy.deepcopy(value, memo)


def _keep_alive(value: object, memo: dict[int, Any]) -> None:
    """Keep ``value`` alive as long as ``memo``, so its id is not reused (as deepcopy does)."""
    try:
        memo[id(memo)].append(value)
    except KeyError:
        memo[id(memo)] = [value]


class Variables(MutableMapping[str, Any]):
    """A ``dict``-like mapping of run variables; :meth:`child` clones it in O(1).

    **Roots and layers.** ``Variables(initial)`` is a *root*: it holds its own
    dict (a shallow copy of ``initial``) and behaves exactly like one.
    ``root.child()`` returns a *layer* over it, and layers have children too
    (chains of any depth). A layer starts empty; looking a key up falls through
    to the parent. What the layer does stays in the layer:

    - writes and deletes are recorded in the layer only (deleting a key that
      exists only in the parent hides it in this layer and its children);
    - the first time a key is read from the parent, its value is installed in
      the layer: immutable values (``None``, ``bool``, numbers, ``str``,
      ``bytes``, tuples and frozensets of immutables, ...) as they are, anything
      else (``dict``, ``list``, ``set``, ``bytearray``, objects) as a
      ``copy.deepcopy``, so mutating it in place (``v["cfg"]["x"] = 1``,
      ``v["items"].append(3)``) changes neither the parent nor any sibling.
      Later reads return that same object. Copies made by one layer share one
      deepcopy memo, so values that shared a sub-object in the parent still share
      their copy in the layer, as with ``copy.deepcopy`` of the whole dict (so a
      value read later that holds a sub-object the layer already copied gets
      that copy, as the layer has it now). The memo lives as long as the layer.

    **Nothing a layer does mutates its parent**, nor any other ancestor: a layer
    reads its ancestors without installing anything in them.

    **Parent changes after** :meth:`child` (what a layer sees). A key the layer
    has not *touched* yet follows the parent live: the layer sees the parent's
    later writes, in-place mutations and deletions of it, and keys the parent
    adds later. A key is touched when the layer reads its value (``v[k]``,
    ``get``, ``pop``, ``setdefault``, ``items()``, ``values()``, ``copy()``,
    ``==``), writes it or deletes it (looking up or deleting a missing key
    touches nothing). From then on it belongs to the layer,
    which never sees the parent's later changes to it. ``in``, ``len()`` and
    iterating the keys do not touch. So a layer is a snapshot of the parent
    taken key by key, at first touch. For a snapshot at spawn time, do not
    change the parent while its children run (the engine's parent context waits
    while its branches run).

    **Dict behaviour.** Lookups, ``in``, ``len``, iteration, ``keys()``,
    ``items()``, ``values()``, ``get``, ``pop``, ``popitem`` (last item first),
    ``setdefault``, ``update``, ``clear``, ``reversed`` and ``==`` behave like a
    ``dict`` holding the layer's view, including key order: keys come in the
    parent's order, then keys new to the layer in the order they were added;
    overwriting keeps a key's place, deleting and re-adding moves it to the end.
    (A key the parent adds or deletes *after* the layer touched it may be placed
    differently from a dict.) Iteration works on a snapshot of the keys, so
    changing the mapping while iterating does not raise. ``copy()`` and
    :meth:`to_dict` return a plain ``dict`` holding the same values as the
    layer (shallow, like ``dict.copy``). A value that cannot be deep-copied
    (a lock, an open file) raises ``TypeError`` naming the key when a layer
    first reads it; :meth:`child` itself never copies or even reads a value.

    **Threads.** Node functions may use one :class:`Variables` from worker
    threads while the event loop reads it. Reading a key already in the layer
    takes no lock; the first read of a key (the copy) and every write take the
    layer's lock, so a value is copied at most once and never seen half
    installed: all threads get the same copy. The lock protects the mapping,
    not the values: threads of one branch that mutate the same container in
    place need their own lock, as with a ``dict``. Likewise a parent must not
    mutate a container in place while a child may be copying it (replace the
    value instead); ancestors are read without their locks.
    """

    __slots__ = ("__weakref__", "_hidden", "_local", "_lock", "_memo", "_parent")

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        """A root holding a shallow copy of ``initial`` (like ``dict(initial)``)."""
        #: this layer's values: its own writes and what it copied on first read
        self._local: dict[str, Any] = dict(initial) if initial is not None else {}
        #: keys whose parent entry this layer ignores: deleted here, or added here
        #: while the parent lacked them (so they sort after the parent's keys).
        #: Only ever grows. Always empty in a root.
        self._hidden: set[str] = set()
        self._parent: Variables | None = None
        self._lock = threading.RLock()
        #: deepcopy memo shared by this layer's copies (keeps aliasing); lazy
        self._memo: dict[int, Any] | None = None

    # -- layers -----------------------------------------------------------------------

    def child(self) -> Variables:
        """A new layer over this mapping, in O(1): nothing is copied or read.

        The child sees this mapping's view; its writes, deletes and in-place
        changes to values it read stay in the child (see the class docstring).
        """
        layer = Variables.__new__(Variables)
        layer._local = {}
        layer._hidden = set()
        layer._parent = self
        layer._lock = threading.RLock()
        layer._memo = None
        return layer

    @property
    def parent(self) -> Variables | None:
        """The mapping this layer was spawned from (``None`` for a root)."""
        return self._parent

    # -- reading ----------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        """``self[key]``; the first read of a parent's key installs it (copied if mutable)."""
        value = self._local.get(key, _MISSING)
        if value is not _MISSING:
            return value
        if self._parent is None:
            raise KeyError(key)
        return self._fetch(key)

    def get(self, key: str, default: Any = None) -> Any:
        """``self[key]`` if the key is present, else ``default`` (a read, like ``[]``)."""
        value = self._local.get(key, _MISSING)
        if value is not _MISSING:
            return value
        if self._parent is None:
            return default
        try:
            return self._fetch(key)
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        """``key in self``; does not touch the key (nothing is copied)."""
        layer = self
        while True:
            if key in layer._local:
                return True
            parent = layer._parent
            if parent is None or key in layer._hidden:
                return False
            layer = parent

    def __iter__(self) -> Iterator[str]:
        """The keys in dict order, from a snapshot taken now."""
        return iter(self._keys())

    def __reversed__(self) -> Iterator[str]:
        """The keys in reverse dict order, from a snapshot taken now."""
        return reversed(self._keys())

    def __len__(self) -> int:
        """Number of keys in this layer's view."""
        layer = self
        # layers that changed nothing are transparent: skip them
        while layer._parent is not None and not layer._local and not layer._hidden:
            layer = layer._parent
        if layer._parent is None:
            return len(layer._local)
        return len(layer._keys())

    def __bool__(self) -> bool:
        """True if the view holds at least one key."""
        return bool(self._local) or len(self) > 0

    def to_dict(self) -> dict[str, Any]:
        """A plain ``dict`` of the view, holding the same values as ``self[key]``.

        Shallow, like ``dict.copy()``: reads (so touches) every key, copying the
        parent's mutable values into this layer first, so the result never
        shares an object with the parent or a sibling.
        """
        with self._lock:
            result: dict[str, Any] = {}
            for key in self._keys():
                value = self.get(key, _MISSING)
                if value is not _MISSING:  # an ancestor deleted it meanwhile
                    result[key] = value
            return result

    def copy(self) -> dict[str, Any]:
        """Same as :meth:`to_dict`: a plain ``dict`` snapshot of the view."""
        return self.to_dict()

    # -- writing ----------------------------------------------------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        """``self[key] = value``, in this layer only."""
        with self._lock:
            local = self._local
            parent = self._parent
            if (parent is not None and key not in local and key not in self._hidden
                    and key not in parent):
                # new to the view: ignore whatever the parent adds under this key later.
                # Hide before storing, so a lock-free reader never sees a half state.
                self._hidden.add(key)
            local[key] = value

    def __delitem__(self, key: str) -> None:
        """``del self[key]``, in this layer only (a parent's key is hidden, not removed)."""
        with self._lock:
            local = self._local
            parent = self._parent
            if parent is None:
                del local[key]
            elif key in local:
                self._hidden.add(key)  # before removing: readers see it or see it gone
                del local[key]
            elif key not in self._hidden and key in parent:
                self._hidden.add(key)
            else:
                raise KeyError(key)

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (copied if it came from the parent).

        Without ``default``, a missing key raises ``KeyError``.
        """
        with self._lock:
            value = self.get(key, _MISSING)
            if value is _MISSING:
                if default is _MISSING:
                    raise KeyError(key)
                return default
            del self[key]
            return value

    def popitem(self) -> tuple[str, Any]:
        """Remove and return the last ``(key, value)`` pair, like ``dict.popitem``."""
        with self._lock:
            for key in reversed(self._keys()):
                value = self.get(key, _MISSING)
                if value is not _MISSING:
                    del self[key]
                    return key, value
            raise KeyError("popitem(): Variables is empty")

    def setdefault(self, key: str, default: Any = None) -> Any:
        """``self[key]`` if present, else store ``default`` there and return it."""
        with self._lock:
            value = self.get(key, _MISSING)
            if value is _MISSING:
                self[key] = value = default
            return value

    def clear(self) -> None:
        """Remove every key from the view (the parent keeps its own)."""
        with self._lock:
            if self._parent is not None:
                self._hidden.update(self._keys())  # before clearing, for lock-free readers
            self._local.clear()

    # -- other ------------------------------------------------------------------------

    def __repr__(self) -> str:
        """``Variables({...})`` showing the view (first keys only if it is big).

        Reads values without touching them: nothing is copied.
        """
        keys = self._keys()
        parts = []
        for key in keys[:_REPR_KEYS]:
            value = self._peek(key)
            if value is not _MISSING:
                parts.append(f"{key!r}: {_REPR.repr(value)}")
        if len(keys) > _REPR_KEYS:
            parts.append(f"... +{len(keys) - _REPR_KEYS} more")
        return f"{type(self).__name__}({{{', '.join(parts)}}})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle and ``copy.copy`` as a root holding :meth:`to_dict` of the view."""
        return (type(self), (self.to_dict(),))

    # -- internals --------------------------------------------------------------------

    def _peek(self, key: str) -> Any:
        """The raw value of ``key`` in this view, or ``_MISSING``; copies and installs nothing."""
        layer: Variables | None = self
        while layer is not None:
            value = layer._local.get(key, _MISSING)
            if value is not _MISSING:
                return value
            if key in layer._hidden:
                return _MISSING
            layer = layer._parent
        return _MISSING

    def _fetch(self, key: str) -> Any:
        """First read of ``key`` in a layer: install the parent's value (copied if mutable)."""
        with self._lock:
            value = self._local.get(key, _MISSING)
            if value is not _MISSING:  # another thread installed it meanwhile
                return value
            parent = self._parent
            if parent is None or key in self._hidden:
                raise KeyError(key)
            raw = parent._peek(key)
            if raw is _MISSING:
                raise KeyError(key)
            value = raw if _is_immutable(raw) else self._deepcopy(key, raw)
            self._local[key] = value
            return value

    def _deepcopy(self, key: str, raw: Any) -> Any:
        """A deep copy of ``raw`` using this layer's memo; call with the lock held."""
        memo = self._memo
        if memo is None:
            memo = self._memo = {}
        mark = len(memo)
        try:
            return _copy(raw, memo)
        except Exception as exc:
            _forget_since(memo, mark)
            raise TypeError(f"run variable {key!r} ({type(raw).__name__}) cannot be copied "
                            f"for this branch: {exc}") from exc
        except BaseException:
            _forget_since(memo, mark)
            raise

    def _keys(self) -> list[str]:
        """The view's keys in dict order (see the class docstring).

        Built from the root down: each layer drops the keys it hides, then adds
        its own keys the parent's view lacks (new keys, or keys the parent
        deleted after this layer touched them).
        """
        chain: list[Variables] = []
        layer: Variables | None = self
        while layer is not None:
            chain.append(layer)
            layer = layer._parent
        root = chain.pop()
        with root._lock:
            keys = list(root._local)
        for layer in reversed(chain):
            with layer._lock:
                if not layer._local and not layer._hidden:
                    continue
                hidden = layer._hidden
                seen = set(keys)
                keys = [key for key in keys if key not in hidden]
                keys.extend(key for key in layer._local if key in hidden or key not in seen)
        return keys


def _forget_since(memo: dict[int, Any], mark: int) -> None:
    """Drop the memo entries a failed deepcopy added (half-built copies must not be reused).

    ``copy.deepcopy`` only ever adds entries, and dicts keep insertion order.
    """
    for stale in list(memo)[mark:]:
        del memo[stale]
