"""`inv evaluate` for real, reduced to the nominal path and a writer SIGKILL (the full matrix is `inv
evaluate --quick` or more, run by hand): both modes on the local model, the model requests counted at
the tap, the decision and its three files."""

from __future__ import annotations

import json
import subprocess
import sys

from drillkit import config as drill_config
from drillkit.stack import Stack

from .conftest import ROOT, make_config, our_live_processes

INV = [sys.executable, "-m", "invoke"]


def test_evaluate_kill_durable_redoes_nothing_baseline_pays_for_its_retries(tmp_path, project_state):
    cfg = make_config(tmp_path, project_state)
    reports = tmp_path / "evaluation"
    flags = ["--faults", "nominal,kill", "--runs", "1", "--concurrency", "2", "--report-dir", str(reports)]
    done = subprocess.run(
        [*INV, "evaluate", "--config", str(cfg), *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    stack = Stack(drill_config.load(cfg))
    try:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        result = json.loads((reports / "evaluation.json").read_text())
        assert result["decision"] in ("Go", "NoGo")
        assert (reports / "evaluation.md").is_file() and (reports / "evaluation.html").is_file()
        row = {(r["fault"], r["mode"]): r for r in result["rows"]}
        for mode in ("baseline", "durable"):
            assert row["nominal", mode]["completed"] == 1
            assert row["nominal", mode]["model_requests"] == row["nominal", mode]["min_requests"]
            assert row["kill", mode]["completed"] == 1
            assert row["kill", mode]["duplicated_effects"] == 0 and row["kill", mode]["lost_effects"] == 0
        # Killed once outline and section:1 had finished: Restate replays them, the plain service's caller
        # asks for them again (and for the step in flight).
        assert row["kill", "durable"]["model_requests"] <= row["kill", "durable"]["min_requests"] + 1
        assert row["kill", "baseline"]["model_requests"] >= row["kill", "baseline"]["min_requests"] + 2
        assert result["criteria"][0]["met"], result["criteria"]
        assert set(result["throughput_per_s"]) == {"baseline", "durable"}
    finally:
        stack.down(purge=True)
        assert our_live_processes(stack) == []
        stack.close()
