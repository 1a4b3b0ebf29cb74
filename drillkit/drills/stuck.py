"""drill.stuck: a writer that is alive and silent (SIGSTOP: a long GC pause, a frozen VM) with a step in
flight, and Restate's own way out.

The writer runs on the stub model with Restate's timeouts for the service made short (inactivity and
abort, sent at registration), so the drill shows in seconds what takes minutes with the defaults: the
frozen writer says nothing, Restate closes its side of the stream after the inactivity timeout, aborts
the attempt after the abort timeout and retries (the retry counter moves, sys_invocation names the
failure); the writer is thawed; the invocation completes with success. The model is held while the
drill lands the fault, so a step is surely in flight when the writer stops (no race with a fast stub).

PASS needs: Restate aborted at least one attempt while the writer was frozen (its own row says so), the
invocation completed with success after the thaw and never ended suspended or paused, and no step that
had finished before the freeze ran again. The writer's own config and registration are restored after.
"""

from __future__ import annotations

import time

from drillkit.components.stub_llm import StubLlm
from drillkit.evidence import journaled_completions
from drillkit.howto import RESTART_PROMPT, howto_body
from drillkit.kit import actions, checks, probes
from drillkit.kit.actions import hold_model, release_model
from drillkit.kit.frame import Drill, Scenario
from drillkit.waits import poll

STUB_DELAY_MS = 300.0
INACTIVITY_S = 3.0
ABORT_S = 3.0
MODEL_TIMEOUT_S = 2.5
"""The writer's own model timeout must end a step before Restate would abort it (the config refuses
more); the stub answers in `STUB_DELAY_MS`."""


def stuck_scenario() -> Scenario:
    def scenario(drill: Drill) -> None:
        stub = short_timeouts(drill)
        writer = actions.running_writer(drill)
        hold_model(drill, stub, after=1)  # the first step finishes (work to protect), the next one waits
        actions.send(drill, howto_body(RESTART_PROMPT))
        step = wait_in_flight(drill, writer.pid, stub)
        rows = probes.journal(drill)
        journaled = journaled_completions(rows)
        before = int(probes.invocation(drill).get("retry_count") or 0)
        actions.freeze_writer(drill, writer)
        frozen_at = time.monotonic()
        release_model(drill, stub)  # its answer waits in the frozen writer's socket
        row = probes.wait_invocation(
            drill,
            lambda r: int(r.get("retry_count") or 0) > before,
            "Restate to abort the attempt to the frozen writer",
        )
        waited = time.monotonic() - frozen_at
        drill.record.expect(
            "Restate aborted the attempt to the frozen writer and retried (sys_invocation)",
            int(row.get("retry_count") or 0) > before,
            f"after {waited:.1f} s frozen (inactivity {INACTIVITY_S:g} s + abort {ABORT_S:g} s): "
            f"status={row.get('status')} retry_count={row.get('retry_count')} "
            f"error={row.get('last_failure_error_code')}: {str(row.get('last_failure') or '')[:200]}",
        )
        actions.thaw_writer(drill)
        done = probes.wait_completed(drill)
        checks.completed_with_success(drill, done)
        drill.record.expect(
            "the invocation ended completed, not suspended or paused waiting on its own step",
            done.get("status") == "completed",
            f"status={done.get('status')}",
        )
        checks.no_finished_step_ran_again(drill, journaled, when="the freeze")
        drill.record.note(f"step {step} was in flight at the freeze; a step in flight may run again")

    return scenario


def short_timeouts(drill: Drill) -> StubLlm:
    """The writer on the stub model with Restate's inactivity and abort timeouts short, registered so
    Restate uses them; both given back (config and registration) on every path."""
    handles = drill.handles
    stub = handles.model.stub()
    drill.on_cleanup("stub LLM stopped", stub.stop)
    stub.start(STUB_DELAY_MS)
    path = handles.writer.derived_config(
        "stuck",
        {
            "writer_model.base_url": f"{stub.url}/v1",
            "writer_model.model": "stub",
            "writer_model.timeout_s": MODEL_TIMEOUT_S,
            "service.inactivity_timeout_s": INACTIVITY_S,
            "service.abort_timeout_s": ABORT_S,
        },
    )

    def give_back() -> None:
        handles.writer.restart()
        handles.restate.register(force=True)

    drill.on_cleanup("writer on its own config and timeouts, registered again", give_back)
    actions.restart_writer(drill, path)
    handles.restate.register(force=True)
    drill.record.event(
        "short timeouts",
        f"stub model ({STUB_DELAY_MS:g} ms), Restate inactivity {INACTIVITY_S:g} s and abort {ABORT_S:g} s "
        "for the service, registered",
    )
    return stub


def wait_in_flight(drill: Drill, pid: int, stub: StubLlm) -> str:
    """A step this writer process started after one had finished (its ledger), whose model request is
    parked at the held stub (the stub's own count): the writer is waiting on the model, not between steps."""

    def probe() -> list[str]:
        runs = [e for e in probes.executions(drill) if e.pid == pid]
        open_now = [e.step for e in runs if e.outcome is None]
        finished = any(e.outcome == "ok" for e in runs)
        return open_now if finished and open_now and stub.waiting() >= 1 else []

    found = poll(probe, bool, "a step in flight in the writer", timeout_s=drill.pace.budget_s, interval_s=0.02)
    drill.record.event("in flight", f"step {found[-1]} waits for the held model")
    return found[-1]
