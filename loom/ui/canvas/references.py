"""Node ids inside metadata: a loop's body, a parallel node's branches, true/false paths.

Which settings hold node ids is declared by the execution mode's strategy (setting
kinds ``node_id``, ``node_ids``, ``node_id_lists``), so this follows new modes with no
change. Used when nodes are copied (references among the copies follow the copies) and
deleted (references to deleted nodes go, so the graph stays valid).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from loom.engine import STRATEGIES

from .jsoncopy import copy_json

#: maps an id to its replacement, or to None to drop it
Rewrite = Callable[[str], str | None]


def rewrite_refs(metadata: Mapping[str, Any], mode: str, rewrite: Rewrite) -> dict[str, Any] | None:
    """Metadata with node-id settings rewritten; None when nothing changed."""
    strategy = STRATEGIES.get(mode)
    if strategy is None:
        return None
    result = copy_json(dict(metadata))
    changed = False
    for setting in strategy.settings:
        if setting.name not in result:
            continue
        value = result[setting.name]
        if setting.kind == "node_id" and isinstance(value, str):
            new = rewrite(value)
            if new != value:
                changed = True
                if new is None:
                    del result[setting.name]
                else:
                    result[setting.name] = new
        elif setting.kind == "node_ids" and isinstance(value, list):
            new_list = _ids(value, rewrite)
            if new_list != value:
                changed, result[setting.name] = True, new_list
        elif setting.kind == "node_id_lists":
            new_groups = _groups(value, rewrite)
            if new_groups != value:
                changed, result[setting.name] = True, new_groups
    return result if changed else None


def _ids(values: list[Any], rewrite: Rewrite) -> list[Any]:
    out = []
    for value in values:
        new = rewrite(value) if isinstance(value, str) else value
        if new is not None:
            out.append(new)
    return out


def _groups(value: Any, rewrite: Rewrite) -> Any:
    if isinstance(value, dict):
        return {k: _ids(v, rewrite) if isinstance(v, list) else v for k, v in value.items()}
    if isinstance(value, list):
        return [_ids(v, rewrite) if isinstance(v, list) else v for v in value]
    return value


def follow(mapping: Mapping[str, str]) -> Rewrite:
    """Copies: ids among the copies follow them; others are dropped (no shared body)."""
    return mapping.get


def without(removed: set[str]) -> Rewrite:
    """Deletion: drop the removed ids, keep the rest."""
    return lambda node_id: None if node_id in removed else node_id
