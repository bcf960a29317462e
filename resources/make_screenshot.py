"""Take README's screenshot: the editor half-way through running an example graph.

    .venv/bin/python resources/make_screenshot.py [OUT.png] [EXAMPLE.loom]

Runs offscreen (no display needed): opens the example, starts the run, and grabs the
window once a node is running while others are done, so the picture shows live state.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Autosave and recent files of this throwaway window must not touch the user's own.
os.environ.setdefault("LOOM_DATA_DIR", tempfile.mkdtemp(prefix="loom-shot-"))

from PySide6.QtWidgets import QApplication

from loom.registry import Registry
from loom.ui import qasync_support
from loom.ui.app import apply_theme, create_window

HERE = Path(__file__).resolve().parent


async def shoot(out: Path, example: Path) -> None:
    window = create_window(Registry.standard(entry_points=False))
    window.resize(1400, 860)
    window.show()
    window.open_path(str(example), ask=False)
    window.canvas.fit_view()
    ids = window.canvas.node_ids()
    window.canvas.select(ids[1:2])  # the inspector shows the second node's settings
    window.actions_by_name["run"].trigger()
    canvas = window.canvas
    for _ in range(500):  # up to 5 s
        states = {canvas.state(node_id) for node_id in canvas.node_ids()}
        if "running" in states and "done" in states:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # let a paint happen with the new states
    window.grab().save(str(out))
    while window.runner.running:
        await asyncio.sleep(0.02)
    await window.shutdown()
    window.watcher.stop()
    window.document.canvas.undo_stack.setClean()
    window.close()


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "screenshot.png"
    example = Path(sys.argv[2]) if len(sys.argv) > 2 else HERE / "examples" / "parallel.loom"
    app = QApplication.instance() or QApplication(["loom"])
    assert isinstance(app, QApplication)
    apply_theme(app)
    loop = qasync_support.new_loop(app)
    asyncio.set_event_loop(loop)
    with loop:
        loop.run_until_complete(shoot(out, example))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
