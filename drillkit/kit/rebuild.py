"""A node that lost its partition store, watched while it rebuilds: the processors it runs again (each
replayed from the log its peers replicated), leadership moved onto it, and what the record says of it.
Probes read restatectl's `partition_state`; `lead_on` changes who leads and gives it back on cleanup.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from drillkit.components.restate_cluster import Node
from drillkit.kit import cluster_probes as cp
from drillkit.kit.cluster_actions import Flight
from drillkit.kit.frame import Drill
from drillkit.waits import poll


def choose_node(drill: Drill, target: str, leaders: dict[int, str], flight: Flight) -> Node:
    """The node to take away, by node-loss's rule (`leader`, `follower` or a number)."""
    return cp.choose(drill.cluster, target, 1, leaders, flight)[0]


def replayed(rows: list[dict[str, Any]]) -> bool:
    """Some processor, and every one active (not starting, not catching up)."""
    return bool(rows) and all(r.get("replay_status") == "active" for r in rows)


def wait_rebuilt(drill: Drill, node: Node) -> list[dict[str, Any]]:
    """Until the node runs partition processors again, each replayed (`replay_status` active): its store
    rebuilt from the log its peers replicated."""
    cluster = drill.cluster

    def rows() -> list[dict[str, Any]]:
        found = cluster.hosted(node)
        drill.pace.observe(len(found))
        return found

    found = poll(rows, replayed, f"{node.name} to run replayed partition processors", wait_s(drill), 0.2, drill.pace)
    drill.record.event("rebuilt", f"{node.name}: {describe(found)}")
    return found


def lead_on(drill: Drill, node: Node, rebuilt: list[dict[str, Any]], flight: Flight) -> int:
    """Leadership of one partition it rebuilt moved onto the node (the one holding most of the flight's
    invocations): from then on that partition's invocations are answered from the rebuilt store. The pin
    is removed on cleanup. Returns the partition."""
    cluster = drill.cluster
    in_flight = Counter(flight.partitions.values())
    partition = max((int(r["partition_id"]) for r in rebuilt), key=lambda p: (in_flight.get(p, 0), -p))
    answer = cluster.pin_leader(partition, node.number)
    drill.on_cleanup(f"p{partition} leadership unpinned", lambda: cluster.unpin_leader(partition))
    drill.record.event("pinned", f"p{partition} leadership to {node.name}: {answer}")

    def leads() -> bool:
        return (cluster.leaders_or_none() or {}).get(partition) == node.name

    poll(leads, bool, f"{node.name} to lead p{partition}", wait_s(drill), 0.2, drill.pace)
    drill.record.evidence["led_by_the_wiped_node"] = {"partition": partition, "in_flight": in_flight.get(partition, 0)}
    drill.record.event("leads", f"{node.name} leads p{partition} ({in_flight.get(partition, 0)} of the flight's)")
    return partition


def judge_node(drill: Drill, node: Node, rebuilt: list[dict[str, Any]], partition: int) -> None:
    """The record's expectations about the node itself, asked of Restate now."""
    cluster, record = drill.cluster, drill.record
    record.expect(
        f"{node.name}'s partition store was rebuilt (it exists again)",
        node.partition_store.is_dir() and any(node.partition_store.iterdir()),
        str(node.partition_store),
    )
    record.expect(
        f"{node.name} runs partition processors again, each replayed from the log", replayed(rebuilt), describe(rebuilt)
    )
    leaders = cluster.wait_leaders(wait_s(drill))
    record.expect(
        f"{node.name} leads p{partition} from its rebuilt store, and every partition has an active leader",
        leaders.get(partition) == node.name and cluster.all_led(leaders),
        ", ".join(f"p{p} {n}" for p, n in leaders.items()),
    )
    record.expect(
        f"{node.name} answers (admin and ingress health)",
        cluster.node_healthy(node),
        f"{node.admin_url}, {node.ingress_url}",
    )


def describe(rows: list[dict[str, Any]]) -> str:
    return (
        ", ".join(
            f"p{r['partition_id']} {r['effective_mode']} {r['replay_status']} at lsn {r.get('applied_log_lsn')}"
            for r in rows
        )
        or "none"
    )


def wait_s(drill: Drill) -> float:
    return max(drill.cluster.ready_timeout(), drill.pace.budget_s)
