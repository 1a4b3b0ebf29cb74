"""`inv evaluate` for real, reduced to the nominal path and a SIGKILL (the full matrix is `inv evaluate
--quick` or more, run by hand): both modes on the local model, the model requests counted at the tap
and, independently, by nginx (not part of this project) between the tap and the model; the decision and
its three files. Then the same on the Agents SDK target (DurableRunner against the SDK's plain Runner)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from drillkit import config as drill_config
from drillkit.bench.gate import NginxProxy, model_upstream
from drillkit.stack import Stack

from .conftest import ROOT, make_config, our_live_processes

INV = [sys.executable, "-m", "invoke"]
PROXY_PORT = 8099


def evaluate(cfg: Path, reports: Path, *flags: str) -> dict:
    done = subprocess.run(
        [*INV, "evaluate", "--config", str(cfg), "--runs", "1", "--report-dir", str(reports), *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert (reports / "evaluation.md").is_file() and (reports / "evaluation.html").is_file()
    result: dict = json.loads((reports / "evaluation.json").read_text())
    assert result["decision"] in ("Go", "NoGo")
    return result


def stop(cfg: Path) -> None:
    stack = Stack(drill_config.load(cfg))
    try:
        stack.down(purge=True)
        assert our_live_processes(stack) == []
    finally:
        stack.close()


@pytest.mark.skipif(
    shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
    reason="nginx (the independent witness) is not installed: apt-get install -y nginx (scripts/bootstrap.sh does)",
)
def test_evaluate_kill_durable_redoes_nothing_baseline_pays_for_its_retries(tmp_path, project_state):
    plain = Stack(drill_config.load(make_config(tmp_path, project_state)))
    proxy = NginxProxy(model_upstream(plain), PROXY_PORT)
    plain.close()
    cfg = make_config(tmp_path, project_state, **{"writer_model.base_url": proxy.base_url})
    proxy.start()
    try:
        result = evaluate(cfg, tmp_path / "evaluation", "--faults", "nominal,kill", "--concurrency", "2")
        witnessed = Counter(r["invocation"] for r in proxy.requests())
    finally:
        stop(cfg)
        proxy.cleanup()
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
    # The proxy that is not ours counted, per request, what the evaluation reports from its tap.
    assert len(result["runs"]) == 4
    for run in result["runs"]:
        assert witnessed[run["key"]] == run["model_requests"], (run, witnessed)


def test_evaluate_on_the_agents_sdk_target_against_its_plain_runner(tmp_path, project_state):
    """The seed's writer shape: the durable side replays its journaled model answer and writes one
    report; the plain side's caller pays for the model again and the report is written twice."""
    pytest.importorskip("agents", reason="the agents extra is not installed (pip install -e '.[agents]')")
    shipped = yaml.safe_load((ROOT / "configs" / "agents-writer.yaml").read_text())
    cfg = make_config(
        tmp_path,
        project_state,
        target=shipped["target"],
        **{"local_model.chat_template": shipped["local_model"]["chat_template"]},
    )
    try:
        result = evaluate(cfg, tmp_path / "evaluation", "--faults", "kill", "--concurrency", "1")
    finally:
        stop(cfg)
    row = {(r["fault"], r["mode"]): r for r in result["rows"]}
    assert {f for f, _ in row} == {"nominal", "kill"}  # nominal runs first on a target: it measures the minimum
    for mode in ("baseline", "durable"):
        assert row["nominal", mode]["completed"] == 1 and row["kill", mode]["completed"] == 1
    durable, baseline = row["kill", "durable"], row["kill", "baseline"]
    assert durable["model_requests"] <= durable["min_requests"] + 1
    assert durable["duplicated_effects"] == 0 and durable["lost_effects"] == 0
    # Killed after its first model answer (the one that calls save_report): asked again without Restate.
    assert baseline["model_requests"] >= baseline["min_requests"] + 1
    code = result["criteria"][2]
    assert "targets/agents_writer" not in code["value"] and "durable" in code["value"]
