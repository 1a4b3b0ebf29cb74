"""Ctrl-C during a drill's cleanup (issue 21): a second is held, a third forces it, and what the run started
is still stopped by recorded pid, and the verdict and the report are still written. Real SIGINTs, sent to
this process, real child processes."""

from __future__ import annotations

import os
import signal
import sys
import time
from types import SimpleNamespace

import pytest

from drillkit import interrupts
from drillkit.kit import frame
from drillkit.kit.pace import Pace
from drillkit.procs import ProcessTable, is_alive
from drillkit.reports.record import DrillRecord


def sigint_self() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_a_second_ctrl_c_is_held_a_third_forces_a_fourth_is_only_acknowledged(progress_lines):
    guard = interrupts.CleanupGuard()
    with guard.guarding():
        sigint_self()  # held
        assert guard.presses == 1 and not guard.forced
        with pytest.raises(interrupts.ForcedCleanup):
            sigint_self()
        sigint_self()  # acknowledged, nothing raised: the forced path must end
    assert guard.presses == 3
    assert any("Ctrl-C held" in line for line in progress_lines)
    assert any("forcing the cleanup" in line for line in progress_lines)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_forced_cleanup_still_stops_what_the_run_started_and_writes_the_verdict(tmp_path, progress_lines):
    procs = ProcessTable(tmp_path / "procs")
    before = procs.spawn("tap", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "before.log")
    record = DrillRecord("crash", {})
    record.started_at = time.time()
    mine = procs.spawn("stub-llm", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "mine.log")
    drill = frame.Drill(SimpleNamespace(procs=procs), record, Pace())  # type: ignore[arg-type]
    ran = []

    def stuck_cleanup() -> None:  # a cleanup that would take long: Ctrl-C twice while it runs
        ran.append("stuck")
        sigint_self()
        sigint_self()
        ran.append("not reached")

    drill.on_cleanup("the cleanup that is never reached", lambda: ran.append("first registered"))
    drill.on_cleanup("a slow cleanup", stuck_cleanup)
    try:
        frame.finish(drill, tmp_path / "report", interrupted=True)
        assert ran == ["stuck"]
        assert not is_alive(mine.pid), "a process this run started is left running"
        assert is_alive(before.pid), "a process started before the run was stopped"
        assert (tmp_path / "report" / "journal.json").is_file() and (tmp_path / "report" / "report.md").is_file()
        assert any("forced" in note for note in record.notes)
        assert any(line.startswith(f"info: {record.verdict} drill crash in ") for line in progress_lines)
    finally:
        for pid in (before.pid, mine.pid):
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_every_cleanup_step_is_announced_after_a_ctrl_c(tmp_path, progress_lines):
    drill = frame.Drill(SimpleNamespace(), DrillRecord("crash", {}), Pace())  # type: ignore[arg-type]
    drill.on_cleanup("restart the writer", lambda: None)
    frame.finish(drill, tmp_path / "r", interrupted=True)
    assert "step: cleanup: restart the writer" in progress_lines
    assert (tmp_path / "r" / "junit.xml").is_file()
