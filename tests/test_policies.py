"""Per-node policies: timeout, retries with backoff, shared rate limits, on_error."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from helpers import graph_of, registry_of, run_graph, states

from loom import node
from loom.engine import NodeState, RunStatus, validate


@node(id="t.value", cheap=True)
def value(value: Any = None) -> Any:
    return value


@node(id="t.slow")
async def slow(seconds: float = 1.0) -> str:
    await asyncio.sleep(seconds)
    return "done"


@node(id="t.blocking")
def blocking(seconds: float = 0.3) -> str:
    time.sleep(seconds)
    return "done"


calls: dict[str, int] = {}
stamps: list[float] = []


@node(id="t.flaky", cheap=True)
def flaky(key: str = "k", failures: int = 2) -> str:
    calls[key] = calls.get(key, 0) + 1
    stamps.append(time.monotonic())
    if calls[key] <= failures:
        raise ConnectionError(f"{key}: attempt {calls[key]} failed")
    return f"{key} ok after {calls[key]}"


@node(id="t.stamp")
async def stamp(x: Any = None) -> float:
    now = time.monotonic()
    stamps.append(now)
    return now


@node(id="t.broken", outputs=["a", "b"], cheap=True)
def broken(x: Any = None) -> tuple[int, int]:
    raise LookupError("no such thing")


@node(id="t.show", cheap=True)
def show(x: Any = None) -> Any:
    return {"got": x}


REG = registry_of(value, slow, blocking, flaky, stamp, broken, show, builtins=True)


async def test_timeout_fails_the_node_on_time() -> None:
    graph = graph_of([("s", "t.slow", {"seconds": 5.0}, {"timeout": 0.1}), ("after", "t.show")],
                     ["s.out -> after.x"])
    started = time.perf_counter()
    result, _ = await run_graph(graph, REG)
    assert time.perf_counter() - started < 0.5
    assert result.nodes["s"].error == "NodeTimeout: timed out after 0.1 s"
    assert states(result)["after"] == "skipped"


async def test_timeout_on_a_thread_node_reports_and_does_not_wait() -> None:
    graph = graph_of([("b", "t.blocking", {"seconds": 0.4}, {"timeout": 0.05})])
    started = time.perf_counter()
    result, _ = await run_graph(graph, REG)
    assert time.perf_counter() - started < 0.3, "the run did not wait for the thread"
    assert result.nodes["b"].error == "NodeTimeout: timed out after 0.05 s"
    assert result.abandoned == ["b"], "the thread still running is reported"


async def test_retries_count_and_back_off_exponentially() -> None:
    calls.clear()
    stamps.clear()
    graph = graph_of([("f", "t.flaky", {"key": "a", "failures": 2},
                       {"max_retries": 3, "retry_wait": 0.05})])
    result, rec = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED
    assert result.outputs["f"] == {"out": "a ok after 3"}
    assert result.nodes["f"].attempts == 3
    retries = rec.of("node_retrying")
    assert [(e["attempt"], e["wait"]) for e in retries] == [(2, 0.05), (3, 0.1)]
    assert retries[0]["error"] == "ConnectionError: a: attempt 1 failed"
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1


async def test_retries_exhausted_fail_with_the_last_error() -> None:
    calls.clear()
    graph = graph_of([("f", "t.flaky", {"key": "b", "failures": 9}, {"max_retries": 3})])
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.FAILED
    assert calls["b"] == 3 and result.nodes["f"].attempts == 3
    assert result.nodes["f"].error == "ConnectionError: b: attempt 3 failed"


async def test_default_is_a_single_attempt() -> None:
    calls.clear()
    result, _ = await run_graph(graph_of([("f", "t.flaky", {"key": "c", "failures": 1})]), REG)
    assert result.status is RunStatus.FAILED and calls["c"] == 1


async def test_rate_limit_is_never_exceeded_across_branches_and_nodes() -> None:
    stamps.clear()
    limit = {"rate_limit": {"key": "api", "per_second": 20}}
    branches = [[f"s{i}"] for i in range(12)]
    nodes: list[tuple[Any, ...]] = [
        ("p", "control.parallel", {}, {"parallel_branches": branches}),
        *[(f"s{i}", "t.stamp", {}, limit) for i in range(12)],
        ("loop", "control.for_each", {"items": list(range(12))},
         {"body": ["l"], "parallel": True, "max_concurrent": 12}),
        ("l", "t.stamp", {}, limit)]
    graph = graph_of(nodes, ["loop.item -> l.x"], max_concurrency=2)
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    assert len(stamps) == 24
    stamps.sort()
    windows = [b - a for a, b in zip(stamps, stamps[20:], strict=False)]
    assert min(windows) >= 1.0 - 0.005, "never more than 20 starts in any second"
    spacing = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(spacing) >= 1 / 20 - 0.005, "calls are spaced, not bursty"


async def test_on_error_continue_passes_none_and_the_run_succeeds() -> None:
    graph = graph_of([("b", "t.broken", {}, {"on_error": "continue"}), ("s", "t.show")],
                     ["b.a -> s.x"])
    result, rec = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED
    assert result.nodes["b"].state is NodeState.FAILED and result.nodes["b"].handled
    assert result.outputs["s"] == {"out": {"got": None}}
    assert result.errors[0]["handled"] is True
    assert rec.of("node_failed")[0]["handled"] is True
    assert rec.events[-1]["failed"] == []


async def test_on_error_error_output_routes_the_error() -> None:
    graph = graph_of([("b", "t.broken", {}, {"on_error": "error_output"}), ("s", "t.show"),
                      ("e", "t.show")], ["b.a -> s.x", "b.error -> e.x"])
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED
    assert states(result)["s"] == "skipped"
    error = result.outputs["e"]["out"]["got"]
    assert error["node"] == "b" and error["error"] == "LookupError: no such thing"
    assert "raise LookupError" in error["traceback"]


async def test_error_port_is_skipped_when_nothing_fails() -> None:
    graph = graph_of([("v", "t.value", {"value": 1}, {"on_error": "error_output"}),
                      ("e", "t.show"), ("s", "t.show")], ["v.error -> e.x", "v.out -> s.x"])
    result, _ = await run_graph(graph, REG)
    assert states(result)["e"] == "skipped" and result.outputs["s"] == {"out": {"got": 1}}


async def test_policies_apply_to_code_nodes_and_retry_inside_loops() -> None:
    calls.clear()
    graph = graph_of([("loop", "control.for_each", {"items": ["x", "y"]}, {"body": ["f"]}),
                      ("f", "t.flaky", {"failures": 1}, {"max_retries": 2})],
                     ["loop.item -> f.key"])
    result, _ = await run_graph(graph, REG)
    assert result.outputs["loop"]["results"] == ["x ok after 2", "y ok after 2"]


def test_policy_settings_are_validated() -> None:
    graph = graph_of([
        ("a", "t.value", {}, {"timeout": "soon"}),
        ("b", "t.value", {}, {"max_retries": 0}),
        ("c", "t.value", {}, {"rate_limit": {"per_second": 5}}),
        ("d", "t.value", {}, {"rate_limit": {"key": "x", "per_second": 0}}),
        ("e", "t.value", {}, {"on_error": "explode"})])
    errors = sorted(str(i) for i in validate(graph, REG) if i.severity == "error")
    assert errors == [
        "a: metadata.timeout must be a number, not 'soon'",
        "b: metadata.max_retries must be at least 1, not 0",
        ('c: metadata.rate_limit needs a "key" string naming what is limited (or "key_from", '
         'an input)'),
        'd: metadata.rate_limit needs "per_second", a number above 0',
        "e: metadata.on_error must be one of stop, continue, error_output, fail-fast, "
        "continue-partial, not 'explode'",
    ]
