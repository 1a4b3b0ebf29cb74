"""Cluster probes: which node leads what, where each invocation of a flight lives, and waits that end
when the cluster has moved (a step done after the fault, every partition led, every node back). They
change nothing.
"""

from __future__ import annotations

from collections import Counter

from drillkit.components.restate_cluster import Node, RestateCluster, partition_of
from drillkit.errors import Inconclusive
from drillkit.evidence import journal_steps
from drillkit.kit import probes
from drillkit.kit.cluster_actions import Flight
from drillkit.kit.frame import Drill
from drillkit.restate_api import sql_list
from drillkit.waits import poll


def wait_all_underway(drill: Drill, flight: Flight) -> None:
    """Until every invocation has a step journaled as done: each has work to protect and work in flight."""

    def done_counts() -> list[int]:
        counts = [
            sum(s.completed for s in journal_steps(rows)) for rows in probes.journals(drill, flight.keys).values()
        ]
        drill.pace.observe(sum(counts))
        return counts

    poll(done_counts, lambda c: min(c) >= 1, "every invocation to finish a step", 24 * 3600, 0.05, drill.pace)
    drill.record.event("underway", f"all {len(flight.keys)} invocations have a finished step")


def locate(drill: Drill, flight: Flight) -> dict[int, str]:
    """Each invocation's partition (its partition key in the partition table), and the leaders now."""
    cluster = drill.cluster
    ranges = cluster.partition_ranges()
    rows = drill.restate.admin.query(
        f"SELECT id, partition_key FROM sys_invocation_status WHERE id IN ({sql_list(flight.keys)})"
    )
    for row in rows:
        partition = partition_of(int(row["partition_key"]), ranges)
        if partition is not None:
            flight.partitions[row["id"]] = partition
    # Restate's scheduler moves leaders after a start: a partition can be between two for a moment.
    leaders = cluster.wait_leaders(_after_fault_timeout(drill))
    spread = Counter(flight.partitions.values())
    drill.record.evidence["partitions_in_flight"] = dict(sorted(spread.items()))
    drill.record.evidence["leaders_before"] = leaders
    drill.record.event(
        "leaders",
        ", ".join(f"p{p} {leaders.get(p, 'none')} ({spread.get(p, 0)} in flight)" for p in sorted(leaders)),
    )
    return leaders


def choose(cluster: RestateCluster, target: str, count: int, leaders: dict[int, str], flight: Flight) -> list[Node]:
    """`leader`: the node leading the partitions with the most invocations in flight; `follower`: a node
    leading none of them (else the fewest); a number: that node. `count` 2 adds the next by the same rule.
    Marks the invocations whose partition a chosen node leads as the ones to watch."""
    in_flight = Counter(flight.partitions.values())
    weight = Counter({n.name: 0 for n in cluster.nodes})
    for partition, node in leaders.items():
        weight[node] += in_flight.get(partition, 0)
    if target == "leader":
        order = sorted(cluster.nodes, key=lambda n: (-weight[n.name], n.number))
    elif target == "follower":
        order = sorted(cluster.nodes, key=lambda n: (weight[n.name], n.number))
    else:
        first = cluster.node(int(target))
        order = [first, *sorted((n for n in cluster.nodes if n != first), key=lambda n: (-weight[n.name], n.number))]
    chosen = order[:count]
    names = {n.name for n in chosen}
    flight.watched = {i for i, p in flight.partitions.items() if leaders.get(p) in names}
    return chosen


def progress_after(drill: Drill, flight: Flight, since: float) -> float | None:
    """End time (epoch) of the first step that *started* after `since` and finished ok, among the
    invocations whose partition a lost node led (all of ours when it led none): only a living leader can
    have asked the writer for it."""
    ours = flight.watched or set(flight.keys)
    ends = [
        e.ended
        for e in drill.writer.executions()
        if e.invocation_id in ours and e.started > since and e.outcome == "ok" and e.ended is not None
    ]
    return min(ends) if ends else None


def started_after(drill: Drill, flight: Flight, since: float) -> list[str]:
    return [
        f"{e.invocation_id}/{e.step}"
        for e in drill.writer.executions()
        if e.invocation_id in flight.keys and e.started > since
    ]


def wait_progress(drill: Drill, flight: Flight, since: float, what: str) -> float:
    """Seconds from `since` (epoch) to the first step started and finished after it. INCONCLUSIVE when the
    invocations it watches all finished without one: the fault landed after their last step had started."""
    ours = flight.watched or set(flight.keys)
    last_step = drill.writer.steps()[-1]

    def probe() -> tuple[float | None, bool]:
        found = progress_after(drill, flight, since)
        drill.pace.observe(found)
        saved = {e.invocation_id for e in drill.writer.executions() if e.step == last_step and e.outcome == "ok"}
        return found, ours <= saved

    ended, _ = poll(probe, lambda seen: seen[0] is not None or seen[1], what, 24 * 3600, 0.02, drill.pace)
    if ended is None:
        raise Inconclusive(
            f"the {len(ours)} invocation(s) watched finished with no step started after the fault: it landed too "
            "late to measure recovery (a busy machine slowed the drill more than the stub)"
        )
    return ended - since


def wait_led_without(drill: Drill, nodes: list[Node]) -> dict[int, str]:
    """While the nodes are away: every partition gets an active leader among the others."""
    cluster = drill.cluster
    leaders = cluster.wait_leaders(_after_fault_timeout(drill), excluding={n.name for n in nodes})
    drill.record.event("led without", ", ".join(f"p{p} {n}" for p, n in leaders.items()))
    return leaders


def wait_rejoined(drill: Drill, nodes: list[Node]) -> dict[int, str]:
    """Each node answers again, and every partition has an active leader (asked of all nodes, them too)."""
    cluster = drill.cluster
    timeout = _after_fault_timeout(drill)
    for node in nodes:
        cluster.wait_node_healthy(node, timeout)
    leaders = cluster.wait_leaders(timeout)
    drill.record.event(
        "rejoined",
        f"{', '.join(n.name for n in nodes)} healthy; leaders: " + ", ".join(f"p{p} {n}" for p, n in leaders.items()),
    )
    return leaders


def _after_fault_timeout(drill: Drill) -> float:
    """A wait after the fault ends in a FAIL, so it lasts at least as long as a step may take here (the
    pace, scaled on a busy machine), not only the config's ready timeout chosen for a start."""
    return max(drill.cluster.ready_timeout(), drill.pace.budget_s)
