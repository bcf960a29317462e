"""The qasync loop on this stack: infinite timers work, the loop runs engine runs."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from loom.engine import ExecutionManager, RunStatus
from loom.graph import Graph, Node
from loom.registry import Registry


def test_an_infinite_sleep_can_be_cancelled_on_the_qasync_loop(qloop: Any, qtbot: Any) -> None:
    task = asyncio.ensure_future(asyncio.sleep(math.inf))
    qtbot.wait(20)
    assert not task.done()
    task.cancel()
    qtbot.waitUntil(task.done, timeout=1000)
    assert task.cancelled()


def test_a_huge_finite_delay_does_not_overflow(qloop: Any, qtbot: Any) -> None:
    handle = qloop.call_later(10**9, lambda: None)
    handle.cancel()


def test_the_engine_runs_on_the_qasync_loop(qloop: Any, qtbot: Any) -> None:
    graph = Graph(name="q")
    graph.add_node(Node("v", "values.number", properties={"value": 2.0}))
    graph.add_node(Node("d", "time.delay", properties={"seconds": 0.05}))
    graph.connect("v", "out", "d", "value")
    task = asyncio.ensure_future(ExecutionManager(graph, Registry.standard(
        entry_points=False)).run())
    qtbot.waitUntil(task.done, timeout=5000)
    result = task.result()
    assert result.status is RunStatus.SUCCEEDED and result.outputs["d"] == {"out": 2.0}
