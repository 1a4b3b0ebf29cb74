"""Every drill for real (native Restate, real writer process, local model), verdicts checked on the evidence."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from drillkit import catalog
from drillkit import config as drill_config
from drillkit.reports.record import exit_code
from drillkit.stack import Stack
from writer_service.ledger import Execution, LedgerEntry, executions

from .conftest import ROOT, make_config, our_live_processes

INV = [sys.executable, "-m", "invoke"]
SKIPPED_HERE = "storm"
"""The real-model storm (160 s of drill.all on 2 cores) is left to the `long` run below: the suite has quick
storms of its own (the stub storm of test_report_pictures, the stranger's storm of test_targets)."""


def drill_dirs(reports: Path) -> list[Path]:
    """drill.all's report dirs in run order (`NN-label`)."""
    return sorted(p for p in reports.iterdir() if p.is_dir() and (p / "journal.json").exists())


def expected_labels() -> list[str]:
    """What drill.all runs here: the catalog's list, less what the fixture skips (its composition is declared
    once, in the catalog, not copied here)."""
    return [catalog.label(spec) for spec in catalog.all_drills() if spec.name not in SKIPPED_HERE.split(",")]


@pytest.fixture(scope="module")
def drill_all(tmp_path_factory, project_state):
    """`inv drill.all` once, from nothing running, as a new user would run it."""
    directory = tmp_path_factory.mktemp("drills")
    cfg = make_config(directory, project_state)
    reports = directory / "reports"
    out = subprocess.run(
        [*INV, "drill.all", "--skip", SKIPPED_HERE, "--config", str(cfg), "--report-dir", str(reports)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    stack = Stack(drill_config.load(cfg))
    left = our_live_processes(stack)
    stack.down()
    stack.close()
    return out, reports, left


def journal(reports: Path, label: str) -> dict:
    """The journal of the drill `label` (crash-KILL, timeout-down, ...), whatever its number in the run."""
    (directory,) = [p for p in drill_dirs(reports) if p.name.split("-", 1)[1] == label]
    return json.loads((directory / "journal.json").read_text())


def events(record: dict) -> list[str]:
    return [e["event"] for e in record["timeline"]]


def ledger_runs(record: dict, step: str | None = None) -> list[Execution]:
    """The drill's ledger lines paired into executions (of one step when given)."""
    runs = executions([LedgerEntry(**e) for e in record["evidence"]["ledger"]])
    return [r for r in runs if step is None or r.step == step]


def ledger_steps(record: dict, outcome: str | None = None) -> list[str]:
    """The step of each execution (that ended with `outcome` when given)."""
    return [r.step for r in ledger_runs(record) if outcome is None or r.outcome == outcome]


def test_drill_all_passes_and_leaves_nothing_running(drill_all):
    out, reports, left = drill_all
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert_every_drill_passed(out, reports, expected_labels())
    assert left == []  # the drill started the stack, so it stopped it


def assert_every_drill_passed(out: subprocess.CompletedProcess, reports: Path, labels: list[str]) -> None:
    assert f"{len(labels)} passed, 0 failed" in out.stdout, out.stdout[-3000:]
    directories = drill_dirs(reports)
    assert [p.name.split("-", 1)[1] for p in directories] == labels
    for directory in directories:
        assert {p.name for p in directory.iterdir()} >= {"journal.json", "report.md", "junit.xml"}
        record = json.loads((directory / "journal.json").read_text())
        assert record["verdict"] == "PASS", record["reasons"]
        suite = ET.parse(directory / "junit.xml").getroot()
        assert int(suite.get("tests")) == len(record["expectations"]) and suite.get("failures") == "0"
        assert "**PASS**" in (directory / "report.md").read_text()


@pytest.mark.long
def test_the_whole_drill_all_with_its_real_model_storm(tmp_path, project_state):
    """Opt-in (--long, about 5 min here): drill.all as a user runs it, nothing skipped."""
    cfg = make_config(tmp_path, project_state)
    reports = tmp_path / "reports"
    out = subprocess.run(
        [*INV, "drill.all", "--config", str(cfg), "--report-dir", str(reports)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    stack = Stack(drill_config.load(cfg))
    left = our_live_processes(stack)
    stack.down()
    stack.close()
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert_every_drill_passed(out, reports, [catalog.label(spec) for spec in catalog.all_drills()])
    assert left == []


def test_no_report_of_drill_all_holds_a_raw_json_fragment_of_a_model_answer(drill_all):
    from drillkit.drills.model_faults import raw_json_fragments

    checked = 0
    for directory in drill_dirs(drill_all[1]):
        output = json.loads((directory / "journal.json").read_text())["evidence"].get("output")
        if isinstance(output, dict) and "markdown_report" in output:
            assert raw_json_fragments(output["markdown_report"]) == [], directory.name
            checked += 1
    assert checked >= 8  # every drill whose invocation completed with a report


def assert_in_order(seen: list[str], wanted: list[str]) -> None:
    positions = [seen.index(w) for w in wanted]
    assert positions == sorted(positions), seen


def test_crash_kill_evidence(drill_all):
    record = journal(drill_all[1], "crash-KILL")
    assert_in_order(
        events(record),
        [
            "sent",
            "step done",
            "target running",
            "signalled",
            "killed",
            "retrying seen",
            "restarted",
            "resumed",
            "running again",
            "completed",
        ],
    )
    offsets = [e["offset_s"] for e in record["timeline"]]
    assert offsets == sorted(offsets)
    assert record["evidence"]["invocation"]["completion_result"] == "success"
    assert "completed with success" in record["evidence"]["cli_describe"]
    assert record["evidence"]["in_flight_at_kill"] == "section:2"
    assert record["evidence"]["completed_at_kill"] == ["outline", "section:1"]
    ok = ledger_steps(record, "ok")
    assert ok.count("outline") == 1 and ok.count("section:1") == 1  # finished before the kill: never again
    assert ok == ["outline", "section:1", "section:2", "section:3", "summary", "save_report"]
    pids = {r.pid for r in ledger_runs(record)}
    assert len(pids) == 2  # before and after the restart
    section2 = ledger_runs(record, "section:2")
    assert [r.attempt for r in section2] == [1, 2] and section2[-1].outcome == "ok"  # the kill's start counted
    assert Path(record["evidence"]["output"]["output_path"]).is_file()


def test_crash_term_evidence(drill_all):
    record = journal(drill_all[1], "crash-TERM")
    graceful = next(e for e in record["expectations"] if "gracefully" in e["name"])
    assert graceful["passed"] and "exited by itself" in graceful["detail"]
    assert record["evidence"]["invocation"]["completion_result"] == "success"
    assert sorted(ledger_steps(record, "ok")) == sorted(
        ["outline", "section:1", "section:2", "section:3", "summary", "save_report"]
    )


def test_server_crash_evidence(drill_all):
    record = journal(drill_all[1], "server-crash-KILL")
    assert_in_order(
        events(record), ["sent", "step done", "target running", "signalled", "killed", "server restarted", "completed"]
    )
    kept = next(e for e in record["expectations"] if "journal kept" in e["name"])
    assert kept["passed"] and "outline" in kept["detail"]
    assert record["evidence"]["completed_at_kill"] == ["outline", "section:1"]
    assert record["evidence"]["invocation"]["completion_result"] == "success"
    recovery = record["evidence"]["recovery_s"]
    assert 0 <= recovery["restart_to_running"] <= recovery["restart_to_completed"]


def test_timeout_down_evidence(drill_all):
    record = journal(drill_all[1], "timeout-down")
    assert_in_order(events(record), ["endpoint down", "sent", "retrying seen", "endpoint back", "completed"])
    outline = ledger_runs(record, "outline")
    assert [r.outcome for r in outline][-1] == "ok" and any(r.outcome == "error" for r in outline)
    assert record["evidence"]["invocation"]["completion_result"] == "success"


def test_timeout_hang_evidence(drill_all):
    record = journal(drill_all[1], "timeout-hang")
    row = record["evidence"]["invocation"]
    assert row["completion_result"] == "failure"
    assert "timed out" in row["completion_failure"].lower()
    outline = ledger_runs(record, "outline")
    assert [r.outcome for r in outline] == ["error"] * 3
    assert all((r.duration_ms or 0) >= 1300 for r in outline)  # each attempt waited for the client's timeout
    assert record["evidence"]["blackhole_connections"] >= 3


def test_timeout_pause_evidence(drill_all):
    record = journal(drill_all[1], "timeout-pause")
    assert record["evidence"]["paused_row"]["status"] == "paused"
    assert_in_order(
        events(record),
        ["server retry policy", "endpoint down", "sent", "paused", "endpoint back", "resumed", "completed"],
    )
    assert record["evidence"]["invocation"]["completion_result"] == "success"
    assert "restate-server on the config's environment" in [e["detail"] for e in record["timeline"]]


def test_tool_error_evidence(drill_all):
    record = journal(drill_all[1], "tool-error")
    attempts = ledger_steps(record)
    assert attempts.count("save_report") == 3
    for step in ("outline", "section:1", "section:2", "section:3", "summary"):
        assert attempts.count(step) == 1
    assert len(record["evidence"]["transient_errors"]) >= 1
    assert "injected tool error" in json.dumps(record["evidence"]["transient_errors"])


def test_stuck_and_upgrade_evidence(drill_all):
    reports = drill_all[1]
    freeze = journal(reports, "stuck-freeze")
    assert_in_order(events(freeze), ["frozen", "thawed", "completed"])
    hang = journal(reports, "stuck-step-hang")
    hung = [r for r in hang["evidence"]["tap_requests"] if r["step"] == "section:1"]
    assert [r["fault"] for r in hung] == ["slow", None] and hung[1]["status"] == 200
    aborted = next(e for e in hang["expectations"] if e["name"].startswith("Restate aborted the attempt"))
    assert "abort timeout" in aborted["detail"]  # Restate's row, read when the retry count moved
    drain = journal(reports, "upgrade-drain")
    first, second = drain["evidence"]["revisions"]
    assert first["removed_s"] is not None and second["removed_s"] is None
    incompatible = journal(reports, "upgrade-incompatible")
    assert incompatible["evidence"]["mismatch_row"]["last_failure_error_code"] == "RT0016"
    for record in (freeze, hang, drain, incompatible):
        assert not [e for e in record["timeline"] if e["event"] == "watchdog"]  # nothing was stuck


def test_crash_without_resume_waits_for_restates_backoff(tmp_path, project_state):
    cfg = make_config(tmp_path, project_state)
    out = subprocess.run(
        [
            *INV,
            "drill.crash",
            "--no-resume",
            "--at",
            "section:1",
            "--config",
            str(cfg),
            "--report-dir",
            str(tmp_path / "r"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:]
    record = json.loads((tmp_path / "r" / "journal.json").read_text())
    assert "waiting for Restate's backoff" in events(record) and "resumed" not in events(record)
    assert record["evidence"]["completed_at_kill"] == ["outline"]


def test_a_drill_that_cannot_meet_its_expectation_fails_honestly(tmp_path, project_state):
    """The writer cannot come back (its config breaks while it is down): FAIL with the reason, exit non-zero."""
    cfg = make_config(tmp_path, project_state)
    good = cfg.read_text()
    stack = Stack(drill_config.load(cfg))
    real_kill = stack.writer.kill_record

    def kill_then_break_the_config(record, sig=signal.SIGTERM):
        stopped = real_kill(record, sig)
        cfg.write_text(good.replace("port: 9080", "port: not-a-port"))  # the restarted writer exits at once
        return stopped

    stack.writer.kill_record = kill_then_break_the_config
    try:
        record, directory = catalog.run(stack, catalog.crash(at="outline"), tmp_path / "r")
    finally:
        cfg.write_text(good)
        stack.down()
        stack.close()
    assert record.verdict == "FAIL"
    failed = [e for e in record.expectations if not e.passed]
    assert [e.name for e in failed] == ["the writer restarts and answers its health check"]
    assert "not healthy (exited)" in failed[0].detail and "service.port" in failed[0].detail
    assert "**FAIL**" in (directory / "report.md").read_text()
    assert ET.parse(directory / "junit.xml").getroot().get("failures") == "1"
    assert exit_code([record.verdict]) == 1
