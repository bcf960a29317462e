"""Saving .loom files: canonical text, .bak, atomicity, symlinks, permissions (save_graph)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from loom.graph import (
    Graph,
    GraphSettings,
    LoomFileError,
    Node,
    dumps_graph,
    fileformat,
    load_graph,
    loads_graph,
    save_graph,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file semantics")


def make_graph(value: str = "one") -> Graph:
    graph = Graph(name="saved", settings=GraphSettings(max_concurrency=3))
    graph.add_node(Node("n1", "values.text", name="Text", position=(10.0, 20.0),
                        properties={"value": value, "ünï": "ç☃"}))
    graph.add_node(Node("n2", "text.print"))
    graph.connect("n1", "out", "n2", "value")
    return graph


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def assert_no_temp_files(folder: Path) -> None:
    leftovers = [name for name in listing(folder) if name.endswith(".tmp")
                 or (name.startswith(".") and ".loom" in name)]
    assert leftovers == []


# --------------------------------------------------------------------------- the happy path


def test_save_writes_canonical_text(tmp_path: Path) -> None:
    graph = make_graph()
    path = tmp_path / "g.loom"
    save_graph(graph, path)
    assert path.read_bytes() == dumps_graph(graph).encode("utf-8")
    assert "ç☃".encode() in path.read_bytes()
    assert load_graph(path) == graph


def test_save_accepts_str_path(tmp_path: Path) -> None:
    path = tmp_path / "g.loom"
    save_graph(make_graph(), str(path))
    assert load_graph(str(path)) == make_graph()


def test_first_save_makes_no_backup(tmp_path: Path) -> None:
    save_graph(make_graph(), tmp_path / "g.loom")
    assert listing(tmp_path) == ["g.loom"]


def test_second_save_keeps_previous_content_as_bak(tmp_path: Path) -> None:
    path = tmp_path / "g.loom"
    save_graph(make_graph("one"), path)
    first = path.read_bytes()
    save_graph(make_graph("two"), path)
    bak = tmp_path / "g.loom.bak"
    assert bak.read_bytes() == first
    assert path.read_bytes() == dumps_graph(make_graph("two")).encode()
    save_graph(make_graph("three"), path)
    assert bak.read_bytes() == dumps_graph(make_graph("two")).encode()
    assert listing(tmp_path) == ["g.loom", "g.loom.bak"]


def test_backup_of_hand_written_file_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "g.loom"
    original = b'{"format":"loom","version":1}'
    path.write_bytes(original)
    save_graph(load_graph(path), path)
    assert (tmp_path / "g.loom.bak").read_bytes() == original


def test_backup_false_keeps_no_bak(tmp_path: Path) -> None:
    path = tmp_path / "g.loom"
    save_graph(make_graph("one"), path, backup=False)
    save_graph(make_graph("two"), path, backup=False)
    assert listing(tmp_path) == ["g.loom"]
    assert load_graph(path) == make_graph("two")


def test_no_temp_files_left_after_many_saves(tmp_path: Path) -> None:
    path = tmp_path / "g.loom"
    for i in range(5):
        save_graph(make_graph(str(i)), path)
    assert listing(tmp_path) == ["g.loom", "g.loom.bak"]
    assert_no_temp_files(tmp_path)


def test_other_files_in_folder_untouched(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi", encoding="utf-8")
    save_graph(make_graph(), tmp_path / "g.loom")
    save_graph(make_graph(), tmp_path / "g.loom")
    assert listing(tmp_path) == ["g.loom", "g.loom.bak", "notes.txt"]
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "hi"


# --------------------------------------------------------------------------- atomicity


def _fail(*_args: Any, **_kwargs: Any) -> Any:
    raise OSError(28, "No space left on device")


def test_replace_failure_is_loom_error_and_original_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "g.loom"
    save_graph(make_graph("one"), path)
    before = path.read_bytes()
    monkeypatch.setattr(fileformat.os, "replace", _fail)
    with pytest.raises(LoomFileError) as info:
        save_graph(make_graph("two"), path)
    monkeypatch.undo()
    assert info.value.file == str(path)
    assert str(path) in str(info.value)
    assert "cannot save" in str(info.value)
    assert "No space left on device" in str(info.value)
    assert path.read_bytes() == before
    assert listing(tmp_path) == ["g.loom"]
    assert_no_temp_files(tmp_path)


def test_final_rename_failure_keeps_original(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the backup rename succeed and fail only the rename over the target."""
    path = tmp_path / "g.loom"
    save_graph(make_graph("one"), path)
    save_graph(make_graph("two"), path)
    before = path.read_bytes()
    real_replace = os.replace

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if Path(dst) == path:
            _fail()
        real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(fileformat.os, "replace", replace)
    with pytest.raises(LoomFileError):
        save_graph(make_graph("three"), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_graph(path) == make_graph("two")
    assert listing(tmp_path) == ["g.loom", "g.loom.bak"]
    assert_no_temp_files(tmp_path)


def test_fsync_failure_is_loom_error_and_leaves_nothing(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "g.loom"
    save_graph(make_graph("one"), path)
    before = path.read_bytes()
    monkeypatch.setattr(fileformat.os, "fsync", lambda _fd: _fail())
    with pytest.raises(LoomFileError, match="cannot save"):
        save_graph(make_graph("two"), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert listing(tmp_path) == ["g.loom"]


def test_failed_first_save_creates_no_file(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fileformat.os, "replace", _fail)
    with pytest.raises(LoomFileError):
        save_graph(make_graph(), tmp_path / "g.loom")
    monkeypatch.undo()
    assert listing(tmp_path) == []


@posix_only
def test_target_is_replaced_by_rename_not_rewritten(tmp_path: Path) -> None:
    """The old file's inode is never written into: the new text arrives by rename only."""
    path = tmp_path / "g.loom"
    save_graph(make_graph("one"), path)
    before = path.read_bytes()
    old_inode = path.stat().st_ino
    with path.open("rb") as old:
        save_graph(make_graph("two"), path)
        assert old.read() == before
    assert path.stat().st_ino != old_inode
    assert load_graph(path) == make_graph("two")


# --------------------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [({1, 2}, "type set"), (object(), "type object"), (float("nan"), "NaN"),
     (float("inf"), "Infinity"), ({"k": {3: 4}}, "object key 3 is not a string")],
    ids=["set", "object", "nan", "inf", "int-key"],
)
def test_non_json_value_fails_before_touching_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: Any, fragment: str
) -> None:
    path = tmp_path / "g.loom"
    save_graph(make_graph("one"), path)
    before = path.read_bytes()
    graph = make_graph("two")
    graph.node("n2").properties["bad"] = bad

    def no_disk(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("disk touched before the graph was checked")

    monkeypatch.setattr(fileformat, "_create_temp", no_disk)
    with pytest.raises(LoomFileError) as info:
        save_graph(graph, path)
    monkeypatch.undo()
    assert info.value.file == str(path)
    assert info.value.json_path.startswith("$.nodes[1].properties.bad")
    assert "$.nodes[1].properties.bad" in str(info.value)
    assert fragment in str(info.value)
    assert path.read_bytes() == before
    assert listing(tmp_path) == ["g.loom"]


def test_non_json_value_on_first_save_creates_nothing(tmp_path: Path) -> None:
    graph = make_graph()
    graph.ui["selection"] = {"n1"}
    with pytest.raises(LoomFileError, match=r"\$\.ui\.selection"):
        save_graph(graph, tmp_path / "g.loom")
    assert listing(tmp_path) == []


def test_huge_int_property_is_loom_error(tmp_path: Path) -> None:
    graph = make_graph()
    graph.node("n1").properties["big"] = 10**5000
    with pytest.raises(LoomFileError) as info:
        save_graph(graph, tmp_path / "g.loom")
    assert info.value.json_path == "$.nodes[0].properties.big"


def test_lone_surrogate_is_refused_on_load_and_on_save(tmp_path: Path) -> None:
    # Text that cannot be written back as UTF-8 is refused where it enters, with its path.
    path = tmp_path / "g.loom"
    path.write_bytes(b'{"format": "loom", "version": 1, "nodes": [{"id": "a", "type": "t", '
                     b'"properties": {"s": "\\ud800"}}]}')
    with pytest.raises(LoomFileError) as info:
        load_graph(path)
    assert info.value.json_path == "$.nodes[0].properties.s"
    graph = make_graph()
    graph.node("n1").properties["s"] = "\ud800"
    with pytest.raises(LoomFileError) as info:
        save_graph(graph, tmp_path / "h.loom")
    assert info.value.json_path == "$.nodes[0].properties.s"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda g: setattr(g, "settings", GraphSettings(max_concurrency=0)),
        lambda g: setattr(g.node("n1"), "type_version", 0),
        lambda g: g.node("n1").metadata.update(execution_mode=""),
    ],
    ids=["max_concurrency-0", "type_version-0", "execution_mode-empty"],
)
def test_save_refuses_what_load_would_refuse(tmp_path: Path, mutate: Any) -> None:
    # Save checks its document with the loader, so it never writes a file Loom cannot open.
    graph = make_graph()
    mutate(graph)
    path = tmp_path / "g.loom"
    with pytest.raises(LoomFileError) as info:
        save_graph(graph, path)
    assert info.value.json_path.startswith(("$.graph.settings", "$.nodes[0]"))
    assert not path.exists()


# --------------------------------------------------------------------------- file system


@posix_only
def test_save_through_symlink_keeps_link_and_updates_target(tmp_path: Path) -> None:
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / "graph.loom"
    save_graph(make_graph("one"), target)
    first = target.read_bytes()
    link_dir = tmp_path / "links"
    link_dir.mkdir()
    link = link_dir / "link.loom"
    link.symlink_to(target)

    save_graph(make_graph("two"), link)

    assert link.is_symlink()
    assert os.readlink(link) == str(target)
    assert load_graph(target) == make_graph("two")
    assert load_graph(link) == make_graph("two")
    assert (real_dir / "graph.loom.bak").read_bytes() == first
    assert listing(link_dir) == ["link.loom"]
    assert listing(real_dir) == ["graph.loom", "graph.loom.bak"]


@posix_only
def test_save_through_relative_symlink(tmp_path: Path) -> None:
    target = tmp_path / "graph.loom"
    save_graph(make_graph("one"), target)
    link = tmp_path / "alias.loom"
    link.symlink_to("graph.loom")
    save_graph(make_graph("two"), link)
    assert link.is_symlink()
    assert os.readlink(link) == "graph.loom"
    assert load_graph(target) == make_graph("two")


@posix_only
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o644, 0o664, 0o755])
def test_permission_bits_are_preserved(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "g.loom"
    save_graph(make_graph("one"), path)
    path.chmod(mode)
    save_graph(make_graph("two"), path)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert load_graph(path) == make_graph("two")


@posix_only
def test_new_file_gets_default_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    path = tmp_path / "new.loom"
    save_graph(make_graph(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_save_into_missing_folder(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir" / "g.loom"
    with pytest.raises(LoomFileError) as info:
        save_graph(make_graph(), path)
    assert info.value.file == str(path)
    assert "cannot save" in str(info.value)
    assert not (tmp_path / "no").exists()


def test_save_where_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(LoomFileError, match="cannot save"):
        save_graph(make_graph(), tmp_path / "file" / "g.loom")


def test_save_over_a_directory_fails_cleanly(tmp_path: Path) -> None:
    folder = tmp_path / "g.loom"
    folder.mkdir()
    (folder / "keep").write_text("x", encoding="utf-8")
    with pytest.raises(LoomFileError, match="cannot save"):
        save_graph(make_graph(), folder)
    assert listing(folder) == ["keep"]
    assert listing(tmp_path) == ["g.loom"]


@posix_only
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root ignores directory permissions")
def test_save_into_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "g.loom"
    save_graph(make_graph("one"), path)
    before = path.read_bytes()
    folder.chmod(0o555)
    try:
        with pytest.raises(LoomFileError, match="cannot save"):
            save_graph(make_graph("two"), path)
        assert path.read_bytes() == before
        assert listing(folder) == ["g.loom"]
    finally:
        folder.chmod(0o755)


def test_unwritable_folder_is_loom_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulates a read-only folder (the real one is skipped when running as root)."""
    path = tmp_path / "g.loom"
    save_graph(make_graph("one"), path)
    before = path.read_bytes()

    def denied(*_a: Any, **_k: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(fileformat, "_create_temp", denied)
    with pytest.raises(LoomFileError, match="cannot save: Permission denied"):
        save_graph(make_graph("two"), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert listing(tmp_path) == ["g.loom"]


def test_bak_in_the_way_never_leaves_half_a_file(tmp_path: Path) -> None:
    path = tmp_path / "g.loom"
    save_graph(make_graph("one"), path)
    (tmp_path / "g.loom.bak").mkdir()  # a backup cannot be written
    try:
        save_graph(make_graph("two"), path)
    except LoomFileError as exc:
        assert str(path) in str(exc)
        assert load_graph(path) == make_graph("one")
    else:
        assert load_graph(path) == make_graph("two")
    assert listing(tmp_path) == ["g.loom", "g.loom.bak"]
    assert_no_temp_files(tmp_path)


def test_saved_file_loads_with_loads_graph_bytes(tmp_path: Path) -> None:
    path = tmp_path / "g.loom"
    graph = make_graph()
    save_graph(graph, path)
    assert loads_graph(path.read_bytes(), str(path)) == graph
    assert path.read_bytes().endswith(b"}\n")
    assert not path.read_bytes().startswith(b"\xef\xbb\xbf")  # no BOM


# ------------------------------------------------------------- crashed saves (issue 9, 16)

_CRASHING_SAVE = """
import os, signal, sys
from loom.graph import Graph, Node, fileformat, save_graph
graph = Graph(name="crash")
graph.add_node(Node("n1", "values.text", properties={"value": "x" * 100_000}))
def die(_fd):  # killed after the temp file is written, before the rename
    os.kill(os.getpid(), signal.SIGKILL)
fileformat.os.fsync = die
save_graph(graph, sys.argv[1])
"""


def _temp_files(folder: Path) -> list[str]:
    return [name for name in listing(folder) if name.endswith(".tmp")]


@posix_only
def test_temp_file_of_a_killed_save_is_removed_on_next_save_and_open(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "g.loom"
    save_graph(make_graph("one"), path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for _ in range(3):
        child = subprocess.run([sys.executable, "-c", _CRASHING_SAVE, str(path)], env=env,
                               timeout=60, check=False)
        assert child.returncode == -9
    left = _temp_files(tmp_path)
    # Each killed save leaves its temporary file; the next save removes it.
    assert len(left) == 1, left
    assert left[0].startswith(".g.loom.")
    assert load_graph(path) == make_graph("one"), "the target is untouched"
    assert _temp_files(tmp_path) == [], "opening the file removes the leftovers"

    subprocess.run([sys.executable, "-c", _CRASHING_SAVE, str(path)], env=env, timeout=60,
                   check=False)
    assert len(_temp_files(tmp_path)) == 1
    save_graph(make_graph("two"), path)
    assert listing(tmp_path) == ["g.loom", "g.loom.bak"], "saving removes them too"


@posix_only
def test_temp_files_of_live_writers_are_kept(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "g.loom"
    save_graph(make_graph("one"), path)
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".g.loom.{writer.pid}.0123abcd.tmp"
        mine = tmp_path / f".g.loom.{os.getpid()}.0123abcd.tmp"
        live_bak = tmp_path / f".g.loom.bak.{writer.pid}.4567cdef.tmp"
        for file in (live, mine, live_bak):
            file.write_text("a save in progress")
        save_graph(make_graph("two"), path)
        load_graph(path)
        assert live.exists() and mine.exists() and live_bak.exists()
    finally:
        writer.kill()
        writer.wait()
    save_graph(make_graph("three"), path)
    assert not live.exists() and not live_bak.exists(), "its writer has ended"
    assert mine.exists(), "this process is alive"
    mine.unlink()


def test_stale_temp_files_of_other_files_and_other_names_are_left_alone(tmp_path: Path) -> None:
    dead = _dead_pid()
    others = [f".other.loom.{dead}.0123abcd.tmp", f".g.loom.{dead}.notahex.tmp",
              f".g.loomx.{dead}.0123abcd.tmp", "g.loom.tmp", f".g.loom.{dead}.0123abcd.tmp.keep"]
    for name in others:
        (tmp_path / name).write_text("not ours")
    stale = [f".g.loom.{dead}.0123abcd.tmp", f".g.loom.bak.{dead}.89abcdef.tmp"]
    for name in stale:
        (tmp_path / name).write_text("left by a crash")
    save_graph(make_graph(), tmp_path / "g.loom")
    assert listing(tmp_path) == sorted(["g.loom", *others])


def test_legacy_temp_files_without_pid_are_removed_only_when_old(tmp_path: Path) -> None:
    from loom.graph import tempfiles

    old, new = tmp_path / ".g.loom.0123abcd.tmp", tmp_path / ".g.loom.89abcdef.tmp"
    old.write_text("old crash")
    new.write_text("maybe an old version saving now")
    past = old.stat().st_mtime - tempfiles.LEGACY_AGE - 60
    os.utime(old, (past, past))
    save_graph(make_graph(), tmp_path / "g.loom")
    assert not old.exists()
    assert new.exists()


def test_new_temp_names_carry_the_pid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real = fileformat._create_temp

    def spy(beside: Path) -> tuple[int, str]:
        fd, name = real(beside)
        seen.append(Path(name).name)
        return fd, name

    monkeypatch.setattr(fileformat, "_create_temp", spy)
    save_graph(make_graph("one"), tmp_path / "g.loom")
    save_graph(make_graph("two"), tmp_path / "g.loom")
    assert seen[0].startswith(f".g.loom.{os.getpid()}.") and seen[0].endswith(".tmp")
    assert any(name.startswith(f".g.loom.bak.{os.getpid()}.") for name in seen)


def _dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True, timeout=60)
    return int(child.stdout)


# --------------------------------------------------------------------------- read-only target (16)


@posix_only
def test_read_only_target_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "g.loom"
    save_graph(make_graph("one"), path)
    before = path.read_bytes()
    path.chmod(0o444)
    try:
        with pytest.raises(LoomFileError) as info:
            save_graph(make_graph("two"), path)
        assert info.value.file == str(path)
        assert str(path) in str(info.value)
        assert "read-only" in str(info.value)
        assert path.read_bytes() == before
        assert stat.S_IMODE(path.stat().st_mode) == 0o444
        assert listing(tmp_path) == ["g.loom"], "no backup, no temporary file"
    finally:
        path.chmod(0o644)


@posix_only
def test_read_only_target_through_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "real.loom"
    save_graph(make_graph("one"), target)
    target.chmod(0o444)
    link = tmp_path / "link.loom"
    link.symlink_to(target)
    try:
        with pytest.raises(LoomFileError, match="read-only") as info:
            save_graph(make_graph("two"), link)
        assert info.value.file == str(link)
        assert load_graph(target) == make_graph("one")
    finally:
        target.chmod(0o644)
