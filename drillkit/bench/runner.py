"""`inv bench`: run the figure groups, print a table, write JSON with the machine and every figure."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drillkit import live, progress
from drillkit.bench import cluster, gate, model_load, scenarios
from drillkit.bench.harness import Figure, machine
from drillkit.stack import Stack
from drillkit.state import write_json


@dataclass(frozen=True)
class Plan:
    cold_repeats: int
    drill_repeats: int
    recovery_repeats: int
    durability_repeats: int
    load_sizes: list[int]
    storm_size: int
    storm_kills: int
    model_sizes: list[int]
    model_storm_size: int
    cluster_repeats: int = 5


QUICK = Plan(
    cold_repeats=3,
    drill_repeats=1,
    recovery_repeats=2,
    durability_repeats=2,
    load_sizes=[50],
    storm_size=50,
    storm_kills=3,
    model_sizes=[20],
    model_storm_size=0,
    cluster_repeats=2,
)
FULL = Plan(
    cold_repeats=5,
    drill_repeats=3,
    recovery_repeats=5,
    durability_repeats=5,
    load_sizes=[50, 200],
    storm_size=200,
    storm_kills=5,
    model_sizes=[20, 100],
    model_storm_size=100,
)
GROUPS = ("cold", "drills", "recovery", "durability", "load", "stub-load", "storm", "gate", "cluster")
# `gate` (nginx in front of the model, Restate's timeouts scaled down) runs only when asked: it needs nginx.
SINGLE_SERVER = ("cold", "drills", "recovery", "durability", "load", "stub-load", "storm")
"""The groups run by default on a single-server config; `cluster` is the default with a cluster config."""


def run(stack: Stack, quick: bool, only: list[str] | None, out: Path | None) -> tuple[list[Figure], Path]:
    plan = QUICK if quick else FULL
    groups: dict[str, Callable[[], list[Figure]]] = {
        "cold": lambda: scenarios.cold_start(stack, plan.cold_repeats),
        "drills": lambda: scenarios.drill_times(stack, plan.drill_repeats),
        "recovery": lambda: scenarios.recovery(stack, plan.recovery_repeats),
        "durability": lambda: scenarios.durability_cost(stack, plan.durability_repeats),
        "load": lambda: model_load.model_load(stack, plan.model_sizes, plan.model_storm_size, 2),
        "stub-load": lambda: scenarios.load(stack, plan.load_sizes),
        "storm": lambda: scenarios.crash_storm(stack, plan.storm_size, plan.storm_kills),
        "gate": lambda: gate.gate_group(stack, 8),
        "cluster": lambda: (
            cluster.leader_loss(stack, plan.cluster_repeats) + cluster.throughput(stack, plan.cluster_repeats)
        ),
    }
    default = ["cluster"] if stack.rt.is_cluster else list(SINGLE_SERVER)
    chosen = only or default
    started = time.monotonic()
    figures: list[Figure] = []
    try:
        if stack.needs_setup():
            stack.setup()
        with live.watch(stack, "bench"):
            for group in chosen:
                progress.step(f"bench: {group}")
                stack.down()  # every group starts from nothing of ours running
                figures += groups[group]()
    finally:
        stack.down()
    result: dict[str, Any] = {
        "machine": machine(stack),
        "mode": "quick" if quick else "full",
        "plan": plan.__dict__,
        "seconds": round(time.monotonic() - started, 1),
        "figures": [f.to_dict() for f in figures],
    }
    path = out or stack.state.root / "bench" / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_json(path, result)
    show(figures, result["machine"])
    progress.info(f"results: {path} ({result['seconds']:.0f} s)")
    return figures, path


def show(figures: list[Figure], machine_info: dict[str, Any]) -> None:
    rows = []
    for f in figures:
        s = f.stats
        verdict = "" if f.met is None else ("met" if f.met else "MISSED")
        rows.append(
            (
                f.group,
                f.name,
                f.unit,
                _num(s.get("median")),
                _num(s.get("min")),
                _num(s.get("max")),
                f.target or "",
                verdict,
            )
        )
    progress.table(
        f"benchmarks on {machine_info['cpu']} ({machine_info['cores']} cores), "
        f"restate-server {machine_info['restate_server']}, restate-sdk {machine_info['restate_sdk']}",
        ("group", "figure", "unit", "median", "min", "max", "target", ""),
        rows,
    )


def _num(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
