"""Cluster actions: lose nodes (kill, freeze, cut off) and bring them back, hold and release the stub
model, send a flight of invocations (the probes are in `cluster_probes`). Like `actions.py`, every action
that takes something away registers the cleanup that gives it back, on every path (Ctrl-C included), and
marks the fault injected.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from drillkit.components.restate_cluster import Node, Partitioner
from drillkit.components.stub_llm import StubLlm
from drillkit.errors import DrillError
from drillkit.kit import actions
from drillkit.kit.frame import Drill

Fault = Literal["kill", "freeze", "cut"]
STUB_DELAY_MS = 300.0


@dataclass
class Flight(actions.Batch):
    """The invocations a cluster drill keeps in flight: ids, idempotency keys, bodies (a Batch), partitions."""

    partitions: dict[str, int] = field(default_factory=dict)
    watched: set[str] = field(default_factory=set)
    """The invocations whose partition a lost node led: their progress is the recovery that counts."""
    fault_at: float = 0.0
    """Epoch seconds of the fault (ledger times are epoch seconds)."""
    restored_at: float = 0.0
    """Epoch seconds the lost nodes were given back (started, thawed or healed)."""
    rejoined_at: float = 0.0
    """Epoch seconds every node answered again and every partition had an active leader."""


# -- setup ------------------------------------------------------------------------------------------------


def use_stub_llm(drill: Drill, delay_ms: float = STUB_DELAY_MS) -> StubLlm:
    """The point is Restate, not the model: the writer answers from the stub (each step `delay_ms`)."""
    handles = drill.handles
    stub = handles.model.stub()
    drill.on_cleanup("stub LLM stopped", stub.stop)
    stub.start(delay_ms)
    path = handles.writer.derived_config(
        "cluster-stub", {"writer_model.base_url": f"{stub.url}/v1", "writer_model.model": "stub"}
    )
    drill.on_cleanup("writer on its own config", handles.writer.restart)
    actions.restart_writer(drill, path)
    drill.record.event("stub LLM", f"{stub.url}, {delay_ms:g} ms per answer")
    return stub


def talk_to_survivor(drill: Drill, lost: list[Node]) -> Node:
    """Before the nodes go: the drill's clients move to a node that stays (the entry node unless it is lost)."""
    survivor = drill.cluster.entry_surviving({n.number for n in lost})
    drill.restate.point_at(survivor.admin_url, survivor.ingress_url)
    return survivor


def partitioner(drill: Drill) -> Partitioner:
    """What cuts a node off on this backend (nftables natively, `docker network disconnect` for
    containers); Inconclusive, before any fault, when this host cannot do it."""
    cut = drill.cluster.partitioner(drill.config.service.port)
    cut.check_possible()
    return cut


def send_flight(drill: Drill, n: int) -> Flight:
    flight = Flight()
    actions.send_batch(drill, flight, n, "cluster")
    return flight


# -- actions ------------------------------------------------------------------------------------------------


def lose(drill: Drill, nodes: list[Node], fault: Fault, sig: signal.Signals, cut: Partitioner | None = None) -> float:
    """Take the nodes away (the stack already talks to a survivor); returns the epoch time of the fault."""
    cluster = drill.cluster
    names = ", ".join(n.name for n in nodes)
    for node in nodes:

        def give_back(node: Node = node) -> None:
            restore(drill, [node], fault, cut)

        drill.on_cleanup(f"restate node {node.name} back", give_back)
    drill.fault_injected = True
    for node in nodes:
        record = cluster.live(node)
        if record is None:
            raise DrillError(f"restate node {node.name} was not running when the drill came to take it away")
        if fault == "kill":
            stopped = cluster.node_kill(node.number, sig)
            where = cluster.node_where(node, record)
            drill.record.event("killed", f"{sig.name} to {node.name} ({where})" + _gone(stopped))
        elif fault == "freeze":
            cluster.node_freeze(node.number)
            where = cluster.node_where(node, record)
            drill.record.event("frozen", f"{cluster.freeze_how} to {node.name} ({where}): alive, silent")
        else:
            assert cut is not None
            drill.record.evidence.update(cut.cut(node))
            cluster.cut_off.add(node.number)
            drill.record.event("cut off", f"{node.name}: {cut.how}")
    drill.record.evidence["lost"] = names
    # The fault is whole once the last node is away (a kill returns when the process is gone): steps
    # started before that, while a majority was still up, are not progress "after the fault".
    return time.time()


def restore(drill: Drill, nodes: list[Node], fault: Fault, cut: Partitioner | None = None) -> None:
    """Bring the nodes back (idempotent: also the cleanup): start, thaw, or remove the rules."""
    cluster = drill.cluster
    for node in nodes:
        if fault == "cut":
            assert cut is not None
            if cut.heal(node):
                drill.record.event("healed", f"{node.name}: the cut removed")
            cluster.cut_off.discard(node.number)
        elif fault == "freeze":
            if cluster.frozen(node):
                cluster.node_thaw(node.number)
                drill.record.event("thawed", f"{cluster.thaw_how} to {node.name}")
        else:
            cluster.launch_node(node)


def _gone(stopped: Any) -> str:
    return f", gone after {stopped.seconds:.2f} s" if stopped is not None else " (already gone)"


def stop_and_wipe(drill: Drill, node: Node, sig: signal.Signals) -> float:
    """The node down (`sig`: KILL, a crash; TERM, a stop), then its partition store deleted while it is
    down (Restate's own verification: `rm -rf` of a node's db). Returns the epoch time the data was gone."""
    cluster = drill.cluster

    def give_back() -> None:
        restore(drill, [node], "kill")

    drill.on_cleanup(f"restate node {node.name} back", give_back)
    record = cluster.live(node)
    if record is None:
        raise DrillError(f"restate node {node.name} was not running when the drill came to stop it")
    stopped = cluster.node_kill(node.number, sig) if sig == signal.SIGKILL else cluster.node_stop(node.number)
    drill.record.event("stopped", f"{sig.name} to {node.name}'s recorded pid {record.pid}" + _gone(stopped))
    drill.fault_injected = True
    store, files, size = cluster.wipe_partition_store(node.number)
    drill.record.evidence["wiped"] = {"node": node.name, "path": str(store), "files": files, "bytes": size}
    drill.record.event("data destroyed", f"{node.name}'s partition store {store}: {files} files, {size} bytes removed")
    return time.time()
