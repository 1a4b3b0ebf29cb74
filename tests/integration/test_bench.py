"""`inv bench` runs for real and writes what it promises (a smoke run of two groups; figures are never
asserted against time targets here: speed is measured by the benchmark, not by tests)."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import ROOT, make_config


def test_bench_writes_machine_versions_and_figures(tmp_path, project_state):
    cfg = make_config(tmp_path, project_state)
    out_file = tmp_path / "bench.json"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "invoke",
            "bench",
            "--quick",
            "--only",
            "cold,storm",
            "--config",
            str(cfg),
            "--out",
            str(out_file),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads(out_file.read_text())
    machine = result["machine"]
    assert machine["cores"] >= 1 and machine["cpu"] and machine["python"]
    assert machine["restate_server"].endswith("1.7.12") and machine["restate_sdk"]
    figures = {f["name"]: f for f in result["figures"]}
    cold = figures["inv up (command), all healthy"]
    assert cold["stats"]["n"] == 3 and cold["stats"]["min"] <= cold["stats"]["median"] <= cold["stats"]["max"]
    label = "50 invocations, 3 SIGKILLs (stub)"
    verdict = figures[f"{label}: verdict"]
    assert verdict["samples"] == [1.0] and "50/50 success" in verdict["note"]  # the storm drill passed
    assert figures[f"{label}: finished steps run or requested again"]["samples"] == [0.0]
    assert figures[f"{label}: LLM requests per LLM step (tap)"]["samples"][0] >= 1.0
    assert "benchmarks on" in out.stdout
