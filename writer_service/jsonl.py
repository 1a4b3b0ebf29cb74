"""Following an append-only JSON Lines file: the one incremental reader of the writer's ledger and of the
LLM tap's record.

Each `read` returns only the complete lines appended since the last one (by any process), so a poll costs
O(new lines), not O(file size). A line still being written (no newline yet) is left for the next read:
writers append whole lines, and a reader must never parse half of one.

It lives in the writer's package because the writer follows its own ledger while serving and must not
depend on the drill tool; the tool reads the same files with the same reader.
"""

from __future__ import annotations

from pathlib import Path


class AppendedLines:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def read(self) -> bytes:
        """The complete lines appended since the last read (b"" while the file does not exist)."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                fresh = handle.read()
        except FileNotFoundError:
            return b""
        complete = fresh[: fresh.rfind(b"\n") + 1]
        self._offset += len(complete)
        return complete
