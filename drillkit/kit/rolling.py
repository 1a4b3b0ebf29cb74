"""Rolling a cluster between two `restate-server` releases, one node at a time: start every node on one
release, replace a node by another release (or drain it first, a planned maintenance), prove which
release each node runs, and give the nodes back their pinned binary at the end.

A node's release is proven twice, from two sources: Restate's `nodes` table (`binary_version`, what the
node reported when it joined) and `restate-server --version` of the very file its recorded pid runs
(`/proc/<pid>/exe`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from drillkit.binaries import SERVER, parse_version, reported_version
from drillkit.components.restate_cluster import Node, RestateCluster
from drillkit.config import DrillConfig
from drillkit.errors import DrillError
from drillkit.kit.frame import Drill
from drillkit.kit.keyed_load import RETRY_BUDGET_S, KeyedLoad
from drillkit.restate_api import SERVICE
from drillkit.state import StateDir
from drillkit.waits import poll

PINNED_BACK = "every node back on the pinned restate-server"
BORN_HERE = "born-by-drill.rolling-upgrade"
"""A file the drill writes in the cluster's home once it has started a cluster afresh there: the data
beside it is the drill's own, which a later run may delete without being told to."""


def native_cluster_only(config: DrillConfig) -> None:
    """drill.rolling-upgrade's and drill.data-loss's refusal of any backend but the native cluster (they
    handle each node's files and binary), from the config alone: no Docker engine is asked first."""
    if config.runtime.backend != "cluster":
        raise DrillError(
            f"{config.source}: runtime.backend is {config.runtime.backend}: this drill runs on the native cluster "
            "only (runtime.backend: cluster, configs/cluster.yaml): it handles each node's files and binary"
        )


def in_the_way(cluster: RestateCluster, state: StateDir) -> list[str]:
    """What starting the cluster afresh would delete that this drill did not create, each named: nodes
    that run, node data the drill did not write (no `BORN_HERE` beside it, or an invocation sent since),
    the remembered last invocation. Empty: nothing but the drill's own data (or nothing) is there."""
    found: list[str] = []
    running = [n.name for n in cluster.nodes if cluster.live(n) is not None]
    if running:
        found.append(f"the running cluster ({', '.join(running)})")
    last = state.last_invocation()
    held = [n.name for n in cluster.nodes if n.data_dir.is_dir() and any(n.data_dir.iterdir())]
    if held and (running or last or not (cluster.home / BORN_HERE).is_file()):
        found.append(f"its data in {cluster.home} ({', '.join(held)})")
    if last:
        found.append(f"the last invocation sent ({last})")
    return found


def binary_of(drill: Drill, version: str) -> Path:
    """The cached binary of a release (fetched by `inv setup` or the drill's check)."""
    releases = drill.handles.releases
    found = releases(version).find(SERVER) if releases else None
    if found is None:
        raise DrillError(f"restate-server {version} is not in the binary cache: run `inv setup`")
    return found[0]


def running_version(drill: Drill, node: Node) -> str | None:
    """`--version` of the file the node's recorded, live pid executes."""
    record = drill.cluster.live(node)
    if record is None:
        return None
    try:
        exe = Path(os.readlink(f"/proc/{record.pid}/exe"))
    except OSError:
        exe = Path(record.cmdline[0])
    return reported_version(exe)


def prove_versions(drill: Drill, expected: str, stage: str) -> dict[str, dict[str, str | None]]:
    """Each node's release from both sources; an expectation that every node runs `expected`."""
    cluster = drill.cluster
    reported = {str(r["name"]): r.get("binary_version") for r in cluster.restate_nodes()}
    seen = {n.name: {"nodes_table": reported.get(n.name), "process": running_version(drill, n)} for n in cluster.nodes}
    drill.record.evidence.setdefault("versions", {})[stage] = seen
    drill.record.expect(
        f"{stage}: every node runs restate-server {expected} (Restate's nodes table and the process's binary)",
        all(v["nodes_table"] == expected and v["process"] == expected for v in seen.values()),
        "; ".join(f"{name} {v['nodes_table']} / {v['process']}" for name, v in seen.items()),
    )
    return seen


def start_on(drill: Drill, version: str) -> None:
    """A cluster born on `version`: every node stopped, its data deleted, started again on that release,
    the writer registered again. (A cluster the pinned release provisioned, merely restarted on an older
    one, would be a downgrade, not a start.)"""
    cluster = drill.cluster
    binary = binary_of(drill, version)
    drill.on_cleanup(PINNED_BACK, lambda: back_to_pinned(drill))
    cluster.stop(purge=True)
    state = drill.handles.model.state
    state.last_invocation_file.unlink(missing_ok=True)  # `inv describe` must not point at a deleted one
    for node in cluster.nodes:
        cluster.run_node_on(node.number, binary, parse_version(version))
    started = time.monotonic()
    where = cluster.start()
    drill.restate.register(force=False)  # the cluster's data is new: a first registration
    cluster.wait_registered_everywhere(SERVICE, cluster.ready_timeout())
    (cluster.home / BORN_HERE).write_text(f"started afresh on restate-server {version} by drill.rolling-upgrade\n")
    drill.record.event(
        "cluster on " + version,
        f"data and the remembered last invocation deleted, {where} started on {binary} and the writer "
        f"registered in {time.monotonic() - started:.1f} s",
    )


def start_load(drill: Drill, rate: float) -> KeyedLoad:
    """The keyed load over the nodes, started (keys `roll-<run>-<n>`): a send fails after RETRY_BUDGET_S
    going round the nodes; each accepted id is the drill's as it is accepted; halted at cleanup."""
    load = KeyedLoad(nodes(drill), rate, prefix="roll", budget_s=RETRY_BUDGET_S, invocations=drill.invocations)
    drill.on_cleanup("keyed load stopped", load.halt)
    load.start()
    drill.record.event("load", f"{rate:g} keyed invocation(s) a second, keys roll-{load.run}-<n>")
    return load


def replace(drill: Drill, load: KeyedLoad, node: Node, version: str, drain: bool) -> dict[str, float]:
    """One node replaced by `version`: (drained first when `drain`: out of the load's rotation, its worker
    draining until it runs no partition processor) stopped with SIGTERM, started on the new binary, every
    partition led again. Returns the seconds each phase took."""
    cluster = drill.cluster
    timings: dict[str, float] = {}
    started = time.monotonic()
    if drain:
        load.take_out(node.number)
        drill.record.event("drain", f"{node.name}: {cluster.set_worker_state(node.number, 'draining')}")
        poll(lambda: cluster.hosted(node), lambda rows: not rows, f"{node.name} to run no partition", _wait_s(drill))
        timings["drain_s"] = round(time.monotonic() - started, 2)
    stopped = cluster.node_stop(node.number)
    timings["stop_s"] = round(stopped.seconds if stopped else 0.0, 2)
    cluster.run_node_on(node.number, binary_of(drill, version), parse_version(version))
    restarted = time.monotonic()
    cluster.launch_node(node)
    cluster.wait_node_healthy(node, _wait_s(drill))
    if drain:
        drill.record.event("activate", f"{node.name}: {cluster.set_worker_state(node.number, 'active')}")
    cluster.wait_leaders(_wait_s(drill))
    cluster.wait_registered_everywhere(SERVICE, _wait_s(drill))
    timings["start_s"] = round(time.monotonic() - restarted, 2)
    if drain:
        load.put_back(node.number)
    drill.record.event(
        "replaced",
        f"{node.name} now runs {version} ({', '.join(f'{k} {v:g}' for k, v in timings.items())})",
    )
    return timings


def nodes(drill: Drill) -> list[Node]:
    return drill.cluster.nodes


def judge_leaders(drill: Drill) -> None:
    """Every partition led at the end, asked of the nodes."""
    cluster = drill.cluster
    leaders = cluster.wait_leaders(_wait_s(drill))
    drill.record.expect(
        "every partition has an active leader at the end",
        cluster.all_led(leaders),
        ", ".join(f"p{p} {n}" for p, n in leaders.items()),
    )


def back_to_pinned(drill: Drill) -> None:
    """The cleanup: every node runs the pinned binary again, one at a time (an upgrade Restate supports):
    one on another release is stopped and started, one that is down (a Ctrl-C while it was being replaced)
    is started. A node that cannot be started is named in the DrillError, after the others were tried."""
    cluster = drill.cluster
    failed: list[str] = []
    for node in cluster.nodes:
        other = node.number in cluster.node_binaries
        cluster.run_node_on(node.number, None)
        try:
            if cluster.live(node) is not None:
                if not other:
                    continue
                cluster.node_stop(node.number)
            cluster.launch_node(node)
            cluster.wait_node_healthy(node, _wait_s(drill))
        except DrillError as exc:
            failed.append(f"{node.name} ({exc})")
    if failed:
        raise DrillError(f"not started on the pinned restate-server: {'; '.join(failed)}; `inv up` tries again")


def _wait_s(drill: Drill) -> float:
    return max(drill.cluster.ready_timeout(), drill.pace.budget_s)
