"""--protocol and drill.all --protocols without a stack: the shared parameter, the refusals, the matrix,
the output check (a stored output against what its journaled step results compose) and the replay count."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from drillkit import catalog
from drillkit.components.writer import compose_output
from drillkit.errors import DrillError
from drillkit.evidence import journaled_results
from drillkit.flags import FlagError
from drillkit.kit import protocols
from drillkit.kit.protocols import Attempts, compare_output
from drillkit.reports.record import PASS, DrillRecord
from tests.unit.test_tasks import run_inv

RESULTS = {
    "outline": {"research_topic": "Rivers", "sections": ["Source", "Mouth"], "answer": {"outcome": "used"}},
    "section:1": "Rivers start in hills.",
    "section:2": "They end in the sea.",
    "summary": {"short_summary": "Water flows.", "follow_up_questions": ["Why?"], "answer": {"outcome": "used"}},
    "save_report": "/tmp/restate-output/rivers.md",
}


def journal(results: dict[str, object]) -> list[dict[str, object]]:
    """sys_journal rows as Restate 1.7.12 gives them (entry_json): each Run command, then its completion
    carrying the JSON bytes the SDK sent."""
    rows: list[dict[str, object]] = [{"index": 0, "entry_json": json.dumps({"Command": {"Input": {}}})}]
    for number, (name, value) in enumerate(results.items(), start=1):
        command = {"Command": {"Run": {"completion_id": number, "name": name}}}
        done = {"Run": {"completion_id": number, "result": {"Success": list(json.dumps(value).encode())}}}
        rows.append({"index": 2 * number - 1, "name": name, "entry_json": json.dumps(command)})
        rows.append({"index": 2 * number, "entry_json": json.dumps({"Notification": {"Completion": done}})})
    return rows


# -- the parameter, declared once ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(catalog.DRILLS))
def test_every_drill_takes_the_one_shared_protocol_parameter(name):
    declared = catalog.DRILLS[name]
    assert catalog.PROTOCOL in declared.flags
    required = {p.name: p.choices[0] for p in declared.params if p.required}
    assert declared.spec(required).protocol == "h2c"
    assert declared.spec({**required, "protocol": "suspend"}).protocol == "suspend"


def test_the_protocol_flag_says_its_choices_and_default():
    assert catalog.PROTOCOL.choices == ("h2c", "http1", "suspend")
    assert catalog.PROTOCOL.help_text().endswith("(default: h2c)")
    with pytest.raises(FlagError, match="--protocol 'grpc': use h2c, http1 or suspend"):
        catalog.DRILLS["crash"].spec({"protocol": "grpc"})


def test_the_protocol_names_the_reports_and_survives_a_configured_targets_variant():
    spec = catalog.with_protocol(catalog.crash(), "suspend")
    assert catalog.label(spec) == "crash-KILL-suspend" and catalog.label(catalog.crash()) == "crash-KILL"
    target = SimpleNamespace(target=object())
    assert catalog.resolve(spec, target).protocol == "suspend"  # type: ignore[arg-type]


def stack(backend: str = "native", target: object = None) -> SimpleNamespace:
    return SimpleNamespace(target=target, server=SimpleNamespace(name=backend))


@pytest.mark.parametrize(
    ("protocol", "backend", "target", "drill", "refused"),
    [
        ("h2c", "cluster", None, "stuck", None),
        ("http1", "native", None, "crash", None),
        ("suspend", "docker", None, "crash", None),
        ("http1", "cluster", None, "node-loss", None),
        ("suspend", "cluster", None, "node-loss", "does not restart every node"),
        ("suspend", "docker-cluster", None, "node-loss", "on the docker-cluster backend"),
        ("suspend", "native", None, "stuck", "short Restate timeouts"),
        ("http1", "native", None, "upgrade", "registers its revisions itself"),
        ("http1", "native", SimpleNamespace(what="target ts-writer"), "crash", "on a configured target only h2c"),
    ],
)
def test_what_each_protocol_is_refused_on_and_why(protocol, backend, target, drill, refused):
    why = protocols.refusal(protocol, stack(backend, target), catalog.NOT_OVER.get(drill, {}))  # type: ignore[arg-type]
    assert (why is None) if refused is None else (refused in str(why))


def test_the_catalogs_check_refuses_before_anything_starts():
    spec = catalog.with_protocol(catalog.stuck(), "suspend")
    with pytest.raises(catalog.NotApplicable, match=r"drill\.stuck --protocol suspend: it registers"):
        catalog.check(spec, stack())  # type: ignore[arg-type]
    with pytest.raises(FlagError, match="--protocol 'tcp'"):
        catalog.check(catalog.with_protocol(catalog.crash(), "tcp"), stack())  # type: ignore[arg-type]


# -- the matrix -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "wanted"),
    [
        (None, ("h2c",)),
        ("all", ("h2c", "http1", "suspend")),
        ("suspend,h2c", ("h2c", "suspend")),
        (" http1 ", ("http1",)),
    ],
)
def test_protocols_for_drill_all(given, wanted):
    assert catalog.protocols_given(given) == wanted


@pytest.mark.parametrize("given", ["grpc", "h2c,tcp", ","])
def test_an_unknown_protocol_for_drill_all_is_named(given):
    with pytest.raises(DrillError, match=r"--protocols .*use all, or a comma-separated list of h2c, http1, suspend"):
        catalog.protocols_given(given)


def test_drill_all_refuses_an_unknown_protocol_with_a_usage_error():
    assert run_inv("drill.all", "--protocols", "grpc") == 2


def test_the_matrix_runs_every_drill_over_each_protocol_in_turn():
    drills = catalog.all_drills()
    runs = catalog.matrix(drills, protocols.PROTOCOLS, skip=frozenset({"storm"}))
    kept = [d for d in drills if d.name != "storm"]
    assert len(runs) == 3 * len(kept)
    assert [r.protocol for r in runs] == ["h2c"] * len(kept) + ["http1"] * len(kept) + ["suspend"] * len(kept)
    assert len({catalog.label(r) for r in runs}) == len(runs)  # every run has its own report dir
    assert catalog.matrix(drills) == [catalog.with_protocol(d, "h2c") for d in drills]  # default: today's


def test_the_summary_has_a_row_per_drill_and_a_column_per_protocol():
    def done(protocol: str, verdict: str) -> tuple[DrillRecord, Path]:
        record = DrillRecord("crash", {"signal": "KILL", "at": "section:2", "protocol": protocol})
        record.duration_s = 31.0
        record.expectations = []
        if verdict == PASS:
            record.expect("x", True, "")
        return record, Path(f"/r/01-crash-KILL-{protocol}")

    results = [done("h2c", PASS), done("suspend", "INCONCLUSIVE")]
    refused = [(catalog.with_protocol(catalog.stuck(), "http1"), "why")]
    rows = catalog.matrix_rows(results, refused, protocols.PROTOCOLS)
    assert rows == [
        ("crash-KILL", "PASS 31 s", "-", "INCONCLUSIVE 31 s"),
        ("stuck-freeze", "-", "NOT APPLICABLE", "-"),
    ]  # stuck has modes now


# -- the output check -----------------------------------------------------------------------------


def test_journaled_results_are_decoded_from_restates_bytes_in_journal_order():
    rows = journal(RESULTS)
    rows.insert(3, {"index": 99, "entry_json": "not json"})
    assert journaled_results(rows) == RESULTS
    assert list(journaled_results(rows)) == list(RESULTS)
    unfinished = journal(RESULTS)[:-1]  # save_report's command, no completion yet
    assert "save_report" not in journaled_results(unfinished)


def test_an_output_equal_to_its_journals_composition_passes():
    output = compose_output(RESULTS)
    assert output["markdown_report"].startswith("# Rivers\n\n## Summary\n\nWater flows.")
    assert "## Mouth\n\nThey end in the sea." in output["markdown_report"]
    assert compare_output(output, journaled_results(journal(RESULTS))) is None
    assert compare_output({**output, "revision": 2}, RESULTS) is None  # a later revision says so


def test_a_replay_that_changed_the_output_is_caught():
    output = compose_output(RESULTS)
    # A section asked again on replay and its new answer used: the stored output differs from the journal.
    changed = {**RESULTS, "section:2": "They end in a lake."}
    assert compare_output(output, changed) == "differs in file_name, markdown_report"
    assert compare_output({**output, "short_summary": "Other."}, RESULTS) == "differs in short_summary"
    assert compare_output({**output, "extra": 1}, RESULTS) == "differs in extra (not composed)"
    assert "lacks a step result" in str(compare_output(output, {k: v for k, v in RESULTS.items() if k != "summary"}))
    assert "not an object" in str(compare_output("text", RESULTS))


# -- the replays ----------------------------------------------------------------------------------


def row(iid: str, start: str | None, retry: int = 1, status: str = "running") -> dict[str, object]:
    return {"id": iid, "status": status, "retry_count": retry, "last_start_at": start}


def test_attempts_without_a_failure_are_resumptions_by_replay():
    attempts = Attempts()
    attempts.add([row("a", "t1"), row("b", "t1")])
    attempts.add([row("a", "t1"), row("b", "t1")])  # the same attempt sampled again
    attempts.add([row("a", "t2"), row("b", None, status="suspended")])
    attempts.add([row("a", "t3"), row("b", "t2", retry=2)])  # b's second attempt: a failure's retry
    assert attempts.resumed("a") == 2 and attempts.resumed("b") == 0
    assert attempts.summary()["a"] == {
        "attempts_seen": 3,
        "max_retry_count": 1,
        "resumed_by_replay": 2,
        "seen_suspended": False,
    }
    assert attempts.summary()["b"]["seen_suspended"] is True


def test_no_replay_seen_is_inconclusive_never_a_pass():
    drill = SimpleNamespace(record=DrillRecord("crash", {}))
    drill.record.expect("completed with success", True, "")
    protocols.replays_happened(drill, "suspend", Attempts(), ["a"])  # type: ignore[arg-type]
    assert drill.record.verdict == "INCONCLUSIVE" and "no suspension or replay seen" in str(drill.record.inconclusive)
    seen = Attempts()
    seen.add([row("a", "t1")])
    seen.add([row("a", "t2")])
    drill = SimpleNamespace(record=DrillRecord("crash", {}))
    protocols.replays_happened(drill, "suspend", seen, ["a"])  # type: ignore[arg-type]
    assert drill.record.verdict == PASS


@pytest.mark.parametrize(("text", "seconds"), [("1m", 60.0), ("0s", 0.0), ("1m 30s", 90.0), ("500ms", 0.5)])
def test_restates_durations_are_read(text, seconds):
    assert protocols.duration_s(text) == seconds
    assert protocols.duration_s("soon") is None
