"""The benchmark figures, one function per group. Each returns `Figure`s; none asserts a time.

1. cold start      `up` from nothing running (binaries and model cached), per component
2. drills          each drill of drill.all, end to end
3. recovery        restarted writer healthy -> invocation running again -> completed
4. durability      the pipeline through Restate vs in-process; ms per journaled step (h2c, HTTP/1.1)
5. load and storm  concurrent invocations; the same with the writer SIGKILLed at seeded random moments
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx

from drillkit import catalog, progress
from drillkit.bench.harness import Figure, stub_stack, timed
from drillkit.config import PROJECT_ROOT
from drillkit.errors import DrillError, HttpError
from drillkit.evidence import completed_step_names, in_flight_step
from drillkit.howto import RESTART_PROMPT, howto_body
from drillkit.restate_api import HANDLER, SERVICE
from drillkit.stack import Stack
from drillkit.waits import poll
from writer_service.agent import WriterRuntime, write_report
from writer_service.baseline import DirectContext
from writer_service.config import WriterConfig, step_order
from writer_service.ledger import ExecutionLedger
from writer_service.llm import LlmClient

# Restate's default invocation retry policy (what a server without the drills' env uses).
DEFAULT_POLICY = {
    "RESTATE_DEFAULT_RETRY_POLICY__INITIAL_INTERVAL": "500ms",
    "RESTATE_DEFAULT_RETRY_POLICY__MAX_INTERVAL": "60s",
    "RESTATE_DEFAULT_RETRY_POLICY__MAX_ATTEMPTS": "70",
    "RESTATE_DEFAULT_RETRY_POLICY__ON_MAX_ATTEMPTS": "pause",
}
FAST_POLL = 0.01


# -- 1. cold start ------------------------------------------------------------------------------------


def time_inv_from_nothing(stack: Stack, task: str) -> float:
    """Seconds for `inv TASK --config ...` as a user types it (a new Python process), nothing of ours
    running before it."""
    stack.down()
    command = [sys.executable, "-m", "invoke", task, "--config", stack.config.source]
    out, seconds = timed(lambda: subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True))
    if out.returncode != 0:
        raise DrillError(f"`inv {task}` exited {out.returncode}: {(out.stdout + out.stderr)[-800:]}")
    return float(seconds)


def cold_start(stack: Stack, repeats: int) -> list[Figure]:
    """`inv up` as a user types it (a new Python process), and `Stack.up` in-process for the shares."""
    commands: list[float] = []
    totals: list[float] = []
    phases: dict[str, list[float]] = {}
    for i in range(repeats):
        commands.append(time_inv_from_nothing(stack, "up"))
        stack.down()
        timings, seconds = timed(stack.up)
        totals.append(seconds)
        for phase, value in timings.phases.items():
            phases.setdefault(phase, []).append(value)
        progress.info(f"  cold start {i + 1}/{repeats}: inv up {commands[-1]:.2f} s, in-process {seconds:.2f} s")
    figures = [
        Figure("cold start", "inv up (command), all healthy", "s", commands, "< 3 s", statistics.median(commands) < 3),
        Figure("cold start", "Stack.up in-process", "s", totals),
    ]
    figures += [Figure("cold start", f"  {phase}", "s", values) for phase, values in phases.items()]
    return figures


# -- 2. drills ----------------------------------------------------------------------------------------


def drill_times(stack: Stack, repeats: int) -> list[Figure]:
    """Each drill with the stack already up, and `inv drill.crash` as typed from nothing running."""
    durations: dict[str, list[float]] = {}
    verdicts: list[str] = []
    stack.up()
    for _ in range(repeats):
        for spec in catalog.all_drills():
            label = " ".join([spec.name, *(str(v) for k, v in spec.parameters.items() if k in ("signal", "mode"))])
            record, _ = catalog.run(stack, spec, stack.state.reports / "bench" / uuid.uuid4().hex[:8], keep_up=True)
            verdicts.append(record.verdict)
            durations.setdefault(label, []).append(record.duration_s or 0.0)
    figures = [Figure("drills", f"{label} (stack up)", "s", values) for label, values in durations.items()]
    figures[0].note = f"{sum(v == 'PASS' for v in verdicts)}/{len(verdicts)} drills passed"
    cold = [time_inv_from_nothing(stack, "drill.crash") for _ in range(repeats)]
    figures.append(
        Figure(
            "drills",
            "inv drill.crash from nothing running (command)",
            "s",
            cold,
            "< 10 s",
            statistics.median(cold) < 10,
            "includes up, the drill, and down",
        )
    )
    return figures


# -- 3. recovery --------------------------------------------------------------------------------------


def _status_at(stack: Stack, invocation_id: str, statuses: tuple[str, ...], timeout_s: float) -> float:
    poll(
        lambda: (stack.admin.invocation(invocation_id) or {}).get("status"),
        lambda s: s in statuses,
        f"status in {statuses}",
        timeout_s,
        interval_s=FAST_POLL,
    )
    return time.monotonic()


def recovery_once(stack: Stack, sig: signal.Signals, resume: bool) -> tuple[float, float]:
    """Seconds from the restarted writer's health check to (running again, completed)."""
    invocation_id = stack.ingress.send(howto_body(RESTART_PROMPT))
    poll(
        lambda: stack.admin.journal(invocation_id),
        lambda rows: "outline" in completed_step_names(rows) and in_flight_step(rows) == "section:1",
        "section:1 to be running",
        60,
        interval_s=FAST_POLL,
    )
    stack.writer.kill(sig)
    _status_at(stack, invocation_id, ("backing-off", "paused"), 60)
    stack.writer.start()  # returns once its health check answers
    healthy = time.monotonic()
    if resume:
        try:
            stack.admin.resume(invocation_id)
        except HttpError:
            pass  # Restate got there first
    running = _status_at(stack, invocation_id, ("running", "completed"), 120)
    done = _status_at(stack, invocation_id, ("completed",), 120)
    return running - healthy, done - healthy


def recovery(base: Stack, repeats: int) -> list[Figure]:
    """On the stub LLM with 200 ms per call, so each invocation is in flight for about a second."""
    figures = []
    # A short grace period: SIGTERM must cut the drain for Restate to have something to recover.
    with stub_stack(base, delay_ms=200, **{"service.grace_period_s": 0.2}) as stack:
        stack.up()
        cases = [
            ("SIGKILL, resume at once", signal.SIGKILL, True, None),
            ("SIGKILL, drill policy backoff", signal.SIGKILL, False, None),
            ("SIGTERM, resume at once", signal.SIGTERM, True, None),
            ("SIGTERM, drill policy backoff", signal.SIGTERM, False, None),
            ("SIGKILL, default policy backoff", signal.SIGKILL, False, DEFAULT_POLICY),
        ]
        for label, sig, resume, policy in cases:
            if policy:
                stack.server.restart(policy)
            runs = [recovery_once(stack, sig, resume) for _ in range(repeats)]
            target = "< 0.5 s" if resume else None
            to_running = [r[0] for r in runs]
            met = statistics.median(to_running) < 0.5 if resume else None
            figures.append(Figure("recovery", f"{label}: healthy -> running", "s", to_running, target, met))
            figures.append(Figure("recovery", f"{label}: healthy -> completed", "s", [r[1] for r in runs]))
            progress.info(f"  {label}: running again after {statistics.median(to_running):.3f} s")
            if policy:
                stack.server.restart()
    figures[0].note = "stub LLM, 200 ms per call; status polled every 10 ms"
    return figures


# -- 4. cost of durability ----------------------------------------------------------------------------


def direct_run(config: WriterConfig, ledger_path: Any) -> float:
    """One invocation of the same pipeline in-process, without Restate; seconds."""

    async def once() -> float:
        runtime = WriterRuntime(config, LlmClient(config.writer_model), ExecutionLedger(ledger_path))
        started = time.monotonic()
        try:
            await write_report(DirectContext(f"direct_{uuid.uuid4().hex}"), runtime, howto_body())  # type: ignore[arg-type]
        finally:
            await runtime.llm.close()
        return time.monotonic() - started

    return asyncio.run(once())


def through_restate(stack: Stack) -> float:
    _, seconds = timed(lambda: stack.ingress.call(howto_body()))
    return seconds


def durability_cost(base: Stack, repeats: int) -> list[Figure]:
    figures = []
    ledger = base.state.root / "bench-direct-ledger.jsonl"
    # With the model: what a user pays.
    base.up()
    through_restate(base)  # warm the model's prompt cache and the connections alike
    direct_run(base.config, ledger)
    durable = [through_restate(base) for _ in range(repeats)]
    direct = [direct_run(base.config, ledger) for _ in range(repeats)]
    ratio = statistics.median(durable) / statistics.median(direct)
    figures.append(Figure("durability", "local model: through Restate", "s", durable))
    figures.append(Figure("durability", "local model: in-process, no Restate", "s", direct))
    figures.append(
        Figure(
            "durability",
            "local model: durable / direct",
            "x",
            [round(ratio, 3)],
            "< 1.10",
            ratio < 1.10,
            "medians; the model's own variance dominates",
        )
    )
    base.down()
    # Against the zero-latency stub: Restate's own cost per journaled step.
    steps = len(step_order(base.config.pipeline.sections))
    with stub_stack(base) as stack:
        stack.up()
        direct_stub = [direct_run(stack.config, ledger) for _ in range(repeats * 3)]
        for label, http11 in (("h2c", False), ("HTTP/1.1", True)):
            stack.register(use_http11=http11, force=True)
            through_restate(stack)
            durable_stub = [through_restate(stack) for _ in range(repeats * 3)]
            per_step = [(d - statistics.median(direct_stub)) / steps * 1000 for d in durable_stub]
            figures.append(
                Figure(
                    "durability", f"stub: invocation through Restate ({label})", "ms", [d * 1000 for d in durable_stub]
                )
            )
            figures.append(
                Figure(
                    "durability",
                    f"stub: journaling per durable step ({label})",
                    "ms",
                    per_step,
                    "< 5 ms",
                    statistics.median(per_step) < 5,
                    f"(through Restate - in-process) / {steps} steps",
                )
            )
        figures.append(Figure("durability", "stub: in-process, no Restate", "ms", [d * 1000 for d in direct_stub]))
    ledger.unlink(missing_ok=True)
    return figures


# -- 5. load and crash storm --------------------------------------------------------------------------


async def _concurrent_calls(url: str, n: int) -> tuple[list[float], float]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(600.0), limits=limits) as client:

        async def one() -> float:
            started = time.monotonic()
            response = await client.post(f"/{SERVICE}/{HANDLER}", json=howto_body())
            response.raise_for_status()
            return time.monotonic() - started

        started = time.monotonic()
        latencies = await asyncio.gather(*(one() for _ in range(n)))
        return list(latencies), time.monotonic() - started


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load(base: Stack, sizes: list[int]) -> list[Figure]:
    figures = []
    with stub_stack(base) as stack:
        stack.up()
        for n in sizes:
            latencies, wall = asyncio.run(_concurrent_calls(stack.rt.ingress_url, n))
            figures.append(Figure("load", f"{n} concurrent: throughput", "inv/s", [n / wall]))
            figures.append(Figure("load", f"{n} concurrent: latency p50", "s", [_percentile(latencies, 0.5)]))
            figures.append(Figure("load", f"{n} concurrent: latency p99", "s", [_percentile(latencies, 0.99)]))
            progress.info(f"  {n} concurrent: {n / wall:.1f} inv/s")
    return figures


def crash_storm(base: Stack, n: int, kills: int, seed: int = 7) -> list[Figure]:
    """`drill.storm` on the stub LLM (the point is Restate and the writer, not the model): N invocations
    in flight, the writer SIGKILLed `kills` times at seeded points of progress."""
    spec = catalog.storm(invocations=n, kills=kills, llm="stub", seed=seed)
    return storm_figures("storm", f"{n} invocations, {kills} SIGKILLs (stub)", base, spec)


def storm_figures(group: str, label: str, base: Stack, spec: catalog.DrillSpec) -> list[Figure]:
    """Run a storm drill and turn its record into figures: verdict, re-runs, requests per step, timings."""
    record, directory = catalog.run(base, spec, base.state.reports / "bench" / f"storm-{uuid.uuid4().hex[:8]}", True)
    storm: dict[str, Any] = record.evidence.get("storm") or {}
    requests: dict[str, Any] = record.evidence.get("llm_requests") or {}
    rerun = [e for e in record.expectations if "journaled as done" in e.name]
    nothing_twice = bool(rerun) and all(e.passed for e in rerun)
    succeeded = next((e.detail for e in record.expectations if "completed with success" in e.name), "")
    passed = record.verdict == "PASS"
    recoveries = [float(x) for x in storm.get("recovery_s") or []]
    figures = [
        Figure(group, f"{label}: verdict", "pass", [float(passed)], "PASS", passed, f"{succeeded}; {directory}"),
        Figure(
            group,
            f"{label}: finished steps run or requested again",
            "count",
            [float(not nothing_twice)],
            "0",
            nothing_twice,
        ),
        Figure(group, f"{label}: LLM requests per LLM step (tap)", "x", [float(requests.get("per_llm_step") or 0)]),
        Figure(group, f"{label}: wall time", "s", [float(storm.get("wall_s") or 0)]),
        Figure(group, f"{label}: throughput under kills", "inv/s", [float(storm.get("throughput_inv_per_s") or 0)]),
        Figure(group, f"{label}: latency p50", "s", [float(storm.get("latency_p50_s") or 0)]),
        Figure(group, f"{label}: latency p99", "s", [float(storm.get("latency_p99_s") or 0)]),
    ]
    if recoveries:
        figures.append(Figure(group, f"{label}: recovery, restart -> work again", "s", recoveries))
    return figures
