"""`chaos run experiments/crash.json` against a live stack: the steady state holds after the writer is
SIGKILLed mid-invocation (Chaos Toolkit's journal: status completed, deviated false)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from drillkit.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
CHAOS = shutil.which("chaos", path=str(Path(sys.executable).parent)) or shutil.which("chaos")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(CHAOS is None, reason="chaostoolkit is not installed (pip install -e '.[chaos]')"),
]


def test_crash_experiment_keeps_the_steady_state(stack: Stack, tmp_path: Path) -> None:
    journal = tmp_path / "chaos-journal.json"
    env = {**os.environ, "RESTATE_WRITER_CONFIG": str(stack.config.source)}
    run = subprocess.run(
        [
            str(CHAOS),
            "--log-file",
            str(tmp_path / "chaostoolkit.log"),
            "run",
            "experiments/crash.json",
            "--journal-path",
            str(journal),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    result = json.loads(journal.read_text())
    assert run.returncode == 0, run.stdout + run.stderr
    assert result["status"] == "completed", result["status"]
    assert result["deviated"] is False
    names = [r["activity"]["name"] for r in result["run"]]
    assert names[:3] == ["send-invocation", "section-2-running", "kill-writer"]
    killed = next(r for r in result["run"] if r["activity"]["name"] == "kill-writer")
    assert killed["status"] == "succeeded" and killed["output"]["signal"] == "SIGKILL"
    after = result["steady_states"]["after"]
    assert after["steady_state_met"] is True
    assert all(p["output"] is True for p in after["probes"])
