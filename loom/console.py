"""What ``loom run`` shows on a terminal: a live progress display, then a summary.

The display is a bus subscriber like any other. It draws on stderr with rich
only when stderr is a terminal; piped runs get no progress, only the summary.
"""

from __future__ import annotations

from typing import IO

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from loom.engine import Event, EventBus, RunResult
from loom.engine.states import NodeState, RunStatus
from loom.engine.values import short_repr
from loom.graph import Graph

_FINAL_EVENTS = ("node_finished", "node_failed", "node_skipped", "node_stopped")
_STATUS_STYLE = {RunStatus.SUCCEEDED: "green", RunStatus.FAILED: "red",
                 RunStatus.STOPPED: "yellow"}


class _OutputConsole(Console):
    """A console that lets a closed pipe be the caller's business.

    rich's default answer to BrokenPipeError is ``SystemExit(1)``; ``loom`` exits
    141 (as if killed by SIGPIPE) for every command, so the error goes up to it.
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError("the reader of this output went away")


class ProgressDisplay:
    """A rich progress bar of finished nodes, with failures printed as they happen."""

    def __init__(self, graph: Graph, console: Console) -> None:
        self.graph = graph
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[running]}", style="cyan"), TimeElapsedColumn(),
            console=console, transient=True)
        # An event graph runs its nodes once per wave: count waves, not nodes.
        self.events = any(n.metadata.get("execution_mode") == "event" or
                          n.type.startswith("event.") for n in graph)
        self.task = self.progress.add_task(graph.name or "run",
                                           total=None if self.events else len(graph),
                                           running="")
        self._running: dict[str, None] = {}
        self._waves = 0

    def __enter__(self) -> ProgressDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def attach(self, bus: EventBus) -> ProgressDisplay:
        """Subscribe to a run's bus; returns self."""
        bus.subscribe(self.handle)
        return self

    def handle(self, batch: list[Event]) -> None:
        """Bus subscriber: advance the bar and report failures."""
        done = 0
        for event in batch:
            kind = event["type"]
            if kind == "node_started":
                self._running[event["node"]] = None
            elif kind in _FINAL_EVENTS:
                done += 1
                self._running.pop(event.get("node", ""), None)
                if kind == "node_failed":
                    self.console.print(f"[red]✗ {escape(self._label(event['node']))}:[/] "
                                       f"{escape(str(event['error']))}")
            elif kind == "log":
                self.console.print(f"[dim]{escape(self._label(event['node']))}:[/] "
                                   f"{escape(str(event['message']))}")
            elif kind == "event_triggered":
                self._waves += 1
        running = escape(", ".join(self._label(n) for n in list(self._running)[:3]))
        if self.events:
            self.progress.update(self.task, completed=self._waves,
                                 running=f"{self._waves} wave(s) {running}")
        else:
            self.progress.update(self.task, advance=done, running=running)

    def _label(self, node_id: str) -> str:
        node = self.graph.nodes.get(node_id)
        return node.label if node else node_id


def print_summary(result: RunResult, graph: Graph, out: IO[str], err: IO[str]) -> None:
    """Status line and the outputs of the graph's last nodes on ``out``; errors on ``err``.

    Everything that comes from the graph or its values is escaped: a value holding
    ``[red]`` or ``[/]`` is printed as it is, never taken as rich markup.
    """
    console = _OutputConsole(file=out, highlight=False, soft_wrap=True)
    counts: dict[str, int] = {}
    for rec in result.nodes.values():
        counts[rec.state.value] = counts.get(rec.state.value, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in counts.items())
    style = _STATUS_STYLE.get(result.status, "")
    why = f": {escape(result.reason)}" if result.reason else ""
    console.print(f"[{style}]{result.status.value}[/]{why} in {result.duration_ms:.1f} ms "
                  f"({summary})")
    feeding = {c.src_node for c in graph.connections}
    for node_id, rec in result.nodes.items():
        if rec.stats and "waves" in rec.stats:
            s = rec.stats
            console.print(f"  {escape(graph.nodes[node_id].label)}: {s['waves']} wave(s), "
                          f"{s['completed']} completed, {s['failed']} failed, "
                          f"{s['dropped']} dropped"
                          + (f", {s['coalesced']} coalesced" if s.get("coalesced") else ""))
    for node_id, outputs in result.outputs.items():
        owner = result.inside.get(node_id)
        if node_id in feeding or (owner and not (result.nodes[owner].stats or {}).get("waves")):
            continue  # not a last node, or inside a loop or branch (its owner reports)
        last = " (last wave)" if owner else ""
        for port, value in outputs.items():
            console.print(f"  {escape(graph.nodes[node_id].label)}.{escape(str(port))}{last} = "
                          f"{escape(short_repr(value))}")
    errors = _OutputConsole(file=err, highlight=False, soft_wrap=True)
    for node_id, rec in result.nodes.items():
        label = graph.nodes[node_id].label
        if rec.state is NodeState.FAILED:
            # A failure its own or its owner's on_error dealt with did not fail the run.
            handled = " (handled)" if rec.handled else ""
            errors.print(f"[red]node {escape(label)} failed{handled}:[/] "
                         f"{escape(str(rec.error))}")
            if rec.traceback:
                errors.print(rec.traceback.rstrip(), markup=False)
        elif rec.state is NodeState.STOPPED and rec.reason and rec.reason not in (
                "run stopped", result.reason):
            # Cancelled by its owner (a timeout, a failed sibling), not by a stop request.
            errors.print(f"[yellow]node {escape(label)} {escape(rec.reason)}[/]")
    by_stop = [node_id for node_id in result.cancelled
               if result.nodes[node_id].reason in (None, "run stopped", result.reason)]
    if by_stop:
        errors.print(f"[yellow]cancelled by the stop:[/] {escape(', '.join(by_stop))}")
    for node_id in result.abandoned:
        errors.print(f"[yellow]node {escape(node_id)} was still running in a worker thread "
                     "when the run ended[/]")
