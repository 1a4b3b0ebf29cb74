"""`inv drill.upgrade` for real (restate-server, two writer processes, the stub model), default mode,
`--mode incompatible` and `--mode early`, each from nothing running, as a person would run it. Checked from
its journal.json and from the writer's ledger on disk, not only from its verdict."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from drillkit import config as drill_config
from drillkit.stack import Stack
from writer_service.ledger import executions, read_ledger

from .conftest import ROOT, make_config, our_live_processes

INV = [sys.executable, "-m", "invoke"]


def run_upgrade(directory: Path, project_state: Path, *flags: str) -> tuple[dict[str, Any], Path, float]:
    cfg = make_config(directory, project_state)
    reports = directory / "reports"
    started = time.monotonic()
    out = subprocess.run(
        [*INV, "drill.upgrade", *flags, "--config", str(cfg), "--report-dir", str(reports)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    took = time.monotonic() - started
    stack = Stack(drill_config.load(cfg))
    try:
        left = our_live_processes(stack)
    finally:
        stack.down()
        stack.close()
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert left == [], f"left running after the drill: {left}"  # revision 2's writer and the stub included
    record = json.loads((reports / "journal.json").read_text())
    assert (reports / "report.html").read_text().count("Revisions over time") == 1
    return record, directory / "ledger.jsonl", took


def offsets(record: dict[str, Any]) -> dict[str, float]:
    """The first time each event happened."""
    found: dict[str, float] = {}
    for event in record["timeline"]:
        found.setdefault(event["event"], event["offset_s"])
    return found


def test_a_redeploy_with_invocations_in_flight_drains_then_removes_revision_1(tmp_path, project_state):
    record, ledger, took = run_upgrade(tmp_path, project_state)
    assert record["verdict"] == "PASS", record["reasons"]
    first, second = record["evidence"]["revisions"]
    assert (first["label"], second["label"]) == ("revision 1", "revision 2")
    assert first["deployment_id"] != second["deployment_id"]
    assert first["removed_s"] is not None and second["removed_s"] is None  # revision 2 is what is left serving
    pinned = record["evidence"]["pinned"]
    sent = record["evidence"]["population"]["sent"]
    assert [pinned[i] for i in sent] == [first["deployment_id"]] * 4 + [second["deployment_id"]] * 4
    at = offsets(record)
    assert at["in flight"] < at["registered"] < at["draining"] < at["drained"] <= at["removed"] < at["stopped"]
    # The ledger on disk, read here: every step of the first four by revision 1's process, of the next four
    # by revision 2's, and nothing ran twice.
    runs = [e for e in executions(read_ledger(ledger)) if e.invocation_id in set(sent)]
    by_pid = {i: {e.pid for e in runs if e.invocation_id == i} for i in sent}
    assert all(by_pid[i] == set(first["pids"]) for i in sent[:4]), by_pid
    assert all(by_pid[i] == set(second["pids"]) for i in sent[4:]), by_pid
    assert len(runs) == 8 * 6 and all(e.outcome == "ok" for e in runs)
    assert took < 60, f"drill.upgrade took {took:.1f} s"


def test_an_invocation_moved_onto_an_incompatible_revision_is_caught_and_recovered(tmp_path, project_state):
    record, ledger, took = run_upgrade(tmp_path, project_state, "--mode", "incompatible")
    assert record["verdict"] == "PASS", record["reasons"]
    first, bad = record["evidence"]["revisions"]
    assert bad["label"] == "revision 2 (incompatible)" and bad["removed_s"] is not None
    row = record["evidence"]["mismatch_row"]
    assert row["last_failure_error_code"] == "RT0016" and "[570 Journal mismatch]" in row["last_failure"]
    assert "outline != plan" in row["last_failure"] and row["status"] != "completed"
    at = offsets(record)
    assert at["pause asked"] < at["paused"] < at["moved"] < at["journal mismatch"] < at["moved back"] < at["completed"]
    moved = record["evidence"]["moved"]["id"]
    assert moved == record["invocation_id"] and record["evidence"]["pinned"][moved] == first["deployment_id"]
    assert record["evidence"]["invocation"]["completion_result"] == "success"
    runs = [e for e in executions(read_ledger(ledger)) if e.invocation_id == moved]
    assert {e.pid for e in runs} <= set(first["pids"]) and not set(bad["pids"]) & {e.pid for e in runs}
    assert sorted(e.step for e in runs) == sorted(
        ["outline", "section:1", "section:2", "section:3", "summary", "save_report"]
    )
    assert took < 60, f"drill.upgrade --mode incompatible took {took:.1f} s"


def test_revision_1_taken_away_too_early_leaves_its_invocations_backing_off_then_they_complete(tmp_path, project_state):
    """--mode early: revision 1's process killed while its invocations run. They back off pinned to it (none
    moved to revision 2, none completed while it was gone) and complete once it returns; then it drains."""
    record, ledger, took = run_upgrade(tmp_path, project_state, "--mode", "early")
    assert record["verdict"] == "PASS", record["reasons"]
    first, second = record["evidence"]["revisions"]
    assert len(first["pids"]) == 2 and len(second["pids"]) == 1  # revision 1's process, then its return
    at = offsets(record)
    back = max(e["offset_s"] for e in record["timeline"] if e["event"] == "restarted")  # revision 1 returns
    assert at["registered"] < at["killed"] < at["backing off"] < back < at["drained"] < at["removed"]
    pinned = record["evidence"]["pinned"]
    sent = record["evidence"]["population"]["sent"]
    assert [pinned[i] for i in sent] == [first["deployment_id"]] * 4 + [second["deployment_id"]] * 4
    # The ledger on disk: revision 1's invocations ran only in revision 1's two processes, the killed one
    # and the one that came back, never in revision 2's; every one of the eight finished its six steps.
    runs = [e for e in executions(read_ledger(ledger)) if e.invocation_id in set(sent)]
    old_pids = {e.pid for e in runs if e.invocation_id in set(sent[:4])}
    assert old_pids <= set(first["pids"]) and first["pids"][1] in old_pids
    assert {e.pid for e in runs if e.invocation_id in set(sent[4:])} == set(second["pids"])
    assert {(e.invocation_id, e.step) for e in runs if e.outcome == "ok"} == {
        (i, s) for i in sent for s in ["outline", "section:1", "section:2", "section:3", "summary", "save_report"]
    }
    assert took < 150, f"drill.upgrade --mode early took {took:.1f} s"
