"""drill.upgrade without a server: its checks on given rows (Restate's, as measured on 1.7.12), its
parameter checks, its task's flags, and its report's revision lanes."""

import json
from types import SimpleNamespace

import pytest

from drillkit import catalog
from drillkit.drills.upgrade import check_upgrade
from drillkit.errors import ConfigError
from drillkit.kit import upgrade_checks as judge
from drillkit.reports import html_revisions
from drillkit.reports.record import DrillRecord, render_markdown
from writer_service.ledger import Execution

R1, R2 = "dp_11qfhtlGngSQM7pk0v4Abzr", "dp_12cR3GKiUs2KBEpafRjSAbD"

# Restate 1.7.12's row and event for an invocation moved onto code whose first Run has another name.
MISMATCH_ROW = {
    "id": "inv_1",
    "status": "backing-off",
    "retry_count": 1,
    "pinned_deployment_id": R2,
    "last_failure_error_code": "RT0016",
    "last_failure_related_command_name": "plan",
    "last_failure": "[570 Journal mismatch] Found a mismatch between the code paths taken during the previous "
    "execution and the paths taken during this execution.\nThis typically happens when some parts of the code "
    "are non-deterministic.\n- The mismatch happened while executing 'run' (index '1')\n- Difference:\n"
    "   name: outline != plan",
}
MISMATCH_EVENT = {
    "event_type": "TransientError",
    "event_json": json.dumps({"ty": "TransientError", "error_code": 570, "restate_doc_error_code": "RT0016"}),
}


def row(invocation_id, pinned, status="completed", result="success"):
    return {"id": invocation_id, "pinned_deployment_id": pinned, "status": status, "completion_result": result}


def test_pinned_elsewhere_names_each_invocation_not_on_the_deployment():
    rows = [row("inv_a", R1), row("inv_b", R2), {"id": "inv_c", "status": "pending"}]
    assert judge.pinned_elsewhere(rows, ["inv_a"], R1) == []
    assert judge.pinned_elsewhere(rows, ["inv_a", "inv_b", "inv_c", "inv_d"], R1) == [
        f"inv_b: pinned to {R2}",
        "inv_c: pinned to nothing",  # not started yet: no deployment chosen
        "inv_d: no row",
    ]


def test_a_revision_is_drained_when_nothing_pinned_to_it_is_unfinished():
    rows = [row("inv_a", R1), row("inv_b", R1, status="backing-off", result=None), row("inv_c", R2, "running")]
    assert judge.unfinished_pinned(rows, R1) == ["inv_b"]
    assert judge.unfinished_pinned([row("inv_a", R1), row("inv_c", R2, "running")], R1) == []


def test_not_completed_with_success_says_status_and_result():
    rows = [row("inv_a", R1), row("inv_b", R1, result="failure")]
    assert judge.not_completed_with_success(rows, ["inv_a", "inv_b", "inv_x"]) == [
        "inv_b: status=completed result=failure",
        "inv_x: status=None result=None",
    ]


def test_ran_elsewhere_finds_a_step_run_by_another_revisions_process():
    runs = [
        Execution("inv_a", "outline", 1, 101, 1.0, 1.1, "ok"),
        Execution("inv_a", "section:1", 1, 202, 1.2, 1.3, "ok"),  # revision 2's process: wrong
        Execution("inv_b", "outline", 1, 202, 1.0, 1.1, "ok"),
    ]
    assert judge.ran_elsewhere(runs, ["inv_a"], [101]) == [runs[1]]
    assert judge.ran_elsewhere(runs, ["inv_b"], [202]) == []
    assert judge.ran_by(runs, [202]) == runs[1:]


def test_the_ledger_is_summed_up_per_revision_by_pid():
    first = judge.Revision("revision 1", 1, "compatible", R1, "http://127.0.0.1:9080", [101, 103])
    second = judge.Revision("revision 2", 2, "compatible", R2, "http://127.0.0.1:9081", [202])
    runs = [
        Execution("inv_a", "outline", 1, 101, 1.0, 1.1, "ok"),
        Execution("inv_a", "outline", 2, 103, 2.0, 2.1, "ok"),  # revision 1 started again
        Execution("inv_b", "outline", 1, 202, 1.0, 1.1, "ok"),
        Execution("inv_b", "summary", 1, 999, 1.2, 1.3, "ok"),
        Execution("inv_z", "outline", 1, 101, 1.0, 1.1, "ok"),  # not the drill's
    ]
    assert judge.executions_by_revision(runs, ["inv_a", "inv_b"], [first, second]) == {
        "revision 1": {"executions": 2, "invocations": 1, "pids": [101, 103]},
        "revision 2": {"executions": 1, "invocations": 1, "pids": [202]},
        "other": {"executions": 1, "invocations": 1, "pids": [999]},
    }


def test_the_output_says_its_revision_and_revision_1_says_none():
    outputs = {"inv_a": {"markdown_report": "x"}, "inv_b": {"revision": 2}, "inv_c": None}
    assert judge.output_revisions(outputs) == {"inv_a": 1, "inv_b": 2, "inv_c": 0}


def test_the_journal_mismatch_is_read_from_restates_row_and_events():
    seen = judge.row_mismatch(MISMATCH_ROW)
    assert seen is not None and "RT0016" in seen and "[570 Journal mismatch]" in seen
    assert "name: outline != plan" in judge.mismatch_detail(MISMATCH_ROW)
    assert judge.event_mismatch([{"event_type": "Paused", "event_json": "{}"}, MISMATCH_EVENT]) is not None
    assert judge.event_mismatch([{**MISMATCH_EVENT, "event_json": json.loads(MISMATCH_EVENT["event_json"])}])


def test_a_connection_error_is_not_a_journal_mismatch():
    refused = {"status": "backing-off", "last_failure_error_code": "RT0010", "last_failure": "[RT0010] connect refused"}
    assert judge.row_mismatch(refused) is None
    assert judge.event_mismatch([{"event_type": "TransientError", "event_json": '{"error_code": 503}'}]) is None
    assert judge.event_mismatch([{"event_type": "TransientError", "event_json": "not json"}]) is None


def test_same_journal_names_what_was_added():
    before = [
        {"index": 0, "entry_type": "Command: Input"},
        {"index": 1, "entry_type": "Command: Run", "name": "outline"},
    ]
    assert judge.same_journal(before, list(before)) == []
    grown = [*before, {"index": 2, "entry_type": "Notification: Run"}]
    assert judge.same_journal(before, grown) == ["2: Notification: Run"]
    assert judge.same_journal(before, before[:1]) == ["entries removed"]


def test_deployment_ids_are_checked_before_they_reach_sql():
    assert judge.deployment_sql(R1) == R1
    with pytest.raises(ValueError, match="not a deployment id"):
        judge.deployment_sql("dp_1' OR '1'='1")


def handles_on_port(port):
    return SimpleNamespace(config=SimpleNamespace(service=SimpleNamespace(port=port), source="cfg.yaml"))


@pytest.mark.parametrize(
    ("mode", "invocations", "port", "message"),
    [
        ("slow", 4, 9080, "--mode slow: must be one of drain, early, incompatible"),
        ("drain", 0, 9080, "--invocations 0: must be 1 to 50"),
        ("drain", 51, 9080, "--invocations 51"),
        (
            "incompatible",
            4,
            65534,
            "cfg.yaml: service.port 65534: the drill's second revision listens on the next ports (65536)",
        ),
    ],
)
def test_the_spec_refuses_what_this_config_cannot_run(mode, invocations, port, message):
    with pytest.raises(ConfigError) as err:
        check_upgrade(handles_on_port(port), mode, invocations)  # type: ignore[arg-type]
    assert message in str(err.value)


def test_the_spec_carries_its_parameters_and_says_why_targets_are_out():
    spec = catalog.upgrade("early", 3, 30.0)
    assert spec.name == "upgrade" and spec.parameters == {"mode": "early", "invocations": 3, "deadline_s": 30.0}
    assert isinstance(spec.on_target, str) and "revision" in spec.on_target
    assert spec.check is not None
    spec.check(handles_on_port(9080))  # type: ignore[arg-type]


@pytest.mark.parametrize(("argv", "flag"), [(["--mode", "slow"], "--mode"), (["--invocations", "0"], "--invocations")])
def test_the_tasks_bad_flags_exit_2_before_anything_starts(argv, flag, capsys, tmp_path, monkeypatch):
    from tests.unit.test_tasks import run_inv

    monkeypatch.chdir(tmp_path)  # nothing may be written where the test runs
    assert run_inv("drill.upgrade", *argv) == 2
    assert capsys.readouterr().err.startswith(f"error: {flag}")
    assert not (tmp_path / ".drill").exists()


def upgrade_record():
    record = {
        "started_at": 1000.0,
        "duration_s": 10.0,
        "timeline": [
            {"offset_s": 4.0, "event": "registered", "detail": "revision 2"},
            {"offset_s": 6.0, "event": "drained", "detail": "revision 1"},
            {"offset_s": 6.1, "event": "removed", "detail": "revision 1"},
        ],
        "evidence": {
            "revisions": [
                {"label": "revision 1", "deployment_id": R1, "pids": [11], "restate_revision": 1, "removed_s": 6.1},
                {"label": "revision 2", "deployment_id": R2, "pids": [22], "restate_revision": 2, "registered_s": 4.0},
            ],
            "pinned": {"inv_a": R1, "inv_b": R2, "inv_c": R1},
            "moved": {"id": "inv_c", "onto": R2, "from_s": 5.0, "back_s": 5.5},
            "population": {
                "sent": ["inv_a", "inv_b", "inv_c"],
                "invocations": [
                    {
                        "id": "inv_a",
                        "created_at": "1970-01-01T00:16:43.000Z",
                        "completed_at": "1970-01-01T00:16:45.000Z",
                    },
                    {
                        "id": "inv_b",
                        "created_at": "1970-01-01T00:16:44.000Z",
                        "completed_at": "1970-01-01T00:16:46.000Z",
                    },
                    {
                        "id": "inv_c",
                        "created_at": "1970-01-01T00:16:43.000Z",
                        "completed_at": "1970-01-01T00:16:46.000Z",
                    },
                ],
            },
        },
    }
    return record


def test_the_report_draws_a_lane_per_revision_with_its_pinned_invocations():
    html = "\n".join(html_revisions.render(upgrade_record()))
    assert "<h2>Revisions over time</h2>" in html
    assert html.count("pinned to revision 1") == 2 and html.count("pinned to revision 2") == 1
    assert "inv_c: moved onto revision 2 5.00-5.50 s" in html and 'fill="url(#hatch)"' in html
    assert "registered 4.00s" in html and "removed 6.10s" in html
    assert html.count("<tr><td>revision ") == 2  # the table: one row per revision


def test_no_revisions_no_picture():
    assert html_revisions.render({"evidence": {}}) == []


def test_the_markdown_report_lists_the_revisions():
    record = DrillRecord("upgrade", {"mode": "drain"})
    record.evidence.update(upgrade_record()["evidence"])
    text = render_markdown(record)
    assert "## Revisions (Restate deployments)" in text
    assert f"| revision 1 | `{R1}` | 1 | 11 | before | 6.1 | 2 |" in text
    assert f"| revision 2 | `{R2}` | 2 | 22 | 4.0 | - | 1 |" in text
