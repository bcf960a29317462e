"""How fast the editor opens and frames a big graph, next to NodeGraphQt's own loader.

Graph: a chain of ``math.add`` nodes (2 inputs, 1 output, one property each), one wire
between neighbours, laid out 50 to a row. For each size it measures, in one process:

- ``Canvas.load(graph)`` onto a fresh canvas, and again onto a canvas already showing
  the graph (the second includes clearing the first);
- ``Canvas.fit_view()`` and ``Canvas.to_graph()``;
- the first full paint of the fitted view (``widget.grab()``);
- NodeGraphQt's ``deserialize_session`` of the same graph (same ports, one custom
  property, same wires) into a fresh ``NodeGraph``: the stock path the canvas replaces.
  Also NodeGraphQt's ``fit_to_selection`` for the ``--stock-fit-sizes`` (slow: it
  builds an item group of every node).

Targets (recorded in bench/RESULTS.md): load of 1,000 nodes <= 0.6 s, of 5,000 <= 4 s,
fit_view of 1,000 <= 50 ms. Medians and minima over ``--repeat`` runs.

Usage: python bench/editor_open.py [--repeat N] [--sizes 1000,5000]
                                   [--stock-sizes 1000,5000] [--stock-fit-sizes 1000] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")

from PySide6 import __version__ as pyside_version
from PySide6.QtWidgets import QApplication

APP = QApplication.instance() or QApplication(["loom-bench"])

from loom.graph import Graph, Node  # noqa: E402
from loom.registry import Registry  # noqa: E402
from loom.ui.canvas import Canvas  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import NodeGraphQt
    from NodeGraphQt import BaseNode, NodeGraph

REGISTRY = Registry.standard(entry_points=False)
PER_ROW = 50


def chain(n: int) -> Graph:
    """n math.add nodes, each fed by the previous one."""
    graph = Graph(name=f"chain {n}")
    for i in range(n):
        graph.add_node(Node(f"n{i}", "math.add", name=f"Add {i}",
                            position=(220.0 * (i % PER_ROW), 140.0 * (i // PER_ROW)),
                            properties={"b": 1.0}))
        if i:
            graph.connect(f"n{i - 1}", "out", f"n{i}", "a")
    return graph


class StockAdd(BaseNode):  # type: ignore[misc]
    """The same node for NodeGraphQt's stock path."""

    __identifier__ = "bench"
    NODE_NAME = "Add"

    def __init__(self) -> None:
        super().__init__()
        self.add_input("a")
        self.add_input("b")
        self.add_output("out")
        self.create_property("b_value", 1.0)


def stock_session(n: int) -> dict[str, Any]:
    """The chain as a NodeGraphQt session dict (what serialize_session would give)."""
    nodes = {f"0x{i:x}": {"type_": "bench.StockAdd", "name": f"Add {i}",
                          "pos": [220.0 * (i % PER_ROW), 140.0 * (i // PER_ROW)],
                          "custom": {"b_value": 1.0}} for i in range(n)}
    connections = [{"out": [f"0x{i - 1:x}", "out"], "in": [f"0x{i:x}", "a"]}
                   for i in range(1, n)]
    return {"graph": {}, "nodes": nodes, "connections": connections}


def timed(func: Callable[[], Any]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def stats(values: list[float], scale: float = 1.0, unit: str = "s") -> str:
    digits = 1 if unit == "ms" else 3
    return (f"{statistics.median(values) * scale:.{digits}f} / "
            f"{min(values) * scale:.{digits}f} {unit}")


def new_canvas() -> Canvas:
    canvas = Canvas(REGISTRY)
    canvas.widget.resize(1280, 800)
    return canvas


def drop(canvas: Canvas) -> None:
    canvas.widget.deleteLater()
    canvas.deleteLater()
    APP.processEvents()
    gc.collect()


def measure_canvas(n: int, repeat: int) -> dict[str, list[float]]:
    graph = chain(n)
    out: dict[str, list[float]] = {k: [] for k in
                                   ("load", "reload", "fit", "to_graph", "paint")}
    for _ in range(repeat):
        gc.collect()
        canvas = new_canvas()
        out["load"].append(timed(lambda c=canvas: c.load(graph)))
        APP.processEvents()
        out["fit"].append(timed(canvas.fit_view))
        out["paint"].append(timed(lambda c=canvas: c.widget.grab()))
        out["to_graph"].append(timed(canvas.to_graph))
        gc.collect()
        out["reload"].append(timed(lambda c=canvas: c.load(graph)))
        drop(canvas)
    return out


def measure_stock(n: int, repeat: int, fit: bool) -> dict[str, list[float]]:
    session = stock_session(n)
    out: dict[str, list[float]] = {"deserialize_session": [], "fit_to_selection": []}
    for _ in range(repeat):
        gc.collect()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            graph = NodeGraph()
            graph.register_nodes([StockAdd])
            graph.viewer().resize(1280, 800)
            out["deserialize_session"].append(
                timed(lambda g=graph: g.deserialize_session(session)))
            if fit:
                out["fit_to_selection"].append(timed(graph.fit_to_selection))
        graph.viewer().deleteLater()
        graph.deleteLater()
        APP.processEvents()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="1000,5000")
    parser.add_argument("--stock-sizes", default="1000,5000",
                        help="sizes to also open with NodeGraphQt's deserialize_session")
    parser.add_argument("--stock-fit-sizes", default="1000",
                        help="sizes to also fit with NodeGraphQt's fit_to_selection (slow)")
    parser.add_argument("--quick", action="store_true", help="1,000 nodes, 3 repeats")
    args = parser.parse_args(argv)
    sizes = [1000] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    stock_sizes = [int(s) for s in args.stock_sizes.split(",") if s]
    stock_fit_sizes = [int(s) for s in args.stock_fit_sizes.split(",") if s]
    repeat = 3 if args.quick else args.repeat
    print(f"# editor_open · CPython {platform.python_version()} · PySide6 {pyside_version} · "
          f"NodeGraphQt {NodeGraphQt.__version__} · {platform.machine()} · "
          f"{os.cpu_count()} cpus · repeat {repeat} · median / min")
    print("| nodes | load | load again | fit_view | first paint | to_graph | "
          "NodeGraphQt deserialize_session | NodeGraphQt fit_to_selection |")
    print("|---|---|---|---|---|---|---|---|")
    for n in sizes:
        ours = measure_canvas(n, repeat)
        stock: dict[str, list[float]] = {}
        if n in stock_sizes:
            stock = measure_stock(n, max(1, min(repeat, 3)), n in stock_fit_sizes)
        deser = stats(stock["deserialize_session"]) if stock.get("deserialize_session") else "-"
        sfit = stats(stock["fit_to_selection"]) if stock.get("fit_to_selection") else "-"
        print(f"| {n:,} | {stats(ours['load'])} | {stats(ours['reload'])} | "
              f"{stats(ours['fit'], 1000, 'ms')} | {stats(ours['paint'])} | "
              f"{stats(ours['to_graph'])} | {deser} | {sfit} |")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
