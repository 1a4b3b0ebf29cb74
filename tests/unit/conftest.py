"""Unit-test fixtures: drillkit's progress, captured instead of drawn; a process table that cleans up."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from drillkit import progress
from drillkit.procs import ProcessTable, proc_start_ticks


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


@pytest.fixture
def table(tmp_path):
    """A process table whose every spawned process is SIGKILLed after the test (a stopped one obeys
    SIGKILL too), found by the records spawn returned, whatever the test did to the files."""
    t = ProcessTable(tmp_path / "procs")
    spawned = []
    original = t.spawn

    def spawn(*args, **kwargs):
        record = original(*args, **kwargs)
        spawned.append(record)
        return record

    t.spawn = spawn  # type: ignore[method-assign]
    yield t
    for record in spawned:
        if proc_start_ticks(record.pid) == record.start_ticks:
            t.kill_record(record, signal.SIGKILL)
