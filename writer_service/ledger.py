"""The execution ledger: one JSON line per real execution of a step body (a replay writes nothing).

It is the writer's own evidence, independent of Restate's journal: a drill reads it to prove that no step
that had finished ran again after a crash. It also carries attempt counts across process restarts, which
the fault injection needs ("fail the first N attempts" must not start over when the process does).

Lines are appended with one `write` on an `O_APPEND` descriptor under an exclusive `flock`, so concurrent
invocations (and several writer processes) never interleave lines.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

Outcome = Literal["ok", "error", "crash"]


@dataclass(frozen=True)
class LedgerEntry:
    time: float
    invocation_id: str
    step: str
    attempt: int
    pid: int
    outcome: Outcome
    duration_ms: float
    error: str | None = None


class LedgerFollower:
    """Reads a ledger incrementally: each call returns only the entries appended since the last one
    (by any process), so a poll costs O(new lines), not O(ledger size)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def new_entries(self) -> list[LedgerEntry]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                fresh = handle.read()
        except FileNotFoundError:
            return []
        complete = fresh[: fresh.rfind(b"\n") + 1]  # a line still being written is read next time
        self._offset += len(complete)
        return _parse(complete)


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
        """How many executions of this step, for this invocation, reached an outcome (any process)."""
        self._attempts.update((e.invocation_id, e.step) for e in self._follower.new_entries())
        return self._attempts[(invocation_id, step)]

    def record(
        self,
        invocation_id: str,
        step: str,
        attempt: int,
        outcome: Outcome,
        started: float,
        error: str | None = None,
    ) -> LedgerEntry:
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
