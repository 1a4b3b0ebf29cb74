"""Chaos Toolkit probes: what an experiment asks of the writer and Restate; they change nothing."""

from __future__ import annotations

import json
from typing import Any

from drillkit.chaos._stack import chosen_invocation, stack_for
from drillkit.evidence import DEFAULT_RUN_POINT, completed_step_names, in_flight_step, journal_steps, run_point
from drillkit.reports.record import row_summary
from drillkit.waits import WaitTimeout, poll

__all__ = [
    "invocation_completed_with_success",
    "invocation_status",
    "last_drill_passed",
    "step_running",
    "writer_healthy",
]


def writer_healthy(config_path: str) -> bool:
    """The service under drill (the writer, or the configured target) is alive and answers its health
    check (a `uri` target: it accepts connections)."""
    with stack_for(config_path) as stack:
        service = stack.service
        return (not service.startable or service.live() is not None) and service.healthy()


def invocation_status(config_path: str, invocation_id: str = "") -> dict[str, Any]:
    """Restate's `sys_invocation` row (status, completion_result, retry_count, last failure, ...) of the
    invocation (default: the last one sent); empty when Restate does not know it."""
    with stack_for(config_path) as stack:
        return row_summary(stack.admin.invocation(chosen_invocation(stack, invocation_id)) or {})


def invocation_completed_with_success(config_path: str, invocation_id: str = "", timeout_s: float = 0) -> bool:
    """True when the invocation (default: the last one sent) completed with success, waiting up to
    `timeout_s` while it has not completed. With no id and none sent yet there is nothing that failed:
    True (a steady state checked before any experiment ran)."""
    with stack_for(config_path) as stack:
        chosen = invocation_id or stack.state.last_invocation()
        if not chosen:
            return True

        def row() -> dict[str, Any]:
            return stack.admin.invocation(chosen) or {}

        try:
            final = poll(row, lambda r: r.get("status") == "completed", f"{chosen} to complete", timeout_s, 0.1)
        except WaitTimeout:
            return False
        return final.get("completion_result") == "success"


def step_running(config_path: str, step: str = "section:2", timeout_s: float = 300) -> bool:
    """Wait until `step` of the last invocation is in flight after the step before it finished (the
    moment the crash drill strikes); False if that was not seen within `timeout_s`. On a configured
    target `step` is `run:N` (a writer step name there means the default, run:2)."""
    with stack_for(config_path) as stack:
        chosen = chosen_invocation(stack, "")
        if stack.target is not None:  # a configured target: `run:N`, the Nth Run of its journal
            n = run_point(step if step.startswith("run:") else DEFAULT_RUN_POINT)

            def nth_in_flight(rows: list[dict[str, Any]]) -> bool:
                runs = journal_steps(rows)
                return len(runs) >= n and not runs[n - 1].completed and all(r.completed for r in runs[: n - 1])

            try:
                poll(lambda: stack.admin.journal(chosen), nth_in_flight, f"Run {n} running", timeout_s, 0.02)
            except WaitTimeout:
                return False
            return True
        steps = stack.writer.steps()
        before = steps[steps.index(step) - 1] if step in steps and steps.index(step) else None

        def ready(rows: list[dict[str, Any]]) -> bool:
            return (before is None or before in completed_step_names(rows)) and in_flight_step(rows) == step

        try:
            poll(lambda: stack.admin.journal(chosen), ready, f"step {step} running", timeout_s, 0.02)
        except WaitTimeout:
            return False
        return True


def last_drill_passed(config_path: str, drill: str) -> bool:
    """The newest report of `drill` in the state dir's reports (`run_drill`, `inv drill.<name>`) says PASS.
    When that drill never ran from this state dir nothing has failed: True (the steady state before the
    method)."""
    with stack_for(config_path) as stack:
        journals = sorted(stack.state.reports.glob(f"{drill}-*/journal.json"), key=lambda p: p.stat().st_mtime)
        if not journals:
            return True
        return bool(json.loads(journals[-1].read_text(encoding="utf-8")).get("verdict") == "PASS")
