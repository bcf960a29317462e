"""Closing the editor while a node blocks a worker thread (issue 9 finding 5).

The editor runs as a real process (``loom.ui.app.main``, offscreen): the run starts
with F5 and the window is closed through a real close event, as a user would.
The process must end without waiting for the abandoned thread, and cleanly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from loom.graph import Graph, Node, save_graph

ROOT = Path(__file__).resolve().parents[2]

DRIVER = textwrap.dedent("""
    import sys
    from pathlib import Path

    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from loom.ui import app
    from loom.ui.main_window import MainWindow

    graph, pack, marker = sys.argv[1:4]

    def window():
        return next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow))

    def press_run():
        win = window()
        win.activateWindow()
        QTest.keyClick(win, Qt.Key.Key_F5)
        print("running" if win.runner.running else "F5 did not start a run", flush=True)
        QTimer.singleShot(50, close_when_started)

    def close_when_started():
        if not Path(marker).exists():
            QTimer.singleShot(50, close_when_started)
            return
        print("closing", flush=True)
        window().close()  # a real QCloseEvent, as the title bar's close button sends

    qapp = QApplication(["loom"])  # app.main uses it; the timer needs it first
    QTimer.singleShot(500, press_run)
    sys.exit(app.main(graph, [pack]))
""")


@pytest.mark.parametrize("node_type", ["blockpack.sleepy", "blockpack.endless"])
def test_closing_during_a_blocked_thread_node_exits_without_waiting(
        tmp_path: Path, node_type: str) -> None:
    pack = tmp_path / "pack"
    pack.mkdir()
    marker = tmp_path / "started"
    (pack / "blockpack.py").write_text(textwrap.dedent(f"""
        import time
        from pathlib import Path
        from loom import node

        @node
        def sleepy(seconds: float = 60.0) -> str:
            Path({str(marker)!r}).touch()
            time.sleep(seconds)
            return "woke"

        @node
        def endless():
            Path({str(marker)!r}).touch()
            while True:
                time.sleep(0.05)
                yield 1
    """))
    graph = Graph(name="blocked")
    graph.add_node(Node("n", node_type))
    path = tmp_path / "blocked.loom"
    save_graph(graph, path)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LOOM_DATA_DIR": str(tmp_path / "d"),
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(path), str(pack), str(marker)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "running\n"
        assert proc.stdout.readline() == "closing\n"
        closed = time.monotonic()
        _, err = proc.communicate(timeout=40)
        elapsed = time.monotonic() - closed
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    # A bound on "exits at all", far below the node's 60 s (or never): not a speed claim.
    assert elapsed < 20, f"the editor took {elapsed:.1f} s to exit after closing"
