"""Property-based tests of validation and the plan compiler (Hypothesis).

The loader's fuzz tests (test_fileformat_fuzz.py) prove that any file becomes a Graph
or one LoomFileError. A Graph the loader accepts may still hold junk in every
metadata setting and property (a loop body listing a list, a NaN timeout, a branch
that is a number). The contract here: :func:`validate`, :func:`compile_plan` and
:func:`ports_of` turn *any* such graph into a list of Issues, each naming its node
(and, for a setting, its ``metadata.<field>``); they never raise.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import graph_of, registry_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loom.engine import validate
from loom.engine.plan import Issue, compile_plan, ports_of
from loom.engine.policies import SETTINGS as POLICY_SETTINGS
from loom.engine.sources import SOURCE_SETTINGS
from loom.engine.strategies import STRATEGIES
from loom.engine.strategies.base import shown
from loom.graph import Graph, Node, save_graph

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

REG = registry_of(builtins=True)
IDS = [f"n{k}" for k in range(6)]
TYPES = ["control.for_each", "control.while", "control.parallel", "control.if",
         "control.switch", "values.number", "math.add", "event.timer", "control.code",
         "not.installed"]
MODES = [None, *STRATEGIES, "nonsense", 3, ["loop"]]

#: every metadata key any mode, policy or event source reads
KEYS = sorted({s.name for strategy in STRATEGIES.values() for s in strategy.settings}
              | {s.name for s in POLICY_SETTINGS}
              | {s.name for group in SOURCE_SETTINGS.values() for s in group})

numbers = st.one_of(
    st.integers(), st.integers(min_value=-5, max_value=5),
    st.floats(allow_nan=True, allow_infinity=True),
    # Huge, but printable: Hypothesis must be able to show a failing example.
    st.sampled_from([math.nan, math.inf, -math.inf, -1, -0.5, 0, 0.0, 10**400]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=8),
                    st.sampled_from(IDS), st.sampled_from(["for_each", "while", "timer",
                                                           "continue", "fail_fast"]))
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.text(max_size=6), st.sampled_from(IDS)),
                                            inner, max_size=4)),
    max_leaves=12,
)
# Near-valid objects too, so the checks get past "is it a dict with a key".
rate_limits = st.fixed_dictionaries({"key": st.one_of(st.just("api"), junk)},
                                    optional={"per_second": st.one_of(numbers, junk)})
metadata = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), junk, max_size=6),
    st.dictionaries(st.sampled_from(KEYS), junk, max_size=3).flatmap(
        lambda m: rate_limits.map(lambda r: {**m, "rate_limit": r})),
    st.dictionaries(st.sampled_from(KEYS), junk, max_size=3).map(
        lambda m: {**m, "body": [], "parallel_branches": []}),
)


@st.composite
def graphs(draw: st.DrawFn) -> Graph:
    graph = Graph(name="fuzz")
    count = draw(st.integers(min_value=1, max_value=len(IDS)))
    for node_id in IDS[:count]:
        meta = dict(draw(metadata))
        mode = draw(st.sampled_from(MODES))
        if mode is not None:
            meta["execution_mode"] = mode
        # Bodies and branches that name real nodes as well as junk, so the compiler
        # gets as far as scopes, wiring and check_plan.
        if draw(st.booleans()):
            meta["body"] = draw(st.lists(st.one_of(st.sampled_from(IDS[:count]), junk),
                                         max_size=4))
        if draw(st.booleans()):
            meta["parallel_branches"] = draw(st.one_of(
                st.lists(st.lists(st.one_of(st.sampled_from(IDS[:count]), junk), max_size=3),
                         max_size=3),
                st.dictionaries(st.text(max_size=4),
                                st.one_of(st.lists(st.sampled_from(IDS[:count]), max_size=3),
                                          junk), max_size=3),
                junk))
        props = draw(st.dictionaries(st.sampled_from(["value", "a", "b", "items", "x"]), junk,
                                     max_size=2))
        graph.add_node(Node(node_id, draw(st.sampled_from(TYPES)), properties=props,
                            metadata=meta))
    ports = st.sampled_from(["out", "value", "item", "index", "results", "a", "b", "items",
                             "true", "false", "case_0", "default", "event", "nope"])
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        src, dst = draw(st.sampled_from(IDS[:count])), draw(st.sampled_from(IDS[:count]))
        graph.connect(src, draw(ports), dst, draw(ports))
    return graph


def assert_issues(issues: Any, graph: Graph) -> None:
    assert isinstance(issues, list)
    labels = {node.label for node in graph.nodes.values()}
    for issue in issues:
        assert isinstance(issue, Issue)
        assert issue.severity in ("error", "warning")
        assert isinstance(issue.message, str) and issue.message
        # Only a cycle spans several nodes; every other issue names its node.
        assert issue.node in labels or (issue.node is None and "cycle" in issue.message)
        str(issue)
        issue.to_json()


@FUZZ
@given(graphs())
def test_validate_and_compile_never_raise(graph: Graph) -> None:
    assert_issues(validate(graph, REG), graph)
    plan = compile_plan(graph, REG)
    assert_issues(plan.issues, graph)
    for node in graph.nodes.values():
        ins, outs = ports_of(node, REG, graph)
        assert all(isinstance(p.name, str) for p in [*ins, *outs])


def errors_of(node_type: str, meta: dict[str, Any], *extra: tuple[str, str]) -> list[str]:
    graph = graph_of([("loop", node_type, {}, meta), *extra])
    return [str(i) for i in validate(graph, REG) if i.severity == "error"]


@pytest.mark.parametrize("item", [["b"], {"id": "b"}, 3, None, 1.5])
def test_loop_body_with_a_non_id_item_is_an_issue(item: Any) -> None:
    # Was: TypeError: unhashable type: 'list' (found 6 times in 62,000 fuzzed files).
    errors = errors_of("control.for_each", {"body": ["b", item]}, ("b", "values.number"))
    assert any(e.startswith("loop: metadata.body") and "node ids must be strings" in e
               for e in errors), errors


def test_loop_body_ending_in_a_non_id_item_is_an_issue() -> None:
    errors = errors_of("control.for_each", {"body": ["b", ["c"]]}, ("b", "values.number"))
    assert any("metadata.body" in e for e in errors), errors


@pytest.mark.parametrize(("key", "value"), [
    ("timeout", math.nan), ("timeout", math.inf), ("timeout", -1), ("timeout", True),
    ("timeout", "5"), ("max_retries", 0), ("max_retries", 2.5), ("max_retries", math.nan),
    ("retry_wait", -math.inf), ("retry_wait", math.nan),
])
def test_policy_numbers_name_the_node_and_field(key: str, value: Any) -> None:
    errors = errors_of("values.number", {key: value})
    assert any(e.startswith(f"loop: metadata.{key} ") for e in errors), errors


@pytest.mark.parametrize("per_second", [10**5000, 10**400, math.inf, math.nan, 5e-324, 0, -1,
                                        True, "5", None],
                         ids=["5001 digits", "401 digits", "inf", "nan", "denormal", "0", "-1",
                              "true", "str", "null"])
def test_rate_limit_numbers_name_the_node_and_field(per_second: Any) -> None:
    # Was: OverflowError (int too large to convert to float) for 10**400.
    errors = errors_of("values.number", {"rate_limit": {"key": "api", "per_second": per_second}})
    assert any(e.startswith('loop: metadata.rate_limit needs "per_second"') for e in errors), \
        errors


@pytest.mark.parametrize(("key", "value"), [
    ("timeout", math.nan), ("global_timeout", math.inf), ("global_timeout", math.nan),
    ("max_concurrency", 0), ("max_concurrency", True), ("timeout", -2),
])
def test_parallel_numbers_name_the_node_and_field(key: str, value: Any) -> None:
    errors = errors_of("control.parallel", {"parallel_branches": [["b"]], key: value},
                       ("b", "values.number"))
    assert any(e.startswith(f"loop: metadata.{key} ") for e in errors), errors


def test_huge_integer_in_a_setting_is_reported_not_raised() -> None:
    # repr() of an int over 4,300 digits raises ValueError: messages must not use it.
    errors = errors_of("control.for_each", {"body": ["b"], "batch_size": "x" * 5,
                                            "max_concurrent": -(10**5000)},
                       ("b", "values.number"))
    assert any("metadata.max_concurrent" in e and "integer of about 5001 digits" in e
               for e in errors), errors


def test_shown_is_safe_and_short() -> None:
    nested: list[Any] = []
    for _ in range(5000):
        nested = [nested]
    assert shown(10**5000).startswith("an integer of")
    assert len(shown("x" * 10_000)) < 100
    assert len(shown(nested)) < 100
    assert shown(math.nan) == "nan"
    assert shown("a") == "'a'"
    assert shown({"k": [1, 2]}) == "{'k': [1, 2]}"


def test_loom_validate_reports_a_junk_body_with_exit_2(tmp_path: Path) -> None:
    # Was: a TypeError traceback and exit 1 from `loom validate` and `loom run`.
    graph = graph_of([("loop", "control.for_each", {}, {"body": ["b", ["c"], {"d": 1}]}),
                      ("b", "values.number")])
    path = tmp_path / "junk.loom"
    save_graph(graph, path)
    for command in ("validate", "run"):
        proc = subprocess.run([sys.executable, "-m", "loom", command, str(path)],
                              capture_output=True, text=True, check=False, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert "loop: metadata.body node ids must be strings, not ['c']" in \
            proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
