"""Drill records: verdicts, and report files that stay valid whatever text the evidence holds."""

from xml.etree import ElementTree as ET

from drillkit.reports.record import DrillRecord


def test_verdicts():
    record = DrillRecord("crash", {"signal": "KILL"})
    assert record.verdict == "INCONCLUSIVE"  # nothing checked is not a pass, nor a failure of the system
    record.expect("a", True, "ok")
    assert record.verdict == "PASS"
    record.expect("b", False, "not ok")
    assert record.verdict == "FAIL"
    assert record.reasons() == ["met: a: ok", "NOT met: b: not ok"]
    record.error = "boom"
    assert record.verdict == "ERROR" and record.reasons() == ["boom"]


def test_files_are_written_and_junit_survives_terminal_colour_codes(tmp_path):
    record = DrillRecord("timeout", {"mode": "hang"})
    record.event("sent", "inv_1")
    record.expect("completed with failure", False, "log tail: \x1b[1;33mWARN\x1b[0m and a \x07 bell | pipe")
    record.finish()
    paths = record.write(tmp_path)
    suite = ET.parse(paths["junit"]).getroot()
    assert suite.get("tests") == "1" and suite.get("failures") == "1"
    failure = suite.find("testcase/failure")
    assert "\x1b" not in failure.get("message") and "WARN" in failure.get("message")
    report = paths["report"].read_text()
    assert "# Drill `timeout`: **FAIL**" in report and "| ❌ | completed with failure |" in report
    assert "\\|" in report  # a pipe in evidence does not break the table
    assert '"verdict": "FAIL"' in paths["journal"].read_text()


def test_inconclusive_when_the_environment_failed_before_the_fault(tmp_path):
    record = DrillRecord("crash", {})
    record.expect("writer running", True, "pid 1")
    record.inconclusive = "the environment failed before the fault: step section:2 to be running: no progress"
    assert record.verdict == "INCONCLUSIVE"
    assert record.reasons()[-1].startswith("inconclusive: the environment failed")
    record.finish()
    paths = record.write(tmp_path)
    suite = ET.parse(paths["junit"]).getroot()
    assert suite.get("failures") == "0" and suite.get("skipped") == "1" and suite.find("testcase/skipped") is not None
    assert "**Inconclusive:**" in paths["report"].read_text()
    record.expect("completed with success", False, "failure")  # a failure the system caused outranks it
    assert record.verdict == "FAIL"


def test_exit_codes():
    from drillkit.reports.record import exit_code

    assert exit_code(["PASS", "PASS"]) == 0
    assert exit_code(["PASS", "INCONCLUSIVE"]) == 3
    assert exit_code(["INCONCLUSIVE", "FAIL"]) == 1
    assert exit_code(["ERROR"]) == 1
    assert exit_code([]) == 3


def test_error_is_reported_as_a_junit_error(tmp_path):
    record = DrillRecord("crash", {})
    record.error = "restate-server did not become ready"
    record.finish()
    suite = ET.parse(record.write(tmp_path)["junit"]).getroot()
    assert suite.get("errors") == "1" and suite.find("testcase/error") is not None


def test_drill_parameters_are_checked_before_anything_starts(monkeypatch):
    from pathlib import Path

    import pytest

    from drillkit import catalog
    from drillkit import config as drill_config
    from drillkit.errors import DrillError
    from drillkit.stack import Stack

    root = Path(__file__).resolve().parents[2]
    stack = Stack(drill_config.load(root / "configs/local.yaml"))
    monkeypatch.setattr("drillkit.catalog.run_drill", lambda *a, **k: pytest.fail("the drill started"))
    with pytest.raises(DrillError, match="section:9"):
        catalog.run(stack, catalog.crash(at="section:9"))
    with pytest.raises(DrillError, match="at least 1"):
        catalog.run(stack, catalog.tool_error(0))


def test_the_ledger_table_has_one_row_per_execution():
    from dataclasses import asdict

    from drillkit.reports.record import render_markdown
    from writer_service.ledger import LedgerEntry

    record = DrillRecord("crash", {"signal": "KILL"})
    record.evidence["ledger"] = [
        asdict(LedgerEntry(1.0, "inv_1", "section:2", 1, 11, "started", 0.0)),  # SIGKILLed in it
        asdict(LedgerEntry(3.0, "inv_1", "section:2", 2, 12, "started", 0.0)),
        asdict(LedgerEntry(3.4, "inv_1", "section:2", 2, 12, "ok", 400.0)),
    ]
    rows = [line for line in render_markdown(record).splitlines() if line.startswith("| section:2 |")]
    assert rows == ["| section:2 | 1 | 11 | never finished |  |  |", "| section:2 | 2 | 12 | ok | 400 |  |"]
