"""The evaluation's decision and files, on synthetic runs: each criterion met or not with its figure."""

from __future__ import annotations

import json
from pathlib import Path

from drillkit.evaluation import decision, report
from drillkit.evaluation.modes import Outcome
from drillkit.evaluation.runner import Evaluation, Run, rows


def run(fault, mode, completed=True, seconds=4.0, requests=5, twice=0, lost=0):
    return Run(fault, mode, Outcome(completed, seconds, {}), requests, 5, twice, lost)


def test_code_lines_count_code_not_blanks_comments_or_docstrings(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        '"""Module doc."""\n\n# a comment\ndef f():\n    """Doc\n    more."""\n    x = 1\n\n    return x\n'
    )
    assert decision.code_lines(source, "f") == 3  # def, x = 1, return
    assert decision.code_lines(source, None) == 3


def test_durability_lines_are_counted_from_the_real_modules():
    durable, baseline = decision.durability_lines()
    assert durable > 0 and baseline > 0


def test_go_when_every_criterion_is_met(monkeypatch):
    monkeypatch.setattr(decision, "durability_lines", lambda parts: (60, 30))
    evaluation = Evaluation(
        runs=[
            run("nominal", "baseline", seconds=4.0),
            run("nominal", "durable", seconds=4.2),
            run("kill", "baseline", completed=False),
            run("kill", "durable", requests=6),
            run("tool-error", "baseline", twice=1, requests=15),
            run("tool-error", "durable"),
        ]
    )
    result = decision.decide(evaluation)
    assert result["decision"] == "Go", result["reasons"]
    faults, overhead, code = result["criteria"]
    assert faults["value"].startswith("+100.0 points") and faults["met"]
    assert "completed 100 % vs 50 %" in faults["value"]
    assert overhead["value"] == "+5.0 %" and overhead["met"]
    assert code["value"].startswith("30 ") and code["met"]


def test_nogo_names_what_failed(monkeypatch):
    monkeypatch.setattr(decision, "durability_lines", lambda parts: (200, 30))
    evaluation = Evaluation(
        runs=[
            run("nominal", "baseline", seconds=4.0),
            run("nominal", "durable", seconds=5.0),
            run("kill", "baseline", requests=6),  # completed, and only the cut request asked again: clean
            run("kill", "durable"),
        ]
    )
    result = decision.decide(evaluation)
    assert result["decision"] == "NoGo"
    assert [c["met"] for c in result["criteria"]] == [False, False, False]
    assert "NOT met: nominal overhead" in " ".join(result["reasons"])


def test_rows_sum_runs_and_take_latency_of_completed_ones():
    table = rows(Evaluation(runs=[run("kill", "durable", seconds=2.0), run("kill", "durable", completed=False)]))
    (row,) = table
    assert (row.runs, row.completed, row.model_requests, row.min_requests, row.p50_s) == (2, 1, 10, 10, 2.0)


def test_the_files_keep_the_promised_json_shape(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(decision, "durability_lines", lambda parts: (60, 30))
    result = decision.decide(Evaluation(runs=[run("kill", "baseline"), run("kill", "durable")]))
    result["context"] = {"machine": "test <script>"}
    files = report.write(tmp_path, result)
    data = json.loads(files[0].read_text())
    assert data["decision"] in ("Go", "NoGo")
    assert {"name", "target", "value", "met"} <= set(data["criteria"][0])
    keys = {"fault", "mode", "runs", "completed", "model_requests", "min_requests", "duplicated_effects"}
    assert keys | {"lost_effects", "p50_s", "p95_s"} <= set(data["rows"][0])
    page = files[2].read_text()
    assert "<svg" in page and "<script>" not in page and "http" not in page.split("<body>")[1]
    assert "| kill | durable | 1/1 |" in files[1].read_text()


def test_a_recovery_that_redoes_finished_work_is_not_clean():
    assert decision.clean(run("kill", "baseline", requests=6))
    assert not decision.clean(run("kill", "baseline", requests=8))  # two finished steps asked again
    assert not decision.clean(run("kill", "durable", twice=1))
    assert not decision.clean(run("kill", "durable", completed=False))
