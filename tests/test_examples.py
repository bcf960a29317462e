"""The example graphs in resources/examples/: canonical files that run and say something.

Every example needs an entry in EXPECTED (its final node, port and value), so a
new example cannot be added without saying what it should produce.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loom.engine import ExecutionManager, NodeState, RunStatus
from loom.graph import dumps_graph, load_graph
from loom.registry import Registry

EXAMPLES = Path(__file__).resolve().parent.parent / "resources" / "examples"
FILES = sorted(EXAMPLES.glob("*.loom"))

#: file name -> (node id, output port, expected value) of its final output
EXPECTED: dict[str, tuple[str, str, Any]] = {
    "hello.loom": ("message", "out", "HELLO, WORLD! Welcome to Loom."),
    "branching.loom": ("next", "out", 22),
    "switch.loom": ("reply", "out", "HALT!"),
    "code.loom": ("report", "out", "7 distinct numbers from 1 to 9"),
    "loop.loom": ("joined", "out", "LOOPS! RUN! BODIES! ONCE! PER! ITEM!"),
    "parallel.loom": ("report", "out", '{"square": 9, "double": 6, "half": 1.5}'),
    "while.loom": ("result", "out", 1),
    "timer.loom": ("say", "out", "tick 5 of 5"),
    "schedule.loom": ("say", "out", "fire 3 of 3"),
}

#: nodes each example must skip (the branches not taken)
SKIPPED: dict[str, set[str]] = {
    "branching.loom": {"halve"},
    "switch.loom": {"go_sign", "unknown"},
}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.standard(entry_points=False)


def test_examples_exist() -> None:
    assert {p.name for p in FILES} >= {"hello.loom", "branching.loom", "switch.loom"}
    assert {p.name for p in FILES} == set(EXPECTED), "every example needs an EXPECTED entry"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_example_is_canonical(path: Path) -> None:
    graph = load_graph(path)
    assert dumps_graph(graph) == path.read_text(encoding="utf-8")
    assert graph.name, "an example should have a name"
    assert not path.with_name(path.name + ".bak").exists()


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
async def test_example_runs(path: Path, registry: Registry) -> None:
    graph = load_graph(path)
    manager = ExecutionManager(graph, registry)
    assert manager.validate() == []
    result = await manager.run()
    assert result.status is RunStatus.SUCCEEDED, result.errors
    node_id, port, expected = EXPECTED[path.name]
    assert result.outputs[node_id][port] == expected
    skipped = {nid for nid, rec in result.nodes.items() if rec.state is NodeState.SKIPPED}
    assert skipped == SKIPPED.get(path.name, set())


async def test_hello_counts_words(registry: Registry) -> None:
    result = await ExecutionManager(load_graph(EXAMPLES / "hello.loom"), registry).run()
    assert result.outputs["shout"]["out"] == "HELLO, WORLD!"
    assert result.outputs["word_count"]["out"] == 5


@pytest.mark.parametrize(("number", "expected", "skipped"), [(7, 22, "halve"),
                                                            (10, 5, "triple")])
async def test_branching_takes_the_other_path_for_even_numbers(
        registry: Registry, number: int, expected: float, skipped: str) -> None:
    graph = load_graph(EXAMPLES / "branching.loom")
    graph.node("number").properties["value"] = number
    result = await ExecutionManager(graph, registry).run()
    assert result.status is RunStatus.SUCCEEDED, result.errors
    assert result.outputs["next"]["out"] == expected
    assert result.nodes[skipped].state is NodeState.SKIPPED


@pytest.mark.parametrize(("command", "expected"), [("go", "GREEN: go"), ("start", "GREEN: start"),
                                                   ("stop", "STOP!"), ("halt", "HALT!"),
                                                   ("dance", "unknown command: dance")])
async def test_switch_routes_every_command(registry: Registry, command: str,
                                           expected: str) -> None:
    graph = load_graph(EXAMPLES / "switch.loom")
    graph.node("command").properties["value"] = command
    result = await ExecutionManager(graph, registry).run()
    assert result.status is RunStatus.SUCCEEDED, result.errors
    assert result.outputs["reply"]["out"] == expected


async def test_code_example_outputs(registry: Registry) -> None:
    result = await ExecutionManager(load_graph(EXAMPLES / "code.loom"), registry).run()
    assert result.outputs["stats"] == {"summary": {"count": 7, "low": 1, "high": 9},
                                       "total": 30}
    assert result.outputs["rounded"]["out"] == 4.29
