"""The registry: every node type Loom knows, and where each came from.

Node packs are Python modules holding ``@node`` functions. They come from the
built-in ``nodes/`` folder, folders given with ``--nodes DIR``, and installed
packages declaring the ``loom.nodes`` entry point. A pack that fails to import
is recorded in :attr:`Registry.problems` (file and error) and the rest load.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
import traceback
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loom.graph.migrations import MigrationRegistry

from .spec import NodeSpec, predicate_name, spec_of

ENTRY_POINT_GROUP = "loom.nodes"
#: Folder packs are imported as submodules of this synthetic package, so their
#: functions have an importable home (pickling by reference needs one).
PACK_PACKAGE = "loom_nodes"


@dataclass(frozen=True)
class LoadProblem:
    """A pack that could not be loaded, or a node type that clashed with another."""

    source: str
    error: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"{self.source}: {self.error}"


def builtin_pack_dir() -> Path:
    """Where the built-in packs are: inside the wheel, or ``nodes/`` in a checkout."""
    here = Path(__file__).resolve().parent.parent
    shipped = here / "builtin_nodes"
    return shipped if shipped.is_dir() else here.parent / "nodes"


class Registry:
    """Node types by id, with their origin, plus the migrations they declare."""

    def __init__(self) -> None:
        self._specs: dict[str, NodeSpec] = {}
        self._origin: dict[str, str] = {}
        self.problems: list[LoadProblem] = []
        self.migrations = MigrationRegistry()
        #: ``@predicate`` functions by name (a conditional node's ``condition_func``)
        self.predicates: dict[str, Callable[[Any], Any]] = {}
        self._predicate_origin: dict[str, str] = {}

    # ------------------------------------------------------------------ lookup
    def get(self, type_id: str) -> NodeSpec | None:
        """The spec for a type id, or ``None`` when it is not installed."""
        return self._specs.get(type_id)

    def __getitem__(self, type_id: str) -> NodeSpec:
        try:
            return self._specs[type_id]
        except KeyError:
            raise KeyError(f"node type {type_id!r} is not installed") from None

    def __contains__(self, type_id: object) -> bool:
        return type_id in self._specs

    def __iter__(self) -> Iterator[NodeSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def origin(self, type_id: str) -> str:
        """The file or module a type was loaded from."""
        return self._origin.get(type_id, "")

    def by_category(self) -> dict[str, list[NodeSpec]]:
        """Specs grouped by category, both sorted by name."""
        groups: dict[str, list[NodeSpec]] = {}
        for spec in self._specs.values():
            groups.setdefault(spec.category, []).append(spec)
        return {c: sorted(groups[c], key=lambda s: s.type_id) for c in sorted(groups)}

    # ------------------------------------------------------------------ adding
    def add(self, spec: NodeSpec, origin: str = "") -> bool:
        """Register a spec. A type id already taken from elsewhere is a problem, not a swap."""
        taken = self._origin.get(spec.type_id)
        if spec.type_id in self._specs and taken != origin:
            self.problems.append(LoadProblem(
                origin or spec.func.__module__,
                f"node type {spec.type_id!r} is already defined by {taken or 'another pack'}; "
                "this one is ignored"))
            return False
        self._specs[spec.type_id] = spec
        self._origin[spec.type_id] = origin
        self.migrations.declare(spec.type_id, spec.version)
        for from_version, step in spec.migrations.items():
            self.migrations.register(spec.type_id, from_version, step)
        return True

    def add_function(self, func: object, origin: str = "") -> NodeSpec:
        """Register one ``@node`` function."""
        spec = spec_of(func)
        if spec is None:
            raise TypeError(f"{func!r} is not a @node function")
        self.add(spec, origin)
        return spec

    def add_predicate(self, func: Callable[[Any], Any], origin: str = "") -> bool:
        """Register one ``@predicate`` function. A name taken from elsewhere is a problem."""
        name = predicate_name(func)
        if name is None:
            raise TypeError(f"{func!r} is not a @predicate function")
        taken = self._predicate_origin.get(name)
        if name in self.predicates and taken != origin:
            self.problems.append(LoadProblem(
                origin or getattr(func, "__module__", ""),
                f"predicate {name!r} is already defined by {taken or 'another pack'}; "
                "this one is ignored"))
            return False
        self.predicates[name] = func
        self._predicate_origin[name] = origin
        return True

    def load_module(self, module: types.ModuleType, origin: str = "") -> list[NodeSpec]:
        """Register every ``@node`` function defined in (not imported into) a module, and
        its ``@predicate`` functions."""
        found = []
        for obj in list(vars(module).values()):
            if (predicate_name(obj) is not None
                    and getattr(obj, "__module__", None) == module.__name__):
                self.add_predicate(obj, origin or module.__name__)
            spec = spec_of(obj)
            if (spec is not None and getattr(obj, "__module__", None) == module.__name__
                    and self.add(spec, origin or module.__name__)):
                found.append(spec)
        return found

    def load_file(self, path: str | os.PathLike[str]) -> list[NodeSpec]:
        """Import one pack file by path and register its nodes; failures become problems."""
        file = Path(path).resolve()
        self._forget_origin(str(file))
        try:
            module = _import_pack_file(file)
        except Exception as exc:  # noqa: BLE001 - pack code is third-party: any failure is reported
            self.problems.append(LoadProblem(str(file), f"{type(exc).__name__}: {exc}",
                                             traceback.format_exc()))
            return []
        return self.load_module(module, str(file))

    def load_dir(self, path: str | os.PathLike[str]) -> list[NodeSpec]:
        """Load every ``*.py`` pack in a folder (not recursive; ``_private.py`` skipped)."""
        folder = Path(path)
        if not folder.is_dir():
            self.problems.append(LoadProblem(str(folder), "not a folder"))
            return []
        found: list[NodeSpec] = []
        for file in sorted(folder.glob("*.py")):
            if not file.name.startswith("_"):
                found += self.load_file(file)
        return found

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[NodeSpec]:
        """Load packs declared by installed packages under the ``loom.nodes`` entry point."""
        found: list[NodeSpec] = []
        for ep in importlib.metadata.entry_points(group=group):
            origin = f"entry point {ep.name} = {ep.value}"
            try:
                target = ep.load()
            except Exception as exc:  # noqa: BLE001 - third-party import: report and go on
                self.problems.append(LoadProblem(origin, f"{type(exc).__name__}: {exc}",
                                                 traceback.format_exc()))
                continue
            if isinstance(target, types.ModuleType):
                found += self.load_module(target, origin)
            elif spec_of(target) is not None:
                found.append(self.add_function(target, origin))
            else:
                self.problems.append(LoadProblem(origin, "is neither a module nor a @node"))
        return found

    def reload_file(self, path: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
        """Load a pack file again after it changed (the editor's hot reload).

        Returns the type ids it defined before or defines now, and the problems this
        load found. A deleted file loses its types. A file that no longer imports
        keeps its previous types (and module) so open graphs keep working; the
        problem says so. Earlier problems of the file are replaced by this load's.
        """
        file = Path(path).resolve()
        origin = str(file)
        before = {t: s for t, s in self._specs.items() if self._origin.get(t) == origin}
        predicates = [f for n, f in self.predicates.items()
                      if self._predicate_origin.get(n) == origin]
        self.problems[:] = [p for p in self.problems if p.source != origin]
        if not file.exists():
            self._forget_origin(origin)
            return sorted(before), []
        old_modules = {name: module for name, module in sys.modules.items()
                       if name.startswith(PACK_PACKAGE + ".")
                       and getattr(module, "__file__", None) == origin}
        count = len(self.problems)
        loaded = self.load_file(file)
        found = self.problems[count:]
        if any(p.traceback for p in found) and not loaded and before:
            for spec in before.values():
                self.add(spec, origin)
            for func in predicates:
                self.add_predicate(func, origin)
            for name, module in old_modules.items():
                sys.modules.setdefault(name, module)  # their functions pickle by reference
            return sorted(before), [f"{p} (the previous version of its nodes is kept)"
                                    for p in found]
        return sorted(set(before) | {s.type_id for s in loaded}), [str(p) for p in found]

    def _forget_origin(self, origin: str) -> None:
        # Reloading a file replaces what it defined before.
        for type_id in [t for t, o in self._origin.items() if o == origin]:
            del self._specs[type_id], self._origin[type_id]
        for name in [n for n, o in self._predicate_origin.items() if o == origin]:
            del self.predicates[name], self._predicate_origin[name]

    # ------------------------------------------------------------------ building
    @classmethod
    def standard(cls, extra_dirs: Iterable[str | os.PathLike[str]] = (), *,
                 builtins: bool = True, entry_points: bool = True) -> Registry:
        """The registry ``loom`` uses: built-ins, then ``--nodes`` folders, then entry points."""
        registry = cls()
        if builtins:
            registry.load_dir(builtin_pack_dir())
        for folder in extra_dirs:
            registry.load_dir(folder)
        if entry_points:
            registry.load_entry_points()
        return registry


def _pack_module_name(file: Path) -> str:
    base = f"{PACK_PACKAGE}.{file.stem}"
    name, n = base, 1
    while name in sys.modules and getattr(sys.modules[name], "__file__", None) != str(file):
        n += 1
        name = f"{base}_{n}"
    return name


def _import_pack_file(file: Path) -> types.ModuleType:
    if PACK_PACKAGE not in sys.modules:
        package = types.ModuleType(PACK_PACKAGE, "Node packs Loom loaded from folders.")
        package.__path__ = []
        sys.modules[PACK_PACKAGE] = package
    name = _pack_module_name(file)
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    module.__loom_pack__ = file.stem  # type: ignore[attr-defined]
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
