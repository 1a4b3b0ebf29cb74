"""--protocol for real: `inv drill.crash --protocol suspend` (issue 18's "done when"), and the whole
protocol matrix of drill.all as an opt-in long run (`--long`; docs/testing.md)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from drillkit import catalog
from drillkit import config as drill_config
from drillkit.stack import Stack
from writer_service.ledger import LedgerEntry, executions

from .conftest import ROOT, make_config, our_live_processes
from .test_drills import INV


def record_of(directory: Path) -> dict:
    return json.loads((directory / "journal.json").read_text())


def test_crash_over_suspend_passes_with_replays_and_nothing_ran_twice(tmp_path, project_state):
    cfg = make_config(tmp_path, project_state)
    out = subprocess.run(
        [*INV, "drill.crash", "--protocol", "suspend", "--config", str(cfg), "--report-dir", str(tmp_path / "r")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    record = record_of(tmp_path / "r")
    assert record["verdict"] == "PASS", record["reasons"]
    assert record["parameters"]["protocol"] == "suspend"
    # Restate's own view while the drill ran: the service's inactivity timeout and the server's at 0.
    protocol = record["evidence"]["protocol"]
    assert protocol["service_inactivity_timeout"] == "0s" and protocol["server_inactivity_env"] == "0s"
    assert protocol["http_version"] == "HTTP/2.0"
    # Replays happened: attempts that were no failure's retry (the sampled rows), and Restate's own spans
    # (collected apart from the sampler) show at least that many attempts besides the first.
    (attempts,) = record["evidence"]["attempts"].values()
    assert attempts["resumed_by_replay"] >= 3, attempts
    spans = [s["name"] for s in record["evidence"]["trace_spans"]]
    assert spans.count("invocation-attempt") >= 1 + attempts["resumed_by_replay"], spans
    # ...and replays re-ran nothing: every step finished exactly once in the writer's ledger.
    runs = [e for e in executions([LedgerEntry(**x) for x in record["evidence"]["ledger"]]) if e.outcome == "ok"]
    steps = ["outline", "section:1", "section:2", "section:3", "summary", "save_report"]
    assert sorted(e.step for e in runs) == sorted(steps)
    met = " ".join(record["reasons"])
    assert "each output is exactly what its journaled step results compose" in met
    assert "no replay ran a finished step again" in met
    # Given back at the end: the server on the config's environment, the service's own timeout again.
    assert any("inactivity timeout at 60s again" in e["detail"] for e in record["timeline"] if e["event"] == "cleanup")


@pytest.mark.long  # drill.all over all three protocols: 31 min here
@pytest.mark.timeout(4200)
def test_drill_all_over_every_protocol(tmp_path, project_state):
    cfg = make_config(tmp_path, project_state)
    reports = tmp_path / "reports"
    started = time.monotonic()
    out = subprocess.run(
        [*INV, "drill.all", "--protocols", "all", "--config", str(cfg), "--report-dir", str(reports)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=4000,
    )
    took = time.monotonic() - started
    stack = Stack(drill_config.load(cfg))
    left = our_live_processes(stack)
    stack.down()
    stack.close()
    print(out.stdout[-30000:])
    print(f"drill.all --protocols all: {took:.0f} s")
    assert left == []
    verdicts = {d.name: record_of(d)["verdict"] for d in sorted(reports.iterdir()) if d.is_dir()}
    assert len(verdicts) == 3 * len(catalog.all_drills()), verdicts
    # A replay that ran a finished step again or changed an output is a FAIL; none may be.
    assert [n for n, v in verdicts.items() if v in ("FAIL", "ERROR")] == [], verdicts
    assert "drill.all: protocol x drill" in out.stdout
