"""Probes: what a drill asks, never changes. Restate's invocation row and journal, the writer's ledger.

Every wait here feeds the drill's pace (a step finished, the status or the retry count changed), so it
ends only when the system stops moving (`drillkit.kit.pace`), not at a fixed time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from drillkit.components.writer import Execution
from drillkit.errors import HttpError
from drillkit.evidence import completed_step_names, in_flight_step, journal_steps, restate_time
from drillkit.kit.frame import POLL_S, Drill
from drillkit.restate_api import sql_list
from drillkit.waits import poll

Row = dict[str, Any]
Rows = list[dict[str, Any]]


def previous_step(steps: list[str], target: str) -> str | None:
    """The step before `target` in the pipeline: the finished work a fault at `target` must not redo."""
    index = steps.index(target)
    return steps[index - 1] if index else None


def invocation(drill: Drill, invocation_id: str | None = None) -> Row:
    return drill.restate.admin.invocation(invocation_id or drill.invocation_id) or {}


def journal(drill: Drill, invocation_id: str | None = None) -> Rows:
    return drill.restate.admin.journal(invocation_id or drill.invocation_id)


def journal_events(drill: Drill, invocation_id: str | None = None) -> Rows:
    """Restate's `sys_journal_events` for the invocation (transient errors, abort reasons), oldest first."""
    return drill.restate.admin.journal_events(invocation_id or drill.invocation_id)


def writer_pid(drill: Drill) -> int | None:
    """The pid of the writer's live, verified process record; None when it is not running."""
    record = drill.writer.live()
    return record.pid if record is not None else None


def journals(drill: Drill, ids: Iterable[str]) -> dict[str, Rows]:
    """Many invocations' journals in one query: id -> its entries in index order."""
    return drill.restate.admin.journals(ids)


INVOCATION_COLUMNS = "id, status, completion_result, completion_failure, created_at, completed_at"


def invocations(drill: Drill, ids: Iterable[str]) -> Rows:
    """Restate's rows for a batch of invocations: status, result, failure and the times a figure needs."""
    return drill.restate.admin.query(f"SELECT {INVOCATION_COLUMNS} FROM sys_invocation WHERE id IN ({sql_list(ids)})")


def wait_all_completed(drill: Drill, ids: list[str]) -> Rows:
    """Until Restate shows every one of `ids` completed (with success or not: the checks judge that)."""

    def rows() -> Rows:
        try:
            found = invocations(drill, ids)
        except HttpError as exc:  # after a restart the first query can fail ("No such scanner")
            drill.record.note(f"query retried: {exc}")
            return []
        drill.pace.observe(sorted(r.get("status", "") for r in found))
        return found

    done = poll(
        rows,
        lambda r: len(r) == len(ids) and all(x.get("status") == "completed" for x in r),
        f"all {len(ids)} invocations to complete",
        24 * 3600,
        0.2,
        drill.pace,
    )
    drill.record.event("completed", f"all {len(ids)} invocations")
    return done


def executions(drill: Drill, invocation_id: str | None = None) -> list[Execution]:
    """The writer's ledger for the invocation: each real execution of a step body, finished or not."""
    return drill.writer.executions(invocation_id or drill.invocation_id)


def learn_from_journal(drill: Drill, rows: Rows) -> None:
    """Each newly finished step: a timeline event, and its duration (Restate's timestamps) into the pace."""
    for step in journal_steps(rows):
        if step.completed and step.name not in drill.pace.step_seconds:
            began, ended = restate_time(step.started_at), restate_time(step.completed_at)
            drill.pace.step_took(step.name, (ended - began) if began and ended else 0.0)
            drill.record.event("step done", step.name)
    drill.pace.observe(len(rows))


def wait_journal(drill: Drill, until: Callable[[Rows], bool], what: str) -> Rows:
    def probe() -> Rows:
        rows = journal(drill)
        learn_from_journal(drill, rows)
        return rows

    return poll(probe, until, what, timeout_s=drill.pace.fixed_s or 24 * 3600, interval_s=0.02, stalled=drill.pace)


def wait_step_running(drill: Drill, at: str, before: str | None) -> Rows:
    """Until the step before `at` has finished and `at` is in flight: a finished step to protect, one to
    interrupt."""

    def ready(rows: Rows) -> bool:
        return (before is None or before in completed_step_names(rows)) and in_flight_step(rows) == at

    rows = wait_journal(drill, ready, f"step {at} to be running")
    drill.record.event("target running", at)
    return rows


def wait_executing(drill: Drill, pid: int, step: str) -> Execution:
    """Until the writer process `pid` has started `step`'s body and not ended it (its ledger start line).

    Restate journals a Run command before the SDK starts the body, so the journal can show a step in
    flight a moment before its body runs: a kill meant to cut the body waits for the body."""

    follower = drill.writer.executions_follower(drill.invocation_id)

    def probe() -> list[Execution]:
        open_now = [e for e in follower.update() if e.pid == pid and e.step == step and e.outcome is None]
        drill.pace.observe(len(open_now))
        return open_now

    found = poll(
        probe,
        bool,
        f"the writer (pid {pid}) to run step {step}'s body",
        timeout_s=drill.pace.fixed_s or 24 * 3600,
        interval_s=POLL_S,
        stalled=drill.pace,
    )
    return found[-1]


def wait_invocation(drill: Drill, until: Callable[[Row], bool], what: str) -> Row:
    def probe() -> Row:
        row = invocation(drill)
        drill.pace.observe((row.get("status"), row.get("retry_count"), row.get("journal_size")))
        return row

    return poll(probe, until, what, timeout_s=drill.pace.fixed_s or 24 * 3600, interval_s=POLL_S, stalled=drill.pace)


def wait_completed(drill: Drill) -> Row:
    row = wait_invocation(drill, lambda r: r.get("status") == "completed", "the invocation to complete")
    drill.record.event("completed", f"completion_result={row.get('completion_result')}")
    return row


RETRYING = ("backing-off", "paused", "ready", "scheduled")


def retrying_or_done(row: Row) -> bool:
    return row.get("status") in RETRYING or row.get("status") == "completed"


def is_retrying(row: Row) -> bool:
    return row.get("status") in RETRYING and (row.get("retry_count") or 0) >= 1


def row_detail(row: Row) -> str:
    return (
        f"status={row.get('status')}, retry_count={row.get('retry_count')}, "
        f"last_failure_error_code={row.get('last_failure_error_code')}, "
        f"last_failure={str(row.get('last_failure'))[:160]!r}"
    )
