"""drill.server-crash: the Restate server dies mid-invocation (SIGKILL or SIGTERM) and comes back.

send -> wait until a step is done and the target step runs -> kill restate-server (its verified pid, or
`docker kill` of the container; the named volume keeps the journal) -> start it again -> resume ->
completed with success. PASS needs: completed with success, the journal still holds every step finished
before the crash, and no finished step ran again. The report gives the time from the server's restart
to the invocation running again and to completed.
"""

from __future__ import annotations

import signal
import time

from drillkit.evidence import completed_step_names, journaled_completions
from drillkit.howto import RESTART_PROMPT, howto_body
from drillkit.kit import actions, checks, probes
from drillkit.kit.frame import Drill, Scenario
from drillkit.waits import WaitTimeout


def server_crash_scenario(sig: signal.Signals, at: str, resume: bool) -> Scenario:
    def scenario(drill: Drill) -> None:
        actions.send(drill, howto_body(RESTART_PROMPT))
        before_kill = probes.wait_step_running(drill, at, probes.previous_step(drill.writer.steps(), at))
        seen_done = completed_step_names(before_kill)
        actions.kill_server(drill, sig)
        killed_at = time.time()
        ready = actions.start_server(drill)
        # What the journal held when the server died, read back from the restarted server: its evidence.
        # A server answers SQL before its partition has replayed its log, so the read waits (as long as
        # the system moves) for the steps seen finished; a journal that lost them fails the check below.
        try:
            rows = probes.wait_journal(
                drill,
                lambda rows: all(step in journaled_completions(rows) for step in seen_done),
                "the restarted server's journal to hold the steps seen finished before the crash",
            )
        except WaitTimeout:
            rows = probes.journal(drill)
        journaled = {step: at_ for step, at_ in journaled_completions(rows).items() if at_ <= killed_at}
        drill.record.evidence["completed_at_kill"] = list(journaled)
        if at in journaled:
            checks.fault_landed_as_planned(drill, at, None)
        drill.record.expect(
            "the journal kept every step finished before the crash",
            all(step in journaled for step in seen_done),
            f"seen finished before the crash: {', '.join(seen_done) or 'none'}; "
            f"journaled before the crash, read after the restart: {', '.join(journaled) or 'none'}",
        )
        if resume:
            actions.resume(drill)
        running = probes.wait_invocation(
            drill, lambda r: r.get("status") in ("running", "completed"), "the invocation to run again"
        )
        to_running = time.monotonic() - ready
        drill.record.event("running again", f"status={running.get('status')}, {to_running:.2f} s after the restart")
        final = probes.wait_completed(drill)
        to_completed = time.monotonic() - ready
        drill.record.evidence["recovery_s"] = {
            "restart_to_running": round(to_running, 3),
            "restart_to_completed": round(to_completed, 3),
        }
        checks.completed_with_success(drill, final)
        checks.no_finished_step_ran_again(drill, journaled, "the crash")

    return scenario
