"""Drills on a service this repository did not write, described only by a `target` section.

`stranger/notes_service.py` is written as a stranger would write a Restate service: no ledger, no
headers for us, two model steps that share one name, a file-writing step, one fault hook. Each drill's
verdict is checked, and so is the evidence behind it: the model requests the tap saw, Restate's journal,
the pids signalled.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from drillkit import catalog, target_check

from .conftest import ROOT, make_config, stack_up
from .stranger import stranger


@pytest.fixture(scope="module")
def notes(tmp_path_factory, project_state):
    with stack_up(make_config(tmp_path_factory.mktemp("targets"), project_state, target=stranger())) as stack:
        yield stack


def expectations(directory: Path) -> dict[str, bool]:
    record = json.loads((directory / "journal.json").read_text())
    return {e["name"]: e["passed"] for e in record["expectations"]}


def test_target_check_prints_the_journal_shape_and_kill_points(notes):
    result = target_check.check(notes)
    assert [s["name"] for s in result.shape] == ["ask", "ask", "store"]
    assert [s["model_requests"] for s in result.shape] == [1, 1, 0]  # read at the tap, not from the service
    assert result.model_requests == 2
    points = dict(result.kill_points)
    assert points["crash"].startswith("run:2: ask cut in flight")
    assert "NOTES_FAIL_STORE" in points["tool-error"]
    assert Path(result.output["path"]).is_file()


def test_crash_on_a_service_we_did_not_write(notes, tmp_path):
    record, directory = catalog.run(notes, catalog.crash(), tmp_path / "crash", keep_up=True)
    assert record.verdict == "PASS", record.reasons()
    assert record.parameters["at"] == "run:2"
    met = expectations(directory)
    assert met["no Run that had finished before the kill ran again (model requests at the tap)"]
    tap = record.evidence["tap_requests"]
    nonce = next(iter(n for r in tap for n in r["nonces"]))
    assert all(nonce in r["nonces"] for r in tap)  # attributed by the body's nonce, no header needed
    assert len({r["fingerprint"] for r in tap}) == 2  # two questions; the cut one may be asked twice
    assert len(tap) in (2, 3)
    killed = [e for e in record.timeline if e.event == "killed"]
    assert killed and "SIGKILL" in killed[0].detail


def test_tool_error_and_storm_on_the_stranger(notes, tmp_path):
    record, _ = catalog.run(notes, catalog.tool_error(2), tmp_path / "tool", keep_up=True)
    assert record.verdict == "PASS", record.reasons()
    record, _ = catalog.run(notes, catalog.storm(invocations=6, kills=1, seed=3), tmp_path / "storm", keep_up=True)
    assert record.verdict == "PASS", record.reasons()
    assert record.evidence["storm"]["invocations"] == 6
    assert record.evidence["storm"]["model_steps"] == 12  # two model steps each, counted at the tap


def test_the_chaos_crash_experiment_runs_on_the_stranger(notes, tmp_path):
    """The same experiments/crash.json, on a target named only by its config (`section:2` there means the
    target's default kill point, run:2)."""
    chaos = shutil.which("chaos", path=str(Path(sys.executable).parent)) or shutil.which("chaos")
    if chaos is None:
        pytest.skip("chaostoolkit is not installed (pip install -e '.[chaos]')")
    journal = tmp_path / "chaos-journal.json"
    run = subprocess.run(
        [
            chaos,
            "--log-file",
            str(tmp_path / "chaos.log"),
            "run",
            "experiments/crash.json",
            "--journal-path",
            str(journal),
        ],
        cwd=ROOT,
        env={**os.environ, "RESTATE_WRITER_CONFIG": str(notes.config.source)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads(journal.read_text())
    assert result["status"] == "completed" and result["deviated"] is False
    killed = next(r for r in result["run"] if r["activity"]["name"] == "kill-writer")
    assert killed["status"] == "succeeded" and killed["output"]["signal"] == "SIGKILL"
