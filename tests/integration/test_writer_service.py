"""The writer for real: HOW-TO body through Restate to the local model, journal, ledger, errors, crashes."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from drillkit.errors import HttpError
from drillkit.evidence import journal_steps
from drillkit.howto import howto_body
from drillkit.waits import poll
from writer_service.ledger import executions, read_ledger

STEPS = ["outline", "section:1", "section:2", "section:3", "summary", "save_report"]


def wait_completed(stack, invocation_id, timeout_s=300.0):
    return poll(
        lambda: stack.admin.invocation(invocation_id) or {},
        lambda row: row.get("status") == "completed",
        f"invocation {invocation_id} to complete",
        timeout_s,
        interval_s=0.1,
    )


def ledger_for(stack, invocation_id):
    """The invocation's executions (start and end lines paired)."""
    return executions(read_ledger(stack.config.ledger.path, invocation_id))


def test_howto_body_returns_the_report_data(stack):
    report = stack.ingress.call(howto_body())
    assert set(report) == {
        "file_name",
        "research_topic",
        "short_summary",
        "markdown_report",
        "follow_up_questions",
        "output_path",
    }
    assert isinstance(report["follow_up_questions"], list)
    output = Path(report["output_path"])
    assert output.parent == Path("/tmp/restate-output").resolve()
    assert output.name == report["file_name"]
    assert output.read_text() == report["markdown_report"]
    assert report["markdown_report"].startswith(f"# {report['research_topic']}")

    # The ingress answer can reach us before Restate's SQL view shows the invocation completed.
    [row] = poll(
        lambda: [r for r in stack.admin.invocations(limit=5) if r["status"] == "completed"],
        bool,
        "the completed invocation in sys_invocation",
        30,
        interval_s=0.1,
    )
    invocation_id = row["id"]
    steps = journal_steps(stack.admin.journal(invocation_id))
    assert [s.name for s in steps] == STEPS
    assert all(s.completed and s.result == "Success" for s in steps)
    entries = ledger_for(stack, invocation_id)
    assert [(e.step, e.attempt, e.outcome) for e in entries] == [(s, 1, "ok") for s in STEPS]
    assert all(e.ended is not None and e.started <= e.ended for e in entries)


def test_body_without_prompt_fails_at_once(stack):
    body = howto_body()
    body.pop("prompt")
    invocation_id = stack.ingress.send(body)
    row = wait_completed(stack, invocation_id, timeout_s=10)
    assert row["completion_result"] == "failure"
    assert "prompt" in row["completion_failure"]
    assert row.get("retry_count", 0) <= 1  # no retry loop
    events = stack.admin.journal_events(invocation_id)
    assert not [e for e in events if e.get("event_type") == "TransientError"]
    assert ledger_for(stack, invocation_id) == []  # no step ran
    with pytest.raises(HttpError) as err:
        stack.ingress.call(body)
    assert err.value.status == 400


def test_path_outside_allowed_roots_is_refused(stack):
    body = howto_body()
    body["research_info"]["output_dir"] = "/etc/restate-output"
    with pytest.raises(HttpError) as err:
        stack.ingress.call(body)
    assert err.value.status == 400 and "/etc/restate-output" in err.value.body


def test_registration_over_http11_as_in_the_howto(stack):
    try:
        text = stack.register(use_http11=True, force=True)
        assert "WriterAgentRestate" in text
        report = stack.ingress.call(howto_body("Ecris un court rapport de test en HTTP/1.1."))
        assert Path(report["output_path"]).is_file()
    finally:
        stack.register(use_http11=False, force=True)


def test_injected_crash_replays_finished_steps_and_reruns_the_one_in_flight(stack):
    # The crash is the writer's config (a derived copy, as the drills do), never the request's.
    crashing = stack.writer.derived_config("test-crash", {"faults.crash.during_step": "section:2"})
    writer_pid = stack.writer.restart(crashing).pid
    invocation_id = stack.ingress.send(howto_body("Ecris un rapport plus long pour tester un redemarrage."))
    poll(lambda: stack.procs.live("writer"), lambda r: r is None, "the writer to crash itself", 120)
    row = poll(
        lambda: stack.admin.invocation(invocation_id) or {},
        lambda r: r.get("status") == "backing-off",
        "Restate to back off",
        30,
    )
    assert row["retry_count"] >= 1
    restarted = stack.writer.start()
    assert restarted.pid != writer_pid
    stack.admin.resume(invocation_id)
    row = wait_completed(stack, invocation_id)
    assert row["completion_result"] == "success"

    entries = ledger_for(stack, invocation_id)
    by_step = {s: [(e.attempt, e.outcome, e.pid) for e in entries if e.step == s] for s in STEPS}
    assert by_step["outline"] == [(1, "ok", writer_pid)]
    assert by_step["section:1"] == [(1, "ok", writer_pid)]
    assert by_step["section:2"] == [(1, "crash", writer_pid), (2, "ok", restarted.pid)]
    for step in ("section:3", "summary", "save_report"):
        assert by_step[step] == [(1, "ok", restarted.pid)]
    log = Path(restarted.log_file).read_text()
    assert f"replayed step=outline invocation={invocation_id}" in log
    assert f"replayed step=section:1 invocation={invocation_id}" in log


def test_sigterm_stops_the_writer_gracefully(stack):
    record = stack.procs.live("writer")
    stopped = stack.writer.kill(signal.SIGTERM)
    assert stopped is not None and stopped.record.pid == record.pid
    assert not stopped.escalated  # it exited on SIGTERM by itself, within the grace period
    log = Path(record.log_file).read_text()
    assert "SIGTERM received: draining" in log
    assert log.rstrip().endswith("stopped")  # exited through the graceful path, not SIGKILL escalation
    stack.writer.start()
