"""The wheel ships the built-in node packs as package data, loaded by path."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_carries_builtin_nodes_and_finds_them(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=120)
    [wheel] = tmp_path.glob("loom-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    packs = {Path(n).name for n in names if n.startswith("loom/builtin_nodes/")}
    assert {"control.py", "math.py", "text.py"} <= packs
    assert not any(n.startswith("nodes/") for n in names), "no top-level `nodes` package"
    assert any(n.endswith("entry_points.txt") for n in names)

    code = ("from loom.registry import Registry, builtin_pack_dir; "
            "r = Registry.standard(entry_points=False); "
            "print(builtin_pack_dir()); assert 'control.if' in r and not r.problems")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=60, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str((tmp_path / "site" / "loom" / "builtin_nodes").resolve())
