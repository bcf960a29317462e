"""Small builders shared by the engine tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from loom.engine import EventBus, ExecutionManager, RunResult
from loom.graph import Graph, Node
from loom.registry import Registry, spec_of


def registry_of(*funcs: Callable[..., Any], builtins: bool = False) -> Registry:
    """A registry holding these @node functions (and the built-ins if asked)."""
    registry = Registry.standard(entry_points=False) if builtins else Registry()
    for func in funcs:
        assert spec_of(func) is not None, func
        registry.add_function(func, origin="tests")
    return registry


def graph_of(nodes: Iterable[tuple[str, str] | tuple[str, str, dict[str, Any]]
                              | tuple[str, str, dict[str, Any], dict[str, Any]]],
             wires: Iterable[str] = (), *, max_concurrency: int = 1) -> Graph:
    """A graph from ``(id, type[, props[, metadata]])`` tuples and ``"a.out -> b.in"`` wires."""
    graph = Graph(name="test")
    graph.settings.max_concurrency = max_concurrency
    for entry in nodes:
        node_id, type_id, *rest = entry
        props = rest[0] if rest else {}
        meta = rest[1] if len(rest) > 1 else {}
        graph.add_node(Node(node_id, type_id, properties=dict(props), metadata=dict(meta)))
    for wire in wires:
        src, dst = (part.strip() for part in wire.split("->"))
        src_node, src_port = src.split(".")
        dst_node, dst_port = dst.split(".")
        graph.connect(src_node, src_port, dst_node, dst_port)
    return graph


class Ticker:
    """Counts how often the event loop gets round to it: proof the loop was not blocked."""

    def __init__(self, interval: float = 0.0) -> None:
        self.interval = interval
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.ticks += 1

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class Recorder:
    """A bus subscriber that keeps every event."""

    def __init__(self, bus: EventBus) -> None:
        self.events: list[dict[str, Any]] = []
        bus.subscribe(self.events.extend)

    def types(self, node: str | None = None) -> list[str]:
        return [e["type"] for e in self.events if node is None or e.get("node") == node]

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_]


async def run_graph(graph: Graph, registry: Registry, **options: Any
                    ) -> tuple[RunResult, Recorder]:
    """Run a graph, recording its events."""
    bus = EventBus()
    recorder = Recorder(bus)
    result = await ExecutionManager(graph, registry, bus=bus, **options).run()
    return result, recorder


def states(result: RunResult) -> dict[str, str]:
    """Node id -> final state name."""
    return {nid: rec.state.value for nid, rec in result.nodes.items()}
