"""drill.soak's verdict. The exactly-once checks (`exactly_once.gather` and `judge_with_deposed`) over
everything the soak sent (Restate's journal, the writer's ledger and the LLM tap, three sources that do
not share a failure), and the soak's own:

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
from drillkit.kit import exactly_once, storm_checks
from drillkit.kit.checks import SHOWN
from drillkit.kit.frame import Drill
from drillkit.kit.soak_faults import Soak
from drillkit.kit.soak_plan import nodes_away_at_once, recovery_table, tolerated_away


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
    batch = soak.load
    ids = list(batch.keys)
    record.expect(
        "every key sent was accepted (a refused send is sent again with its key through another node)",
        not never_accepted,
        f"{len(soak.load.sends)} keys sent, {soak.load.accepted()} accepted"
        + (f"; never accepted: {never_accepted[:SHOWN]}" if never_accepted else ""),
    )
    seen = exactly_once.gather(drill, batch)
    requests = tap.settled_requests(ids, timeout_s=drill.pace.budget_s)
    exactly_once.judge_with_deposed(drill, seen, requests, soak.deposed)
    storm_checks.sources_agree(drill, seen.runs, requests)
    schedule_ran(drill, soak)


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
