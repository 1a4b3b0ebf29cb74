"""drill.model's pieces that need no server: where a fault lands, the evidence read back, the checks."""

import json

import pytest

from drillkit import catalog
from drillkit.components.llm_tap import TapRequest
from drillkit.drills.model_faults import _each_followed, fault_steps, raw_json_fragments, step_result


def journal_rows(result: object) -> list[dict]:
    """sys_journal rows as Restate 1.7 gives them: a Run command, then its completion with the bytes."""
    value = list(json.dumps(result).encode())
    return [
        {"index": 1, "entry_json": json.dumps({"Command": {"Run": {"completion_id": 1, "name": "outline"}}})},
        {"index": 3, "entry_json": json.dumps({"Command": {"Run": {"completion_id": 2, "name": "summary"}}})},
        {
            "index": 4,
            "entry_json": json.dumps(
                {"Notification": {"Completion": {"Run": {"completion_id": 2, "result": {"Success": value}}}}}
            ),
        },
    ]


def test_the_journaled_result_of_a_step_is_decoded_from_restates_bytes():
    result = {"short_summary": "S", "answer": {"outcome": "repaired", "requests": 1, "problems": ["cut"]}}
    assert step_result(journal_rows(result), "summary") == result
    assert step_result(journal_rows(result), "outline") is None  # not completed yet
    assert step_result([{"entry_json": "not json"}], "summary") is None


@pytest.mark.parametrize(
    "text",
    [
        '{"short_summary": "x", "follow_up_questions":',
        "Summary: {'short_summary': 'x'}",
        'the model said "research_topic": "Rivers"',
    ],
)
def test_raw_json_fragments_are_found(text):
    assert raw_json_fragments(text)


def test_a_clean_report_has_no_raw_json_fragment():
    report = '# Rivers\n\n## Summary\n\nRivers carry water: a summary (short).\n\n## Part 1\n\nText, with "quotes".'
    assert raw_json_fragments(report) == []


def test_where_each_fault_lands():
    assert fault_steps("truncated") == fault_steps("malformed") == ("summary",)
    assert fault_steps("slow") == ()
    assert all(fault_steps(f) == ("outline",) for f in ("429", "500", "503", "400", "reset"))


def tap(rid, step, t, fault=None, status=200, end=None):
    path = "/v1/chat/completions"
    return TapRequest(rid, t, "POST", path, "inv", step, 1, "m", end_time=end, status=status, fault=fault)


def test_each_faulted_request_is_paired_with_the_next_of_its_step():
    requests = [
        tap("a", "outline", 0.0, "429", 429, 0.01),
        tap("b", "outline", 2.1, "429", 429, 2.11),
        tap("c", "outline", 4.2),
        tap("d", "section:1", 5.0),
    ]
    assert [(f.id, n.id) for f, n in _each_followed(requests)] == [("a", "b"), ("b", "c")]


def test_the_catalog_spec_names_its_fault_and_refuses_bad_parameters():
    spec = catalog.model("429", burst=2)
    assert (spec.name, spec.parameters) == ("model", {"fault": "429", "burst": 2})
    assert catalog.label(spec) == "model-429"
    assert isinstance(spec.on_target, str)  # not written for configured targets
    assert "truncated" in catalog.MODEL_FAULTS


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [({}, "--fault is required"), ({"fault": "418"}, "--fault '418'"), ({"fault": "429", "burst": "0"}, "--burst")],
)
def test_drill_model_refuses_a_missing_or_unknown_fault_with_exit_2(kwargs, flag, capsys):
    from invoke import Context, Exit

    import tasks

    task = tasks.ns.collections["drill"].tasks["model"]
    with pytest.raises(Exit) as err:
        task.body(Context(), **kwargs)
    assert err.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: {flag}")


def judged(check, *args):
    """Run one of the drill's checks on a bare record; returns its one expectation."""
    from types import SimpleNamespace

    from drillkit.reports.record import DrillRecord

    record = DrillRecord("model", {})
    check(SimpleNamespace(record=record), *args)
    [expectation] = record.expectations
    return expectation


def test_a_retry_sooner_than_retry_after_fails_the_drill_and_one_on_time_passes():
    from drillkit.drills.model_faults import _retry_after_honoured

    limited = tap("a", "outline", 0.0, "429", 429, 0.01)
    on_time = judged(_retry_after_honoured, [limited, tap("b", "outline", 2.02)])
    early = judged(_retry_after_honoured, [limited, tap("b", "outline", 1.2)])
    assert on_time.passed and "asked again after 2.01 s" in on_time.detail
    assert not early.passed and "1.19 s < 2 s" in early.detail
    assert not judged(_retry_after_honoured, [limited]).passed  # no retry seen: nothing honoured


def test_a_report_with_raw_json_fails_the_drill(tmp_path):
    from types import SimpleNamespace

    from drillkit.drills.model_faults import _no_raw_json
    from drillkit.reports.record import DrillRecord

    report = tmp_path / "r.md"
    report.write_text('# T\n\n## Summary\n\n{"short_summary": "cut')
    record = DrillRecord("model", {})
    record.evidence["output"] = {"markdown_report": report.read_text(), "output_path": str(report)}
    _no_raw_json(SimpleNamespace(record=record))
    [expectation] = record.expectations
    assert not expectation.passed and "markdown_report" in expectation.detail and "report file" in expectation.detail
