"""drill.storm: many invocations in flight, the writer (or the Restate server) SIGKILLed K times.

N invocations, each with its own idempotency key, go through the LLM tap to the model (`local`: the
config's own endpoint, the embedded model or a remote one; `stub`: the stub, when the point is Restate,
not the model). At K seeded points of progress (a number
of finished step executions, not a time) the target is SIGKILLed, restarted, and every invocation that backs off
is resumed. PASS when all N complete with success, sending any key again returns the same output,
every report file equals Restate's output, no step Restate had journaled as done is requested again
from the model (tap) or executed again (ledger), the three sources agree, and the LLM requests per LLM
step stay under the bound the report states. The report gives throughput, latency p50/p99, recovery
per kill and requests per step.
"""

from __future__ import annotations

import random
import signal
import time
from typing import Literal

from drillkit import config as drill_config
from drillkit.components.llm_tap import LlmTap
from drillkit.errors import DrillError, HttpError
from drillkit.handles import Handles
from drillkit.kit import actions, probes, storm_checks
from drillkit.kit.frame import Drill, Scenario
from drillkit.kit.storm_checks import Storm, Target
from drillkit.restate_api import sql_list
from drillkit.waits import poll

Llm = Literal["local", "stub"]
STUB_DELAY_MS = 50.0


def check_storm(handles: Handles, n: int, kills: int, target: str, llm: str) -> None:
    if n < 1:
        raise DrillError("--invocations must be at least 1")
    if kills < 0:
        raise DrillError("--kills cannot be negative")
    if target not in ("writer", "server"):
        raise DrillError(f"--target {target!r}: use writer or server")
    if llm not in ("local", "stub"):
        raise DrillError(f"--llm {llm!r}: use local or stub")


def storm_scenario(n: int, kills: int, target: Target, llm: Llm, seed: int) -> Scenario:
    def scenario(drill: Drill) -> None:
        storm = Storm(n, kills, target, seed)
        tap = route_through_tap(drill, storm, llm)
        storm.started = time.monotonic()
        actions.send_batch(drill, storm, n, "storm")
        kill_at_progress_points(drill, storm)
        probes.wait_all_completed(drill, list(storm.keys))
        storm.wall_s = time.monotonic() - storm.started
        storm_checks.judge(drill, storm, tap)

    return scenario


def route_through_tap(drill: Drill, storm: Storm, llm: Llm) -> LlmTap:
    """Model (or stub) <- tap <- writer: the writer restarted on a derived config that names the tap."""
    tap, storm.writer_config = actions.model_behind_tap(drill, llm, STUB_DELAY_MS, "storm")
    storm.concurrency = drill_config.load(storm.writer_config).writer_model.max_concurrency
    return tap


class Progress:
    """Finished step executions and saved reports of the storm's invocations, read incrementally from the
    ledger. Finished, not started: a step waiting for an LLM slot has started, and with N invocations N
    steps start at once, so a count of starts would put every kill point at the very beginning."""

    def __init__(self, drill: Drill, storm: Storm) -> None:
        self.follower = drill.writer.ledger_follower()
        self.ours = set(storm.keys)
        self.finished = 0
        self.saved = 0
        self.last_start = 0.0
        self.last_ok = 0.0

    def __call__(self) -> tuple[int, int]:
        for e in self.follower.new_entries():
            if e.invocation_id in self.ours:
                if e.outcome == "started":
                    self.last_start = e.time
                else:
                    self.finished += 1
                self.saved += e.step == "save_report" and e.outcome == "ok"
                if e.outcome == "ok":
                    self.last_ok = e.time
        return self.finished, self.saved


def kill_at_progress_points(drill: Drill, storm: Storm) -> None:
    """K kills, each after a seeded share of the remaining work: progress, not the clock, picks the moment."""
    rng = random.Random(storm.seed)
    progress = Progress(drill, storm)
    total = storm.n * len(drill.writer.steps())
    for k in range(storm.kills):
        done, _ = progress()
        goal = done + rng.randint(1, max(2, (total - done) // (storm.kills - k + 1)))

        def reached(seen: tuple[int, int], goal: int = goal) -> bool:
            drill.pace.observe(seen)
            return seen[0] >= goal or seen[1] >= storm.n

        what = f"{goal} finished step executions"
        seen = poll(progress, reached, what, 24 * 3600, interval_s=0.02, stalled=drill.pace)
        if seen[1] >= storm.n:
            drill.record.note(f"every invocation finished before kill {k + 1}/{storm.kills}")
            break
        drill.record.event(f"kill {k + 1}/{storm.kills}", f"after {seen[0]} finished step executions (goal {goal})")
        kill_and_restart(drill, storm)
        restarted = time.time()
        resume_backing_off(drill, storm)

        def moving_again(_: tuple[int, int], since: float = restarted) -> bool:
            return progress.last_start > since and progress.last_ok > since

        poll(progress, moving_again, "work again after the restart", 24 * 3600, interval_s=0.02, stalled=drill.pace)
        storm.recoveries.append(round(progress.last_start - restarted, 3))
        drill.record.event(
            "progress again",
            f"a step execution started {progress.last_start - restarted:.2f} s after the restart, "
            f"one finished {progress.last_ok - restarted:.2f} s after it",
        )


def kill_and_restart(drill: Drill, storm: Storm) -> None:
    if storm.target == "writer":
        writer = drill.writer.live()
        if writer is None:
            raise DrillError("the writer is not running: nothing to kill")
        actions.kill_writer(drill, writer, signal.SIGKILL)
        actions.restart_writer(drill, storm.writer_config)
    else:
        actions.kill_server(drill, signal.SIGKILL)
        actions.start_server(drill)


def resume_backing_off(drill: Drill, storm: Storm) -> None:
    """Retry now every invocation of ours that backs off (rather than at its next backoff)."""
    rows = drill.restate.admin.query(
        f"SELECT id FROM sys_invocation WHERE status IN ('backing-off', 'paused') AND id IN ({sql_list(storm.keys)})"
    )
    resumed = 0
    for row in rows:
        try:
            drill.restate.admin.resume(row["id"])
            resumed += 1
        except HttpError:
            pass  # Restate got there first
    drill.record.event("resumed", f"{resumed} backing-off invocation(s)")
