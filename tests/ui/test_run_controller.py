"""RunController: live canvas states and badges, coalescing, failures, stop, shutdown."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from helpers import graph_of, registry_of

from loom import node
from loom.engine import ExecutionManager, Issue, RunResult, RunStatus
from loom.ui.run_controller import RunController, format_duration


@node(id="t.nap")
async def nap(x: Any = None, seconds: float = 0.15) -> Any:
    await asyncio.sleep(seconds)
    return x


@node(id="t.boom", cheap=True)
def boom(x: Any = None) -> Any:
    raise ValueError("boom goes the node")


@node(id="t.inc", cheap=True)
def inc(a: float = 0.0) -> float:
    return a + 1


@node(id="t.chatty", cheap=True)
def chatty(n: int = 20_000, ctx: Any = None) -> int:
    for k in range(n):
        ctx.log(f"line {k}")
    return n


flaky_calls = 0


@node(id="t.flaky")
async def flaky(x: Any = None) -> Any:
    global flaky_calls
    flaky_calls += 1
    if flaky_calls < 3:
        raise RuntimeError(f"flaky attempt {flaky_calls}")
    return "ok"


@node(id="t.polite", executor="thread")
def polite(x: Any = None, ctx: Any = None) -> Any:
    # A thread node that ends when asked to stop (threads cannot be killed).
    while not ctx.stop_requested:
        time.sleep(0.01)
    return x


REG = registry_of(nap, boom, inc, chatty, flaky, polite, builtins=True)


class FakeSink:
    """The Canvas live-state API, recording every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def set_state(self, node_id: str, state: str | None, badge: str | None = None) -> None:
        self.calls.append(("state", node_id, state, badge))

    def set_port_taken(self, node_id: str, port: str) -> None:
        self.calls.append(("port", node_id, port))

    def clear_states(self) -> None:
        self.calls.append(("clear",))

    def states(self, node_id: str) -> list[str]:
        return [c[2] for c in self.calls if c[0] == "state" and c[1] == node_id]

    def badges(self, node_id: str) -> list[str | None]:
        return [c[3] for c in self.calls if c[0] == "state" and c[1] == node_id]

    def last(self, node_id: str) -> tuple[str | None, str | None]:
        found = [c for c in self.calls if c[0] == "state" and c[1] == node_id]
        return (found[-1][2], found[-1][3]) if found else (None, None)


class Watch:
    """What a controller emitted."""

    def __init__(self, controller: RunController) -> None:
        self.statuses: list[str] = []
        self.started: list[str] = []
        self.results: list[RunResult] = []
        self.invalid: list[list[Issue]] = []
        self.frames: list[list[dict[str, Any]]] = []
        controller.status_changed.connect(self.statuses.append)
        controller.started.connect(self.started.append)
        controller.finished.connect(self.results.append)
        controller.invalid.connect(self.invalid.append)
        controller.events.connect(self.frames.append)


def run_to_end(qtbot: Any, controller: RunController, graph: Any, timeout: int = 10_000,
               **options: Any) -> RunResult:
    assert controller.start(graph, **options)
    qtbot.waitUntil(lambda: not controller.running, timeout=timeout)
    assert controller.result is not None
    return controller.result


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink()


@pytest.fixture
def controller(qloop: Any, sink: FakeSink) -> RunController:
    return RunController(REG, sink)


def test_states_go_queued_running_done_with_badges(controller: RunController, sink: FakeSink,
                                                   qtbot: Any) -> None:
    watch = Watch(controller)
    graph = graph_of([
        ("a", "t.nap"), ("b", "t.nap"),  # one slot: b waits queued while a runs
        ("items", "values.list", {"value": [1, 2, 3]}),
        ("loop", "control.for_each", {}, {"body": ["body"]}),
        ("body", "t.nap", {"seconds": 0.02}),
        ("cond", "control.if", {"value": 1, "condition": False}),
        ("yes", "t.inc"), ("no", "t.inc"),
    ], ["items.out -> loop.items", "loop.item -> body.x", "cond.true -> yes.a",
        "cond.false -> no.a"])
    result = run_to_end(qtbot, controller, graph)
    assert result.status is RunStatus.SUCCEEDED
    assert sink.calls[0] == ("clear",)
    states_b = sink.states("b")
    assert states_b.index("queued") < states_b.index("running") < states_b.index("done")
    assert sink.states("a")[-1] == "done"
    assert sink.last("a")[1] is not None and sink.last("a")[1].endswith("ms")
    assert sink.last("yes") == ("skipped", None)
    assert ("port", "cond", "false") in sink.calls
    state, badge = sink.last("loop")
    assert state == "done" and badge is not None and badge.startswith("×3 · ")
    assert watch.statuses == ["running", "succeeded"]
    assert watch.started == [result.run_id] and watch.results == [result]
    assert controller.status == "succeeded" and not controller.running
    assert controller.records["a"].outputs == {"out": None}
    # Every node the run touched got its final state on the canvas.
    for node_id, record in result.nodes.items():
        assert sink.states(node_id)[-1] == record.state.value, node_id


def test_a_failing_node_turns_red_and_the_controller_runs_again(
        controller: RunController, sink: FakeSink, qtbot: Any) -> None:
    watch = Watch(controller)
    failing = graph_of([("v", "values.number", {"value": 1.0}), ("bad", "t.boom"),
                        ("after", "t.inc")], ["v.out -> bad.x", "bad.out -> after.a"])
    result = run_to_end(qtbot, controller, failing)
    assert result.status is RunStatus.FAILED
    assert sink.last("bad")[0] == "failed"
    assert sink.last("after") == ("skipped", None)
    assert controller.records["bad"].error == "ValueError: boom goes the node"
    assert watch.statuses == ["running", "failed"]
    sink.calls.clear()
    good = graph_of([("v", "values.number", {"value": 1.0}), ("i", "t.inc")], ["v.out -> i.a"])
    result = run_to_end(qtbot, controller, good)
    assert result.status is RunStatus.SUCCEEDED and result.outputs["i"] == {"out": 2.0}
    assert sink.calls[0] == ("clear",) and sink.last("i")[0] == "done"
    assert watch.statuses[-2:] == ["running", "succeeded"]


def test_a_crash_inside_the_engine_is_reported_not_raised(
        controller: RunController, qtbot: Any, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    async def broken(self: ExecutionManager, plan: Any = None) -> RunResult:
        await asyncio.sleep(0.01)
        raise RuntimeError("engine bug")

    watch = Watch(controller)
    graph = graph_of([("i", "t.inc")])
    monkeypatch.setattr(ExecutionManager, "run", broken)
    result = run_to_end(qtbot, controller, graph)
    assert result.status is RunStatus.FAILED
    assert "engine bug" in result.issues[0].message
    assert watch.results == [result] and controller.status == "failed"
    assert "the run crashed" in caplog.text
    monkeypatch.undo()
    assert run_to_end(qtbot, controller, graph).status is RunStatus.SUCCEEDED


def test_an_invalid_graph_emits_its_issues_and_does_not_run(
        controller: RunController, sink: FakeSink, qtbot: Any) -> None:
    watch = Watch(controller)
    graph = graph_of([("x", "no.such_type")])
    assert controller.start(graph), "checked in the background: start() only begins"
    qtbot.waitUntil(lambda: bool(watch.invalid), timeout=5000)
    assert not controller.running and controller.status == "idle"
    assert any(i.node == "x" and i.severity == "error" for i in watch.invalid[0])
    assert sink.calls == [] and watch.results == []


def test_one_run_at_a_time(controller: RunController, qtbot: Any) -> None:
    graph = graph_of([("a", "t.nap", {"seconds": 0.1})])
    assert controller.start(graph)
    assert controller.start(graph) is False
    qtbot.waitUntil(lambda: not controller.running, timeout=5000)


def test_stopping_a_timer_graph_ends_stopped_with_a_wave_count(
        controller: RunController, sink: FakeSink, qtbot: Any) -> None:
    watch = Watch(controller)
    graph = graph_of([("tick", "event.timer", {}, {"event_type": "timer", "interval": 0.05}),
                      ("d", "t.nap", {"seconds": 0.01})], ["tick.event -> d.x"])
    assert controller.start(graph)
    qtbot.waitUntil(lambda: (sink.last("tick")[1] or "").endswith("waves")
                    and int((sink.last("tick")[1] or "0").split()[0]) >= 3, timeout=5000)
    assert sink.last("tick")[0] == "running"
    controller.stop()
    assert controller.status == "stopping"
    qtbot.waitUntil(lambda: not controller.running, timeout=5000)
    assert controller.result is not None and controller.result.status is RunStatus.STOPPED
    assert watch.statuses == ["running", "stopping", "stopped"]
    state, badge = sink.last("tick")
    assert state in ("done", "stopped") and badge is not None and " waves · " in badge


def test_a_second_stop_stops_at_once(controller: RunController, sink: FakeSink,
                                     qtbot: Any) -> None:
    graph = graph_of([("long", "t.nap", {"seconds": 30.0})])
    assert controller.start(graph, stop_grace=20.0)
    qtbot.waitUntil(lambda: sink.last("long")[0] == "running", timeout=5000)
    controller.stop()  # graceful: would let the node run 20 s more
    qtbot.wait(100)
    assert controller.running
    started = time.perf_counter()
    controller.stop()
    qtbot.waitUntil(lambda: not controller.running, timeout=5000)
    assert time.perf_counter() - started < 3.0
    assert sink.last("long")[0] == "stopped"
    assert controller.status == "stopped"


def test_retries_and_parallel_branches_have_badges(controller: RunController, sink: FakeSink,
                                                   qtbot: Any) -> None:
    global flaky_calls
    flaky_calls = 0
    graph = graph_of([
        ("f", "t.flaky", {}, {"max_retries": 3, "retry_wait": 0.1}),
        ("p", "control.parallel", {}, {"parallel_branches": [["b1"], ["b2"], ["b3"]]}),
        ("b1", "t.nap", {"seconds": 0.05}), ("b2", "t.nap", {"seconds": 0.15}),
        ("b3", "t.nap", {"seconds": 0.25}),
    ], ["p.value -> b1.x", "p.value -> b2.x", "p.value -> b3.x"])
    result = run_to_end(qtbot, controller, graph)
    assert result.status is RunStatus.SUCCEEDED
    assert "retry 1" in sink.badges("f")
    assert sink.last("f")[0] == "done" and "2 retries" in (sink.last("f")[1] or "")
    badges = [b for b in sink.badges("p") if b]
    assert any(b.startswith("1/3") for b in badges)
    assert badges[-1].startswith("3/3 · ")


def test_events_are_coalesced_per_frame(controller: RunController, sink: FakeSink,
                                        qtbot: Any) -> None:
    # 20,000 log events from one node, then a 5,000-node chain (15,000 more events).
    nodes: list[tuple[Any, ...]] = [("chatty", "t.chatty", {"n": 20_000})]
    wires = []
    for k in range(5000):
        nodes.append((f"n{k}", "t.inc"))
        if k:
            wires.append(f"n{k - 1}.out -> n{k}.a")
    graph = graph_of(nodes, wires)
    frames: list[tuple[int, int, int]] = []  # (events, distinct nodes, canvas calls)
    seen = [1]  # after clear_states

    def on_frame(events: list[dict[str, Any]]) -> None:
        calls = len(sink.calls) - seen[0]
        seen[0] = len(sink.calls)
        frames.append((len(events), len({e.get("node") for e in events} - {None}), calls))

    controller.events.connect(on_frame)
    result = run_to_end(qtbot, controller, graph, timeout=30_000)
    assert result.status is RunStatus.SUCCEEDED
    qtbot.waitUntil(lambda: controller.backlog == 0, timeout=5000)
    total_events = sum(f[0] for f in frames)
    canvas_calls = len(sink.calls) - 1  # minus clear_states
    assert total_events >= 35_000
    distinct = len(result.nodes)
    # Canvas work per frame is bounded by the nodes touched and by the frame budget,
    # never by the number of events; each node ends up with about one call.
    for events, touched, calls in frames:
        assert calls <= controller.max_updates_per_frame, (events, touched, calls)
    assert controller.max_calls_per_frame <= controller.max_updates_per_frame
    assert canvas_calls <= distinct * controller.frames
    assert canvas_calls <= 2 * distinct
    assert canvas_calls * 3 < total_events
    assert sink.states("chatty")[-1] == "done"
    assert all(sink.last(f"n{k}")[0] == "done" for k in range(5000))


def test_a_frame_never_exceeds_its_budget_of_canvas_calls(qloop: Any, sink: FakeSink,
                                                          qtbot: Any) -> None:
    controller = RunController(REG, sink, max_updates_per_frame=25)
    finished: list[RunResult] = []
    controller.finished.connect(finished.append)
    graph = graph_of([(f"n{k}", "t.inc") for k in range(1000)],
                     [f"n{k - 1}.out -> n{k}.a" for k in range(1, 1000)])
    assert controller.start(graph)
    qtbot.waitUntil(lambda: bool(finished), timeout=10_000)
    # The run is over before the canvas heard of every node: the rest follows,
    # 25 nodes a frame, each shown once with its final look.
    assert controller.backlog > 0
    qtbot.waitUntil(lambda: controller.backlog == 0, timeout=10_000)
    assert controller.max_calls_per_frame <= 25
    assert all(sink.last(f"n{k}")[0] == "done" for k in range(1000))
    assert len(sink.calls) - 1 <= 1000 + 25
    frames = controller.frames
    qtbot.wait(100)
    assert controller.frames == frames  # idle again


def test_shutdown_stops_the_run_and_leaves_no_task(controller: RunController, sink: FakeSink,
                                                   qloop: Any, qtbot: Any) -> None:
    graph = graph_of([("sleepy", "t.nap", {"seconds": 30.0}), ("thread", "t.polite")],
                     max_concurrency=2)
    assert controller.start(graph, stop_grace=10.0)
    qtbot.waitUntil(lambda: sink.last("thread")[0] == "running"
                    and sink.last("sleepy")[0] == "running", timeout=5000)
    started = time.perf_counter()
    ending = asyncio.ensure_future(controller.shutdown())
    qtbot.waitUntil(ending.done, timeout=6000)
    ending.result()
    assert time.perf_counter() - started < 5.0
    assert not controller.running and controller.status == "stopped"
    assert controller.result is not None and controller.result.status is RunStatus.STOPPED
    assert not [t for t in asyncio.all_tasks(qloop) if not t.done()]


def test_shutdown_without_a_run_returns_at_once(controller: RunController, qtbot: Any) -> None:
    ending = asyncio.ensure_future(controller.shutdown())
    qtbot.waitUntil(ending.done, timeout=1000)


@pytest.mark.parametrize(("ms", "text"), [
    (None, ""), (0.01, "<0.1 ms"), (0.42, "0.4 ms"), (12.4, "12 ms"), (1250.0, "1.25 s"),
    (15_000.0, "15.0 s"), (185_000.0, "3 min 05 s"),
])
def test_durations_read_well(ms: float | None, text: str) -> None:
    assert format_duration(ms) == text


def test_base_exceptions_from_nodes_fail_them_and_the_editor_goes_on(
        controller: RunController, qtbot: Any, capfd: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """Issue 9 finding 7 in the editor: SystemExit, KeyboardInterrupt (also from a thread
    node), GeneratorExit and a custom BaseException fail their nodes; no exception
    reaches the Qt event loop (it used to loop on timerEvent KeyErrors) and the
    editor runs again."""
    from pathlib import Path

    from loom.registry import Registry

    registry = Registry.standard(entry_points=False)
    registry.load_file(Path(__file__).resolve().parent.parent / "fault_nodes" / "faults.py")
    faulty = RunController(registry, FakeSink())
    cases = [("exit", "fault.raise_cheap", "SystemExit"),
             ("interrupt", "fault.raise_thread", "KeyboardInterrupt"),
             ("interrupt_async", "fault.raise_async", "KeyboardInterrupt"),
             ("gen_exit", "fault.raise_async", "GeneratorExit"),
             ("custom", "fault.raise_generator", "custom")]
    graph = graph_of([(name, type_id, {"kind": kind}) for name, type_id, kind in cases]
                     + [("ok", "fault.passes", {"value": 1})], max_concurrency=2)
    result = run_to_end(qtbot, faulty, graph)
    assert result.status is RunStatus.FAILED
    for name, _, _ in cases:
        assert (faulty.records[name].error or "").startswith("NodeAborted: "), name
    assert faulty.records["ok"].state.value == "done"
    qtbot.wait(200)  # a broken timer would now fire again and again
    assert "KeyError" not in capfd.readouterr().err
    assert "Traceback" not in caplog.text
    assert run_to_end(qtbot, faulty, graph).status is RunStatus.FAILED, "it runs again"
