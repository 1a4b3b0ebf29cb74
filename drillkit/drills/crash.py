"""drill.crash: the HOW-TO's section 3, "Simulation crash + reprise", unattended.

send -> wait until a step is done and the target step runs -> kill the writer's PID -> see Restate
retrying -> restart the writer -> resume (or wait for Restate's backoff) -> completed with success.
PASS needs: completed with success, output retrievable, report file present, and no step that had
finished before the kill executed again (the step in flight may: it never finished).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from drillkit.drills.common import Drill, Scenario, fetch_output
from drillkit.errors import ComponentError, DrillError, HttpError
from drillkit.evidence import (
    completed_step_names,
    in_flight_step,
    journaled_completions,
    reexecuted_after_journaled,
)
from drillkit.howto import RESTART_PROMPT, howto_body
from drillkit.stack import Stack
from drillkit.waits import poll
from writer_service.config import step_order
from writer_service.ledger import executions, read_ledger

RETRYING = ("backing-off", "paused", "ready", "scheduled")


def previous_step(target: str, sections: int) -> str | None:
    order = step_order(sections)
    index = order.index(target)
    return order[index - 1] if index else None


def check_target(stack: Stack, at: str) -> None:
    order = step_order(stack.config.pipeline.sections)
    if at not in order:
        raise DrillError(f"--at {at!r} is not a step of this pipeline; steps are {', '.join(order)}")


def crash_scenario(sig: signal.Signals, at: str, resume: bool, deadline_s: float) -> Scenario:
    def scenario(drill: Drill) -> None:
        stack, record = drill.stack, drill.record
        check_target(stack, at)
        before = previous_step(at, stack.config.pipeline.sections)

        writer = stack.procs.live("writer")
        if writer is None:
            raise DrillError("the writer service is not running: nothing to crash (`inv service.start`)")
        record.event("writer running", f"pid {writer.pid}")
        drill.send(howto_body(RESTART_PROMPT))

        # Watch the journal (not a clock) until the step before the target has finished and the target
        # has started: then there is a finished step to protect and one in flight to interrupt.
        seen: set[str] = set()

        def progress() -> list[dict[str, object]]:
            rows = drill.journal()
            for name in completed_step_names(rows):
                if name not in seen:
                    seen.add(name)
                    record.event("step done", name)
            return rows

        def target_running(rows: list[dict[str, object]]) -> bool:
            done = completed_step_names(rows)
            return (before is None or before in done) and in_flight_step(rows) == at

        poll(progress, target_running, f"step {at} to be running", deadline_s, interval_s=0.02)
        record.event("target running", at)

        # Restart the writer whatever happens next: a drill never leaves the service down.
        drill.on_cleanup("writer service running", stack.start_writer)
        record.event("signalled", f"{sig.name} to the writer's recorded pid {writer.pid} (verified first)")
        killed = stack.kill_writer(sig)
        cutoff = time.time()
        if killed is None:
            raise DrillError(f"the writer (pid {writer.pid}) was no longer running when the drill killed it")
        rows = drill.journal()
        flight = in_flight_step(rows)
        journaled = journaled_completions(rows)
        record.evidence["in_flight_at_kill"] = flight
        record.evidence["completed_at_kill"] = completed_step_names(rows)
        record.event(
            "killed",
            f"{sig.name} to pid {writer.pid}; gone after {killed.seconds:.2f} s"
            + (" (SIGTERM ignored: escalated to SIGKILL)" if killed.escalated else ""),
        )
        if sig == signal.SIGKILL:
            record.expect(
                f"the writer (pid {writer.pid}) is gone after SIGKILL",
                True,
                f"pid {writer.pid} verified, signalled and gone in {killed.seconds:.2f} s",
            )
        else:
            record.expect(
                f"the writer (pid {writer.pid}) shut down gracefully on SIGTERM",
                not killed.escalated,
                f"exited by itself after {killed.seconds:.2f} s (grace period "
                f"{stack.config.service.grace_period_s:g} s)"
                if not killed.escalated
                else "it did not exit within its grace period and had to be SIGKILLed",
            )

        row = drill.wait_invocation(
            lambda r: r.get("status") in RETRYING or r.get("status") == "completed",
            "Restate to show the invocation retrying",
            deadline_s,
        )
        record.event(
            "retrying seen" if row.get("status") in RETRYING else "finished during the drain",
            f"status={row.get('status')} retry_count={row.get('retry_count')} "
            f"error={row.get('last_failure_error_code')}",
        )
        retried = row.get("status") in RETRYING and (row.get("retry_count") or 0) >= 1
        evidence = (
            f"status={row.get('status')}, retry_count={row.get('retry_count')}, "
            f"last_failure_error_code={row.get('last_failure_error_code')}, "
            f"last_failure={str(row.get('last_failure'))[:160]!r}"
        )
        if sig == signal.SIGKILL:
            record.expect("Restate shows the invocation retrying after the kill", retried, evidence)
        else:
            # A graceful stop drains in-flight requests: the invocation either finished before the
            # process exited, or the drain was cut at the grace period and Restate retries it. Both are
            # correct; a pending invocation that Restate neither finished nor retries is not.
            drained = row.get("status") == "completed"
            record.expect(
                "Restate either saw the invocation finish during the drain or retries it",
                drained or retried,
                ("finished during the drain: " if drained else "retried: ") + evidence,
            )

        try:
            restarted = stack.start_writer()
        except ComponentError as exc:
            record.expect("the writer restarts and answers its health check", False, str(exc))
            return
        record.event("restarted", f"writer pid {restarted.pid} healthy")
        if row.get("status") != "completed":
            if resume:
                try:
                    stack.admin.resume(drill.record.invocation_id or "")
                    record.event("resumed", "PATCH /invocations/<id>/resume")
                except HttpError as exc:
                    record.note(f"resume not needed: {exc}")  # e.g. already running again on its own
            else:
                record.event("waiting for Restate's backoff", f"next_retry_at={row.get('next_retry_at')}")
            running = drill.wait_invocation(
                lambda r: r.get("status") in ("running", "completed"), "the invocation to run again", deadline_s
            )
            record.event("running again", f"status={running.get('status')}")
        final = drill.wait_completed(deadline_s)
        check_completion(drill, final)

        runs = executions(read_ledger(stack.config.ledger.path, drill.record.invocation_id))
        rerun = reexecuted_after_journaled(runs, journaled)
        record.expect(
            "no step that had finished before the kill ran again",
            not rerun,
            f"journaled as finished before the kill: {', '.join(record.evidence['completed_at_kill']) or 'none'}; "
            + (f"executed again: {', '.join(rerun)}" if rerun else "none executed again (replayed from the journal)"),
        )
        if flight:
            again = [e for e in runs if e.step == flight and e.started > cutoff]
            record.note(
                f"step {flight} was in flight at the kill; it ran again after the restart "
                f"({len(again)} execution(s)), as expected for a step that never finished"
                if again
                else f"step {flight} was in flight at the kill and did not need to run again"
            )

    return scenario


def check_completion(drill: Drill, row: dict[str, object]) -> None:
    """The shared PASS conditions: completed with success (Restate and the CLI agree), output, file."""
    record = drill.record
    record.expect(
        "completed with success (sys_invocation)",
        row.get("completion_result") == "success",
        f"status={row.get('status')}, completion_result={row.get('completion_result')}"
        + (f", failure={row.get('completion_failure')!r}" if row.get("completion_failure") else ""),
    )
    describe = drill.stack.cli().describe(record.invocation_id or "")
    record.evidence["cli_describe"] = describe
    record.expect(
        "`restate invocations describe` says completed with success",
        "completed with success" in describe,
        next((line.strip() for line in describe.splitlines() if "Status:" in line), "no Status line"),
    )
    output = fetch_output(drill)
    record.expect(
        "the output is retrievable from Restate",
        output is not None and "output_path" in output,
        f"GET /restate/invocation/{record.invocation_id}/output",
    )
    path = Path(str(output.get("output_path"))) if output else None
    record.expect("the report file exists", path is not None and path.is_file(), str(path))
