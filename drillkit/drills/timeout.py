"""drill.timeout: the HOW-TO's section 4, "Simulation timeout LLM", in three modes.

- down:  the endpoint is unreachable (the local model stopped; for a remote endpoint, base_url at a closed
         loopback port, as the HOW-TO suggests). Restate retries the LLM step; the endpoint comes back; the
         invocation completes with success ("ou reprise si l'endpoint revient").
- hang:  base_url at a loopback listener that accepts and never answers. Each attempt ends in the client's
         timeout; with the step's max_attempts the invocation ends completed with failure ("en retry puis
         en erreur").
- pause: the endpoint is down and the server's retry policy runs out with on-max-attempts=pause; the
         invocation is paused; the endpoint comes back; resume; success.

Whatever happens, the writer's config and the server's environment are restored afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from drillkit.blackhole import BlackHole, closed_port
from drillkit.evidence import first_line, journal_steps, transient_errors
from drillkit.howto import howto_body
from drillkit.kit import actions, checks, probes
from drillkit.kit.frame import Drill, Scenario

Mode = Literal["down", "hang", "pause"]
Expect = Literal["recover", "fail", "pause"]
DEFAULT_EXPECT: dict[str, Expect] = {"down": "recover", "hang": "fail", "pause": "pause"}
LLM_STEP = "outline"  # the first LLM step: the one that meets the broken endpoint

HANG_TIMEOUT_S = 1.5
HANG_ATTEMPTS = 3
PAUSE_AFTER_ATTEMPTS = 3


def timeout_scenario(mode: Mode, expect: Expect | None) -> Scenario:
    wanted = expect or DEFAULT_EXPECT[mode]

    def scenario(drill: Drill) -> None:
        {"down": _down, "hang": _hang, "pause": _pause}[mode](drill, wanted)

    return scenario


def _endpoint_down(drill: Drill) -> Callable[[], None]:
    """Make the LLM endpoint unreachable; returns how to bring it back."""
    drill.fault_injected = True
    if drill.model.local.enabled:
        actions.stop_model(drill)
        return lambda: actions.start_model(drill)
    # A remote endpoint: the HOW-TO's "pointer base_url vers un host inexistant", on a closed loopback port.
    port = closed_port()
    broken = drill.writer.derived_config("timeout-down", {"writer_model.base_url": f"http://127.0.0.1:{port}/v1"})
    drill.on_cleanup("writer on its own config", drill.writer.restart)
    actions.restart_writer(drill, broken)
    drill.record.event("endpoint down", f"writer restarted with base_url at closed port {port} ({broken})")

    def restore_remote() -> None:
        actions.restart_writer(drill, drill.config.source)
        drill.record.event("endpoint back", "writer restarted on its own config")

    return restore_remote


def _wait_llm_retries(drill: Drill, statuses: tuple[str, ...]) -> dict[str, Any]:
    row = probes.wait_invocation(
        drill,
        lambda r: r.get("status") in statuses and (r.get("retry_count") or 0) >= 2,
        f"Restate to retry the {LLM_STEP} step",
    )
    drill.record.event(
        "retrying seen",
        f"status={row.get('status')} retry_count={row.get('retry_count')} "
        f"step={row.get('last_failure_related_command_name')} failure={first_line(row.get('last_failure'))!r}",
    )
    failure = str(row.get("last_failure") or "")
    drill.record.expect(
        f"Restate shows retries naming the LLM step ({LLM_STEP})",
        row.get("last_failure_related_command_name") == LLM_STEP or LLM_STEP in failure,
        f"retry_count={row.get('retry_count')}, related command={row.get('last_failure_related_command_name')!r}, "
        f"last_failure={first_line(failure, 200)!r}",
    )
    return row


def _check_outcome(drill: Drill, wanted: Expect, final: dict[str, Any], paused_seen: bool) -> None:
    record = drill.record
    if wanted == "fail":
        record.expect(
            "completed with failure after the step's attempts ran out",
            final.get("completion_result") == "failure",
            f"completion_result={final.get('completion_result')}, failure={final.get('completion_failure')!r}",
        )
        return
    if wanted == "pause":
        record.expect(
            "the invocation was paused when the retry policy ran out",
            paused_seen,
            "status=paused seen" if paused_seen else "never paused",
        )
    checks.completed_with_success(drill, final)


def _llm_attempts(drill: Drill) -> list[Any]:
    return [e for e in probes.executions(drill) if e.step == LLM_STEP]


def _down(drill: Drill, wanted: Expect) -> None:
    restore = _endpoint_down(drill)
    actions.send(drill, howto_body())
    _wait_llm_retries(drill, ("backing-off", "running", "ready"))
    restore()
    actions.resume(drill)
    _check_outcome(drill, wanted, probes.wait_completed(drill), paused_seen=False)
    attempts = _llm_attempts(drill)
    errors = [a for a in attempts if a.outcome == "error"]
    oks = [a for a in attempts if a.outcome == "ok"]
    drill.record.expect(
        f"the ledger shows {LLM_STEP} failing while the endpoint was down, then one success",
        bool(errors) and len(oks) == 1 and attempts[-1].outcome == "ok",
        f"{len(errors)} failed attempt(s) ({errors[0].error if errors else '-'}), then {len(oks)} ok",
    )


def _hang(drill: Drill, wanted: Expect) -> None:
    writer, record = drill.writer, drill.record
    with BlackHole() as hole:
        overrides = {
            "writer_model.base_url": hole.url,
            "writer_model.timeout_s": HANG_TIMEOUT_S,
            "pipeline.llm_retry": {"max_attempts": HANG_ATTEMPTS, "initial_interval_ms": 100, "max_interval_ms": 500},
        }
        hung = writer.derived_config("timeout-hang", overrides)
        drill.on_cleanup("writer on its own config", writer.restart)
        drill.fault_injected = True
        actions.restart_writer(drill, hung)
        record.event(
            "endpoint hangs",
            f"base_url {hole.url} accepts and never answers; client timeout "
            f"{HANG_TIMEOUT_S} s, {HANG_ATTEMPTS} attempts ({hung})",
        )
        actions.send(drill, howto_body())
        final = probes.wait_completed(drill)
        record.evidence["blackhole_connections"] = hole.accepted
    _check_outcome(drill, wanted, final, paused_seen=False)
    failure = str(final.get("completion_failure") or "")
    record.expect(
        "the failure names the LLM timeout",
        "timeout" in failure.lower() or "timed out" in failure.lower(),
        failure[:300] or "no failure message",
    )
    _check_hang_attempts(drill)


def _check_hang_attempts(drill: Drill) -> None:
    runs = _llm_attempts(drill)
    drill.record.expect(
        f"{LLM_STEP} attempted {HANG_ATTEMPTS} times, each ended by the client timeout",
        len(runs) == HANG_ATTEMPTS
        and all(a.outcome == "error" for a in runs)
        and all((a.duration_ms or 0) >= HANG_TIMEOUT_S * 1000 * 0.9 for a in runs),
        ", ".join(f"#{a.attempt} {a.outcome} after {a.duration_ms or 0:.0f} ms" for a in runs) or "no attempt",
    )
    later = sorted({e.step for e in probes.executions(drill) if e.step != LLM_STEP})
    drill.record.expect("no later step ran", not later, ", ".join(later) or "none")
    events = transient_errors(drill.restate.admin.journal_events(drill.invocation_id))
    drill.record.evidence["journal_steps_at_failure"] = [s.name for s in journal_steps(probes.journal(drill))]
    drill.record.note(f"{len(events)} TransientError event(s) in sys_journal_events")


def _pause(drill: Drill, wanted: Expect) -> None:
    handles, record = drill.handles, drill.record
    policy = {
        "RESTATE_DEFAULT_RETRY_POLICY__INITIAL_INTERVAL": "100ms",
        "RESTATE_DEFAULT_RETRY_POLICY__MAX_INTERVAL": "200ms",
        "RESTATE_DEFAULT_RETRY_POLICY__MAX_ATTEMPTS": str(PAUSE_AFTER_ATTEMPTS),
        "RESTATE_DEFAULT_RETRY_POLICY__ON_MAX_ATTEMPTS": "pause",
    }
    drill.on_cleanup("restate-server on the config's environment", handles.restate.server.restart)
    handles.restate.server.restart(policy)
    record.event("server retry policy", f"{PAUSE_AFTER_ATTEMPTS} attempts, then pause")
    restore = _endpoint_down(drill)
    actions.send(drill, howto_body())
    paused = probes.wait_invocation(drill, lambda r: r.get("status") == "paused", "the invocation to pause")
    failed = [a for a in _llm_attempts(drill) if a.outcome == "error"]
    record.event("paused", f"after {len(failed)} failed attempt(s) of {LLM_STEP}")
    record.evidence["paused_row"] = paused
    record.expect(
        f"the pause came after the policy's {PAUSE_AFTER_ATTEMPTS} attempts",
        len(failed) == PAUSE_AFTER_ATTEMPTS,
        f"ledger: {len(failed)} failed attempt(s) of {LLM_STEP} before the pause",
    )
    restore()
    actions.resume(drill)
    _check_outcome(drill, wanted, probes.wait_completed(drill), paused_seen=True)
