"""The drill frame's own rules: one drill per state dir, waits that follow the system's pace."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from drillkit.errors import DrillError
from drillkit.kit.pace import FACTOR, Pace
from drillkit.state import StateDir, drill_lock
from drillkit.waits import WaitTimeout, poll

HOLD = """
import sys, time
from pathlib import Path
from drillkit.state import StateDir, drill_lock
with drill_lock(StateDir(Path(sys.argv[1])), "drill.crash"):
    print("held", flush=True)
    time.sleep(30)
"""


def test_a_second_drill_is_refused_at_once_naming_the_first_ones_pid(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        refused = rf"another drill is running .*pid {holder.pid}, drill.crash"
        with pytest.raises(DrillError, match=refused), drill_lock(StateDir(tmp_path), "drill.timeout"):
            pass
        assert time.monotonic() - started < 1.0
    finally:
        holder.kill()
        holder.wait()
    # The kernel dropped the dead holder's lock; and the lock is re-entrant in one process (drill.all).
    with drill_lock(StateDir(tmp_path), "drill.timeout"), drill_lock(StateDir(tmp_path), "drill.crash"):
        pass


def test_pace_budget_grows_with_the_slowest_step_and_has_a_floor():
    pace = Pace(floor_s=30, first_step_s=120)
    assert pace.budget_s == 120  # before any step: the model's first answer may be slow
    pace.step_took("outline", 1.0)
    assert pace.budget_s == 30
    pace.step_took("section:1", 20.0)
    assert pace.budget_s == FACTOR * 20.0
    assert Pace(fixed_s=7).budget_s == 7


def test_a_wait_ends_when_progress_stops_not_at_a_fixed_time():
    pace = Pace(floor_s=0.2, first_step_s=0.2)
    ticks = iter(range(10))

    def moving() -> int:
        value = next(ticks, 9)  # moves for ten polls, then stands still
        pace.observe(value)
        return value

    started = time.monotonic()
    with pytest.raises(WaitTimeout) as err:
        poll(moving, lambda v: v > 100, "never", timeout_s=60, interval_s=0.02, stalled=pace)
    assert err.value.stalled and err.value.last == 9
    assert 0.2 < time.monotonic() - started < 5
    assert "no progress for 0.2 s" in str(err.value)


def _drill(fault_injected: bool):
    from types import SimpleNamespace

    from drillkit.kit.frame import Drill
    from drillkit.reports.record import DrillRecord

    drill = Drill(SimpleNamespace(), DrillRecord("crash", {}), Pace())  # type: ignore[arg-type]
    drill.fault_injected = fault_injected
    return drill


@pytest.mark.parametrize(
    ("fault_injected", "exc", "verdict"),
    [
        (False, WaitTimeout("step section:2 to be running", 120, None, stalled=True), "INCONCLUSIVE"),
        (True, WaitTimeout("the invocation to complete", 30, {"status": "backing-off"}, stalled=True), "FAIL"),
        (False, DrillError("local model (pid 7) is not healthy"), "INCONCLUSIVE"),
        (True, DrillError("restate-server did not become ready"), "ERROR"),
        (True, ValueError("a bug"), "ERROR"),
    ],
)
def test_what_an_exception_means_depends_on_whether_the_fault_was_injected(fault_injected, exc, verdict):
    from drillkit.kit.frame import judge_exception

    drill = _drill(fault_injected)
    judge_exception(drill, exc)
    assert drill.record.verdict == verdict
    if verdict == "INCONCLUSIVE":
        assert drill.record.inconclusive.startswith("the environment failed before the fault")
