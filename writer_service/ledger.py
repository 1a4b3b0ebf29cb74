"""The execution ledger: two JSON lines per real execution of a step body (a replay writes nothing),
one when the body starts (outcome "started") and one when it ends (ok, error or crash). A start without
an end is an execution that never finished: the process was killed in it. `executions` pairs them.

It is the writer's own evidence, independent of Restate's journal: a drill reads it to prove that no step
that had finished ran again after a crash. It also carries attempt counts across process restarts, which
the fault injection needs ("fail the first N attempts" must not start over when the process does); the
count is of starts, so the execution after a SIGKILL mid-step is attempt 2.

Lines are appended with one `write` on an `O_APPEND` descriptor under an exclusive `flock`, so concurrent
invocations (and several writer processes) never interleave lines.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

from writer_service.jsonl import AppendedLines

Outcome = Literal["ok", "error", "crash"]
STARTED: Literal["started"] = "started"


@dataclass(frozen=True)
class LedgerEntry:
    time: float
    """Epoch seconds the line was written: the start, or the end."""
    invocation_id: str
    step: str
    attempt: int
    pid: int
    outcome: Outcome | Literal["started"]
    duration_ms: float
    """0 on a start line."""
    error: str | None = None


@dataclass(frozen=True)
class Execution:
    """One real execution of a step body: its start line and its end line, if it ended."""

    invocation_id: str
    step: str
    attempt: int
    pid: int
    started: float
    ended: float | None = None
    outcome: Outcome | None = None
    """None: never finished (the process died in it, or it is still running)."""
    duration_ms: float | None = None
    error: str | None = None


def executions(entries: list[LedgerEntry]) -> list[Execution]:
    """Pair start and end lines into executions, in order of start. An end line is matched to the
    earliest open start of the same invocation, step, attempt and process."""
    found: list[Execution] = []
    open_starts: dict[tuple[str, str, int, int], list[int]] = {}
    for e in entries:
        key = (e.invocation_id, e.step, e.attempt, e.pid)
        if e.outcome == STARTED:
            open_starts.setdefault(key, []).append(len(found))
            found.append(Execution(e.invocation_id, e.step, e.attempt, e.pid, started=e.time))
            continue
        waiting = open_starts.get(key)
        if waiting:
            index = waiting.pop(0)
        else:  # an end without its start (a ledger from before start lines): the start is implied
            index = len(found)
            found.append(Execution(e.invocation_id, e.step, e.attempt, e.pid, e.time - e.duration_ms / 1000))
        found[index] = replace(found[index], ended=e.time, outcome=e.outcome, duration_ms=e.duration_ms, error=e.error)
    return sorted(found, key=lambda x: x.started)


class LedgerFollower:
    """Reads a ledger incrementally: each call returns only the entries appended since the last one
    (by any process), so a poll costs O(new lines), not O(ledger size)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines = AppendedLines(path)

    def new_entries(self) -> list[LedgerEntry]:
        return _parse(self._lines.read())


class ExecutionLedger:
    """Appends entries; counts attempts per (invocation, step) from everything on disk.

    The counts are kept in memory and brought up to date by a `LedgerFollower`, so a step costs
    O(new lines), not O(ledger size), and still sees attempts made by other processes.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._follower = LedgerFollower(path)
        self._attempts: Counter[tuple[str, str]] = Counter()

    def append(self, entry: LedgerEntry) -> None:
        line = (json.dumps(asdict(entry), separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # No fsync: a SIGKILLed process loses nothing already written; only a host crash would.
            os.write(fd, line)
        finally:
            os.close(fd)

    def entries(self, invocation_id: str | None = None) -> list[LedgerEntry]:
        return read_ledger(self.path, invocation_id)

    def attempts_so_far(self, invocation_id: str, step: str) -> int:
        """How many executions of this step, for this invocation, started (any process, finished or not)."""
        self._attempts.update((e.invocation_id, e.step) for e in self._follower.new_entries() if e.outcome == STARTED)
        return self._attempts[(invocation_id, step)]

    def start(self, invocation_id: str, step: str, attempt: int) -> LedgerEntry:
        """The start line, written before the body runs: a kill from here on leaves a start without an end."""
        entry = LedgerEntry(time.time(), invocation_id, step, attempt, os.getpid(), STARTED, 0.0)
        self.append(entry)
        return entry

    def record(
        self,
        invocation_id: str,
        step: str,
        attempt: int,
        outcome: Outcome,
        started: float,
        error: str | None = None,
    ) -> LedgerEntry:
        """The end line of an execution that began at `started` (monotonic)."""
        entry = LedgerEntry(
            time=time.time(),
            invocation_id=invocation_id,
            step=step,
            attempt=attempt,
            pid=os.getpid(),
            outcome=outcome,
            duration_ms=round((time.monotonic() - started) * 1000, 3),
            error=error,
        )
        self.append(entry)
        return entry


def read_ledger(path: Path, invocation_id: str | None = None) -> list[LedgerEntry]:
    """All entries (of one invocation when given). A torn last line, if any, is skipped, not fatal."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    entries = _parse(raw)
    return entries if invocation_id is None else [e for e in entries if e.invocation_id == invocation_id]


def _parse(raw: bytes) -> list[LedgerEntry]:
    entries = []
    for line in raw.splitlines():
        try:
            entries.append(LedgerEntry(**json.loads(line)))
        except (ValueError, TypeError):  # a torn line, or one that is not an entry
            continue
    return entries
