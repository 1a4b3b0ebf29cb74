"""drill.soak's fault schedule and its recovery table: pure functions of a seed and of what was measured
(no stack), so that unit tests pin them down.

The schedule is a list of faults, run one after another: each waits its gap (load only), is injected, held
for its hold, healed, and the next one waits until the cluster has recovered from it. So at most one node
is away at any moment, which a 3-node cluster with replication 2 tolerates (`tolerated_away`); the writer
fault takes no node away at all. Kinds come in rounds, each round a seeded order of every kind asked for:
any `len(kinds)` faults in a row hold each kind once, so even a short soak injects every kind.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from typing import Any

from drillkit.errors import DrillError

KINDS = ("kill", "stop", "partition", "writer")
"""kill: a node SIGKILLed, then started again; stop: a node frozen (SIGSTOP), then thawed; partition: a node
cut off by nftables, then healed; writer: the writer SIGKILLed, then started again."""
NODE_KINDS = frozenset({"kill", "stop", "partition"})
HOLD_S = (1.5, 3.0)
"""How long a fault is held (seconds, uniform between the two): about as long as Restate takes here to move
a lost node's partitions to the others (0.2-3 s measured; longer on a loaded machine, and then the node
comes back before it was deposed, which is a fault of its own)."""
GAP_S = (0.5, 1.5)
"""Quiet time (load only) before each fault, once the previous one has recovered."""


@dataclass(frozen=True)
class PlannedFault:
    number: int
    kind: str
    node: int | None
    """The node a node fault takes away (1..N); None for the writer."""
    hold_s: float
    gap_s: float

    @property
    def target(self) -> str:
        return "writer" if self.node is None else f"n{self.node}"


def parse_kinds(value: str) -> tuple[str, ...]:
    """`--faults kill,stop`: the kinds, in the order given, each once; a refusal names the flag and the value."""
    names = [n.strip() for n in str(value).split(",") if n.strip()]
    unknown = [n for n in names if n not in KINDS]
    if not names or unknown:
        raise DrillError(
            f"--faults {value!r}: "
            + (f"unknown {', '.join(unknown)}; " if unknown else "")
            + f"use a comma-separated list of {', '.join(KINDS)}"
        )
    return tuple(dict.fromkeys(names))


def tolerated_away(nodes: int, replication: int) -> int:
    """How many nodes may be away at once while every partition still has a copy of its log and state and
    a majority of the metadata servers answers: at most `replication - 1`, and at most a minority."""
    return max(0, min(nodes - (nodes // 2 + 1), replication - 1))


def check_quorum(kinds: tuple[str, ...], nodes: int, replication: int) -> None:
    """The schedule takes one node away at a time: refused when even one is more than the cluster tolerates."""
    asked = sorted(NODE_KINDS & set(kinds))
    if asked and tolerated_away(nodes, replication) < 1:
        raise DrillError(
            f"--faults {','.join(asked)}: a cluster of {nodes} node(s) with replication {replication} cannot lose a "
            "node without losing quorum or a partition's only copy (use 3 nodes, replication 2; or --faults writer)"
        )


def plan(
    seed: int,
    seconds: float,
    kinds: tuple[str, ...],
    nodes: int,
    hold: tuple[float, float] = HOLD_S,
    gap: tuple[float, float] = GAP_S,
) -> list[PlannedFault]:
    """Enough faults to fill `seconds` were each one to recover at once (the run stops at the deadline, so
    the tail of a long plan may not run). The same seed gives the same plan. A node fault never picks the
    node of the node fault just before it (it has only just rejoined)."""
    if not kinds:
        raise DrillError("no fault kinds to plan")
    rng = random.Random(seed)
    faults: list[PlannedFault] = []
    filled = 0.0
    last_node: int | None = None
    while filled < seconds:
        for kind in rng.sample(kinds, len(kinds)):
            node = None
            if kind in NODE_KINDS:
                choices = [n for n in range(1, nodes + 1) if n != last_node] or list(range(1, nodes + 1))
                node = last_node = rng.choice(choices)
            fault = PlannedFault(len(faults) + 1, kind, node, round(rng.uniform(*hold), 2), round(rng.uniform(*gap), 2))
            faults.append(fault)
            filled += fault.gap_s + fault.hold_s
            if filled >= seconds:
                break
    return faults


def placed(
    state_rows: list[dict[str, Any]], names: dict[str, str], partitions: int, replication: int, back: str | None = None
) -> bool:
    """Every partition runs on `replication` nodes, each caught up (`replay_status` active), and the node
    `back` (just given back) runs some again: Restate places partitions onto a returning node a few seconds
    after it answers, moving leaders once more; only then does a fault on another node still leave each
    partition a caught-up copy to lead from. `names`: plain node id -> node name."""
    active: dict[int, set[str]] = {}
    for row in state_rows:
        if row.get("replay_status") == "active":
            node = names.get(str(row.get("plain_node_id")), str(row.get("plain_node_id")))
            active.setdefault(int(row["partition_id"]), set()).add(node)
    hosted = set().union(*active.values()) if active else set()
    return (
        len(active) == partitions
        and all(len(nodes) >= replication for nodes in active.values())
        and (back is None or back in hosted)
    )


def nodes_away_at_once(faults: list[dict[str, Any]]) -> int:
    """The most nodes away at the same moment in what ran (each fault's injected..healed window, epoch s)."""
    edges = []
    for f in faults:
        if f.get("node") is not None and f.get("injected_at") is not None:
            edges += [(float(f["injected_at"]), 1), (float(f.get("healed_at") or float("inf")), -1)]
    away = most = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):  # a heal before an injection at the same instant
        away += step
        most = max(most, away)
    return most


def recovery_table(faults: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per fault kind: how many ran, recovery (heal to recovered, seconds) p50 and max, and for node faults the
    failover (fault to every partition led by the others) p50 and max; a fault that never recovered counts,
    with its recovery None."""
    rows = []
    for kind in [k for k in KINDS if any(f["kind"] == k for f in faults)]:
        runs = [f for f in faults if f["kind"] == kind]
        measured = sorted(float(f["recovery_s"]) for f in runs if f.get("recovery_s") is not None)
        failover = sorted(float(f["failover_s"]) for f in runs if f.get("failover_s") is not None)
        rows.append(
            {
                "kind": kind,
                "count": len(runs),
                "recovered": len(measured),
                "recovery_p50_s": round(statistics.median(measured), 3) if measured else None,
                "recovery_max_s": round(measured[-1], 3) if measured else None,
                "failover_p50_s": round(statistics.median(failover), 3) if failover else None,
                "failover_max_s": round(failover[-1], 3) if failover else None,
            }
        )
    return rows
