"""Reading the evidence: Restate's journal rows and the writer's ledger, turned into facts a drill checks.

In `sys_journal` (protocol v6), a step shows up as a `Command: Run` entry (with its name and a
completion id) when it starts, and as a `Notification: Run` entry carrying the same completion id and
its result when it finishes. A step with a command but no notification is the one in flight.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from drillkit.components.writer import Execution
from drillkit.errors import ConfigError

DEFAULT_RUN_POINT = "run:2"
"""A kill point on a configured target: one finished Run to protect, the next one cut in flight."""
RUN_POINT = re.compile(r"^(?:run:)?([1-9][0-9]*)$")


def run_point(at: str) -> int:
    """`run:N` (or N): the Nth Run entry of the journal, 1-based (a target's steps are known only by order)."""
    found = RUN_POINT.match(at.strip())
    if not found:
        raise ConfigError(f"--at {at!r}: on a configured target the kill point is run:N (the Nth Run step), e.g. run:2")
    return int(found.group(1))


@dataclass(frozen=True)
class JournalStep:
    name: str
    index: int
    completion_id: int | None
    started_at: str | None
    completed: bool
    result: str | None  # "Success", "Failure", ... once completed
    completed_at: str | None


def _lite(row: dict[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(row.get("entry_lite_json") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def journal_steps(rows: list[dict[str, Any]]) -> list[JournalStep]:
    """The Run steps of one invocation's journal, in order, with completion state."""
    notifications: dict[int, tuple[str | None, str | None]] = {}
    for row in rows:
        if row.get("entry_type") == "Notification: Run":
            note = _lite(row).get("Notification", {})
            completion = (note.get("id") or {}).get("CompletionId")
            result = note.get("result")
            if isinstance(result, dict):  # {"Failure": {...}} and the like
                result = next(iter(result), None)
            if isinstance(completion, int):
                notifications[completion] = (result, row.get("appended_at"))
    steps = []
    for row in rows:
        if row.get("entry_type") != "Command: Run":
            continue
        run = _lite(row).get("Command", {}).get("Run", {})
        completion_id = run.get("completion_id")
        done = notifications.get(completion_id) if isinstance(completion_id, int) else None
        steps.append(
            JournalStep(
                name=str(row.get("name") or run.get("name") or ""),
                index=int(row.get("index", -1)),
                completion_id=completion_id if isinstance(completion_id, int) else None,
                started_at=row.get("appended_at"),
                completed=done is not None,
                result=done[0] if done else None,
                completed_at=done[1] if done else None,
            )
        )
    return steps


def completed_step_names(rows: list[dict[str, Any]]) -> list[str]:
    return [s.name for s in journal_steps(rows) if s.completed]


def in_flight_step(rows: list[dict[str, Any]]) -> str | None:
    pending = [s.name for s in journal_steps(rows) if not s.completed]
    return pending[-1] if pending else None


def transient_errors(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """TransientError events (the only trace of a retried step once it completes), decoded."""
    found = []
    for event in events:
        if event.get("event_type") != "TransientError":
            continue
        try:
            detail = json.loads(event.get("event_json") or "{}")
        except ValueError:
            detail = {}
        found.append(
            {
                **detail,
                "appended_at": event.get("appended_at"),
                "after_journal_entry_index": event.get("after_journal_entry_index"),
            }
        )
    return found


def restate_time(value: str | None) -> float | None:
    """Epoch seconds of a Restate timestamp such as 2026-11-27T06:50:25.031Z."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def first_line(text: object, limit: int = 160) -> str:
    """The first line of a failure message (Restate's last_failure carries a whole traceback)."""
    return str(text or "").strip().splitlines()[0][:limit] if text else ""


def ok_counts(runs: list[Execution]) -> Counter[str]:
    """Executions per step that ended ok."""
    return Counter(e.step for e in runs if e.outcome == "ok")


def attempt_counts(runs: list[Execution]) -> Counter[str]:
    """Executions per step that started, finished or not (a kill mid-step counts)."""
    return Counter(e.step for e in runs)


TOLERANCE_S = 0.005  # Restate's timestamps are in milliseconds


def reexecuted_after_journaled(runs: list[Execution], journaled_at: dict[str, float]) -> list[str]:
    """Steps executed again after Restate had journaled their completion: must be empty.

    "Finished" is Restate's word, not the writer's: a step whose body returned but whose result the
    journal never received (the process died in between) rightly runs again. So an execution counts as
    a re-run only if it *started* after the step's completion was in the journal.
    """
    return sorted({e.step for e in executions_after_journaled(runs, journaled_at)})


def executions_after_journaled(runs: list[Execution], journaled_at: dict[str, float]) -> list[Execution]:
    """The executions behind `reexecuted_after_journaled`: each started after its step's completion was
    in the journal."""
    return [e for e in runs if e.step in journaled_at and e.started > journaled_at[e.step] + TOLERANCE_S]


def journaled_completions(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Step name -> when Restate journaled its completion (epoch seconds), for completed steps."""
    done = {}
    for step in journal_steps(rows):
        at = restate_time(step.completed_at)
        if step.completed and at is not None:
            done[step.name] = at
    return done


def journaled_results(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Step name -> the value Restate journaled as its successful result, in journal order.

    Needs the rows' `entry_json` (the full entry: a `Notification: Run` carries its result as the JSON
    bytes the SDK sent, `{"Success": [byte, ...]}`). A step that failed, never finished, or whose bytes
    are not JSON is left out; a name journaled twice keeps its last result."""
    names: dict[int, str] = {}
    results: dict[str, Any] = {}
    for row in rows:
        entry = _full(row)
        run = (entry.get("Command") or {}).get("Run")
        if isinstance(run, dict) and isinstance(run.get("completion_id"), int):
            names[run["completion_id"]] = str(row.get("name") or run.get("name") or "")
            continue
        done = ((entry.get("Notification") or {}).get("Completion") or {}).get("Run")
        if not isinstance(done, dict) or done.get("completion_id") not in names:
            continue
        value = (done.get("result") or {}).get("Success") if isinstance(done.get("result"), dict) else None
        if not isinstance(value, list):
            continue
        try:
            results[names[done["completion_id"]]] = json.loads(bytes(value).decode("utf-8"))
        except (ValueError, TypeError):
            continue
    return results


def _full(row: dict[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(row.get("entry_json") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
