"""drill.rolling-upgrade: the cluster's nodes replaced one at a time by the next Restate release under
continuous load, then rolled back, and nothing a client sent is lost or run twice.

the writer on the stub model -> a cluster born on --from (data deleted, every node started on that
release, the writer registered) -> every node's release proven -> continuous keyed load (one invocation
every 1/rate s, each with its own idempotency key, sent to the nodes in turn) -> each node in turn
stopped (SIGTERM) and started on --to, every partition led again before the next -> every node proven on
--to -> the same back to --from -> proven -> the load stops, every invocation completes.

`--mode maintenance` is the planned variant: before a node is touched it is taken out of the load's
rotation (a load balancer's drain) and its worker set to `draining` (`restatectl nodes
set-worker-state`), which moves its partitions' leadership and processors to the others; it is stopped
only once it runs none, started on the other release, set `active` again and put back in the rotation.

PASS (upgrade): no send failed (a send refused by a node going down and accepted by the next node with
the same key is a retry, counted and reported); (maintenance): no send failed *and* none needed a retry;
Before anything starts the drill refuses (exit 2) when the cluster runs or holds data it did not create
itself (the `inv up` cluster, an invocation sent), naming it: `inv down --purge` first, or `--fresh`.

both: each node's release proven at each stage from Restate's nodes table and the binary its pid runs,
every invocation completed with success exactly once (keys sent again return the stored output, files
equal outputs, no step journaled as done executed again, none journaled twice), every partition led.
"""

from __future__ import annotations

from typing import Literal

from drillkit.binaries import SERVER, roll_refusal
from drillkit.errors import DrillError
from drillkit.handles import Handles
from drillkit.kit import cluster_actions as ca
from drillkit.kit import exactly_once, probes, rolling
from drillkit.kit.frame import Drill, Scenario
from drillkit.kit.keyed_load import KeyedLoad, summary
from drillkit.restate_api import IngressApi
from drillkit.waits import poll

Mode = Literal["upgrade", "maintenance"]
WARM_UP = 3
"""Invocations accepted before the first node is touched, and again after the last: load on both sides."""


def check_rolling_upgrade(handles: Handles, old: str, new: str, rate: float, fresh: bool = False) -> None:
    rolling.native_cluster_only(handles.config)
    cluster = handles.cluster
    refusal = roll_refusal(old, new)
    if refusal:
        raise DrillError(refusal)
    if cluster.settings.replication < 2 or len(cluster.nodes) < 3:
        raise DrillError(
            f"{handles.config.source}: a node at a time can go only when the others hold a copy of everything "
            f"and a majority is left: needs replication >= 2 and 3 nodes or more (runtime.cluster)"
        )
    if not 0 < rate <= 20:
        raise DrillError(f"--rate {rate:g}: use more than 0 and at most 20 invocations a second")
    in_the_way = rolling.in_the_way(cluster, handles.model.state)
    if in_the_way and not fresh:
        source = handles.config.source
        raise DrillError(
            f"{source}: drill.rolling-upgrade starts the cluster afresh on --from {old}, which would delete "
            f"{'; '.join(in_the_way)}: not the drill's own. Either `inv down --purge --config {source}` first, "
            "or pass --fresh to let the drill delete it"
        )
    for version in (old, new):
        if handles.releases is not None:
            handles.releases(version).ensure(SERVER)  # the check fetches what `inv setup` has not


def rolling_upgrade_scenario(old: str, new: str, mode: Mode, rate: float) -> Scenario:
    def scenario(drill: Drill) -> None:
        ca.use_stub_llm(drill)
        rolling.start_on(drill, old)
        rolling.prove_versions(drill, old, f"born on {old}")
        load = rolling.start_load(drill, rate)
        wait_accepted(drill, load, WARM_UP)
        drill.fault_injected = True
        timings: dict[str, dict[str, float]] = {}
        drain = mode == "maintenance"
        for version, stage in ((new, "upgraded"), (old, "rolled back")):
            for node in rolling.nodes(drill):
                timings[f"{node.name} to {version}"] = rolling.replace(drill, load, node, version, drain)
            rolling.prove_versions(drill, version, f"{stage} to {version}")
        wait_accepted(drill, load, load.accepted() + WARM_UP)
        load.stop()
        load.drain()  # every send accepted or failed (each has RETRY_BUDGET_S)
        drill.record.evidence["replacements"] = timings
        probes.wait_all_completed(drill, list(load.keys))
        judge(drill, load, mode)

    return scenario


def wait_accepted(drill: Drill, load: KeyedLoad, n: int) -> None:
    poll(load.accepted, lambda seen: seen >= n, f"{n} invocations of the load accepted", 120, 0.1, drill.pace)


def judge(drill: Drill, load: KeyedLoad, mode: Mode) -> None:
    record = drill.record
    counts = summary(load.sends)
    record.evidence["load"] = counts
    record.evidence["refusals"] = [f"{s.key}: {s.refusals}" for s in load.sends if s.refusals][:20]
    record.expect(
        "no send failed: every key was accepted (at most after a retry on another node)",
        counts["failed"] == 0,
        ", ".join(f"{k} {v}" for k, v in counts.items()),
    )
    if mode == "maintenance":
        record.expect(
            "no send needed a retry: a drained node was out of the rotation before it went down",
            counts["retried"] == 0,
            f"retried {counts['retried']}: {record.evidence['refusals'][:3] or 'none'}",
        )
    else:
        record.note(f"sends retried on another node (allowed: the same key, never a second invocation): {counts}")
    with IngressApi(rolling.nodes(drill)[0].ingress_url) as ingress:
        exactly_once.judge(drill, load, ingress)
    rolling.judge_leaders(drill)
