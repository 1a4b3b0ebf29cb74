"""Cluster figures (`inv bench --only cluster`, with a config whose runtime.backend is cluster).

1. leader loss -> progress: `drill.node-loss` (leader SIGKILLed, 8 invocations in flight on the stub LLM)
   repeated; the figure is the drill's own measure, fault to a step of the lost leader's invocations
   started and finished again. Each run must PASS to count.
2. throughput of 20 concurrent invocations (stub LLM, 50 ms per answer) with no fault, and the same with
   the node leading the most partitions SIGKILLed right after they are sent (it comes back afterwards).
"""

from __future__ import annotations

import signal
import statistics
import time
import uuid
from collections import Counter

from drillkit import catalog, progress
from drillkit.bench.harness import Figure, stub_stack
from drillkit.errors import DrillError, HttpError
from drillkit.howto import RESTART_PROMPT, howto_body
from drillkit.restate_api import sql_list
from drillkit.stack import Stack
from drillkit.waits import poll

CONCURRENT = 20


def leader_loss(base: Stack, repeats: int) -> list[Figure]:
    base.cluster  # noqa: B018  (DrillError at once for another backend)
    base.up()
    samples, verdicts = [], []
    for i in range(repeats):
        record, _ = catalog.run(
            base, catalog.node_loss(), base.state.reports / "bench" / f"node-loss-{uuid.uuid4().hex[:8]}", keep_up=True
        )
        verdicts.append(record.verdict)
        seconds = record.evidence.get("recovery_s", {}).get("fault_to_progress_s")
        if record.verdict == "PASS" and seconds is not None:
            samples.append(float(seconds))
        progress.info(f"  node loss {i + 1}/{repeats}: {record.verdict}, progress again after {seconds} s")
    base.down()
    figure = Figure("cluster", "leader SIGKILL -> invocations progressing again", "s", samples)
    figure.note = f"{verdicts.count('PASS')}/{repeats} drills passed; 8 invocations in flight, stub LLM 300 ms"
    return [figure]


def _run_batch(stack: Stack, kill_leader: bool) -> float:
    """Send CONCURRENT invocations at once; (optionally) SIGKILL the busiest leader; inv/s until all done."""
    cluster = stack.cluster
    started = time.monotonic()
    ids = [stack.ingress.send(howto_body(f"{RESTART_PROMPT} ({i})")) for i in range(CONCURRENT)]
    lost = None
    if kill_leader:
        busiest = Counter(cluster.leaders().values()).most_common(1)[0][0]
        lost = cluster.by_name(busiest)
        survivor = cluster.entry_surviving({lost.number})
        stack.point_clients_at(survivor.admin_url, survivor.ingress_url)
        cluster.node_kill(lost.number, signal.SIGKILL)

    def open_count() -> int:
        try:
            rows = stack.admin.query(f"SELECT id, status FROM sys_invocation WHERE id IN ({sql_list(ids)})")
        except HttpError:
            return CONCURRENT
        return CONCURRENT - sum(1 for r in rows if r.get("status") == "completed")

    poll(open_count, lambda n: n == 0, f"{CONCURRENT} invocations to complete", 300, interval_s=0.05)
    wall = time.monotonic() - started
    if lost is not None:
        cluster.node_start(lost.number)
    return CONCURRENT / wall


def throughput(base: Stack, repeats: int) -> list[Figure]:
    base.cluster  # noqa: B018
    with stub_stack(base, delay_ms=50) as stack:
        stack.up()
        calm = [_run_batch(stack, kill_leader=False) for _ in range(repeats)]
        lossy = [_run_batch(stack, kill_leader=True) for _ in range(repeats)]
    if not calm or not lossy:
        raise DrillError("no throughput measured")
    progress.info(
        f"  {CONCURRENT} concurrent: {statistics.median(calm):.1f} inv/s calm, {statistics.median(lossy):.1f} lossy"
    )
    ratio = [statistics.median(lossy) / statistics.median(calm)]
    return [
        Figure("cluster", f"{CONCURRENT} concurrent, no fault: throughput", "inv/s", calm),
        Figure("cluster", f"{CONCURRENT} concurrent, leader SIGKILLed: throughput", "inv/s", lossy),
        Figure("cluster", "throughput during a node loss / without", "x", ratio),
    ]
