"""The drills by name, and drill.all: every drill in turn with a summary."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from drillkit import console
from drillkit.drills.common import Scenario, bring_up, run_drill
from drillkit.drills.crash import check_target, crash_scenario
from drillkit.drills.record import PASS, DrillRecord
from drillkit.drills.timeout import DEFAULT_EXPECT, Expect, Mode, timeout_scenario
from drillkit.drills.tool_error import check_request_faults, tool_error_scenario
from drillkit.stack import Stack

DEFAULT_DEADLINE_S = 120.0


@dataclass(frozen=True)
class DrillSpec:
    name: str
    parameters: dict[str, Any]
    scenario: Scenario
    check: Callable[[Stack], None] | None = None
    """Refuses parameters this config cannot run (raises DrillError) before anything is started."""


def crash(
    sig: signal.Signals = signal.SIGKILL,
    at: str = "section:2",
    resume: bool = True,
    deadline_s: float = DEFAULT_DEADLINE_S,
) -> DrillSpec:
    params = {"signal": sig.name.removeprefix("SIG"), "at": at, "resume": resume, "deadline_s": deadline_s}
    return DrillSpec("crash", params, crash_scenario(sig, at, resume, deadline_s), partial(check_target, at=at))


def timeout(mode: Mode = "down", expect: Expect | None = None, deadline_s: float = DEFAULT_DEADLINE_S) -> DrillSpec:
    params = {"mode": mode, "expect": expect or DEFAULT_EXPECT[mode], "deadline_s": deadline_s}
    return DrillSpec("timeout", params, timeout_scenario(mode, expect, deadline_s))


def tool_error(fail_first: int = 2, deadline_s: float = DEFAULT_DEADLINE_S) -> DrillSpec:
    return DrillSpec(
        "tool-error",
        {"fail_first": fail_first, "deadline_s": deadline_s},
        tool_error_scenario(fail_first, deadline_s),
        partial(check_request_faults, fail_first=fail_first),
    )


def all_drills() -> list[DrillSpec]:
    """What drill.all runs: both crash signals, the three timeout modes, the tool error."""
    return [
        crash(signal.SIGKILL),
        crash(signal.SIGTERM),
        timeout("down"),
        timeout("hang"),
        timeout("pause"),
        tool_error(2),
    ]


def run(
    stack: Stack, spec: DrillSpec, report_dir: Path | None = None, keep_up: bool = False
) -> tuple[DrillRecord, Path]:
    if spec.check is not None:
        spec.check(stack)
    return run_drill(stack, spec.name, spec.parameters, spec.scenario, report_dir, keep_up)


def run_all(stack: Stack, report_dir: Path | None = None, keep_up: bool = False) -> list[tuple[DrillRecord, Path]]:
    base = report_dir or stack.state.reports / f"all-{time.strftime('%Y%m%d-%H%M%S')}"
    started = bring_up(stack)  # once for all drills, not once per drill
    results = []
    try:
        for number, spec in enumerate(all_drills(), start=1):
            label = "-".join([spec.name, *(str(v) for k, v in spec.parameters.items() if k in ("signal", "mode"))])
            results.append(run(stack, spec, base / f"{number:02d}-{label}", keep_up=True))
    finally:
        if started and not keep_up:
            stack.down()
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
    console.table("drill.all", ("drill", "parameters", "verdict", "time", "reports"), rows)
    passed = sum(r.verdict == PASS for r, _ in results)
    console.info(f"{passed} passed, {len(results) - passed} failed")
    return results
