"""drill.crash: the HOW-TO's section 3, "Simulation crash + reprise", unattended.

send -> wait until a step is done and the target step runs -> kill the writer's PID -> see Restate
retrying -> restart the writer -> resume (or wait for Restate's backoff) -> completed with success.
PASS needs: completed with success, output retrievable, report file present, and no step that had
finished before the kill executed again (the step in flight may: it never finished).
"""

from __future__ import annotations

import signal

from drillkit.errors import ComponentError, DrillError
from drillkit.evidence import completed_step_names, in_flight_step, journaled_completions
from drillkit.handles import Handles
from drillkit.howto import RESTART_PROMPT, howto_body
from drillkit.kit import actions, checks, probes
from drillkit.kit.frame import Drill, Scenario


def check_target(handles: Handles, at: str) -> None:
    steps = handles.writer.steps()
    if at not in steps:
        raise DrillError(f"--at {at!r} is not a step of this pipeline; steps are {', '.join(steps)}")


def crash_scenario(sig: signal.Signals, at: str, resume: bool) -> Scenario:
    def scenario(drill: Drill) -> None:
        writer = actions.running_writer(drill)
        actions.send(drill, howto_body(RESTART_PROMPT))
        probes.wait_step_running(drill, at, probes.previous_step(drill.writer.steps(), at))
        probes.wait_executing(drill, writer.pid, at)

        stopped = actions.kill_writer(drill, writer, sig)
        checks.writer_gone(drill, stopped, sig)
        row = probes.wait_invocation(drill, probes.retrying_or_done, "Restate to show the invocation retrying")
        # A step result the writer sent just before it died can be journaled after the kill returned;
        # once Restate shows the attempt over, the journal holds everything the dead writer sent.
        rows = probes.journal(drill)
        journaled = journaled_completions(rows)
        flight = in_flight_step(rows)
        drill.record.evidence["in_flight_at_kill"] = flight
        drill.record.evidence["completed_at_kill"] = completed_step_names(rows)
        if sig == signal.SIGKILL:  # SIGTERM drains: the target may finish, which the drill accepts
            # Landed: the killed body never ended (ledger) and Restate never journaled it (journal).
            cut = cut_by_the_kill(drill, stopped.record.pid)
            checks.fault_landed_as_planned(drill, at, None if at in journaled else cut)
        retrying = row.get("status") != "completed"
        drill.record.event(
            "retrying seen" if retrying else "finished during the drain",
            f"status={row.get('status')} retry_count={row.get('retry_count')} "
            f"error={row.get('last_failure_error_code')}",
        )
        checks.retried_after_kill(drill, row, sig)
        try:
            actions.restart_writer(drill)
        except ComponentError as exc:
            drill.record.expect("the writer restarts and answers its health check", False, str(exc))
            return
        if retrying:
            come_back(drill, row, resume)
        checks.completed_with_success(drill, probes.wait_completed(drill))
        checks.no_finished_step_ran_again(drill, journaled)
        note_in_flight(drill, flight)

    return scenario


def cut_by_the_kill(drill: Drill, pid: int) -> str | None:
    """The step the killed process had started and never ended, from the writer's ledger: its lines are
    written when a body starts and when it returns, so the ledger is whole once the process is gone, and
    it does not depend on when Restate journals what the writer sent."""
    cut = [e.step for e in probes.executions(drill) if e.pid == pid and e.outcome is None]
    return cut[-1] if cut else None


def come_back(drill: Drill, row: probes.Row, resume: bool) -> None:
    """Resume at once, or (--no-resume) wait for Restate's own backoff as the HOW-TO does."""
    if resume:
        actions.resume(drill)
    else:
        drill.record.event("waiting for Restate's backoff", f"next_retry_at={row.get('next_retry_at')}")
    running = probes.wait_invocation(
        drill, lambda r: r.get("status") in ("running", "completed"), "the invocation to run again"
    )
    drill.record.event("running again", f"status={running.get('status')}")


def note_in_flight(drill: Drill, flight: str | None) -> None:
    if not flight:
        return
    runs = [e for e in drill.writer.executions(drill.invocation_id) if e.step == flight]
    killed = sum(1 for e in runs if e.outcome is None)
    drill.record.note(
        f"step {flight} was in flight at the kill: {len(runs)} execution(s) in the ledger, {killed} never finished "
        "(cut by the kill); a step in flight may run again, as it never finished"
    )
