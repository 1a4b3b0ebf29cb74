"""drill.upgrade's judgement on given evidence: Restate's `sys_invocation` rows (`pinned_deployment_id`,
status, last failure), its journal events, the outputs it stored and the writer's ledger. Plain functions
of plain values, so each is tested without a server.

A revision is a writer process serving one revision of the code, registered as a Restate deployment; an
invocation is pinned to the deployment that started it, and Restate's row says which.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from drillkit.components.writer import Execution

Row = dict[str, Any]
SHOWN = 5

JOURNAL_MISMATCH = 570
"""Restate's error code when replayed code takes another path than the journal (the SDK's error)."""
JOURNAL_MISMATCH_DOC = "RT0016"
"""What `sys_invocation.last_failure_error_code` says for it (restate-server 1.7.12, measured)."""
STOPPED = ("backing-off", "paused")
"""Where a failing invocation waits: retried later, or paused for a person (retries exhausted)."""
_DEPLOYMENT_ID = re.compile(r"dp_[0-9A-Za-z]+")


@dataclass
class Revision:
    """One revision of the writer, deployed: its Restate deployment and the writer processes serving it."""

    label: str
    """"revision 1", "revision 2", "revision 2 (incompatible)": what the report calls it."""
    number: int
    journal: str
    deployment_id: str
    uri: str
    pids: list[int] = field(default_factory=list)
    """Every writer process that served it (a revision stopped and started again has two)."""
    restate_revision: int | None = None
    """The service revision Restate gave this deployment when it was registered."""
    registered_s: float | None = None
    """When the drill registered it (the record's offset); None: before the drill (revision 1)."""
    removed_s: float | None = None
    """When the drill removed it; None: still registered at the end of the scenario."""


def deployment_sql(deployment_id: str) -> str:
    """A deployment id fit for a SQL literal; anything else is refused."""
    if not _DEPLOYMENT_ID.fullmatch(deployment_id):
        raise ValueError(f"not a deployment id: {deployment_id!r}")
    return deployment_id


def pinned_elsewhere(rows: Iterable[Row], ids: Iterable[str], deployment_id: str) -> list[str]:
    """The invocations among `ids` whose row is missing or is not pinned to `deployment_id`, each with
    what Restate says instead."""
    by_id = {r.get("id"): r for r in rows}
    wrong = []
    for invocation_id in ids:
        row = by_id.get(invocation_id)
        pinned = None if row is None else row.get("pinned_deployment_id")
        if pinned != deployment_id:
            wrong.append(f"{invocation_id}: " + ("no row" if row is None else f"pinned to {pinned or 'nothing'}"))
    return wrong


def unfinished_pinned(rows: Iterable[Row], deployment_id: str) -> list[str]:
    """Invocations still pinned to `deployment_id` and not completed: while any is left, it is not drained."""
    return [
        str(r.get("id"))
        for r in rows
        if r.get("pinned_deployment_id") == deployment_id and r.get("status") != "completed"
    ]


def not_completed_with_success(rows: Iterable[Row], ids: Iterable[str]) -> list[str]:
    by_id = {r.get("id"): r for r in rows}
    wrong = []
    for invocation_id in ids:
        row = by_id.get(invocation_id) or {}
        if row.get("completion_result") != "success":
            wrong.append(f"{invocation_id}: status={row.get('status')} result={row.get('completion_result')}")
    return wrong


def ran_elsewhere(runs: Iterable[Execution], ids: Iterable[str], pids: Iterable[int]) -> list[Execution]:
    """Executions of `ids` (the writer's ledger) by a process other than `pids`: a step run by a revision
    the invocation was not pinned to."""
    wanted, allowed = set(ids), set(pids)
    return [e for e in runs if e.invocation_id in wanted and e.pid not in allowed]


def ran_by(runs: Iterable[Execution], pids: Iterable[int]) -> list[Execution]:
    allowed = set(pids)
    return [e for e in runs if e.pid in allowed]


def executions_by_revision(
    runs: Iterable[Execution], ids: Iterable[str], revisions: Iterable[Revision]
) -> dict[str, Any]:
    """Per revision, the ledger's executions of `ids` its processes ran: which pid ran which step of which
    invocation, summed up for the report (`other`: a pid no revision owns)."""
    owner = {pid: r.label for r in revisions for pid in r.pids}
    wanted = set(ids)
    summary: dict[str, Any] = {}
    for run in runs:
        if run.invocation_id not in wanted:
            continue
        entry = summary.setdefault(owner.get(run.pid, "other"), {"executions": 0, "invocations": set(), "pids": set()})
        entry["executions"] += 1
        entry["invocations"].add(run.invocation_id)
        entry["pids"].add(run.pid)
    return {
        label: {"executions": e["executions"], "invocations": len(e["invocations"]), "pids": sorted(e["pids"])}
        for label, e in summary.items()
    }


def output_revisions(outputs: dict[str, Any]) -> dict[str, int]:
    """Each invocation's revision as its stored output says: revision 2 and later write `revision`;
    revision 1's output (the shipped writer's) has none."""
    return {i: int(o.get("revision", 1)) if isinstance(o, dict) else 0 for i, o in outputs.items()}


def row_mismatch(row: Row) -> str | None:
    """How Restate's own row surfaces a journal mismatch, or None: its error code (RT0016) or its last
    failure ("[570 Journal mismatch] ...")."""
    found = []
    if row.get("last_failure_error_code") == JOURNAL_MISMATCH_DOC:
        found.append(f"last_failure_error_code={JOURNAL_MISMATCH_DOC}")
    failure = str(row.get("last_failure") or "")
    if f"[{JOURNAL_MISMATCH}" in failure:
        found.append(f"last_failure: {failure.splitlines()[0][:160]}")
    return "; ".join(found) or None


def event_mismatch(events: Iterable[Row]) -> str | None:
    """A TransientError with code 570 in `sys_journal_events` (kept after the row has moved on), or None."""
    for event in events:
        if _event_code(event) == JOURNAL_MISMATCH:
            return f"sys_journal_events: {event.get('event_type') or 'TransientError'} error_code {JOURNAL_MISMATCH}"
    return None


def _event_code(event: Row) -> int | None:
    """A journal event's error code, whether `event_json` is still text or already decoded."""
    data = event.get("event_json")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return None
    code = data.get("error_code") if isinstance(data, dict) else None
    return int(code) if isinstance(code, int | str) and str(code).isdigit() else None


def mismatch_detail(row: Row) -> str:
    """The lines of Restate's last failure that say what differed ("name: outline != plan")."""
    failure = str(row.get("last_failure") or "")
    lines = [line.strip() for line in failure.splitlines() if "Difference" in line or "!=" in line or "index" in line]
    return " ".join(lines)[:240]


def same_journal(before: list[Row], after: list[Row]) -> list[str]:
    """What the journal gained or changed between two reads (index, type, name): must be nothing while an
    invocation sits on code that cannot replay it."""
    key = [(r.get("index"), r.get("entry_type"), r.get("name")) for r in before]
    now = [(r.get("index"), r.get("entry_type"), r.get("name")) for r in after]
    if key == now:
        return []
    return [f"{i}: {t} {n or ''}".strip() for i, t, n in now if (i, t, n) not in key] or ["entries removed"]


def shown(items: list[Any]) -> str:
    more = f" (+{len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return ", ".join(str(i) for i in items[:SHOWN]) + more
