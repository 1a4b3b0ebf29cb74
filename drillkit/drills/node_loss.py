"""drill.node-loss and drill.partition: a Restate cluster loses nodes while invocations are in flight.

send N invocations (spread over the partitions by their keys) -> wait until each has a step journaled
as done -> find each one's partition and the partitions' leaders -> talk to a survivor -> take the
chosen node(s) away: SIGKILL, SIGSTOP (frozen: alive and silent), or an nftables cut (partition) ->

- one node lost (a minority): the survivors go on; the report gives the time from the fault to a step
  started and finished after it (progress again); then the node comes back and rejoins;
- two lost (a majority of three): no step may start while they are away (`HOLD_S`), nothing is lost;
  they come back, then progress again.

PASS when every invocation completed with success, each idempotency key sent again (through the node
that came back) returns the stored output, every report file holds that output, no step Restate had
journaled as done executed again (the writer's ledger against the final journals) and none is journaled
twice, the lost node(s) answer again and every partition has an active leader. Never on `retry_count`:
it resets on a leadership change. A frozen or cut-off leader that comes back can drive a step from its
stale state before it learns it was deposed; such a re-run (in that window, on a partition it led) is
reported, not failed: Restate runs side effects at least once (see `reexecutions`).
"""

from __future__ import annotations

import signal
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from drillkit.components.restate_cluster import Node, Partitioner
from drillkit.components.writer import Execution
from drillkit.errors import DrillError
from drillkit.evidence import executions_after_journaled, journal_steps, journaled_completions
from drillkit.handles import Handles
from drillkit.kit import actions, checks, probes
from drillkit.kit import cluster_actions as ca
from drillkit.kit import cluster_probes as cp
from drillkit.kit.frame import Drill, Scenario
from drillkit.restate_api import IngressApi

HOLD_S = 5.0
"""How long a majority stays down while the drill watches that nothing moves."""
SETTLE_S = 1.0
"""Steps the writer had already been asked for when the majority went down may still start this late."""
INVOCATIONS = 8


def check_node_loss(handles: Handles, target: str, sig: signal.Signals, count: int, invocations: int) -> None:
    cluster = handles.cluster  # DrillError for another backend
    if target not in ("leader", "follower") and not (target.isdigit() and 1 <= int(target) <= len(cluster.nodes)):
        raise DrillError(f"--node {target!r}: use leader, follower or 1..{len(cluster.nodes)}")
    if sig not in (signal.SIGKILL, signal.SIGSTOP):
        raise DrillError("--signal: use KILL or STOP")
    if count not in (1, 2) or count >= len(cluster.nodes):
        raise DrillError(f"--count {count}: use 1, or 2 (a majority of 3); the cluster has {len(cluster.nodes)} nodes")
    if invocations < 1:
        raise DrillError("--invocations must be at least 1")


def node_loss_scenario(
    target: str, sig: signal.Signals, count: int, invocations: int, llm: str, fault: ca.Fault | None = None
) -> Scenario:
    chosen_fault: ca.Fault = fault or ("freeze" if sig == signal.SIGSTOP else "kill")

    def scenario(drill: Drill) -> None:
        cluster = drill.cluster
        cut = ca.partitioner(drill) if chosen_fault == "cut" else None  # Inconclusive before any fault
        stub = ca.use_stub_llm(drill) if llm == "stub" else None
        flight = ca.send_flight(drill, invocations)
        cp.wait_all_underway(drill, flight)
        actions.hold_model(drill, stub)
        leaders = cp.locate(drill, flight)
        lost = cp.choose(cluster, target, count, leaders, flight)
        lost_numbers = {n.number for n in lost}
        survivor = ca.talk_to_survivor(drill, lost)
        drill.record.event(
            "target", f"{', '.join(n.name for n in lost)} ({target}); the drill talks to {survivor.name} from now on"
        )

        flight.fault_at = ca.lose(drill, lost, chosen_fault, sig, cut)
        actions.release_model(drill, stub)
        if count == 1:
            recovery = {"fault_to_progress_s": one_lost(drill, flight, lost, chosen_fault, cut)}
        else:
            recovery = {"return_to_progress_s": majority_lost(drill, flight, lost, chosen_fault, cut)}
        leaders_after = cp.wait_rejoined(drill, lost)
        flight.rejoined_at = time.time()
        drill.record.evidence["recovery_s"] = recovery
        drill.record.evidence["leaders_after"] = leaders_after
        probes.wait_all_completed(drill, list(flight.keys))
        # A frozen or cut-off node comes back still believing it leads: until it learns otherwise it may
        # drive its partitions' invocations from its stale state. A killed node comes back from the log.
        judge(drill, flight, lost_numbers, leaders_after, deposed_may_return=chosen_fault in ("freeze", "cut"))

    return scenario


def one_lost(drill: Drill, flight: ca.Flight, lost: list[Node], fault: ca.Fault, cut: Partitioner | None) -> float:
    """One node away: progress resumes on the others, every partition led without it; then it is given
    back. Returns the seconds from the fault to the first step started and finished after it."""
    seconds = cp.wait_progress(drill, flight, flight.fault_at, "a step to start and finish after the fault")
    drill.record.event(
        "progress again",
        f"a step of an invocation {lost[0].name} led started and finished {seconds:.2f} s after the fault"
        if flight.watched
        else f"a step started and finished {seconds:.2f} s after the fault ({lost[0].name} led none in flight)",
    )
    during = cp.wait_led_without(drill, lost)
    drill.record.expect(
        f"while {lost[0].name} was away, every partition had an active leader among the others",
        drill.cluster.all_led(during, {lost[0].name}),
        ", ".join(f"p{p} {n}" for p, n in during.items()),
    )
    flight.restored_at = time.time()
    ca.restore(drill, lost, fault, cut)
    return round(seconds, 3)


def majority_lost(drill: Drill, flight: ca.Flight, lost: list[Node], fault: ca.Fault, cut: Partitioner | None) -> float:
    """A majority away: nothing may move for HOLD_S; then they are given back and progress resumes.
    Returns the seconds from their return to the first step started and finished after it."""
    time.sleep(HOLD_S)  # the observation window itself: nothing to poll for, absence is the point
    moved = cp.started_after(drill, flight, flight.fault_at + SETTLE_S)
    drill.record.expect(
        f"no step started while a majority was down ({HOLD_S:g} s watched)",
        not moved,
        f"steps started from {SETTLE_S:g} s after the fault: {moved[:5] or 'none'}",
    )
    flight.restored_at = time.time()
    ca.restore(drill, lost, fault, cut)
    seconds = cp.wait_progress(drill, flight, flight.restored_at, "a step to start and finish after the return")
    drill.record.event("progress again", f"a step started and finished {seconds:.2f} s after the return")
    return round(seconds, 3)


def judge(
    drill: Drill, flight: ca.Flight, lost: set[int], leaders_after: dict[int, str], deposed_may_return: bool = False
) -> None:
    handles, record = drill.handles, drill.record
    cluster = handles.cluster
    ids = list(flight.keys)
    checks.all_completed_with_success(drill, ids, probes.invocations(drill, ids))
    # Ask through a node that was lost: it serves the same results once it is back.
    back = cluster.node(min(lost))
    with IngressApi(back.ingress_url) as ingress:
        outputs = checks.same_output_again(drill, flight, ingress)
    checks.files_hold_outputs(drill, outputs)
    journals = probes.journals(drill, flight.keys)
    window = (flight.restored_at, flight.rejoined_at) if deposed_may_return else None
    again = reexecutions(drill, flight, journals, window)
    steps = sum(len(journaled_completions(rows)) for rows in journals.values())
    record.evidence["executed_again_by_the_deposed_leader"] = again.by_deposed
    record.expect(
        "no step Restate had journaled as done was executed again (ledger), nor journaled twice",
        not again.rerun and not again.twice,
        f"{steps} journaled steps; executed again: {again.rerun[:5] or 'none'}"
        + (f"; journaled twice: {again.twice[:5]}" if again.twice else ""),
    )
    if again.by_deposed:
        record.note(
            "executed again by the deposed leader between its return and its step-down, on a partition it "
            f"had led (its results can no longer be journaled; Restate runs side effects at least once): "
            f"{again.by_deposed[:10]}"
        )
    retried = sorted(
        {
            f"{e.invocation_id}/{e.step}"
            for e in handles.writer.executions()
            if e.invocation_id in flight.keys and (e.attempt or 1) > 1
        }
    )
    record.note(f"in-flight steps that ran again (allowed: never journaled as done): {retried[:10] or 'none'}")
    health = {n: cluster.node_healthy(cluster.node(n)) for n in sorted(lost)}
    record.expect(
        "the lost node(s) answer again",
        all(health.values()),
        ", ".join(f"n{n} admin and ingress health {'ok' if ok else 'NOT ok'}" for n, ok in health.items()),
    )
    record.expect(
        "every partition has an active leader again",
        cluster.all_led(leaders_after),
        ", ".join(f"p{p} {n}" for p, n in leaders_after.items()),
    )


@dataclass
class Reexecutions:
    rerun: list[str] = field(default_factory=list)
    """Started after the step's completion was journaled: a FAIL."""
    by_deposed: list[str] = field(default_factory=list)
    """The same, but started while the deposed leader was back and had not stepped down yet, on an
    invocation of a partition it had led: the at-least-once side effect Restate allows, reported."""
    twice: list[str] = field(default_factory=list)
    """Steps with two completed entries in one journal: a FAIL."""


def reexecutions(
    drill: Drill, flight: ca.Flight, journals: dict[str, list[dict[str, Any]]], window: tuple[float, float] | None
) -> Reexecutions:
    found = Reexecutions()
    for invocation_id in flight.keys:
        rows = journals.get(invocation_id, [])
        done = journaled_completions(rows)
        counts = Counter(step.name for step in journal_steps(rows) if step.completed)
        found.twice += [f"{invocation_id}/{name}" for name, n in counts.items() if n > 1]
        late: dict[str, list[Execution]] = defaultdict(list)
        for e in executions_after_journaled(drill.writer.executions(invocation_id), done):
            late[e.step].append(e)
        for step in sorted(late):
            deposed = (
                window is not None
                and invocation_id in flight.watched
                and all(window[0] <= e.started <= window[1] for e in late[step])
            )
            (found.by_deposed if deposed else found.rerun).append(f"{invocation_id}/{step}")
    return found
