"""drill.soak's verdict. The storm's exactly-once checks over everything the soak sent (Restate's journal,
the writer's ledger and the LLM tap, three sources that do not share a failure), and the soak's own:

- every key sent was accepted (at the latest when sent again with its idempotency key after the heal);
- all invocations completed with success; each key sent again returns the stored output; every report
  file equals that output;
- no step Restate had journaled as done was executed again (ledger) or requested again (tap), and none
  is journaled twice; except a step of a partition a frozen or cut-off leader had led, begun between that
  fault and the cluster's recovery: Restate runs side effects at least once, and such a leader drives
  steps from its stale state until it learns it was deposed (drill.partition reports, not fails, it).
  A step that ran once is never "again", whatever Restate's timestamps say (see `late_ones`);
- the tap and the ledger agree;
- the schedule ran (at least one fault), never more nodes away at once than the cluster tolerates;
- every fault recovered within the bound; the final liveness check passed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from drillkit.components.llm_tap import LlmTap
from drillkit.components.restate_cluster import partition_of
from drillkit.evidence import TOLERANCE_S, journal_steps, journaled_completions
from drillkit.kit import checks, probes, storm_checks
from drillkit.kit.checks import SHOWN
from drillkit.kit.frame import Drill
from drillkit.kit.soak_faults import Soak
from drillkit.kit.soak_plan import nodes_away_at_once, recovery_table, tolerated_away
from drillkit.restate_api import sql_list

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


def recoveries_within(faults: list[dict[str, Any]], bound_s: float) -> tuple[bool, str]:
    slow = [f"#{f['number']} {f['kind']} {f['target']}: {f.get('recovery_s')}" for f in faults]
    slow = [s for f, s in zip(faults, slow, strict=True) if f.get("recovery_s") is None or f["recovery_s"] > bound_s]
    table = ", ".join(
        f"{r['kind']} x{r['count']} p50 {r['recovery_p50_s']} s max {r['recovery_max_s']} s"
        for r in recovery_table(faults)
    )
    return bool(faults) and not slow, (table or "no fault ran") + (f"; over the bound: {slow[:SHOWN]}" if slow else "")


def judge(drill: Drill, soak: Soak, tap: LlmTap, never_accepted: list[str]) -> None:
    record = drill.record
    batch = soak.load.batch
    ids = list(batch.keys)
    record.expect(
        "every key sent was accepted (a refused send is sent again with its key through another node)",
        not never_accepted,
        f"{len(soak.load.sent)} keys sent, {len(soak.load.accepted)} accepted"
        + (f"; never accepted: {never_accepted[:SHOWN]}" if never_accepted else ""),
    )
    checks.all_completed_with_success(drill, ids, probes.invocations(drill, ids))
    outputs = checks.same_output_again(drill, batch)
    checks.files_hold_outputs(drill, outputs)
    journals = probes.journals(drill, ids)
    journaled = {i: journaled_completions(rows) for i, rows in journals.items()}
    runs = [e for e in drill.writer.executions() if e.invocation_id in batch.keys]
    requests = tap.settled_requests(ids, timeout_s=drill.pace.budget_s)
    exactly_once(drill, soak, journals, journaled, runs, requests)
    storm_checks.sources_agree(drill, runs, requests)
    schedule_ran(drill, soak)


def exactly_once(
    drill: Drill,
    soak: Soak,
    journals: dict[str, list[dict[str, Any]]],
    journaled: dict[str, dict[str, float]],
    runs: list[Any],
    requests: list[Any],
) -> None:
    partitions = partitions_of(drill, list(journals))
    executed, by_deposed = split_late(
        late_ones(journaled, [(e.invocation_id, e.step, e.started) for e in runs]), partitions, soak.deposed
    )
    asked, asked_by_deposed = split_late(
        late_ones(journaled, [(r.invocation_id, r.step, r.time) for r in requests]), partitions, soak.deposed
    )
    twice = sorted(
        f"{i}/{name}"
        for i, rows in journals.items()
        for name, n in Counter(s.name for s in journal_steps(rows) if s.completed).items()
        if n > 1
    )
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


def schedule_ran(drill: Drill, soak: Soak) -> None:
    record = drill.record
    cluster = drill.cluster
    kinds = Counter(f["kind"] for f in soak.faults)
    record.expect(
        "the fault schedule ran: faults injected and healed, one after another",
        bool(soak.faults) and all(f.get("healed_at") for f in soak.faults),
        f"{len(soak.faults)} of {len(soak.plan)} planned faults ran in {soak.seconds:g} s: "
        + ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items())),
    )
    most = nodes_away_at_once(soak.faults)
    tolerated = tolerated_away(len(cluster.nodes), cluster.settings.replication)
    record.expect(
        "never more nodes away at once than the cluster tolerates",
        most <= tolerated,
        f"at most {most} node(s) away at once; {len(cluster.nodes)} nodes with replication "
        f"{cluster.settings.replication} tolerate {tolerated}",
    )
    ok, detail = recoveries_within(soak.faults, soak.bound_s)
    record.expect(f"every fault recovered within {soak.bound_s:g} s of its heal", ok, detail)
    live = soak.liveness
    took = live.get("new_invocation_s") or {}
    record.expect(
        "after the final heal every node serves, every partition is led, and a new invocation sent through "
        "each node's ingress completes",
        bool(took)
        and all(v is not None for v in took.values())
        and all((live.get("healthy") or {}).values())
        and cluster.all_led(live.get("leaders")),
        f"health {live.get('healthy')}; leaders {live.get('leaders')}; new invocation completed after (s) {took}",
    )
