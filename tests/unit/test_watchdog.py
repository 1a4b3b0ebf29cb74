"""The drills' watchdog without a stack: when it decides a drill is stuck (an injectable clock), what it
dumps, and how the frame judges it (INCONCLUSIVE before the fault, FAIL after, the dump named)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from drillkit.kit import watchdog as wd
from drillkit.kit.frame import Drill, judge_exception
from drillkit.kit.pace import Pace
from drillkit.kit.watchdog import Progress, Stalled, Watchdog
from drillkit.reports.record import DrillRecord, render_markdown
from drillkit.waits import WaitTimeout, poll


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_not_due_while_anything_moves_due_once_nothing_did_for_the_limit():
    clock = Clock()
    progress = Progress(lambda: 10.0, clock)
    clock.now += 9.5
    assert not progress.due()
    assert progress.observe("rows", 1, "a row changed")  # progress: the idle time starts again
    clock.now += 9.5
    assert not progress.observe("rows", 1, "the same rows")  # the same state is no progress
    assert not progress.due()
    clock.now += 1.0
    assert progress.due()
    assert progress.idle_s() == pytest.approx(10.5)
    assert "no progress for 10.5 s" in progress.describe() and "a row changed" in progress.describe()


def test_progress_seen_by_the_drills_own_waits_counts_only_when_newer():
    clock = Clock()
    progress = Progress(lambda: 5.0, clock)
    clock.now += 6
    progress.moved_at(clock.now - 7, "older than the last")  # before the start: changes nothing
    assert progress.due()
    progress.moved_at(clock.now - 1, "the wait saw a step finish")
    assert not progress.due() and progress.last_what == "the wait saw a step finish"


def test_the_limit_is_read_each_time_so_it_follows_the_pace():
    clock = Clock()
    pace = Pace(floor_s=3, first_step_s=20)
    progress = Progress(lambda: pace.budget_s, clock)
    clock.now += 10
    assert not progress.due()  # before any step: the first answer's 20 s
    pace.step_took("outline", 0.5)
    assert progress.due()  # now the floor, 3 s


class FakeAdmin:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = [{"id": "inv_1", "status": "running", "retry_count": 0}]
        self.queries: list[str] = []

    def query(self, sql: str) -> list[dict[str, Any]]:
        self.queries.append(sql)
        if "count(*)" in sql:
            return [{"id": "inv_1", "entries": 3}]
        if "sys_journal_events" in sql:
            return [{"id": "inv_1", "event_type": "TransientError"}]
        if "sys_journal" in sql:
            return [{"id": "inv_1", "index": 0, "entry_type": "Command: Run"}]
        return self.rows


def fake_stack() -> Any:
    service = SimpleNamespace(what="writer (WriterAgentRestate)", live=lambda: None)
    return SimpleNamespace(admin=FakeAdmin(), service=service)


def make_watchdog(tmp_path: Path, clock: Clock, fault: bool = False) -> tuple[Watchdog, Pace, DrillRecord]:
    pace = Pace(fixed_s=5)
    pace._last_progress = 0.0  # the waits saw nothing: only the watchdog's own observations count
    record = DrillRecord("stuck", {})
    dog = Watchdog(fake_stack(), record, pace, tmp_path, lambda: fault, lambda: ["inv_1"])
    dog.progress = Progress(lambda: pace.budget_s, clock)
    return dog, pace, record


def test_it_trips_after_the_limit_dumps_the_rows_and_halts_the_pace(tmp_path):
    clock = Clock()
    dog, pace, record = make_watchdog(tmp_path, clock)
    assert not dog.check()
    clock.now += 4
    record.event("frozen", "the writer")  # a new event is progress
    assert not dog.check()
    clock.now += 4
    assert not dog.check()  # 4 s since the event: within the 5 s limit
    clock.now += 2
    assert dog.check() and dog.trip is not None
    assert pace.halted and pace()  # every wait under the pace ends at once
    dump = json.loads((tmp_path / "watchdog.json").read_text())
    assert dump["invocations"] == ["inv_1"]
    assert dump["sys_invocation"][0]["status"] == "running"
    assert dump["sys_journal"][0]["entry_type"] == "Command: Run"
    assert dump["sys_journal_events"][0]["event_type"] == "TransientError"
    assert "not running" in dump["stacks"]  # the fake service has no live process: said, not hidden
    assert (tmp_path / "watchdog-stacks.txt").exists()
    assert str(tmp_path / "watchdog.json") in dog.trip.detail()
    assert "frozen" in dog.trip.reason  # names the last thing that moved
    assert record.timeline[-1].event == "watchdog"
    assert record.evidence["watchdog"]["dump"] == str(tmp_path / "watchdog.json")
    assert "## Watchdog: the drill was stuck" in render_markdown(record)  # report.md says where to look


def test_a_change_in_restates_rows_is_progress(tmp_path):
    clock = Clock()
    dog, _, _ = make_watchdog(tmp_path, clock)
    dog.check()
    clock.now += 4
    dog.stack.admin.rows = [{"id": "inv_1", "status": "backing-off", "retry_count": 1}]
    assert not dog.check()
    clock.now += 4
    assert not dog.check() and dog.progress.last_what.startswith("Restate's rows changed")


def test_unreadable_rows_are_no_progress(tmp_path):
    clock = Clock()
    dog, _, _ = make_watchdog(tmp_path, clock)
    dog.check()

    def down(sql: str) -> list[dict[str, Any]]:
        raise OSError("connection refused")

    dog.stack.admin.query = down
    for _ in range(3):
        clock.now += 2
        tripped = dog.check()
    assert tripped  # the server being down for 6 s is not progress
    assert "could not query sys_invocation" in (tmp_path / "watchdog.json").read_text()


@pytest.mark.parametrize(("fault", "verdict"), [(False, "INCONCLUSIVE"), (True, "FAIL")])
def test_the_frame_judges_a_stuck_drill_naming_the_dump(tmp_path, fault, verdict):
    clock = Clock()
    dog, pace, record = make_watchdog(tmp_path, clock, fault)
    drill = Drill(dog.stack, record, pace, fault_injected=fault, watchdog=dog)
    judge_exception(drill, WaitTimeout("the invocation to complete", 5, {"status": "running"}, stalled=True))
    assert record.verdict == verdict
    reason = " ".join(record.reasons())
    assert str(tmp_path / "watchdog.json") in reason and "the invocation to complete" in reason
    assert (tmp_path / "watchdog.json").exists()


def test_a_scenario_blocked_where_no_wait_watches_is_ended(tmp_path, monkeypatch):
    monkeypatch.setattr(wd, "INTERRUPT_GRACE_S", 0.2)
    pace = Pace(fixed_s=0.3)
    record = DrillRecord("stuck", {})
    dog = Watchdog(fake_stack(), record, pace, tmp_path, lambda: True, lambda: ["inv_1"], check_every_s=0.05)
    never = threading.Event()
    started = time.monotonic()
    with pytest.raises(Stalled), dog.watching():
        while not never.wait(0.05):  # blocked on something no pace watches
            pass
    assert dog.trip is not None and time.monotonic() - started < 10


def test_a_wait_under_the_halted_pace_ends_at_once():
    pace = Pace(fixed_s=600)
    pace.halt("watchdog: stuck")
    started = time.monotonic()
    with pytest.raises(WaitTimeout):
        poll(lambda: 0, lambda v: v > 0, "never", timeout_s=600, interval_s=0.01, stalled=pace)
    assert time.monotonic() - started < 2


def test_a_process_that_is_not_python_gets_no_stack_dump(monkeypatch):
    record = SimpleNamespace(pid=1234)
    stack = SimpleNamespace(service=SimpleNamespace(what="target ts_writer", live=lambda: record))
    monkeypatch.setattr(wd, "proc_state", lambda pid: "S")
    monkeypatch.setattr(wd.os, "readlink", lambda path: "/usr/bin/node")
    text = wd.service_stacks(stack)  # type: ignore[arg-type]
    assert "no stack dump for this target" in text and "/usr/bin/node" in text
