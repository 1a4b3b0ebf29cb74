"""The storm's three-source verdict, on synthetic evidence: each disagreement is a FAIL that says which."""

from __future__ import annotations

from types import SimpleNamespace

from drillkit.components.llm_tap import TapRequest
from drillkit.components.writer import Execution
from drillkit.kit import storm_checks
from drillkit.kit.pace import Pace
from drillkit.kit.storm_checks import Storm
from drillkit.reports.record import DrillRecord

STEPS = ["outline", "section:1", "section:2", "section:3", "summary", "save_report"]


def drill():
    writer = SimpleNamespace(steps=lambda: STEPS)
    return SimpleNamespace(writer=writer, record=DrillRecord("storm", {}), pace=Pace())


def run(step, attempt=1, started=10.0, outcome="ok", invocation="inv_a"):
    return Execution(invocation, step, attempt, 1, started, started + 1, outcome, 1000.0)


def request(step, attempt=1, at=10.1, status=200, invocation="inv_a"):
    return TapRequest("r", at, "POST", "/v1/chat/completions", invocation, step, attempt, "m", at + 1, status)


def verdicts(d):
    return {e.name: e.passed for e in d.record.expectations}


def test_agreeing_sources_pass():
    d = drill()
    runs = [run("outline"), run("save_report")]
    storm_checks.sources_agree(d, runs, [request("outline")])
    storm_checks.nothing_done_twice(d, {"inv_a": {"outline": 11.0}}, runs, [request("outline")])
    assert all(verdicts(d).values())


def test_a_request_the_ledger_never_started_is_named():
    d = drill()
    storm_checks.sources_agree(d, [run("outline")], [request("outline"), request("outline", attempt=2)])
    [agree] = d.record.expectations
    assert not agree.passed and "inv_a/outline#2" in agree.detail and "never started" in agree.detail


def test_an_ok_llm_step_the_model_never_answered_is_named():
    d = drill()
    storm_checks.sources_agree(d, [run("section:1")], [request("section:1", status=None)])
    [agree] = d.record.expectations
    assert not agree.passed and "model never answered" in agree.detail and "inv_a/section:1#1" in agree.detail


def test_a_step_requested_again_after_restate_journaled_it_fails_on_the_tap_alone():
    d = drill()
    journaled = {"inv_a": {"outline": 11.0}}
    runs = [run("outline")]  # the ledger saw one execution: only the tap knows of the second request
    storm_checks.nothing_done_twice(d, journaled, runs, [request("outline"), request("outline", at=12.0)])
    results = verdicts(d)
    assert results["no step Restate had journaled as done was executed again (ledger)"]
    assert not results["no step Restate had journaled as done was requested again from the model (tap)"]


def test_an_execution_started_after_the_journal_entry_fails_on_the_ledger():
    d = drill()
    runs = [run("outline"), run("outline", attempt=2, started=11.5)]
    storm_checks.nothing_done_twice(d, {"inv_a": {"outline": 11.0}}, runs, [])
    assert not verdicts(d)["no step Restate had journaled as done was executed again (ledger)"]


def test_request_bound_is_stated_and_checked():
    d = drill()
    storm = Storm(n=2, kills=1, target="writer", seed=7, concurrency=4)
    needed = [request(s, invocation=i) for i in ("inv_a", "inv_b") for s in STEPS[:-1]]
    storm_checks.requests_within_bound(d, storm, needed + [request("outline")] * 4)  # bound: 10 + 2*1*2
    [bound] = d.record.expectations
    assert bound.passed and "= 14" in bound.name and d.record.evidence["llm_requests"]["total"] == 14
    storm_checks.requests_within_bound(d, storm, needed + [request("outline")] * 5)
    assert not d.record.expectations[-1].passed


def test_latency_percentiles_come_from_restates_timestamps():
    rows = [
        {"created_at": "2026-11-28T10:00:00.000Z", "completed_at": f"2026-11-28T10:00:{s:02d}.000Z"}
        for s in range(1, 11)
    ]
    storm = Storm(n=10, kills=0, target="writer", seed=7, wall_s=20.0)
    figures = storm_checks.figures(storm, rows)
    assert figures["latency_p50_s"] in (5.0, 6.0) and figures["latency_p99_s"] == 10.0
    assert figures["throughput_inv_per_s"] == 0.5


def test_all_completed_with_success_names_the_failed_and_counts_the_missing():
    from drillkit.kit import checks

    ok = {"id": "inv_a", "completion_result": "success"}
    d = drill()
    checks.all_completed_with_success(d, ["inv_a"], [ok])
    assert verdicts(d) == {"all 1 invocations completed with success": True}

    d = drill()
    checks.all_completed_with_success(d, ["inv_a", "inv_b"], [ok, {"id": "inv_b", "completion_result": "failure"}])
    [check] = d.record.expectations
    assert not check.passed and check.detail == "1/2 success; not: ['inv_b']"

    d = drill()  # a row Restate does not have is not a success either
    checks.all_completed_with_success(d, ["inv_a", "inv_b"], [ok])
    assert not d.record.expectations[0].passed
