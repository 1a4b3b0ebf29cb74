"""Ctrl-C on a real drill (issue 21): `inv drill.crash` as a subprocess, SIGINT sent once, then twice.

After each: a verdict and a report were written, the exit is 130, and no process the run started is left
(every pid recorded during the run, checked against the kernel's start time so that a reused pid is not
mistaken for ours)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from drillkit import config as drill_config
from drillkit.procs import ProcessRecord, proc_start_ticks
from drillkit.stack import Stack
from drillkit.waits import poll

from .conftest import ROOT, make_config

FIRST_CLEANUP_S = 30.0  # "a few seconds" on an idle machine; 2 shared cores with others' drills here


class Run:
    """`inv drill.crash` in its own process; its output lines collected as they come."""

    def __init__(self, config: Path, report: Path, drill: str = "drill.crash") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "invoke", drill, "--config", str(config), "--report-dir", str(report)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def saw(self, pattern: str) -> bool:
        return any(re.search(pattern, line) for line in self.lines)

    def wait_for(self, pattern: str, timeout_s: float) -> None:
        poll(lambda: self.saw(pattern), bool, f"a line matching {pattern!r}", timeout_s, 0.1)

    def text(self) -> str:
        return "\n".join(self.lines)


def recorded(stack: Stack) -> dict[str, ProcessRecord]:
    return {name: r for name in stack.procs.names() if (r := stack.procs.load(name)) is not None}


def still_ours(records: dict[str, ProcessRecord]) -> list[str]:
    return [f"{n} pid {r.pid}" for n, r in records.items() if proc_start_ticks(r.pid) == r.start_ticks]


@pytest.fixture
def drill_config_path(tmp_path, project_state):
    path = make_config(tmp_path, project_state)
    yield path
    subprocess.run([sys.executable, "-m", "invoke", "down", "--purge", "--config", str(path)], cwd=ROOT, check=False)


def start_and_wait_for_the_invocation(config: Path, report: Path) -> tuple[Run, dict[str, ProcessRecord]]:
    stack = Stack(drill_config.load(config))
    run = Run(config, report)
    try:
        run.wait_for(r"sent: POST /WriterAgentRestate", 300)
    except Exception:
        run.proc.kill()
        raise AssertionError("the drill never sent its invocation:\n" + run.text()) from None
    records = recorded(stack)
    stack.close()
    assert {"writer", "llm", "restate-server"} <= set(records), records
    return run, records


def assert_cleaned_and_reported(run: Run, records: dict[str, ProcessRecord], report: Path) -> None:
    assert run.proc.returncode == 130, run.text()
    assert (report / "journal.json").is_file() and (report / "report.md").is_file(), run.text()
    assert (report / "junit.xml").is_file() and (report / "report.html").is_file()
    assert run.saw(r"\bERROR\b drill crash in"), run.text()
    assert "Traceback" not in run.text()
    assert still_ours(records) == [], run.text()


def test_one_ctrl_c_cleans_up_within_seconds_and_reports(drill_config_path, tmp_path):
    report = tmp_path / "report"
    run, records = start_and_wait_for_the_invocation(drill_config_path, report)
    sent = time.monotonic()
    run.proc.send_signal(signal.SIGINT)
    run.proc.wait(timeout=120)
    took = time.monotonic() - sent
    run.reader.join(5)
    print(f"first Ctrl-C to exit: {took:.1f} s\n" + run.text())
    assert run.saw("Ctrl-C: cleaning up"), run.text()
    assert run.saw("cleanup: stopping the writer"), run.text()
    assert_cleaned_and_reported(run, records, report)
    assert took < FIRST_CLEANUP_S, run.text()


def test_a_second_ctrl_c_is_held_and_the_cleanup_still_finishes(drill_config_path, tmp_path):
    report = tmp_path / "report"
    run, records = start_and_wait_for_the_invocation(drill_config_path, report)
    run.proc.send_signal(signal.SIGINT)
    run.wait_for("Ctrl-C: cleaning up", 30)
    run.proc.send_signal(signal.SIGINT)
    run.proc.wait(timeout=120)
    run.reader.join(5)
    assert run.saw("Ctrl-C held"), run.text()
    assert not run.saw("forcing the cleanup")
    assert_cleaned_and_reported(run, records, report)


def test_a_third_ctrl_c_forces_it_and_still_stops_what_the_run_started(drill_config_path, tmp_path):
    report = tmp_path / "report"
    run, records = start_and_wait_for_the_invocation(drill_config_path, report)
    run.proc.send_signal(signal.SIGINT)
    run.wait_for("Ctrl-C: cleaning up", 30)
    run.proc.send_signal(signal.SIGINT)
    run.wait_for("Ctrl-C held", 30)
    run.proc.send_signal(signal.SIGINT)
    run.proc.wait(timeout=120)
    run.reader.join(5)
    assert run.saw("forcing the cleanup"), run.text()
    assert "cleanup forced by a third Ctrl-C" in (report / "report.md").read_text()
    assert_cleaned_and_reported(run, records, report)


def test_ctrl_c_in_drill_all_reports_the_drill_under_way_and_stops_the_stack(drill_config_path, tmp_path):
    stack = Stack(drill_config.load(drill_config_path))
    report = tmp_path / "all"
    run = Run(drill_config_path, report, "drill.all")
    run.wait_for(r"sent: POST /WriterAgentRestate", 300)
    records = recorded(stack)
    stack.close()
    sent = time.monotonic()
    run.proc.send_signal(signal.SIGINT)
    run.proc.wait(timeout=120)
    took = time.monotonic() - sent
    run.reader.join(5)
    print(f"drill.all: first Ctrl-C to exit: {took:.1f} s")
    assert run.proc.returncode == 130 and took < FIRST_CLEANUP_S, run.text()
    first = report / "01-crash-KILL"
    assert (first / "journal.json").is_file() and (first / "report.md").is_file(), run.text()
    assert still_ours(records) == [], run.text()
