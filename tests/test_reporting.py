"""A run's result says what happened (issue 9, findings 9 and 12).

Parallel branch timeouts fail the node with the branch's own error; nodes cancelled by
a timeout or by fail_fast say why rather than "run stopped"; failures that an owner's
error policy handled are marked handled; a node's record describes its last run only;
tracebacks show the user's code, not tenacity's or aiolimiter's.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from helpers import graph_of, registry_of, run_graph, states

from loom import node
from loom.console import print_summary
from loom.engine import ExecutionManager, NodeState, RunStatus

cleanup: list[str] = []


@node(id="t.value", cheap=True)
def value(value: Any = None) -> Any:
    return value


@node(id="t.nap")
async def nap(x: Any = None, seconds: float = 0.01, tag: str = "") -> Any:
    await asyncio.sleep(seconds)
    return tag or x


@node(id="t.sleeper")
async def sleeper(x: Any = None, seconds: float = 30.0, tag: str = "") -> Any:
    try:
        await asyncio.sleep(seconds)
    finally:
        cleanup.append(tag)
    return tag


@node(id="t.boom")
async def boom(x: Any = None, after: float = 0.0) -> Any:
    await asyncio.sleep(after)
    raise ValueError("branch broke")


@node(id="t.odd_fails", cheap=True)
def odd_fails(x: int = 0) -> int:
    if x % 2:
        raise ValueError(f"odd item {x}")
    return x


attempts: list[int] = []


@node(id="t.flaky")
def flaky(x: Any = None) -> Any:
    attempts.append(1)
    raise RuntimeError("still broken")


REG = registry_of(value, nap, sleeper, boom, odd_fails, flaky, builtins=True)


def parallel_graph(branches: list[list[tuple[Any, ...]]], **settings: Any) -> Any:
    """A control.parallel fed 1; each branch's first node is wired from p.value."""
    meta = {"parallel_branches": [[n[0] for n in branch] for branch in branches], **settings}
    nodes: list[tuple[Any, ...]] = [("v", "t.value", {"value": 1}),
                                    ("p", "control.parallel", {}, meta)]
    links = ["v.out -> p.value"]
    for branch in branches:
        nodes += branch
        links.append(f"p.value -> {branch[0][0]}.x")
    return graph_of(nodes, links)


QUICK_AND_STUCK = [[("quick", "t.nap", {"tag": "q"})], [("stuck", "t.sleeper", {"tag": "s"})]]


# ------------------------------------------------------------------ finding 9


async def test_branch_timeout_under_fail_fast_fails_the_node_with_the_branch_error() -> None:
    # Was: TypeError: float() argument must be a string or a real number, not 'NoneType'
    # (the branch's own BranchTimeout was taken for the global timeout).
    cleanup.clear()
    graph = parallel_graph(QUICK_AND_STUCK, timeout=0.1)
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.FAILED
    assert result.nodes["p"].error == "BranchTimeout: branch 'stuck' timed out after 0.1 s"
    assert "TypeError" not in (result.nodes["p"].traceback or "")
    assert cleanup == ["s"], "the timed-out branch's finally ran"


async def test_branch_timeout_is_not_reported_as_the_global_timeout() -> None:
    # Was: "global_timeout of 5 s reached", though only the branch's 0.1 s had passed.
    graph = parallel_graph(QUICK_AND_STUCK, timeout=0.1, global_timeout=5)
    result, _ = await run_graph(graph, REG)
    assert result.nodes["p"].error == "BranchTimeout: branch 'stuck' timed out after 0.1 s"


async def test_global_timeout_still_reports_itself() -> None:
    graph = parallel_graph(QUICK_AND_STUCK, timeout=5, global_timeout=0.1)
    result, _ = await run_graph(graph, REG)
    assert result.nodes["p"].error == "BranchTimeout: p: global_timeout of 0.1 s reached"


# ------------------------------------------------------------------ finding 12: reasons


async def test_a_branch_timeout_says_so_on_the_cancelled_node() -> None:
    graph = parallel_graph(QUICK_AND_STUCK, timeout=0.1, on_error="continue")
    result, rec = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED
    assert result.nodes["stuck"].state is NodeState.STOPPED
    assert result.nodes["stuck"].reason == "cancelled: timeout of 0.1 s"
    [event] = rec.of("node_stopped")
    assert event["reason"] == "cancelled: timeout of 0.1 s"


async def test_a_stopped_node_reports_the_duration_its_record_has() -> None:
    # One duration per execution (issue 11, bug 11): the editor's badge and timeline
    # read it from the event, the Run panel from the record.
    graph = parallel_graph(QUICK_AND_STUCK, timeout=0.1, on_error="continue")
    result, rec = await run_graph(graph, REG)
    [event] = rec.of("node_stopped")
    assert event["duration_ms"] == result.nodes["stuck"].duration_ms
    assert event["duration_ms"] >= 50.0, "it ran until the 0.1 s timeout cancelled it"


async def test_nodes_a_timed_out_branch_never_started_say_why() -> None:
    # Was: "p done without running it".
    graph = parallel_graph([[("quick", "t.nap", {"tag": "q"})],
                            [("stuck", "t.sleeper", {"tag": "s"}), ("next", "t.value")]],
                           timeout=0.1, on_error="continue")
    graph.connect("stuck", "out", "next", "value")
    result, rec = await run_graph(graph, REG)
    assert result.nodes["next"].state is NodeState.SKIPPED
    assert result.nodes["next"].reason == "cancelled: timeout of 0.1 s"
    assert [e["reason"] for e in rec.of("node_skipped")] == ["cancelled: timeout of 0.1 s"]


async def test_a_global_timeout_says_so_on_the_cancelled_node() -> None:
    graph = parallel_graph(QUICK_AND_STUCK, global_timeout=0.1, on_error="continue")
    result, _ = await run_graph(graph, REG)
    assert result.nodes["stuck"].reason == "cancelled: global_timeout of 0.1 s"


async def test_fail_fast_names_the_failed_sibling_on_the_cancelled_node() -> None:
    graph = parallel_graph([[("slow", "t.sleeper", {"tag": "slow"})],
                            [("bad", "t.boom", {"after": 0.05})]])
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.FAILED
    assert result.nodes["slow"].state is NodeState.STOPPED
    assert result.nodes["slow"].reason == "cancelled: sibling branch 'bad' failed (fail_fast)"


async def test_a_failed_parallel_item_names_itself_on_the_cancelled_items() -> None:
    # Item 0 sleeps; item 1 gets a bad input type and fails at once.
    graph = graph_of(
        [("items", "t.value", {"value": [30.0, "not a number"]}),
         ("loop", "control.for_each", {}, {"body": ["work"], "parallel": True}),
         ("work", "t.nap")],
        ["items.out -> loop.items", "loop.item -> work.seconds"])
    result, rec = await run_graph(graph, REG)
    assert result.status is RunStatus.FAILED
    [stopped] = rec.of("node_stopped")
    assert stopped["reason"] == "cancelled: item 1 failed"


async def test_a_real_stop_is_still_called_run_stopped() -> None:
    graph = parallel_graph(QUICK_AND_STUCK, timeout=10)
    manager = ExecutionManager(graph, REG, stop_grace=0.05)
    run = asyncio.ensure_future(manager.run())
    while manager.records.get("stuck") is None or \
            manager.records["stuck"].state is not NodeState.RUNNING:
        await asyncio.sleep(0.01)
    manager.request_stop()
    result = await run
    assert result.status is RunStatus.STOPPED
    assert result.nodes["stuck"].reason == "run stopped"


# ------------------------------------------------------------------ finding 12: handled


async def test_branch_failure_handled_by_on_error_continue_is_marked_handled() -> None:
    # Was: the run "succeeded" while errors listed the branch's node with handled: false.
    graph = parallel_graph([[("ok", "t.nap", {"tag": "fine"})], [("bad", "t.boom")]],
                           on_error="continue")
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED
    assert [(e["node"], e["handled"]) for e in result.errors] == [("bad", True)]
    assert result.to_json()["nodes"]["bad"]["handled"] is True


async def test_branch_failure_under_ignore_is_marked_handled() -> None:
    graph = parallel_graph([[("ok", "t.nap", {"tag": "fine"})], [("bad", "t.boom")]],
                           on_error="ignore")
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED
    assert all(e["handled"] for e in result.errors)


async def test_fail_fast_branch_failure_stays_unhandled() -> None:
    graph = parallel_graph([[("bad", "t.boom")]])
    result, _ = await run_graph(graph, REG)
    assert {e["node"]: e["handled"] for e in result.errors} == {"bad": False, "p": False}


async def test_loop_continue_on_error_marks_nested_failures_handled() -> None:
    # The failing node sits in a parallel node inside the loop's body: every level the
    # loop's continue_on_error absorbed is handled.
    graph = graph_of(
        [("items", "t.value", {"value": [1]}),
         ("loop", "control.for_each", {}, {"body": ["bad", "p"], "continue_on_error": True}),
         ("p", "control.parallel", {}, {"parallel_branches": [["bad"]]}),
         ("bad", "t.boom")],
        ["items.out -> loop.items", "loop.item -> p.value", "p.value -> bad.x"])
    result, _ = await run_graph(graph, REG)
    assert result.status is RunStatus.SUCCEEDED, result.errors
    assert {e["node"]: e["handled"] for e in result.errors} == {"p": True, "bad": True}


# ------------------------------------------------------------------ finding 12: state


async def test_a_body_node_record_describes_its_last_run_only() -> None:
    # Was: state "done" together with the error (or skip reason) of an earlier item.
    graph = graph_of(
        [("items", "t.value", {"value": [1, 2]}),
         ("loop", "control.for_each", {}, {"body": ["odd", "after"],
                                           "continue_on_error": True}),
         ("odd", "t.odd_fails"), ("after", "t.value")],
        ["items.out -> loop.items", "loop.item -> odd.x", "odd.out -> after.value"])
    # Without a bus subscriber `odd` takes the flow's fast path; with one, the general path.
    for result in (await ExecutionManager(graph, REG).run(), (await run_graph(graph, REG))[0]):
        for node_id in ("odd", "after"):
            rec = result.nodes[node_id]
            assert rec.state is NodeState.DONE
            assert (rec.error, rec.traceback, rec.reason, rec.handled) == \
                (None, None, None, False), node_id
            assert result.to_json()["nodes"][node_id]["error"] is None
        assert result.outputs["loop"]["errors"][0]["error"] == "ValueError: odd item 1"


async def test_a_failed_body_node_keeps_no_outputs_from_an_earlier_item() -> None:
    graph = graph_of(
        [("items", "t.value", {"value": [2, 3]}),
         ("loop", "control.for_each", {}, {"body": ["odd"], "continue_on_error": True}),
         ("odd", "t.odd_fails")],
        ["items.out -> loop.items", "loop.item -> odd.x"])
    result, _ = await run_graph(graph, REG)
    rec = result.nodes["odd"]
    assert rec.state is NodeState.FAILED and rec.outputs is None
    assert states(result)["loop"] == "done"


# ------------------------------------------------------------------ finding 12: traceback


async def test_retried_node_traceback_shows_user_code_not_tenacity() -> None:
    attempts.clear()
    graph = graph_of([("f", "t.flaky", {}, {"max_retries": 2,
                                            "rate_limit": {"key": "k", "per_second": 1000}})])
    result, _ = await run_graph(graph, REG)
    assert len(attempts) == 2
    trace = result.nodes["f"].traceback or ""
    assert 'raise RuntimeError("still broken")' in trace
    assert "tenacity" not in trace and "aiolimiter" not in trace, trace


# ------------------------------------------------------------------ finding 12: summary


async def test_terminal_summary_says_why_nodes_were_cancelled_and_what_was_handled() -> None:
    graph = parallel_graph([[("quick", "t.nap", {"tag": "q"})],
                            [("stuck", "t.sleeper", {"tag": "s"})], [("bad", "t.boom")]],
                           timeout=0.1, on_error="continue")
    result, _ = await run_graph(graph, REG)
    out, err = io.StringIO(), io.StringIO()
    print_summary(result, graph, out, err)
    assert out.getvalue().startswith("succeeded")
    lines = err.getvalue().splitlines()
    assert "node stuck cancelled: timeout of 0.1 s" in lines
    assert "node bad failed (handled): ValueError: branch broke" in lines
    assert "cancelled by the stop" not in err.getvalue(), "nobody asked to stop"
