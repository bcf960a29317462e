"""The editor names a loop's frame by its loop type, DESIGN's ``infinite`` included."""

from __future__ import annotations

import pytest

from loom.ui.canvas.frames import FrameNode, frame_specs


@pytest.mark.parametrize(("loop_type", "kind"), [
    ("for_each", "for each"), ("while", "while"), ("infinite", "while")])
def test_loop_frames_say_what_kind_of_loop(loop_type: str, kind: str) -> None:
    owner = FrameNode("w", "Poll", "loop", {"loop_type": loop_type, "body": ["a"]})
    (spec,) = frame_specs([owner], {"w", "a"}, lambda _node_id: ())
    assert (spec.label, spec.members) == (f"Poll · {kind} body", ("a",))
