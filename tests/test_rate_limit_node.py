"""The ``control.rate_limit`` node and the ``rate_limit`` policy's ``key_from``: limits
keyed by a value, bursts, try mode, run-wide sharing (event waves too), stop."""

from __future__ import annotations

import asyncio
from typing import Any

from helpers import Recorder, graph_of, registry_of, run_graph, states

from loom import node
from loom.engine import EventBus, ExecutionManager, NodeState, RunStatus, validate


@node(id="t.value", cheap=True)
def value(value: Any = None) -> Any:
    return value


@node(id="t.tag", cheap=True)
def tag(x: Any = None) -> Any:
    return x


REG = registry_of(value, tag, builtins=True)
SLOW = 0.001  # tokens a second: a second call on a key would wait ~17 minutes


def rate(key: str | None = None, **props: Any) -> dict[str, Any]:
    return {"per_second": SLOW, "burst": 1, "mode": "try", **props,
            **({} if key is None else {"key": key})}


async def test_keys_are_independent_and_the_key_can_be_wired() -> None:
    # r1 and r2 share key "a" (r2 runs after r1, so is limited); r3's key comes from a
    # wire ("b"): its own limiter, so it passes although "a" is used up.
    graph = graph_of([("r1", "control.rate_limit", rate("a", value=1)),
                      ("r2", "control.rate_limit", rate("a")),
                      ("k", "t.value", {"value": "b"}),
                      ("r3", "control.rate_limit", rate()),
                      ("passed", "t.tag"), ("limited", "t.tag"), ("passed3", "t.tag")],
                     ["r1.value -> r2.value", "r2.limited -> r3.value", "k.out -> r3.key",
                      "r2.value -> passed.x", "r2.limited -> limited.x",
                      "r3.value -> passed3.x"])
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    assert states(result)["passed"] == "skipped", "try mode: value port skipped when limited"
    assert result.outputs["limited"] == {"out": 1}
    assert result.outputs["passed3"] == {"out": 1}
    assert result.outputs["r1"] == {"value": 1, "waited_ms": 0.0}


async def test_burst_lets_that_many_through_then_limits() -> None:
    graph = graph_of([("loop", "control.for_each", {"items": list(range(5))}, {"body": ["r"]}),
                      ("r", "control.rate_limit", rate("x", burst=3))],
                     ["loop.item -> r.value"])
    result, rec = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    taken = [sorted(e["outputs"]) for e in rec.of("node_finished") if e["node"] == "r"]
    assert taken == [["value", "waited_ms"]] * 3 + [["limited"]] * 2


async def test_wait_mode_waits_for_a_token() -> None:
    graph = graph_of([("r1", "control.rate_limit", {"value": 1, "key": "w", "per_second": 20}),
                      ("r2", "control.rate_limit", {"key": "w", "per_second": 20})],
                     ["r1.value -> r2.value"])
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    assert result.outputs["r1"]["waited_ms"] == 0.0
    assert result.outputs["r2"]["value"] == 1 and result.outputs["r2"]["waited_ms"] > 0
    assert "limited" not in result.outputs["r2"]


async def test_limiters_are_shared_by_every_wave_of_an_event_graph() -> None:
    bus = EventBus()
    rec = Recorder(bus)
    graph = graph_of([("tick", "event.timer", {}, {"event_type": "timer", "interval": 0.02,
                                                   "count": 3}),
                      ("r", "control.rate_limit", rate("shared"))], ["tick.event -> r.value"])
    result = await asyncio.wait_for(ExecutionManager(graph, REG, bus=bus).run(), 10)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    taken = [sorted(e["outputs"]) for e in rec.of("node_finished") if e["node"] == "r"]
    assert taken == [["value", "waited_ms"], ["limited"], ["limited"]]


async def test_policy_key_from_limits_per_input_value() -> None:
    # Keys "a" and "b" each get their own limiter: both pass at once. Were the key
    # fixed, "b" would wait ~17 minutes behind "a".
    limit = {"rate_limit": {"key_from": "x", "per_second": SLOW}}
    graph = graph_of([("loop", "control.for_each", {"items": ["a", "b"]}, {"body": ["t"]}),
                      ("t", "t.tag", {}, limit)], ["loop.item -> t.x"])
    result, _ = await asyncio.wait_for(run_graph(graph, REG), 20)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    assert result.outputs["loop"]["results"] == ["a", "b"]


async def test_policy_key_from_shares_a_key_between_equal_values() -> None:
    bus = EventBus()
    limit = {"rate_limit": {"key": "user", "key_from": "x", "per_second": SLOW}}
    graph = graph_of([("loop", "control.for_each", {"items": ["a", "a"]}, {"body": ["t"]}),
                      ("t", "t.tag", {}, limit)], ["loop.item -> t.x"])
    manager = ExecutionManager(graph, REG, bus=bus)
    rec = Recorder(bus)
    task = asyncio.create_task(manager.run())
    for _ in range(500):
        if len([e for e in rec.of("node_started") if e["node"] == "t"]) >= 2:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    finished = [e for e in rec.of("node_finished") if e["node"] == "t"]
    assert len(finished) == 1, "the second 'a' waits for the first's key"
    manager.request_stop()
    result = await asyncio.wait_for(task, 10)
    assert result.status is RunStatus.STOPPED


async def test_stop_wakes_a_waiting_rate_limit_node() -> None:
    bus = EventBus()
    rec = Recorder(bus)
    graph = graph_of([("r1", "control.rate_limit", {"value": 1, "key": "s", "per_second": SLOW}),
                      ("r2", "control.rate_limit", {"key": "s", "per_second": SLOW})],
                     ["r1.value -> r2.value"])
    manager = ExecutionManager(graph, REG, bus=bus)
    task = asyncio.create_task(manager.run())
    for _ in range(500):
        if any(e["node"] == "r2" for e in rec.of("node_started")):
            break
        await asyncio.sleep(0.01)
    manager.request_stop(grace=60)  # a long grace: only the stop signal may end the wait
    result = await asyncio.wait_for(task, 10)
    assert result.status is RunStatus.STOPPED
    assert result.nodes["r1"].state is NodeState.DONE
    assert result.nodes["r2"].state in (NodeState.STOPPED, NodeState.FAILED)


def test_bad_rates_and_key_from_are_validation_errors() -> None:
    graph = graph_of([
        ("a", "control.rate_limit", {"per_second": 0}),
        ("b", "control.rate_limit", {"burst": 0}),
        ("c", "control.rate_limit", {"per_second": "fast"}),
        ("d", "t.tag", {}, {"rate_limit": {"key_from": "nope", "per_second": 1}}),
        ("e", "t.tag", {}, {"rate_limit": {"key_from": 3, "per_second": 1}})])
    errors = sorted(str(i) for i in validate(graph, REG) if i.severity == "error")
    assert any(e.startswith("a: ") and "per_second" in e for e in errors), errors
    assert any(e.startswith("b: ") and "burst" in e for e in errors), errors
    assert any(e.startswith("c: ") for e in errors), errors
    assert "d: metadata.rate_limit key_from 'nope' is not an input port of t.tag" in errors
    assert 'e: metadata.rate_limit "key_from" must name an input port' in errors


async def test_stop_during_a_policy_limiter_wait_is_not_retried() -> None:
    bus = EventBus()
    rec = Recorder(bus)
    limit = {"rate_limit": {"key": "p", "per_second": SLOW}, "max_retries": 3,
             "retry_wait": 30}
    graph = graph_of([("a", "t.tag", {"x": 1}, limit), ("b", "t.tag", {}, limit)],
                     ["a.out -> b.x"])
    manager = ExecutionManager(graph, REG, bus=bus)
    task = asyncio.create_task(manager.run())
    for _ in range(500):
        if any(e["node"] == "b" for e in rec.of("node_started")):
            break
        await asyncio.sleep(0.01)
    manager.request_stop(grace=60)  # only the stop signal may end b's wait
    result = await asyncio.wait_for(task, 10)
    assert result.status is RunStatus.STOPPED
    assert result.nodes["a"].state is NodeState.DONE
    assert not rec.of("node_retrying"), "a stopped wait is not retried"
