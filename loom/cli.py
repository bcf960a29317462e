"""The ``loom`` command: ``loom [FILE]`` (editor), ``loom run``, ``loom validate``, ``loom nodes``.

Exit codes: 0 succeeded, 1 the graph failed (or ran past its timeout), 2 invalid file or usage, 130
stopped by Ctrl+C, 143 stopped by SIGTERM, 141 the reader of stdout went away.
Only the editor imports Qt, and only when it is asked for.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import IO, Any, ClassVar

from loom.graph import Graph, LoomFileError, load_graph
from loom.registry import Registry

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STOPPED = 0, 1, 2, 130
#: stopped by SIGTERM (128 + 15, the shell's convention for a signal)
EXIT_TERMINATED = 143
#: stdout's reader went away (128 + SIGPIPE, as if the pipe had killed the process)
EXIT_PIPE = 141
COMMANDS = ("run", "validate", "nodes")


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit code 2."""


# --------------------------------------------------------------------------- parsing


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loom", description="Build and run node graphs. `loom [FILE.loom]` opens the "
                                 "editor; the commands below work without a display.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    nodes_help = "also load node packs from this folder (repeatable)"

    run = sub.add_parser("run", help="run a graph headless")
    run.add_argument("file", help="the .loom file to run")
    run.add_argument("--nodes", action="append", default=[], metavar="DIR", help=nodes_help)
    run.add_argument("--set", action="append", default=[], metavar="NODE.PROP=VALUE",
                     dest="overrides", help="set a node property for this run (VALUE is JSON "
                                            "if it parses, else text; NODE is an id or name)")
    run.add_argument("--json", action="store_true", help="print the result as one JSON object")
    run.add_argument("--events", action="store_true",
                     help="stream engine events as JSON lines on stdout")
    run.add_argument("--trace", metavar="OUT.json", help="write a Chrome trace (Perfetto)")
    run.add_argument("--max-concurrency", type=int, metavar="N",
                     help="override the graph's max_concurrency")
    run.add_argument("--max-waves", type=int, metavar="N",
                     help="event graphs: end after N waves in all")
    run.add_argument("--duration", type=float, metavar="S",
                     help="event graphs: end after S seconds")
    run.add_argument("--timeout", type=float, metavar="S",
                     help="any graph: stop the run after S seconds (as Ctrl+C would, clean-up "
                          "included); it then fails, exit code 1 (default: the graph's "
                          "settings.timeout)")
    run.add_argument("--grace", type=float, default=2.0, metavar="S",
                     help="on Ctrl+C, let work under way finish for S seconds (default 2)")
    run.add_argument("--executor", choices=["local", "dask"],
                     help="where sync nodes run: 'dask' sends every plain function node to a "
                          "Dask cluster, 'local' keeps even executor='dask' nodes here "
                          "(default: each node where its pack says)")
    run.add_argument("--scheduler", metavar="ADDR",
                     help="the Dask scheduler, e.g. tcp://10.0.0.5:8786 (implies --executor "
                          "dask); without it, a LocalCluster on 127.0.0.1 runs for the run")

    validate = sub.add_parser("validate", help="check a graph without running it")
    validate.add_argument("file")
    validate.add_argument("--nodes", action="append", default=[], metavar="DIR",
                          help=nodes_help)
    validate.add_argument("--json", action="store_true", help="print issues as JSON")

    nodes = sub.add_parser("nodes", help="list the installed node types by category")
    nodes.add_argument("--nodes", action="append", default=[], metavar="DIR", help=nodes_help)
    nodes.add_argument("--json", action="store_true", help="print the registry as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``loom`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if not args or (args[0] not in COMMANDS and args[0] not in ("-h", "--help")):
            return _open_editor(args)
        ns = _parser().parse_args(args)
        if ns.command is None:
            _parser().print_help()
            return EXIT_USAGE
        handler = {"run": cmd_run, "validate": cmd_validate, "nodes": cmd_nodes}[ns.command]
        return handler(ns)
    except (UsageError, LoomFileError) as exc:
        print(f"loom: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # `loom nodes | head`, `loom run --json | head -c 10`: the reader has what it
        # wanted. Exit quietly with the code a process killed by SIGPIPE has.
        _silence_stdout()
        return EXIT_PIPE


def _editor_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loom", usage="loom [FILE.loom] [--nodes DIR]... | loom COMMAND ...",
        description="Open the editor (commands: " + ", ".join(COMMANDS) + ").")
    parser.add_argument("file", nargs="?", metavar="FILE.loom", help="graph to open")
    parser.add_argument("--nodes", action="append", default=[], metavar="DIR",
                        help="also load node packs from this folder (repeatable; watched "
                             "and reloaded on change)")
    return parser


def _open_editor(args: list[str]) -> int:
    """``loom [FILE.loom] [--nodes DIR]``: the editor, the only part that imports Qt."""
    known, unknown = _editor_parser().parse_known_args(args)
    if unknown:
        first = unknown[0]
        if known.file is not None and not os.path.exists(known.file):
            first = known.file  # `loom frobnicate x`: a mistyped command, not a file
        if not first.startswith("-"):
            raise UsageError(f"unknown command {first!r} (commands: {', '.join(COMMANDS)}; "
                             "or `loom FILE.loom` to open a graph in the editor)")
        raise UsageError(f"unknown option {first!r} for the editor (`loom FILE.loom "
                         "[--nodes DIR]`; commands: " + ", ".join(COMMANDS) + ")")
    path: str | None = known.file
    if path is not None and not os.path.exists(path):
        raise UsageError(f"{path}: no such file")
    for folder in known.nodes:
        if not os.path.isdir(folder):
            raise UsageError(f"--nodes {folder}: not a folder")
    if not _display_available():
        print("loom: no display to open the editor on; run graphs headless with "
              "`loom run FILE.loom`", file=sys.stderr)
        return EXIT_USAGE
    try:
        from loom.ui.app import main as editor_main
    except ImportError as exc:
        print(f"loom: the editor cannot start ({exc}); run graphs headless with "
              "`loom run FILE.loom`", file=sys.stderr)
        return EXIT_USAGE
    return editor_main(path, known.nodes)


def _display_available() -> bool:
    # Decided before Qt is imported: without a display Qt would abort the process.
    if os.environ.get("QT_QPA_PLATFORM", "").split(":")[0] in ("offscreen", "minimal", "vnc"):
        return True
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


# --------------------------------------------------------------------------- helpers


def _registry(folders: list[str]) -> Registry:
    registry = Registry.standard(folders)
    for problem in registry.problems:
        print(f"loom: warning: node pack {problem}", file=sys.stderr)
    return registry


def _load(path: str, registry: Registry) -> Graph:
    return load_graph(path, migrations=registry.migrations)


def _find_node(graph: Graph, ref: str) -> str:
    if ref in graph.nodes:
        return ref
    named = [n.id for n in graph if n.name == ref]
    if len(named) == 1:
        return named[0]
    if named:
        raise UsageError(f"--set: several nodes are named {ref!r}; use an id ({', '.join(named)})")
    raise UsageError(f"--set: no node with id or name {ref!r}")


def apply_overrides(graph: Graph, overrides: Sequence[str]) -> None:
    """Apply ``NODE.PROP=VALUE`` settings to node properties."""
    for item in overrides:
        target, sep, raw = item.partition("=")
        node_ref, dot, prop = target.rpartition(".")
        if not sep or not dot or not node_ref or not prop:
            raise UsageError(f"--set {item!r}: expected NODE.PROP=VALUE")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        graph.nodes[_find_node(graph, node_ref)].properties[prop] = value


def _print_issues(issues: Sequence[Any], out: IO[str]) -> None:
    for issue in issues:
        print(f"{issue.severity}: {issue}", file=out)


# --------------------------------------------------------------------------- commands


def cmd_validate(ns: argparse.Namespace) -> int:
    """``loom validate FILE``: load and check; never runs node code or arms a source."""
    from loom.engine import validate

    registry = _registry(ns.nodes)
    graph = _load(ns.file, registry)
    issues = validate(graph, registry)
    errors = [i for i in issues if i.severity == "error"]
    if ns.json:
        print(json.dumps({"valid": not errors, "issues": [i.to_json() for i in issues]},
                         indent=2))
    else:
        _print_issues(issues, sys.stdout)
        if not errors:
            print(f"{ns.file}: valid ({len(graph)} nodes, {len(graph.connections)} connections)")
    return EXIT_USAGE if errors else EXIT_OK


def cmd_nodes(ns: argparse.Namespace) -> int:
    """``loom nodes``: the registry by category."""
    registry = _registry(ns.nodes)
    if ns.json:
        doc = {spec.type_id: {
            "name": spec.name, "category": spec.category, "description": spec.description,
            "inputs": {p.name: p.type for p in spec.inputs},
            "outputs": {p.name: p.type for p in spec.outputs},
            "mode": spec.mode, "executor": spec.executor, "origin": registry.origin(spec.type_id),
        } for spec in registry}
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    for category, specs in registry.by_category().items():
        print(f"{category}:")
        for spec in specs:
            ins = ", ".join(p.name if p.required else f"{p.name}?" for p in spec.inputs)
            outs = ", ".join(p.name for p in spec.outputs)
            doc = spec.description.splitlines()[0] if spec.description else ""
            print(f"  {spec.type_id:<22} ({ins}) -> ({outs})  {doc}")
    if registry.predicates:
        print("Predicates (a conditional node's metadata.condition_func):")
        for name, func in sorted(registry.predicates.items()):
            doc = (func.__doc__ or "").strip().splitlines()
            print(f"  {name:<22} {doc[0] if doc else ''}")
    return EXIT_OK


def cmd_run(ns: argparse.Namespace) -> int:
    """``loom run FILE``: run headless; Ctrl+C (exit 130) or SIGTERM (143) stops gracefully."""
    from loom.engine import (
        EventBus,
        ExecutionManager,
        ExecutorUnavailableError,
        GraphValidationError,
    )
    from loom.engine.states import RunStatus

    registry = _registry(ns.nodes)
    graph = _load(ns.file, registry)
    apply_overrides(graph, ns.overrides)
    for option, value, low in (("--max-concurrency", ns.max_concurrency, 1),
                               ("--max-waves", ns.max_waves, 1), ("--duration", ns.duration, 0),
                               ("--grace", ns.grace, 0)):
        if value is not None and value < low:
            raise UsageError(f"{option} must be at least {low}")
    if ns.timeout is not None and not (0 < ns.timeout < float("inf")):
        raise UsageError("--timeout must be a number of seconds above 0")
    if ns.scheduler is not None and ns.executor == "local":
        raise UsageError("--scheduler is the Dask scheduler's address: use it with "
                         "--executor dask, not local")
    executor = "dask" if ns.scheduler is not None else ns.executor
    bus = EventBus()
    manager = ExecutionManager(graph, registry, bus=bus, max_concurrency=ns.max_concurrency,
                               max_waves=ns.max_waves, duration=ns.duration, stop_grace=ns.grace,
                               executor=executor, scheduler=ns.scheduler, timeout=ns.timeout)
    signals = _Signals(manager)
    try:
        result = asyncio.run(_run(manager, graph, ns, signals))
    except GraphValidationError as exc:
        print(f"loom: {ns.file}: the graph cannot run:", file=sys.stderr)
        _print_issues([i for i in exc.issues if i.severity == "error"], sys.stderr)
        return EXIT_USAGE
    except ExecutorUnavailableError as exc:
        print(f"loom: {ns.file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if ns.json:
        from loom.engine.values import dumps

        print(dumps(result.to_json()), flush=True)
    elif not ns.events:
        from loom.console import print_summary

        print_summary(result, graph, sys.stdout, sys.stderr)
    return {RunStatus.SUCCEEDED: EXIT_OK, RunStatus.STOPPED: signals.exit_code}.get(
        result.status, EXIT_FAILED)


async def _run(manager: Any, graph: Graph, ns: argparse.Namespace, signals: _Signals) -> Any:
    from loom.engine.trace import ChromeTrace

    bus = manager.bus
    trace = None
    if ns.trace:
        # Streamed as the run goes (a long event run must not hold its trace in memory).
        try:
            trace = ChromeTrace.to_file(ns.trace, {n.id: n.label for n in graph}).attach(bus)
        except OSError as exc:
            raise UsageError(f"--trace {ns.trace}: cannot write: {exc.strerror or exc}") from None
    bus.subscribe(_announce_sources, types=["event_source_ready"])
    if ns.events:
        bus.subscribe(_print_events)
    display = None
    if sys.stderr.isatty() and not ns.json and not ns.events:
        from rich.console import Console

        from loom.console import ProgressDisplay

        display = ProgressDisplay(graph, Console(stderr=True)).attach(bus)
    try:
        with signals, display or contextlib.nullcontext():
            result = await manager.run()
    finally:
        if trace is not None:
            trace.close()
    return result


def _announce_sources(batch: list[dict[str, Any]]) -> None:
    """Tell the person at the terminal where an HTTP trigger listens (and its token), and
    when a schedule fires first (a cron typo shows at once, not at the wrong hour)."""
    for event in batch:
        if event.get("event_type") == "schedule":
            print(f"loom: {event['node']} scheduled {event.get('cron')!r} in "
                  f"{event.get('timezone')}, first at {event.get('next') or 'never'}",
                  file=sys.stderr, flush=True)
        if "url" in event:
            token = f" (header 'Authorization: Bearer {event['token']}')" if event.get("token") \
                else ""
            print(f"loom: {event['node']} listening on {event.get('method', '')} "
                  f"{event['url']}{token}", file=sys.stderr, flush=True)


def _print_events(batch: list[dict[str, Any]]) -> None:
    from loom.engine.values import dumps

    try:
        sys.stdout.write("".join(dumps(e) + "\n" for e in batch))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`loom run --events | head`): keep running, print nothing.
        _silence_stdout()


def _silence_stdout() -> None:
    """Point stdout at /dev/null once its reader has gone, so that nothing (not even
    the flush at interpreter exit) writes to the closed pipe again (Python docs,
    "Note on SIGPIPE")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


class _Signals:
    """SIGINT and SIGTERM stop the run: the first gracefully, a second one at once.

    SIGTERM (systemd, Docker, CI) stops like the first Ctrl+C, so nodes' ``finally``
    blocks run and the result is printed. The first signal decides the exit code.
    """

    _NAMES: ClassVar[dict[signal.Signals, str]] = {signal.SIGINT: "Ctrl+C",
                                                   signal.SIGTERM: "SIGTERM"}

    def __init__(self, manager: Any) -> None:
        self.manager = manager
        #: the first stop signal received, if any
        self.first: signal.Signals | None = None
        self._installed: list[signal.Signals] = []

    @property
    def exit_code(self) -> int:
        """130 after SIGINT (and for a stop without a signal), 143 after SIGTERM."""
        return EXIT_TERMINATED if self.first is signal.SIGTERM else EXIT_STOPPED

    def _on_signal(self, signum: signal.Signals) -> None:
        if self.first is None:
            self.first = signum
            print(f"\nloom: stopping ({self._NAMES[signum]} again to stop at once)…",
                  file=sys.stderr, flush=True)
            self.manager.request_stop()
        else:
            print("\nloom: stopping at once…", file=sys.stderr, flush=True)
            self.manager.request_stop(grace=0)

    def __enter__(self) -> _Signals:
        loop = asyncio.get_running_loop()
        for signum in self._NAMES:
            try:
                loop.add_signal_handler(signum, self._on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not the main thread, or no such signal on this platform
            self._installed.append(signum)
        return self

    def __exit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for signum in self._installed:
            loop.remove_signal_handler(signum)


if __name__ == "__main__":
    sys.exit(main())
