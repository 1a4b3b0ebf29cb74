"""drill.soak's faults as they run: one planned fault injected, held, healed
and recovered from, the final heal, and the liveness check. Node faults go through `cluster_actions`
(`lose`/`restore`, which register what gives each node back), the writer's through `actions`.

Recovery, per fault: from the heal (the node started again, thawed or its cut removed; the writer started
again) until the node answers, every partition has an active leader, and a step that *started* after the
heal has finished (for the writer, that step alone). Only a living leader and a living writer can have
produced such a step, so it is progress of the healed system, not of work already under way.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from drillkit.components.restate_cluster import Node, Partitioner
from drillkit.errors import DrillError, HttpError
from drillkit.howto import howto_body
from drillkit.kit import actions
from drillkit.kit import cluster_actions as ca
from drillkit.kit.frame import Drill
from drillkit.kit.keyed_load import KeyedLoad
from drillkit.kit.soak_load import Steps
from drillkit.kit.soak_plan import PlannedFault, plan
from drillkit.kit.soak_plan import placed as partitions_placed
from drillkit.restate_api import IngressApi
from drillkit.waits import WaitTimeout, poll

NODE_FAULT: dict[str, tuple[ca.Fault, signal.Signals]] = {
    "kill": ("kill", signal.SIGKILL),
    "stop": ("freeze", signal.SIGSTOP),
    "partition": ("cut", signal.SIGKILL),
}


@dataclass
class Soak:
    """What the soak planned, sent and saw."""

    plan: list[PlannedFault]
    seconds: float
    bound_s: float
    load: KeyedLoad
    steps: Steps
    writer_config: str
    cut: Partitioner | None = None
    faults: list[dict[str, Any]] = field(default_factory=list)
    """Each fault as it ran: kind, target, epoch times (injected_at, healed_at, recovered_at), offsets, recovery."""
    deposed: list[dict[str, Any]] = field(default_factory=list)
    """Frozen or cut-off nodes given back: the partitions each led and the window (epoch) until the cluster
    had recovered, in which it may still drive a step from its stale state (Restate: at least once)."""
    liveness: dict[str, Any] = field(default_factory=dict)


def prepare(
    drill: Drill, plan_for: tuple[int, float, tuple[str, ...]], rate: float, bound_s: float, writer_config: str
) -> Soak:
    """The plan (seed, seconds, kinds) for this cluster, the load over its nodes (not started), the ledger read."""
    seed, seconds, kinds = plan_for
    nodes = drill.cluster.nodes
    schedule = plan(seed, seconds, kinds, len(nodes))
    steps = Steps(drill.writer.ledger_follower())
    return Soak(schedule, seconds, bound_s, KeyedLoad(list(nodes), rate, prefix="soak"), steps, writer_config)


def check_cut_possible(drill: Drill, kinds: tuple[str, ...]) -> Partitioner | None:
    """INCONCLUSIVE before any fault when a partition is asked for and this host cannot cut a node off."""
    return ca.partitioner(drill) if "partition" in kinds else None


def run_fault(drill: Drill, soak: Soak, planned: PlannedFault) -> bool:
    """One fault: inject, hold, heal, wait for recovery (up to the bound). False when it did not recover
    in time: the schedule stops there (another fault could take a second node away)."""
    cluster = drill.cluster
    node = cluster.node(planned.node) if planned.node is not None else None
    run: dict[str, Any] = {"number": planned.number, "kind": planned.kind, "target": planned.target}
    run["node"] = planned.node
    led = _led_by(drill, node)
    if planned.node is not None:
        soak.load.take_out(planned.node)
    if node is not None:
        ca.talk_to_survivor(drill, [node])
    run["injected_at"] = inject(drill, soak, planned, node)
    run["failover_s"] = watch_failover(drill, node, run["injected_at"], planned.hold_s)
    left = run["injected_at"] + planned.hold_s - time.time()
    if left > 0:
        time.sleep(left)  # the rest of the fault's planned duration: nothing to wait for
    run["healed_at"] = heal(drill, soak, planned, node)
    run["steps_while_held"] = soak.steps.done_between(run["injected_at"], run["healed_at"])
    soak.faults.append(run)
    try:
        run["recovered_at"] = wait_recovered(drill, soak, node, run["healed_at"])
    except WaitTimeout as exc:
        run["recovered_at"] = None
        drill.record.event("not recovered", f"fault {planned.number} ({planned.kind} {planned.target}): {exc}")
    finally:
        _offsets(drill, run)
    if planned.kind in ("stop", "partition") and node is not None:
        until = run["recovered_at"] or time.time()
        soak.deposed.append({"node": node.name, "led": led, "from": run["injected_at"], "to": until})
    if planned.node is not None:
        soak.load.put_back(planned.node)
    if run["recovered_at"] is None:
        return False
    drill.record.event("recovered", f"fault {planned.number}: {run['recovery_s']:.2f} s after the heal")
    return True


def inject(drill: Drill, soak: Soak, planned: PlannedFault, node: Node | None) -> float:
    drill.record.event(f"fault {planned.number}", f"{planned.kind} {planned.target}, held {planned.hold_s:g} s")
    if node is None:
        writer = drill.writer.live()
        if writer is None:
            raise DrillError("the writer is not running: nothing to kill")
        actions.kill_writer(drill, writer, signal.SIGKILL)
        return time.time()
    fault, sig = NODE_FAULT[planned.kind]
    return ca.lose(drill, [node], fault, sig, soak.cut)


def watch_failover(drill: Drill, node: Node | None, injected_at: float, hold_s: float) -> float | None:
    """While a node is away (until the end of its hold): seconds from the fault until every partition is led
    by the other nodes, or None when that did not happen within the hold (nothing to fail: Restate may take
    longer to declare a node dead than a fault is held; the recovery after the heal is what is judged)."""
    if node is None:
        return None
    try:
        drill.cluster.wait_leaders(max(0.1, injected_at + hold_s - time.time()), excluding={node.name})
    except WaitTimeout:
        return None
    seconds = round(time.time() - injected_at, 3)
    drill.record.event("led without", f"{node.name}: every partition led by the others {seconds:.2f} s after the fault")
    return seconds


def heal(drill: Drill, soak: Soak, planned: PlannedFault, node: Node | None) -> float:
    if node is None:
        actions.restart_writer(drill, soak.writer_config)
        return time.time()
    fault, _ = NODE_FAULT[planned.kind]
    ca.restore(drill, [node], fault, soak.cut)
    if fault == "kill":
        drill.record.event("restarted", f"{node.name} started again on its data")
    return time.time()


def wait_recovered(drill: Drill, soak: Soak, node: Node | None, healed_at: float) -> float:
    """Epoch time of recovery: the node healthy, every partition led and placed again on `replication`
    caught-up nodes (seen), and a step started after the heal finished (its own end time, from the ledger).
    WaitTimeout past the bound."""
    cluster = drill.cluster
    seen: dict[str, float] = {}

    def back() -> bool:
        return node is None or (cluster.node_healthy(node) and cluster.all_led(cluster.leaders_or_none()) and placed())

    def placed() -> bool:
        assert node is not None
        try:
            names = {
                str(r["plain_node_id"]): str(r["name"])
                for r in cluster.ctl_sql("SELECT plain_node_id, name FROM nodes")
            }
            rows = cluster.ctl_sql("SELECT partition_id, plain_node_id, replay_status FROM partition_state")
        except (DrillError, ValueError):  # a node still starting: ask again
            return False
        return partitions_placed(rows, names, cluster.settings.partitions, cluster.settings.replication, node.name)

    def probe() -> bool:
        if "cluster" not in seen and back():
            seen["cluster"] = time.time() if node is not None else healed_at
        progress = soak.steps.first_done_after(healed_at)
        if progress is not None:
            seen["progress"] = progress
        return len(seen) == 2

    poll(
        probe,
        bool,
        "recovery: the node back, every partition led and placed, a step started and done",
        soak.bound_s,
        0.2,
    )
    return max(seen.values())


def heal_everything(drill: Drill, soak: Soak) -> None:
    """The final heal: every node running, thawed and not cut off, the writer running; then every node answers."""
    cluster = drill.cluster
    for node in cluster.nodes:
        if soak.cut is not None and soak.cut.heal(node):
            drill.record.event("healed", f"{node.name}: the cut removed (final heal)")
    cluster.cut_off.clear()
    for node in cluster.nodes:
        if cluster.live(node) is not None and cluster.frozen(node):
            cluster.node_thaw(node.number)
            drill.record.event("thawed", f"{node.name} (final heal)")
        elif cluster.live(node) is None:
            cluster.launch_node(node)
            drill.record.event("restarted", f"{node.name} (final heal)")
    if drill.writer.live() is None:
        actions.restart_writer(drill, soak.writer_config)
    timeout = max(cluster.ready_timeout(), drill.pace.budget_s)
    for node in cluster.nodes:
        cluster.wait_node_healthy(node, timeout)
    drill.record.event("final heal", "every node running and answering, the writer running")


def liveness(drill: Drill, soak: Soak) -> None:
    """Every node serves, every partition is led, and a new invocation sent through each node's ingress
    completes (its output read back through that same node). Those invocations join the checked population."""
    cluster = drill.cluster
    timeout = max(cluster.ready_timeout(), drill.pace.budget_s)
    leaders = cluster.wait_leaders(timeout)
    health = {n.name: cluster.node_healthy(n) for n in cluster.nodes}
    took: dict[str, float | None] = {}
    for node in cluster.nodes:
        key = f"soak-{soak.load.run}-live-{node.name}"
        body = howto_body(f"liveness through {node.name}")
        begun = time.time()
        with IngressApi(node.ingress_url) as ingress:
            invocation_id = ingress.send(body, idempotency_key=key)
            soak.load.keys[invocation_id] = key
            soak.load.bodies[invocation_id] = body
            drill.invocations.append(invocation_id)
            try:
                poll(partial(_output, ingress, invocation_id), bool, f"{key} to complete", timeout, 0.2)
                took[node.name] = round(time.time() - begun, 3)
            except WaitTimeout:
                took[node.name] = None
    soak.liveness = {"leaders": leaders, "healthy": health, "new_invocation_s": took}
    drill.record.event("liveness", f"leaders {leaders}; new invocations: {took}")


def _output(ingress: IngressApi, invocation_id: str) -> bool:
    try:
        return isinstance(ingress.output(invocation_id), dict)
    except HttpError:  # 470 while it runs
        return False


def _led_by(drill: Drill, node: Node | None) -> list[int]:
    if node is None:
        return []
    leaders = drill.cluster.leaders_or_none() or {}
    return sorted(p for p, name in leaders.items() if name == node.name)


def _offsets(drill: Drill, run: dict[str, Any]) -> None:
    t0 = drill.record.started_at
    run["injected_s"] = round(run["injected_at"] - t0, 3)
    run["healed_s"] = round(run["healed_at"] - t0, 3)
    run["held_s"] = round(run["healed_at"] - run["injected_at"], 3)
    recovered = run.get("recovered_at")
    run["recovery_s"] = None if recovered is None else round(recovered - run["healed_at"], 3)
