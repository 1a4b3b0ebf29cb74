"""Ctrl-C during a drill's cleanup: held, then forced, never a half-done run.

The first Ctrl-C interrupts the drill; its cleanup then runs under `CleanupGuard`. A second Ctrl-C is held
(the cleanup goes on and says so); a third forces it: `ForcedCleanup` is raised where the cleanup is, and the
frame skips what is left except stopping what this run started (by recorded, verified pid) and writing the
verdict and the report. Any further Ctrl-C is only acknowledged. Before this, a second Ctrl-C in the writer's
10 s drain aborted the cleanup: no verdict, a report dir holding only trace.json, restate-server and the
model left running.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from drillkit import progress
from drillkit.errors import DrillError
from drillkit.procs import ProcessRecord, ProcessTable

# The stack's own parts: on a stack the user had up before the drill, a forced cleanup leaves these (the drill
# may have restarted one of them, which replaces the user's) and stops only the drill's helpers.
STACK_PARTS = ("writer", "llm", "restate-server")
FORCED_KILL_TIMEOUT_S = 5.0


class ForcedCleanup(BaseException):
    """A Ctrl-C pressed twice during a cleanup: skip the rest of it. A BaseException, like KeyboardInterrupt,
    so that no cleanup's `except Exception` swallows it."""


class CleanupGuard:
    """SIGINT handling while a cleanup runs (main thread only; elsewhere the default handling stays)."""

    def __init__(self) -> None:
        self.presses = 0
        self.forced = False

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        self.presses += 1
        if self.presses == 1:
            progress.warn(
                "Ctrl-C held: the cleanup goes on (it stops what this drill started, then writes the verdict and "
                "the report); press Ctrl-C once more to force it"
            )
        elif not self.forced:
            self.forced = True
            progress.warn(
                "Ctrl-C again: forcing the cleanup: the rest is skipped, but what this run started is still "
                "stopped (by recorded pid) and the verdict and report are written"
            )
            raise ForcedCleanup
        else:
            progress.warn("Ctrl-C: the forced cleanup is stopping what this run started and writing the report")

    @contextmanager
    def guarding(self) -> Iterator[CleanupGuard]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


def started_since(procs: ProcessTable, since_epoch: float, stack_started_by_run: bool) -> list[ProcessRecord]:
    """Our live, recorded processes started by this run (at or after `since_epoch`); the stack's own parts
    only when this run brought the stack up."""
    found = []
    for name in procs.names():
        record = procs.live(name)
        if record is None or record.started_at < since_epoch:
            continue
        if not stack_started_by_run and name.startswith(STACK_PARTS):
            continue
        found.append(record)
    return found


def stop_started(procs: ProcessTable, since_epoch: float, stack_started_by_run: bool) -> list[str]:
    """SIGKILL (each verified first) what this run started; returns what was stopped, or why not, per process."""
    done = []
    for record in started_since(procs, since_epoch, stack_started_by_run):
        try:
            stopped = procs.kill_record(record, signal.SIGKILL, FORCED_KILL_TIMEOUT_S)
            done.append(f"{record.name} pid {record.pid}: " + ("stopped" if stopped else "already gone"))
        except (DrillError, OSError) as exc:
            done.append(f"{record.name} pid {record.pid}: not stopped ({exc})")
    return done
