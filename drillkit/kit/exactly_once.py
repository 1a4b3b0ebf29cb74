"""Exactly once, from evidence that does not share a failure: Restate's rows and journals, the writer's
ledger (every execution of every step, with its start time) and the report files on disk.

- every invocation accepted completed with success;
- each idempotency key sent again (through a given node) returns the output Restate stored;
- each report file holds exactly that output;
- no step Restate had journaled as done was executed again (ledger after journal), none journaled twice.

`judge` is that verdict for a batch (drill.data-loss, drill.rolling-upgrade). `judge_with_deposed` is its
variant for faults that depose a leader (drill.soak: frozen or cut-off nodes): the LLM tap is a third
source, and a step of a partition a deposed leader had led, begun between that fault and the cluster's
recovery, is excused and reported (Restate runs side effects at least once, and such a leader drives
steps from its stale state until it learns it was deposed). A step that ran once is never "again",
whatever Restate's timestamps say (see `late_ones`). Both start from `gather`.

The pure parts (`executed_again`, `journaled_twice`, `late_ones`, `singles`, `split_late`) take plain
evidence, so they are tested without a stack.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from drillkit.components.restate_cluster import partition_of
from drillkit.components.writer import Execution
from drillkit.evidence import TOLERANCE_S, executions_after_journaled, journal_steps, journaled_completions
from drillkit.kit import actions, checks, probes
from drillkit.kit.checks import SHOWN
from drillkit.kit.frame import Drill
from drillkit.restate_api import IngressApi, sql_list


def executed_again(journaled: dict[str, dict[str, float]], runs: list[Execution]) -> list[str]:
    """`<invocation>/<step>` for every execution that started after Restate had journaled that step as done."""
    late: set[str] = set()
    for invocation_id, done in journaled.items():
        mine = [e for e in runs if e.invocation_id == invocation_id]
        late |= {f"{invocation_id}/{e.step}" for e in executions_after_journaled(mine, done)}
    return sorted(late)


def journaled_twice(journals: dict[str, list[dict[str, Any]]]) -> list[str]:
    """`<invocation>/<step>` for every step with two completed entries in one journal."""
    twice = []
    for invocation_id, rows in journals.items():
        counts = Counter(step.name for step in journal_steps(rows) if step.completed)
        twice += [f"{invocation_id}/{name}" for name, n in counts.items() if n > 1]
    return sorted(twice)


@dataclass
class Evidence:
    """What the exactly-once checks read, for the batch's invocations."""

    ids: list[str]
    journals: dict[str, list[dict[str, Any]]]
    """invocation id -> its journal rows (Restate)"""
    journaled: dict[str, dict[str, float]]
    """invocation id -> step -> when Restate journaled it as done (epoch)"""
    runs: list[Execution]
    """the ledger's executions of the batch's steps (the writer)"""


def gather(drill: Drill, batch: actions.Batch, ingress: IngressApi | None = None) -> Evidence:
    """Every invocation completed with success, each key sent again (through `ingress`, else the drill's)
    returns the stored output, each report file holds it; then the journals and the ledger's executions."""
    ids = list(batch.keys)
    checks.all_completed_with_success(drill, ids, probes.invocations(drill, ids))
    outputs = checks.same_output_again(drill, batch, ingress)
    checks.files_hold_outputs(drill, outputs)
    journals = probes.journals(drill, ids)
    journaled = {i: journaled_completions(rows) for i, rows in journals.items()}
    runs = [e for e in drill.writer.executions() if e.invocation_id in batch.keys]
    return Evidence(ids, journals, journaled, runs)


def ledger_line(steps: int, executions: int, again: list[str]) -> str:
    """The counts, with what the executions beyond the journaled steps are: attempts cut in flight (never
    journaled as done, so run again: allowed), as against a step run again after it was journaled."""
    extra = executions - steps
    cut = (
        f" ({extra} more than journaled: attempts cut in flight, never journaled as done, so run again: allowed)"
        if extra > 0
        else ""
    )
    return (
        f"{steps} journaled steps, {executions} executions in the ledger{cut}; executed again after being "
        f"journaled as done: {again[:SHOWN] or 'none'}"
    )


def judge(drill: Drill, batch: actions.Batch, ingress: IngressApi | None = None) -> None:
    """Every check above on the batch's invocations; `ingress`: the node the keys are sent again through."""
    seen = gather(drill, batch, ingress)
    journals, journaled, runs = seen.journals, seen.journaled, seen.runs
    again, twice = executed_again(journaled, runs), journaled_twice(journals)
    steps = sum(len(done) for done in journaled.values())
    drill.record.expect(
        "no step Restate had journaled as done was executed again (ledger), nor journaled twice",
        not again and not twice,
        ledger_line(steps, len(runs), again) + (f"; journaled twice: {twice[:SHOWN]}" if twice else ""),
    )
    retried = sorted({f"{e.invocation_id}/{e.step}" for e in runs if (e.attempt or 1) > 1})
    drill.record.note(f"in-flight steps that ran again (allowed: never journaled as done): {retried[:10] or 'none'}")


Late = tuple[str, str, float]
"""(invocation id, step, epoch seconds it started or was requested)"""


def split_late(
    late: list[Late], partitions: dict[str, int], deposed: list[dict[str, Any]]
) -> tuple[list[str], list[str]]:
    """(failures, excused): a late execution or request is excused only when it began inside a deposed
    leader's window (from the fault until the cluster had recovered) on a partition that node had led."""
    failed: set[str] = set()
    excused: set[str] = set()
    for invocation_id, step, at in late:
        partition = partitions.get(invocation_id)
        by_deposed = any(
            partition in window["led"] and window["from"] - TOLERANCE_S <= at <= window["to"] for window in deposed
        )
        (excused if by_deposed else failed).add(f"{invocation_id}/{step}")
    return sorted(failed), sorted(excused)


def late_ones(journaled: dict[str, dict[str, float]], items: list[tuple[str | None, str | None, float]]) -> list[Late]:
    """The items (invocation, step, time) that began after Restate had journaled their step as done, among
    steps that began more than once. A step that began once was not done again, whatever the timestamps
    say: a node thawed after a SIGSTOP stamps what it appends first with the time it was frozen at (seen
    here: a step's completion journaled 0.15 s before its only execution began), so `singles` gives those."""
    return _late(journaled, items)[0]


def singles(journaled: dict[str, dict[str, float]], items: list[tuple[str | None, str | None, float]]) -> list[Late]:
    """The only execution (or request) of a step, stamped by Restate as journaled before it began."""
    return _late(journaled, items)[1]


def _late(
    journaled: dict[str, dict[str, float]], items: list[tuple[str | None, str | None, float]]
) -> tuple[list[Late], list[Late]]:
    count = Counter((i, step) for i, step, _ in items)
    again: list[Late] = []
    once: list[Late] = []
    for invocation_id, step, at in items:
        done = journaled.get(invocation_id or "", {}).get(step or "")
        if invocation_id and step and done is not None and at > done + TOLERANCE_S:
            (again if count[(invocation_id, step)] > 1 else once).append((invocation_id, step, at))
    return again, once


def judge_with_deposed(drill: Drill, seen: Evidence, requests: list[Any], deposed: list[dict[str, Any]]) -> None:
    """No re-run, from the ledger and the tap's `requests`, excusing (and reporting) what a deposed leader
    ran again inside its window (`deposed`: each window's `led` partitions, `from` and `to`, epoch)."""
    journals, journaled, runs = seen.journals, seen.journaled, seen.runs
    partitions = partitions_of(drill, list(journals))
    executed, by_deposed = split_late(
        late_ones(journaled, [(e.invocation_id, e.step, e.started) for e in runs]), partitions, deposed
    )
    asked, asked_by_deposed = split_late(
        late_ones(journaled, [(r.invocation_id, r.step, r.time) for r in requests]), partitions, deposed
    )
    twice = journaled_twice(journals)
    steps = sum(len(done) for done in journaled.values())
    stamped = singles(journaled, [(e.invocation_id, e.step, e.started) for e in runs])
    drill.record.evidence["journaled_before_their_only_execution"] = [
        {"step": f"{i}/{step}", "started": at, "journaled_at": journaled[i][step]} for i, step, at in stamped
    ]
    if stamped:
        drill.record.note(
            f"{len(stamped)} step(s) ran once but Restate stamped their completion before that run began (a node "
            "thawed after SIGSTOP stamps its first appends with the time it froze at): not a re-run; "
            f"{[f'{i}/{step}' for i, step, _ in stamped[:5]]}"
        )
    drill.record.expect(
        "no step Restate had journaled as done was executed again (ledger), nor journaled twice",
        not executed and not twice,
        f"{steps} journaled steps; executed again: {executed[:SHOWN] or 'none'}"
        + (f"; journaled twice: {twice[:SHOWN]}" if twice else ""),
    )
    drill.record.expect(
        "no step Restate had journaled as done was requested again from the model (tap)",
        not asked,
        f"{len(requests)} requests seen by the tap; requested again: {asked[:SHOWN] or 'none'}",
    )
    drill.record.evidence["executed_again_by_a_deposed_leader"] = sorted(set(by_deposed) | set(asked_by_deposed))
    if by_deposed or asked_by_deposed:
        drill.record.note(
            "run again by a frozen or cut-off leader between its return and the cluster's recovery, on a "
            "partition it had led (its results can no longer be journaled; Restate runs side effects at least "
            f"once): {sorted(set(by_deposed) | set(asked_by_deposed))[:10]}"
        )


def partitions_of(drill: Drill, ids: list[str]) -> dict[str, int]:
    cluster = drill.cluster
    ranges = cluster.partition_ranges()
    rows = drill.restate.admin.query(
        f"SELECT id, partition_key FROM sys_invocation_status WHERE id IN ({sql_list(ids)})"
    )
    found = {}
    for row in rows:
        partition = partition_of(int(row["partition_key"]), ranges)
        if partition is not None:
            found[str(row["id"])] = partition
    return found
