"""drill.tool-error: the HOW-TO's section 5, a durable tool that fails on its first N attempts.

The writer's `save_report` raises on attempts 1..N (its config's `faults.tool_error.fail_first`, set on a
writer restarted for the drill: never in the request); Restate retries it with
the invocation's retry policy. PASS needs: completed with success, Restate's journal events show the
transient errors on save_report, the ledger shows save_report attempted N+1 times and every LLM step
exactly once (they were replayed, not re-run), and the report file written once.
"""

from __future__ import annotations

from drillkit.errors import DrillError
from drillkit.evidence import attempt_counts, first_line, journal_steps, ok_counts, restate_time, transient_errors
from drillkit.howto import howto_body
from drillkit.kit import actions, checks, probes
from drillkit.kit.frame import Drill, Scenario


def check_fail_first(fail_first: int) -> None:
    if fail_first < 1:
        raise DrillError("--fail-first must be at least 1: a drill with no fault proves nothing")


def tool_error_scenario(fail_first: int) -> Scenario:
    def scenario(drill: Drill) -> None:
        # The fault is the writer's config (faults.tool_error.fail_first), handed to a restarted writer
        # out of band: nothing about it travels in the request, so nothing of it is kept in Restate's
        # journal, which anyone who can reach the admin API can read.
        writer = drill.writer
        config = writer.derived_config("tool-error", {"faults.tool_error.fail_first": fail_first})
        drill.on_cleanup("writer on its own config", writer.start)
        actions.restart_writer(drill, config)
        actions.send(drill, howto_body("Ecris un court rapport de test."))
        # The fault bites when the tool runs: until then, only the model works.
        probes.wait_journal(
            drill, lambda rows: any(s.name == "save_report" for s in journal_steps(rows)), "save_report to start"
        )
        drill.fault_injected = True
        checks.completed_with_success(drill, probes.wait_completed(drill))
        _check_tool_retried(drill)
        _check_attempts(drill, fail_first)

    return scenario


def _check_tool_retried(drill: Drill) -> None:
    events = transient_errors(drill.restate.admin.journal_events(drill.invocation_id))
    steps = journal_steps(probes.journal(drill))
    save_index = next((s.index for s in steps if s.name == "save_report"), None)
    on_tool = [
        e
        for e in events
        if "injected tool error" in str(e.get("error_message", ""))
        or e.get("related_command_name") == "save_report"
        or (save_index is not None and e.get("after_journal_entry_index") == save_index)
    ]
    for event in on_tool:
        at = restate_time(event.get("appended_at"))
        message = first_line(event.get("error_message"))
        if at is not None:
            drill.record.event_at(at, "retrying seen", f"save_report: {message}")
        else:
            drill.record.event("retrying seen", f"save_report: {message}")
    drill.record.expect(
        "Restate's journal events show transient errors on save_report",
        bool(on_tool),
        f"{len(on_tool)} TransientError event(s) on save_report of {len(events)} in all "
        "(Restate keeps one event per distinct error, not one per retry)",
    )


def _check_attempts(drill: Drill, fail_first: int) -> None:
    runs = probes.executions(drill)
    attempts, oks = attempt_counts(runs), ok_counts(runs)
    drill.record.expect(
        f"save_report attempted {fail_first + 1} times ({fail_first} injected failures, then success)",
        attempts["save_report"] == fail_first + 1 and oks["save_report"] == 1,
        f"ledger: {attempts['save_report']} attempt(s), {oks['save_report']} ok",
    )
    llm_steps = [s for s in drill.writer.steps() if s != "save_report"]
    wrong = {s: attempts[s] for s in llm_steps if attempts[s] != 1 or oks[s] != 1}
    drill.record.expect(
        "every LLM step executed exactly once (replayed, not re-run, on each retry)",
        not wrong,
        "all once: " + ", ".join(llm_steps) if not wrong else f"executions: {wrong}",
    )
