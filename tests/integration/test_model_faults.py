"""`inv drill.model` for real: the LLM tap answers for the local model, the real writer copes, Restate judges.

One stack for the module (the drills find it up and leave it up); each test runs the task as a person
would and reads the verdict and the evidence back from its journal.json.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from drillkit.components.tap_faults import FAULTS
from drillkit.drills.model_faults import RETRY_AFTER_S, TERMINAL_WITHIN_S, raw_json_fragments
from drillkit.stack import Stack

from .conftest import ROOT

INV = [sys.executable, "-m", "invoke"]


def drill_model(stack: Stack, reports: Path, *flags: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = subprocess.run(
        [*INV, "drill.model", *flags, "--config", str(stack.config.source), "--report-dir", str(reports)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    journal = reports / "journal.json"
    assert journal.is_file(), out.stdout[-3000:] + out.stderr[-3000:]
    return out, json.loads(journal.read_text())


def passed(out: subprocess.CompletedProcess[str], record: dict[str, Any]) -> None:
    assert out.returncode == 0 and record["verdict"] == "PASS", (record["reasons"], out.stderr[-2000:])


def test_a_400_ends_the_invocation_terminally_at_once_with_one_model_request(stack, tmp_path):
    out, record = drill_model(stack, tmp_path / "r", "--fault", "400")
    passed(out, record)
    [request] = record["evidence"]["tap_requests"]
    assert (request["fault"], request["status"], request["step"]) == ("400", 400, "outline")
    row = record["evidence"]["invocation"]
    assert row["status"] == "completed" and row["completion_result"] == "failure"
    sent = next(e["offset_s"] for e in record["timeline"] if e["event"] == "sent")
    done = next(e["offset_s"] for e in record["timeline"] if e["event"] == "completed")
    assert done - sent < TERMINAL_WITHIN_S


def test_a_429_burst_is_retried_no_earlier_than_retry_after_and_completes(stack, tmp_path):
    out, record = drill_model(stack, tmp_path / "r", "--fault", "429", "--burst", "2")
    passed(out, record)
    outline = [r for r in record["evidence"]["tap_requests"] if r["step"] == "outline"]
    assert [r["status"] for r in outline] == [429, 429, 200]
    for limited, retry in itertools.pairwise(outline):
        assert limited["retry_after_s"] == RETRY_AFTER_S
        assert retry["time"] - limited["end_time"] >= RETRY_AFTER_S - 0.05
    assert record["evidence"]["invocation"]["completion_result"] == "success"


def test_a_truncated_summary_is_repaired_and_no_raw_json_reaches_the_report(stack, tmp_path):
    out, record = drill_model(stack, tmp_path / "r", "--fault", "truncated")
    passed(out, record)
    answer = record["evidence"]["journaled_answer"]
    assert answer["outcome"] in ("repaired", "fallback") and answer["requests"] == 1
    assert "cut off at the token limit" in answer["problems"][0]
    output = record["evidence"]["output"]
    assert raw_json_fragments(output["markdown_report"]) == []
    assert raw_json_fragments(Path(output["output_path"]).read_text()) == []


@pytest.mark.parametrize("fault", ["500", "reset", "hang"])
def test_a_failed_answer_is_retried_by_restate_and_completes(stack, tmp_path, fault):
    out, record = drill_model(stack, tmp_path / "r", "--fault", fault)
    passed(out, record)
    outline = [r for r in record["evidence"]["tap_requests"] if r["step"] == "outline"]
    assert [r["fault"] for r in outline] == [fault, None]
    if fault == "hang":  # no answer at all: the writer's own timeout gave the request up, the model never saw it
        assert outline[0]["outcome"] == "client_gone" and outline[0]["status"] is None


@pytest.mark.long
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_model_fault_passes(stack, tmp_path, fault):
    """Opt-in (--long, about 3 min): `inv drill.model --fault F` for every fault of the tap's plan, each judged by
    the drill's own expectation for it (the suite runs six of the nine above)."""
    out, record = drill_model(stack, tmp_path / "r", "--fault", fault)
    passed(out, record)
