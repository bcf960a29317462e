"""Process workers die with `loom run`, however it dies (issue 9, finding 4).

`loom run` runs a graph whose ``executor="process"`` node never ends (it spins,
and it started a child of its own); the test then kills `loom run` and checks
that nothing it started - the worker, the worker's child, the forkserver and the
resource tracker - is alive 2 s after its death.

Each run is its own session (``start_new_session``), so everything it started is
found by session id in /proc, wherever it was reparented; whatever is still there
when a check fails is killed by pid, so no test leaves a process behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loom.graph import Graph, Node, save_graph

ROOT = Path(__file__).resolve().parent.parent
PROC = Path("/proc")

pytestmark = pytest.mark.skipif(not PROC.is_dir() or sys.platform != "linux",
                                reason="finds processes through Linux's /proc")

#: The finding: every process of the run is gone this long after the parent's death.
DEADLINE = 2.0

SPIN_PACK = '''
    import itertools
    import os
    import subprocess
    from pathlib import Path

    from loom import node

    @node(executor="process")
    def spin(marker: str = "", native: bool = False) -> int:
        """Start a child, say so, then burn CPU for ever."""
        child = subprocess.Popen(["sleep", "600"])
        Path(marker + ".tmp").write_text(f"{os.getpid()} {child.pid}")
        os.replace(marker + ".tmp", marker)
        if native:  # a C loop that never releases the GIL: no other thread runs
            return sum(itertools.repeat(1))
        n = 0
        while True:
            n += 1
'''


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, session id) of a live process; None if it is gone or a zombie."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    state, ppid, sid = fields[0], int(fields[1]), int(fields[3])
    return None if state in ("Z", "X") else (state, ppid, sid)


def _cmdline(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _in_session(sid: int) -> set[int]:
    """Live processes of session ``sid`` (everything a `loom run` started there)."""
    found = set()
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            info = _stat(int(entry.name))
            if info is not None and info[2] == sid:
                found.add(int(entry.name))
    return found


def _kill(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(params=[False, True], ids=["python-loop", "native-loop"])
def spin_graph(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Path, Path, Path]:
    pack = tmp_path / "spinpack"
    pack.mkdir()
    (pack / "spinpack.py").write_text(textwrap.dedent(SPIN_PACK))
    marker = tmp_path / "worker.pid"
    graph = Graph(name="spinning process node")
    graph.add_node(Node("s", "spinpack.spin", properties={"marker": str(marker),
                                                           "native": request.param}))
    path = tmp_path / "spin.loom"
    save_graph(graph, path)
    return path, pack, marker


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The `loom run` processes a test starts; afterwards their sessions are emptied."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()
        # First the leftovers: they may hold the write end of proc's pipes.
        _kill(_in_session(proc.pid))
        proc.communicate(timeout=10)  # closes proc's pipes


def _start_spinning(spin_graph: tuple[Path, Path, Path],
                    started: list[subprocess.Popen[bytes]]) -> tuple[subprocess.Popen[bytes],
                                                                     dict[str, int]]:
    """`loom run` of the spinning graph, once the worker spins: (process, role -> pid)."""
    path, pack, marker = spin_graph
    proc = subprocess.Popen([sys.executable, "-m", "loom", "run", str(path), "--nodes", str(pack)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
                            start_new_session=True)
    started.append(proc)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, f"loom run ended early (exit code {proc.returncode})"
        assert time.monotonic() < deadline, "the process node never started"
        time.sleep(0.02)
    worker, child = (int(x) for x in marker.read_text().split())
    roles = {"worker": worker, "worker's child": child}
    # The worker was forked from the forkserver: same command line, so it is left out.
    for pid in _in_session(proc.pid) - {proc.pid, worker, child}:
        command = _cmdline(pid)
        if "forkserver" in command:
            roles["forkserver"] = pid
        elif "resource_tracker" in command:
            roles["resource tracker"] = pid
    assert set(roles) == {"worker", "worker's child", "forkserver", "resource tracker"}, (
        roles, {pid: _cmdline(pid) for pid in _in_session(proc.pid)})
    return proc, roles


def _left_after_death(proc: subprocess.Popen[bytes], roles: dict[str, int]) -> dict[str, int]:
    """What of ``proc``'s session is still alive ``DEADLINE`` s after ``proc`` died
    (waiting for it first): role -> pid, other processes by command line."""
    proc.wait(timeout=60)
    deadline = time.monotonic() + DEADLINE
    while True:
        left = {role: pid for role, pid in roles.items() if _stat(pid) is not None}
        others = _in_session(proc.pid) - set(left.values())
        left.update({_cmdline(pid) or str(pid): pid for pid in others})
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.02)


def test_sigkill_of_loom_run_ends_worker_forkserver_and_tracker(
        spin_graph: tuple[Path, Path, Path], started: list[subprocess.Popen[bytes]]) -> None:
    proc, roles = _start_spinning(spin_graph, started)
    proc.send_signal(signal.SIGKILL)
    left = _left_after_death(proc, roles)
    assert left == {}, f"alive {DEADLINE} s after loom run was killed: {left}"


def test_sigterm_of_loom_run_ends_worker_forkserver_and_tracker(
        spin_graph: tuple[Path, Path, Path], started: list[subprocess.Popen[bytes]]) -> None:
    proc, roles = _start_spinning(spin_graph, started)
    proc.send_signal(signal.SIGTERM)
    left = _left_after_death(proc, roles)
    assert left == {}, f"alive {DEADLINE} s after loom run ended on SIGTERM: {left}"


def test_loom_run_still_reports_the_spinning_node_when_stopped_by_ctrl_c(
        spin_graph: tuple[Path, Path, Path], started: list[subprocess.Popen[bytes]]) -> None:
    # The workers lead their own process groups, so a terminal's Ctrl+C reaches only
    # `loom run`; its stop must still end the worker and report the node.
    path, pack, marker = spin_graph
    proc = subprocess.Popen([sys.executable, "-m", "loom", "run", str(path), "--nodes", str(pack),
                             "--json", "--grace", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            start_new_session=True)
    started.append(proc)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    worker, child = (int(x) for x in marker.read_text().split())
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: the whole foreground group
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert json.loads(out)["status"] == "stopped"
    left = _left_after_death(proc, {"worker": worker, "worker's child": child})
    assert left == {}
