"""The drills by name, their parameters checked before anything starts, and drill.all."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from drillkit import live, progress
from drillkit.drills import html_report
from drillkit.drills.crash import check_target, crash_scenario
from drillkit.drills.frame import INTERRUPTED_DRAIN_S, Scenario, bring_up, run_drill
from drillkit.drills.node_loss import INVOCATIONS, check_node_loss, node_loss_scenario
from drillkit.drills.record import INCONCLUSIVE, PASS, DrillRecord
from drillkit.drills.server_crash import server_crash_scenario
from drillkit.drills.storm import Llm, Target, check_storm, storm_scenario
from drillkit.drills.timeout import DEFAULT_EXPECT, Expect, Mode, timeout_scenario
from drillkit.drills.tool_error import check_request_faults, tool_error_scenario
from drillkit.errors import DrillError
from drillkit.interrupts import CleanupGuard, ForcedCleanup, stop_started
from drillkit.stack import Stack
from drillkit.state import drill_lock


@dataclass(frozen=True)
class DrillSpec:
    name: str
    parameters: dict[str, Any]
    scenario: Scenario
    check: Callable[[Stack], None] | None = None
    """Refuses parameters this config cannot run (raises DrillError) before anything is started."""
    deadline_s: float | None = None
    """Fixed wait budget (--deadline); None: waits follow the pace the drill observes."""


def _deadline(deadline_s: float | None) -> dict[str, Any]:
    return {"deadline_s": deadline_s} if deadline_s is not None else {}


def crash(
    sig: signal.Signals = signal.SIGKILL, at: str = "section:2", resume: bool = True, deadline_s: float | None = None
) -> DrillSpec:
    params = {"signal": sig.name.removeprefix("SIG"), "at": at, "resume": resume, **_deadline(deadline_s)}
    return DrillSpec("crash", params, crash_scenario(sig, at, resume), partial(check_target, at=at), deadline_s)


def server_crash(
    sig: signal.Signals = signal.SIGKILL, at: str = "section:2", resume: bool = True, deadline_s: float | None = None
) -> DrillSpec:
    params = {"signal": sig.name.removeprefix("SIG"), "at": at, "resume": resume, **_deadline(deadline_s)}
    return DrillSpec(
        "server-crash", params, server_crash_scenario(sig, at, resume), partial(check_target, at=at), deadline_s
    )


def timeout(mode: Mode = "down", expect: Expect | None = None, deadline_s: float | None = None) -> DrillSpec:
    params = {"mode": mode, "expect": expect or DEFAULT_EXPECT[mode], **_deadline(deadline_s)}
    return DrillSpec("timeout", params, timeout_scenario(mode, expect), deadline_s=deadline_s)


def tool_error(fail_first: int = 2, deadline_s: float | None = None) -> DrillSpec:
    return DrillSpec(
        "tool-error",
        {"fail_first": fail_first, **_deadline(deadline_s)},
        tool_error_scenario(fail_first),
        partial(check_request_faults, fail_first=fail_first),
        deadline_s,
    )


def storm(
    invocations: int = 40,
    kills: int = 2,
    target: Target = "writer",
    llm: Llm = "local",
    seed: int = 7,
    deadline_s: float | None = None,
) -> DrillSpec:
    params = {"invocations": invocations, "kills": kills, "target": target, "llm": llm, "seed": seed}
    return DrillSpec(
        "storm",
        {**params, **_deadline(deadline_s)},
        storm_scenario(invocations, kills, target, llm, seed),
        partial(check_storm, n=invocations, kills=kills, target=target, llm=llm),
        deadline_s,
    )


def node_loss(
    target: str = "leader",
    sig: signal.Signals = signal.SIGKILL,
    count: int = 1,
    invocations: int = INVOCATIONS,
    llm: str = "stub",
    deadline_s: float | None = None,
) -> DrillSpec:
    """Cluster backend: lose `count` nodes (KILL, or STOP to freeze them) with invocations in flight."""
    params = {
        "node": target,
        "signal": sig.name.removeprefix("SIG"),
        "count": count,
        "invocations": invocations,
        "llm": llm,
        **_deadline(deadline_s),
    }
    return DrillSpec(
        "node-loss",
        params,
        node_loss_scenario(target, sig, count, invocations, llm),
        partial(check_node_loss, target=target, sig=sig, count=count, invocations=invocations),
        deadline_s,
    )


def partition(
    target: str = "leader", invocations: int = INVOCATIONS, llm: str = "stub", deadline_s: float | None = None
) -> DrillSpec:
    """Cluster backend: cut one node off from its peers and the writer (nftables) with invocations in flight."""
    params = {"node": target, "invocations": invocations, "llm": llm, **_deadline(deadline_s)}
    return DrillSpec(
        "partition",
        params,
        node_loss_scenario(target, signal.SIGKILL, 1, invocations, llm, fault="cut"),
        partial(check_node_loss, target=target, sig=signal.SIGKILL, count=1, invocations=invocations),
        deadline_s,
    )


def all_drills() -> list[DrillSpec]:
    """What drill.all runs: both crash signals on the writer, a server crash, the three timeout modes,
    the tool error, and a small storm on the real model."""
    return [
        crash(signal.SIGKILL),
        crash(signal.SIGTERM),
        server_crash(signal.SIGKILL),
        timeout("down"),
        timeout("hang"),
        timeout("pause"),
        tool_error(2),
        storm(invocations=20, kills=2),
    ]


LIVE_DRILLS = ("storm",)  # long enough to want a live status of its own


def run(
    stack: Stack, spec: DrillSpec, report_dir: Path | None = None, keep_up: bool = False
) -> tuple[DrillRecord, Path]:
    if spec.check is not None:
        spec.check(stack)
    with live.watch(stack, f"drill.{spec.name}") if spec.name in LIVE_DRILLS else nullcontext():
        return run_drill(stack, spec.name, spec.parameters, spec.scenario, report_dir, keep_up, spec.deadline_s)


def label(spec: DrillSpec) -> str:
    return "-".join([spec.name, *(str(v) for k, v in spec.parameters.items() if k in ("signal", "mode", "target"))])


def run_all(
    stack: Stack, report_dir: Path | None = None, keep_up: bool = False, specs: list[DrillSpec] | None = None
) -> list[tuple[DrillRecord, Path]]:
    chosen = specs or all_drills()
    for spec in chosen:
        if spec.check is not None:
            spec.check(stack)
    base = report_dir or stack.state.reports / f"all-{time.strftime('%Y%m%d-%H%M%S')}"
    results = []
    with drill_lock(stack.state, "drill.all"):
        since = time.time()
        started = bring_up(stack)  # once for all drills, not once per drill
        interrupted = False
        try:
            with live.watch(stack, "drill.all"):
                for number, spec in enumerate(chosen, start=1):
                    results.append(run(stack, spec, base / f"{number:02d}-{label(spec)}", keep_up=True))
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            if started and not keep_up:
                # After a Ctrl-C too: a second is held, a third still stops what this run started, by pid.
                with CleanupGuard().guarding():
                    try:
                        if interrupted:  # the writer's drain bounded, as in a single drill (down does the rest)
                            with suppress(DrillError):
                                stack.writer.kill(signal.SIGTERM, INTERRUPTED_DRAIN_S)
                        stack.down()
                    except ForcedCleanup:
                        stop_started(stack.procs, since, stack_started_by_run=True)
    rows = [
        (
            r.drill,
            " ".join(f"{k}={v}" for k, v in r.parameters.items() if k != "deadline_s"),
            r.verdict,
            f"{r.duration_s:.1f} s",
            str(d),
        )
        for r, d in results
    ]
    progress.table("drill.all", ("drill", "parameters", "verdict", "time", "reports"), rows)
    progress.info(f"index: {html_report.write_index(base, [d for _, d in results])}")
    passed = sum(r.verdict == PASS for r, _ in results)
    inconclusive = sum(r.verdict == INCONCLUSIVE for r, _ in results)
    failed = len(results) - passed - inconclusive
    progress.info(f"{passed} passed, {failed} failed" + (f", {inconclusive} inconclusive" if inconclusive else ""))
    return results
