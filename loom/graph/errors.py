"""The one exception the file format raises."""

from __future__ import annotations


class LoomFileError(Exception):
    """A ``.loom`` file could not be read, parsed or written.

    The message names the file, the JSON path inside it (``$.nodes[2].id``) and
    what was expected, so a person can fix the file by hand.
    """

    def __init__(self, file: str, json_path: str, problem: str) -> None:
        self.file = file
        self.json_path = json_path
        self.problem = problem
        super().__init__(f"{file}: {json_path}: {problem}" if json_path else f"{file}: {problem}")
