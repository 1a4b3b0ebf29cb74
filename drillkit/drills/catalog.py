"""The drills by name, their parameters checked before anything starts, and drill.all."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from contextlib import nullcontext, suppress
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from drillkit import live, progress
from drillkit.drills import any_target, html_report
from drillkit.drills.crash import check_target, crash_scenario
from drillkit.drills.frame import INTERRUPTED_DRAIN_S, Scenario, bring_up, run_drill
from drillkit.drills.node_loss import INVOCATIONS, check_node_loss, node_loss_scenario
from drillkit.drills.record import INCONCLUSIVE, PASS, DrillRecord
from drillkit.drills.server_crash import server_crash_scenario
from drillkit.drills.storm import Llm, Target, check_storm, storm_scenario
from drillkit.drills.stuck import stuck_scenario
from drillkit.drills.timeout import DEFAULT_EXPECT, Expect, Mode, timeout_scenario
from drillkit.drills.tool_error import check_fail_first, tool_error_scenario
from drillkit.drills.upgrade import DEFAULT_INVOCATIONS, UpgradeMode, check_upgrade, upgrade_scenario
from drillkit.errors import ConfigError, DrillError
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
    on_target: Callable[[], DrillSpec] | str = "not written for configured targets yet"
    """The same drill on a configured target (`target:` in the config), or why it does not apply there."""
    for_target: bool = False
    """This spec is already the configured-target variant."""


class NotApplicable(ConfigError):
    """The drill cannot run on this config's target (said in one line; drill.all reports it as such)."""


def resolve(spec: DrillSpec, stack: Stack) -> DrillSpec:
    """The spec itself for the shipped writer; its configured-target variant otherwise."""
    if stack.target is None or spec.for_target:
        return spec
    if isinstance(spec.on_target, str):
        raise NotApplicable(f"drill.{spec.name} does not apply to {stack.target.what}: {spec.on_target}")
    return replace(spec.on_target(), for_target=True)


WRITER_AT = "section:2"
"""The shipped writer's default kill point: outline and section 1 finished, section 2 in flight."""


def _deadline(deadline_s: float | None) -> dict[str, Any]:
    return {"deadline_s": deadline_s} if deadline_s is not None else {}


def crash(
    sig: signal.Signals = signal.SIGKILL, at: str | None = None, resume: bool = True, deadline_s: float | None = None
) -> DrillSpec:
    return _a_kill("crash", crash_scenario, any_target.crash_scenario, True, sig, at, resume, deadline_s)


def server_crash(
    sig: signal.Signals = signal.SIGKILL, at: str | None = None, resume: bool = True, deadline_s: float | None = None
) -> DrillSpec:
    return _a_kill(
        "server-crash", server_crash_scenario, any_target.server_crash_scenario, False, sig, at, resume, deadline_s
    )


def _a_kill(
    name: str,
    on_writer: Callable[..., Scenario],
    on_a_target: Callable[..., Scenario],
    kills_the_target: bool,
    sig: signal.Signals,
    at: str | None,
    resume: bool,
    deadline_s: float | None,
) -> DrillSpec:
    """crash and server-crash: a signal at a kill point (`--at`: a writer step, or run:N on a target)."""

    def spec(at: str, scenario: Callable[..., Scenario], check: Callable[[Stack], None]) -> DrillSpec:
        params = {"signal": sig.name.removeprefix("SIG"), "at": at, "resume": resume, **_deadline(deadline_s)}
        return DrillSpec(name, params, scenario(sig, at, resume), check, deadline_s)

    def on_target() -> DrillSpec:
        chosen = at or any_target.DEFAULT_AT
        return spec(chosen, on_a_target, partial(_check_target_point, at=chosen, kills=kills_the_target))

    writer_at = at or WRITER_AT
    return replace(spec(writer_at, on_writer, partial(check_target, at=writer_at)), on_target=on_target)


def _check_target_point(stack: Stack, at: str, kills: bool) -> None:
    if kills:
        any_target.check_startable(stack, "kill and restart it")
    any_target.run_point(at)


def timeout(mode: Mode = "down", expect: Expect | None = None, deadline_s: float | None = None) -> DrillSpec:
    params = {"mode": mode, "expect": expect or DEFAULT_EXPECT[mode], **_deadline(deadline_s)}

    def check_on_target(stack: Stack) -> None:
        if (expect or "recover") != "recover":
            raise ConfigError(f"--expect {expect}: on a configured target the timeout drill expects recover")
        any_target.check_startable(stack, "point it at a broken model endpoint")
        any_target.check_model_side(stack)

    target_variant: Callable[[], DrillSpec] | str = lambda: DrillSpec(  # noqa: E731
        "timeout",
        {"mode": mode, "expect": "recover", **_deadline(deadline_s)},
        any_target.timeout_scenario(mode),
        check_on_target,
        deadline_s,
    )
    if mode == "pause":
        target_variant = "its pause mode restarts Restate with the shipped writer's retry policy in mind"
    return DrillSpec("timeout", params, timeout_scenario(mode, expect), deadline_s=deadline_s, on_target=target_variant)


def tool_error(fail_first: int = 2, deadline_s: float | None = None) -> DrillSpec:
    params = {"fail_first": fail_first, **_deadline(deadline_s)}

    def check_on_target(stack: Stack) -> None:
        check_fail_first(fail_first)
        if stack.target is not None and stack.target.spec.tool_fault is None:
            raise NotApplicable(
                f"drill.tool-error does not apply to {stack.target.what}: it declares no fault hook for its tool "
                f"(target.tool_fault in {stack.config.source})"
            )
        any_target.check_startable(stack, "restart it with its tool-fault hook set")

    return DrillSpec(
        "tool-error",
        params,
        tool_error_scenario(fail_first),
        lambda _stack: check_fail_first(fail_first),
        deadline_s,
        on_target=lambda: DrillSpec(
            "tool-error", params, any_target.tool_error_scenario(fail_first), check_on_target, deadline_s
        ),
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

    def on_target() -> DrillSpec:
        def check(stack: Stack) -> None:
            check_storm(stack, n=invocations, kills=kills, target="writer", llm="local")
            if target != "writer" or llm != "local":
                raise ConfigError("on a configured target the storm kills the target itself on its own model")
            any_target.check_startable(stack, "kill and restart it")
            any_target.check_model_side(stack)
            if invocations > 1 and stack.target is not None and not stack.target.tells_invocations_apart():
                raise ConfigError(
                    f"{stack.config.source}: target.body has no {{{{nonce}}}}: the storm's invocations could not be "
                    "told apart at the model (put {{nonce}} in a string the target sends to its model)"
                )

        return DrillSpec(
            "storm",
            {"invocations": invocations, "kills": kills, "seed": seed, **_deadline(deadline_s)},
            any_target.storm_scenario(invocations, kills, seed),
            check,
            deadline_s,
        )

    return DrillSpec(
        "storm",
        {**params, **_deadline(deadline_s)},
        storm_scenario(invocations, kills, target, llm, seed),
        partial(check_storm, n=invocations, kills=kills, target=target, llm=llm),
        deadline_s,
        on_target=on_target,
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


def stuck(deadline_s: float | None = None) -> DrillSpec:
    """The writer frozen (SIGSTOP) with a step in flight: Restate aborts the attempt, retries, completes."""
    return DrillSpec(
        "stuck",
        _deadline(deadline_s),
        stuck_scenario(),
        None,
        deadline_s,
        on_target="it runs the shipped writer on the stub model with short Restate timeouts (its config)",
    )


def upgrade(
    mode: UpgradeMode = "drain", invocations: int = DEFAULT_INVOCATIONS, deadline_s: float | None = None
) -> DrillSpec:
    """A second revision deployed while invocations are in flight: pinned, drained, removed; taken away too
    early; an incompatible journal caught and recovered."""
    return DrillSpec(
        "upgrade",
        {"mode": mode, "invocations": invocations, **_deadline(deadline_s)},
        upgrade_scenario(mode, invocations),
        partial(check_upgrade, mode=mode, invocations=invocations),
        deadline_s,
        on_target="it deploys revisions of the shipped writer (its `revision` config key) beside each other",
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
    spec = resolve(spec, stack)
    if spec.check is not None:
        spec.check(stack)
    with live.watch(stack, f"drill.{spec.name}") if spec.name in LIVE_DRILLS else nullcontext():
        return run_drill(stack, spec.name, spec.parameters, spec.scenario, report_dir, keep_up, spec.deadline_s)


def label(spec: DrillSpec) -> str:
    return "-".join([spec.name, *(str(v) for k, v in spec.parameters.items() if k in ("signal", "mode", "target"))])


def run_all(
    stack: Stack, report_dir: Path | None = None, keep_up: bool = False, specs: list[DrillSpec] | None = None
) -> list[tuple[DrillRecord, Path]]:
    chosen, not_applicable = [], []
    for spec in specs or all_drills():
        try:
            resolved = resolve(spec, stack)
            if resolved.check is not None:
                resolved.check(stack)
        except NotApplicable as exc:
            not_applicable.append((label(spec), str(exc)))
            continue
        except DrillError as exc:  # ConfigError included
            if stack.target is None:
                raise
            # On a configured target a drill that cannot run there is said so, and the others run.
            not_applicable.append((label(spec), f"does not apply to {stack.target.what}: {exc}"))
            continue
        chosen.append(resolved)
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
    rows += [(name, "", "NOT APPLICABLE", "-", why) for name, why in not_applicable]
    progress.table("drill.all", ("drill", "parameters", "verdict", "time", "reports"), rows)
    progress.info(f"index: {html_report.write_index(base, [d for _, d in results])}")
    passed = sum(r.verdict == PASS for r, _ in results)
    inconclusive = sum(r.verdict == INCONCLUSIVE for r, _ in results)
    failed = len(results) - passed - inconclusive
    progress.info(
        f"{passed} passed, {failed} failed"
        + (f", {inconclusive} inconclusive" if inconclusive else "")
        + (f", {len(not_applicable)} not applicable" if not_applicable else "")
    )
    return results
