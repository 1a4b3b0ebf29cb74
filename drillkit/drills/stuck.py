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

`--mode step-hang`: the writer stays alive and answering; one step (`HUNG_STEP`) blocks instead. The LLM
tap sits between the writer and the stub model and trickles that step's answer out over `HANG_S`
seconds, a piece every ~1.5 s: each read of the writer's model client gets a byte before its own 2.5 s
timeout, so the client never gives up and the step hangs well past Restate's inactivity and abort
timeouts, as a step blocked on a dawdling dependency does. Restate's own path is what PASS needs: the
attempt aborted (sys_invocation's retry count moved while the step hung, its last failure or a
journal event naming the timeout), the step asked again (a second model request for it, answered whole)
and the invocation completed with success, never suspended or paused waiting on its own step, with no
step that had finished before the hang run again.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Literal

from drillkit.components.stub_llm import StubLlm
from drillkit.components.tap_faults import FaultPlan
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
HUNG_STEP = "section:1"
"""The step that hangs in `step-hang` mode: the outline before it has finished (work to protect)."""
HANG_S = 30.0
"""How long the hung step's answer takes to trickle out: a piece every `HANG_S / 20` = 1.5 s, under the
writer's 2.5 s read timeout; five times Restate's inactivity + abort timeouts for the drill."""

Mode = Literal["freeze", "step-hang"]
MODES: tuple[str, ...] = ("freeze", "step-hang")


def stuck_scenario(mode: Mode = "freeze") -> Scenario:
    return step_hang_scenario() if mode == "step-hang" else freeze_scenario()


def freeze_scenario() -> Scenario:
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


def short_timeouts(drill: Drill, plan: FaultPlan | None = None) -> StubLlm:
    """The writer on the stub model with Restate's inactivity and abort timeouts short, registered so
    Restate uses them; both given back (config and registration) on every path. With `plan`, the LLM tap
    stands between them and answers as the plan says (`drill.tap`)."""
    handles = drill.handles
    stub = handles.model.stub()
    drill.on_cleanup("stub LLM stopped", stub.stop)
    stub.start(STUB_DELAY_MS)
    model_url = stub.url
    if plan is not None:
        tap = handles.model.tap()
        drill.on_cleanup("LLM tap stopped", tap.stop)
        tap.start(stub.url, plan)
        drill.tap, model_url = tap, tap.url
        drill.record.evidence["fault_plan"] = asdict(plan)
    path = handles.writer.derived_config(
        "stuck",
        {
            "writer_model.base_url": f"{model_url}/v1",
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


def step_hang_scenario() -> Scenario:
    def scenario(drill: Drill) -> None:
        plan = FaultPlan("slow", burst=1, steps=(HUNG_STEP,), slow_s=HANG_S)
        short_timeouts(drill, plan)
        writer = actions.running_writer(drill)
        drill.fault_injected = True  # armed: the first request of the step gets it
        actions.send(drill, howto_body(RESTART_PROMPT))
        rows = probes.wait_step_running(drill, HUNG_STEP, "outline")
        journaled = journaled_completions(rows)
        before = int(probes.invocation(drill).get("retry_count") or 0)
        hung_at = time.monotonic()
        row = probes.wait_invocation(
            drill,
            lambda r: int(r.get("retry_count") or 0) > before,
            f"Restate to abort the attempt whose step {HUNG_STEP} hangs",
        )
        waited = time.monotonic() - hung_at
        drill.record.event("aborted", f"retry_count {before} -> {row.get('retry_count')} after {waited:.1f} s")
        done = probes.wait_completed(drill)
        restates_path(drill, row, waited, before)
        checks.completed_with_success(drill, done)
        drill.record.expect(
            "the invocation ended completed, not suspended or paused waiting on its own step",
            done.get("status") == "completed",
            f"status={done.get('status')}",
        )
        checks.no_finished_step_ran_again(drill, journaled, when="the hang")
        step_asked_again(drill)
        alive = probes.writer_pid(drill)
        drill.record.expect(
            "the writer stayed alive throughout: only the step hung",
            alive == writer.pid,
            f"writer pid {writer.pid} before, {alive or 'none'} after",
        )

    return scenario


def restates_path(drill: Drill, row: probes.Row, waited: float, before: int) -> None:
    """The abort as Restate recorded it: the row's retry count and last failure, the journal's events."""
    events = [e for e in probes.journal_events(drill) if "Error" in str(e.get("event_type"))]
    said = [str(e.get("event_json") or e)[:300] for e in events]
    drill.record.evidence["abort_events"] = said
    failure = str(row.get("last_failure") or "")
    named = "timeout" in failure.lower() or any("timeout" in text.lower() for text in said)
    drill.record.expect(
        "Restate aborted the attempt whose step hung, on its own timeouts, and retried "
        "(sys_invocation, sys_journal_events)",
        int(row.get("retry_count") or 0) > before and named and waited >= INACTIVITY_S,
        f"after {waited:.1f} s of the step hanging (inactivity {INACTIVITY_S:g} s + abort {ABORT_S:g} s): "
        f"retry_count={row.get('retry_count')} error={row.get('last_failure_error_code')}: {failure[:200]}; "
        f"{len(events)} error event(s) in sys_journal_events",
    )


def step_asked_again(drill: Drill) -> None:
    """The tap's record: the hung request never finished for the writer; the retry asked again, answered."""
    tap = drill.tap
    requests = tap.settled_requests([drill.invocation_id]) if tap else []
    drill.record.evidence["tap_requests"] = [asdict(r) for r in requests]
    hung = [r for r in requests if r.step == HUNG_STEP]
    said = ", ".join(f"#{r.attempt} {r.fault or 'model'} -> {r.status} ({r.outcome})" for r in hung) or "none"
    drill.record.expect(
        f"step {HUNG_STEP} was asked again after the abort and answered whole (the LLM tap)",
        len(hung) >= 2 and hung[0].fault == "slow" and hung[-1].fault is None and hung[-1].status == 200,
        f"{HUNG_STEP}'s model requests: {said}",
    )
