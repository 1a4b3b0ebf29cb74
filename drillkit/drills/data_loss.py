"""drill.data-loss: a cluster node loses its data while it is down, and rebuilds it from its peers.

send N keyed invocations -> wait until each has a step journaled as done -> hold the stub model (every
invocation stays in flight) -> the chosen node down (SIGKILL by default: Jepsen's crash) -> its partition
store deleted while it is down (Restate's own verification: `rm -rf` of a node's db; Jepsen's
nuke-partition-state) -> the model released: the others go on -> the node started again on the empty
store -> it rejoins and its partition processors replay their partitions from the replicated log, which
its peers hold (replication 2; without a snapshot repository Restate trims no log in a cluster).

Once it runs its processors again, each replayed, the leadership of the partition it rebuilt with the
most invocations of the flight is moved onto it (`restatectl partitions leadership pin`, unpinned on
cleanup): that partition is then served from the rebuilt store.

PASS when every invocation completed with success exactly once (each key sent again *through the wiped
node* returns the stored output, files equal outputs, no step journaled as done executed again, none
journaled twice), the wiped node's store exists again, it runs partition processors again, each replayed
from the log (restatectl's `partition_state` rows), it leads the pinned partition, every partition has
an active leader and the node answers.

What this cannot do here: the whole data dir (log-server segments and metadata too) wiped is refused by
Restate itself ("it has detected that it has lost its data. storage-state is `data-loss`"); rebuilding
from a snapshot needs an S3-compatible object store (`file://` exists only in Restate's test builds).
See docs/drills.md.
"""

from __future__ import annotations

import signal
import time

from drillkit.errors import DrillError
from drillkit.handles import Handles
from drillkit.kit import actions, exactly_once, probes, rebuild, rolling
from drillkit.kit import cluster_actions as ca
from drillkit.kit import cluster_probes as cp
from drillkit.kit.frame import Drill, Scenario
from drillkit.restate_api import IngressApi

INVOCATIONS = 8


def check_data_loss(handles: Handles, target: str, sig: signal.Signals, invocations: int) -> None:
    rolling.native_cluster_only(handles.config)
    cluster = handles.cluster
    if target not in ("leader", "follower") and not (target.isdigit() and 1 <= int(target) <= len(cluster.nodes)):
        raise DrillError(f"--node {target!r}: use leader, follower or 1..{len(cluster.nodes)}")
    if sig not in (signal.SIGKILL, signal.SIGTERM):
        raise DrillError("--signal: use KILL (a crash) or TERM (a clean stop)")
    if cluster.settings.replication < 2:
        raise DrillError(
            f"{handles.config.source}: runtime.cluster.replication is {cluster.settings.replication}: a node's data "
            "can be rebuilt from its peers only when they hold a copy (replication 2 or more)"
        )
    if invocations < 1:
        raise DrillError("--invocations must be at least 1")


def data_loss_scenario(target: str, sig: signal.Signals, invocations: int, llm: str) -> Scenario:
    def scenario(drill: Drill) -> None:
        stub = ca.use_stub_llm(drill) if llm == "stub" else None
        flight = ca.send_flight(drill, invocations)
        cp.wait_all_underway(drill, flight)
        actions.hold_model(drill, stub)
        leaders = cp.locate(drill, flight)
        node = rebuild.choose_node(drill, target, leaders, flight)
        survivor = ca.talk_to_survivor(drill, [node])
        drill.record.event("target", f"{node.name} ({target}); the drill talks to {survivor.name} from now on")
        flight.fault_at = ca.stop_and_wipe(drill, node, sig)
        actions.release_model(drill, stub)
        seconds = cp.wait_progress(drill, flight, flight.fault_at, "a step to start and finish after the wipe")
        drill.record.event("progress again", f"a step started and finished {seconds:.2f} s after the wipe")
        flight.restored_at = time.time()
        ca.restore(drill, [node], "kill")
        cp.wait_rejoined(drill, [node])
        rebuilt = rebuild.wait_rebuilt(drill, node)
        drill.record.evidence["recovery_s"] = {
            "wipe_to_progress_s": round(seconds, 3),
            "start_to_rebuilt_s": round(time.time() - flight.restored_at, 3),
        }
        partition = rebuild.lead_on(drill, node, rebuilt, flight)
        probes.wait_all_completed(drill, list(flight.keys))
        # Ask through the node that lost its data, now leading a partition it rebuilt: it answers every
        # key with the output Restate stored before the wipe.
        with IngressApi(node.ingress_url) as ingress:
            exactly_once.judge(drill, flight, ingress)
        rebuild.judge_node(drill, node, rebuilt, partition)

    return scenario
