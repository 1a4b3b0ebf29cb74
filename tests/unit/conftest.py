"""Unit-test fixtures: drillkit's progress, captured instead of drawn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drillkit import progress


class Recorder(progress.Silent):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def message(self, kind: str, text: str) -> None:
        self.lines.append(f"{kind}: {text}")

    def table(self, title, columns, rows) -> None:
        self.lines += [f"table {title}: {' | '.join(str(c) for c in row)}" for row in rows]


@pytest.fixture
def progress_lines() -> Iterator[list[str]]:
    recorder = Recorder()
    previous = progress.install(recorder)
    try:
        yield recorder.lines
    finally:
        progress.install(previous)
