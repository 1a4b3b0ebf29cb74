"""drill.soak: the cluster under steady load for minutes while a seeded schedule breaks it, one fault at a time.

Restate's own verification and Jepsen run this shape for hours: load, faults held a few seconds then
healed, and the whole history checked after a final heal. Here:

start the model behind the LLM tap -> send keyed invocations at a steady rate over every node's ingress
(a refused send is sent again with its key through the next node) -> for each planned fault (a seeded
order of kill, stop, partition, writer): wait its gap, take the node (or the writer) away, hold, give it
back, wait until the node answers, every partition is led and a step started after the heal has finished
-> at the deadline stop the load -> final heal -> liveness: every node serves, every partition is led, a
new invocation sent through each node's ingress completes -> the checks.

PASS when every key sent was accepted, every invocation completed with success exactly once (each key sent
again returns the stored output, every report file equals it, no step Restate had journaled as done was
executed or requested again, none journaled twice; a frozen or cut-off leader's stale re-run on its own
partitions is reported, as in drill.partition), the tap and the ledger agree, the schedule ran with never
more than one node away, every fault recovered within the bound, and the liveness check passed. The report
has the schedule as it ran (journal.json `soak`, report.md's table per fault kind: count, recovery p50/max)
and report.html draws throughput and latency over time with each fault window shaded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from drillkit.components.llm_tap import LlmTap
from drillkit.errors import DrillError
from drillkit.handles import Handles
from drillkit.kit import actions, probes, soak_checks
from drillkit.kit import soak_faults as sf
from drillkit.kit.frame import Drill, Scenario
from drillkit.kit.soak_plan import check_quorum, parse_kinds, recovery_table

STUB_DELAY_MS = 200.0
"""The stub's answer time: each invocation takes a couple of seconds, so faults land on work in flight."""


def check_soak(handles: Handles, minutes: float, faults: str, rate: float, llm: str, recovery_bound: float) -> None:
    cluster = handles.cluster  # DrillError for another backend, naming it
    if handles.config.runtime.backend != "cluster":
        raise DrillError(
            f"{handles.config.source}: runtime.backend is {handles.config.runtime.backend}: this drill runs on the "
            "native cluster (runtime.backend: cluster, configs/cluster.yaml): it signals each node's process and "
            "cuts nodes off with nftables"
        )
    kinds = parse_kinds(faults)
    check_quorum(kinds, len(cluster.nodes), cluster.settings.replication)
    if minutes <= 0:
        raise DrillError(f"--minutes {minutes:g}: must be more than 0")
    if rate <= 0:
        raise DrillError(f"--rate {rate:g}: must be more than 0 invocations per second")
    if llm not in ("stub", "local"):
        raise DrillError(f"--llm {llm!r}: use stub or local")
    if recovery_bound <= 0:
        raise DrillError(f"--recovery-bound {recovery_bound:g}: must be more than 0 seconds")


def soak_scenario(minutes: float, seed: int, faults: str, rate: float, llm: str, recovery_bound: float) -> Scenario:
    kinds = parse_kinds(faults)

    def scenario(drill: Drill) -> None:
        started = start(drill, minutes, seed, kinds, rate, llm, recovery_bound)
        soak = started.soak
        run_schedule(drill, soak)
        soak.load.stop()
        drill.record.event("load stopped", f"{len(soak.load.sends)} keys sent at {rate:g}/s")
        sf.heal_everything(drill, soak)
        never_accepted = soak.load.drain()
        drill.invocations[:0] = soak.load.ids_in_order()
        if drill.invocations:
            drill.record.invocation_id = drill.invocations[0]
        sf.liveness(drill, soak)
        probes.wait_all_completed(drill, list(soak.load.keys))
        evidence(drill, soak)
        soak_checks.judge(drill, soak, started.tap, never_accepted)

    return scenario


@dataclass
class Started:
    soak: sf.Soak
    tap: LlmTap


def start(
    drill: Drill, minutes: float, seed: int, kinds: tuple[str, ...], rate: float, llm: str, bound: float
) -> Started:
    """Everything before the first fault: the cut checked possible, the model behind the tap, the plan,
    the load running; the final heal registered as a cleanup (on every path)."""
    cut = sf.check_cut_possible(drill, kinds)  # INCONCLUSIVE here, before any fault
    tap, config = actions.model_behind_tap(drill, llm, STUB_DELAY_MS, "soak", prefix="soak-")
    soak = sf.prepare(drill, plan_for=(seed, minutes * 60, kinds), rate=rate, bound_s=bound, writer_config=config)
    soak.cut = cut
    drill.on_cleanup("soak: every node back, the load stopped", lambda: final_cleanup(drill, soak))
    drill.record.evidence["soak_plan"] = [vars(f) for f in soak.plan]
    drill.record.event("plan", f"seed {seed}: {len(soak.plan)} faults planned for {soak.seconds:g} s: {kinds}")
    soak.load.start()
    drill.record.event("load", f"{rate:g} invocations/s over {', '.join(n.name for n in soak.load.nodes)}")
    return Started(soak, tap)


def run_schedule(drill: Drill, soak: sf.Soak) -> None:
    """Each planned fault in turn while its gap and hold fit before the deadline; stops at a fault that
    does not recover within the bound (another could then take a second node away)."""
    deadline = soak.load.started + soak.seconds
    for planned in soak.plan:
        if time.time() + planned.gap_s + planned.hold_s > deadline:
            break
        time.sleep(planned.gap_s)  # the schedule's quiet time under load: nothing to wait for
        drill.fault_injected = True
        if not sf.run_fault(drill, soak, planned):
            drill.record.note(f"the schedule stopped at fault {planned.number}: it did not recover in time")
            return
    left = deadline - time.time()
    if left > 0:
        time.sleep(left)  # load only until the deadline: the soak lasts --minutes


def evidence(drill: Drill, soak: sf.Soak) -> None:
    drill.record.evidence["soak"] = {
        "seconds": soak.seconds,
        "recovery_bound_s": soak.bound_s,
        "faults": soak.faults,
        "recovery": recovery_table(soak.faults),
        "deposed_windows": soak.deposed,
        "load": soak.load.figures(),
        "liveness": soak.liveness,
    }


def final_cleanup(drill: Drill, soak: sf.Soak) -> None:
    """On every path: the load stopped, every node and the writer back, and the schedule as far as it ran
    kept in the record (the files are written after the cleanups)."""
    soak.load.stop(give_up_s=0)  # on a path that did not drain: the senders end now
    if "soak" not in drill.record.evidence:
        evidence(drill, soak)
    sf.heal_everything(drill, soak)
