"""The drills on a configured target (`target:` in the config): a Restate service this tool did not write.

Nothing is asked of the service. Its model is reached through the LLM tap (the drill sets the variable
the target reads its base URL from), so every model request is seen at the door; requests are told
apart by the nonce the drill puts in each body, not by headers. Kill points come from Restate's journal:
`run:N` is the Nth `Run` entry (names may repeat: the Agents SDK journals every model call as
`call LLM`), cut while in flight. A finished step that runs again is caught twice, without the target's
help: its exact model request (same fingerprint) reaching the model after Restate had journaled the
step's result, or the journal no longer holding, unchanged, a result it held before the fault.
"""

from __future__ import annotations

import random
import signal
import time
import uuid
from collections import Counter
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

from drillkit.blackhole import BlackHole, closed_port
from drillkit.components.llm_tap import LlmTap, TapRequest
from drillkit.components.target import TargetService, new_nonce
from drillkit.errors import ComponentError, ConfigError, DrillError, Inconclusive
from drillkit.evidence import (
    DEFAULT_RUN_POINT,
    JournalStep,
    first_line,
    journal_steps,
    restate_time,
    run_point,
    transient_errors,
)
from drillkit.handles import Handles
from drillkit.kit import actions, checks, probes
from drillkit.kit.frame import Drill, Scenario
from drillkit.procs import ProcessRecord, Stopped
from drillkit.restate_api import sql_list
from drillkit.waits import poll

DEFAULT_AT = DEFAULT_RUN_POINT
TOLERANCE_S = 0.005  # Restate's timestamps are in milliseconds


def target_of(handles: Handles) -> TargetService:
    target = handles.target
    if target is None:
        raise DrillError(f"{handles.config.source}: no `target` section")
    return target


def check_startable(handles: Handles, what: str) -> None:
    target_of(handles).require_startable(what)


def check_model_side(handles: Handles) -> None:
    target = target_of(handles)
    if not target.spec.llm_base_url_env:
        raise ConfigError(
            f"{handles.config.source}: target.llm_base_url_env is not set: the drill cannot put the LLM tap (or a "
            "broken endpoint) in front of this target's model"
        )


# -- actions on the target ----------------------------------------------------------------------------


def route_through_tap(drill: Drill, tool_failures: int = 0) -> LlmTap | None:
    """Model <- tap <- target: the target restarted with its base-URL variable naming the tap (and the
    tool-fault count when asked); put back as configured at the end. A target the tool cannot restart, or
    whose model address it cannot set, runs as it is: the evidence is then Restate's journal alone."""
    handles, target = drill.handles, target_of(drill.handles)
    if not target.startable or not target.spec.llm_base_url_env:
        why = "target.uri: not started by this tool" if not target.startable else "no target.llm_base_url_env"
        drill.record.note(f"no LLM tap ({why}): the evidence is Restate's journal alone, the model's side unseen")
        return None
    upstream = urlsplit(handles.config.writer_model.base_url)
    tap = handles.model.tap()
    drill.on_cleanup("LLM tap stopped", tap.stop)
    tap.start(f"{upstream.scheme}://{upstream.netloc}")
    base_url = f"{tap.url}{upstream.path}"
    drill.on_cleanup(f"{target.what} running as configured", target.start)
    record = target.start(llm_base_url=base_url, tool_failures=tool_failures)
    drill.record.event(
        "tap",
        f"{target.what} (pid {record.pid}) -> {base_url} -> {handles.model.base_url}; record {tap.record}",
    )
    drill.record.evidence["tap_record"] = str(tap.record)
    drill.tap = tap
    return tap


def running_target(drill: Drill) -> ProcessRecord:
    record = target_of(drill.handles).live()
    if record is None:
        raise DrillError(f"{target_of(drill.handles).what} is not running: nothing to crash")
    drill.record.event("target running", f"pid {record.pid}")
    return record


def send(drill: Drill, nonce: str | None = None, idempotency_key: str | None = None) -> str:
    """POST /<service>/<handler>/send with the target's body, its `{{nonce}}` filled in."""
    target = target_of(drill.handles)
    chosen = nonce or new_nonce()
    body = target.body(chosen)
    invocation_id = drill.restate.ingress.send(
        body, idempotency_key=idempotency_key, service=target.service, handler=target.handler
    )
    drill.restate.remember_invocation(invocation_id)
    drill.record.invocation_id = drill.record.invocation_id or invocation_id
    drill.invocations.append(invocation_id)
    drill.nonces[invocation_id] = chosen
    drill.record.event("sent", f"POST /{target.service}/{target.handler}/send -> {invocation_id} (nonce {chosen})")
    return invocation_id


def kill_target(drill: Drill, record: ProcessRecord, sig: signal.Signals) -> Stopped:
    target = target_of(drill.handles)
    drill.on_cleanup(f"{target.what} running", lambda: target.live() or restart_target(drill))
    return actions.kill_recorded(drill, target.what, record, sig, target.kill_record)


def restart_target(drill: Drill) -> ProcessRecord:
    """The target started again with the environment it had (the tap in front of its model)."""
    target = target_of(drill.handles)
    tap = drill.tap
    upstream = urlsplit(drill.config.writer_model.base_url)
    record = target.start(llm_base_url=f"{tap.url}{upstream.path}" if tap else None)
    drill.record.event("restarted", f"{target.what} pid {record.pid} accepts connections")
    return record


# -- probes -------------------------------------------------------------------------------------------


def runs(rows: probes.Rows) -> list[JournalStep]:
    return journal_steps(rows)


def wait_run_in_flight(drill: Drill, n: int) -> list[JournalStep]:
    """Until the journal holds the Nth Run, not completed, with every Run before it completed."""

    def ready(rows: probes.Rows) -> bool:
        steps = runs(rows)
        return len(steps) >= n and not steps[n - 1].completed and all(s.completed for s in steps[: n - 1])

    def finished_too_early(rows: probes.Rows) -> bool:
        steps = runs(rows)
        ended = any(str(r.get("entry_type", "")).endswith("Output") for r in rows)  # the handler returned
        return ready(rows) or (len(steps) >= n and steps[n - 1].completed) or ended

    rows = probes.wait_journal(drill, finished_too_early, f"Run {n} of the journal to be in flight")
    steps = runs(rows)
    if not ready(rows):
        raise Inconclusive(
            f"Run {n} was never seen in flight (the journal went from {len([s for s in steps if s.completed])} "
            f"completed Runs past it between two looks, or the invocation ended with {len(steps)} Runs); "
            "pick another --at or a slower model"
        )
    drill.record.event("target running", f"Run {n} ({steps[n - 1].name}) in flight")
    return steps


def tap_requests(drill: Drill, invocation_id: str | None = None) -> list[TapRequest]:
    """The model requests of this invocation: those whose body holds its nonce (all of them when the body
    has no nonce and the drill sent one invocation)."""
    if drill.tap is None:
        return []
    chosen = invocation_id or drill.invocation_id
    nonce = drill.nonces.get(chosen)
    every = drill.tap.requests()
    if nonce and any(nonce in r.nonces for r in every):
        return [r for r in every if nonce in r.nonces]
    return every if len(drill.invocations) == 1 else []


def settled_tap_requests(drill: Drill, invocation_id: str | None = None) -> list[TapRequest]:
    """As `tap_requests`, once each has its end line (the tap writes it after handing the answer over)."""
    try:
        return poll(
            lambda: tap_requests(drill, invocation_id),
            lambda rs: all(r.outcome is not None for r in rs),
            "the tap's end lines",
            timeout_s=10.0,
        )
    except DrillError:
        return tap_requests(drill, invocation_id)


# -- evidence -----------------------------------------------------------------------------------------


def requests_by_run(steps: list[JournalStep], requests: list[TapRequest]) -> dict[int, list[TapRequest]]:
    """Journal index of each Run -> the model requests it made: those that reached the model after the Run
    before it had its result journaled and before this one had. Arrival, not the end line, is compared:
    the tap writes its end line after handing the answer over, so the caller can journal the result
    first. The Run's own command entry is no bound either: Restate appends it when the SDK's message
    arrives, which can be after the body has asked the model. (Runs one at a time, as handlers run them;
    parallel Runs would share their requests.)"""
    found: dict[int, list[TapRequest]] = {s.index: [] for s in steps}
    bounds = []
    after = float("-inf")
    for step in steps:
        ended = restate_time(step.completed_at)
        if ended is None:
            break
        bounds.append((step.index, after, ended))
        after = ended
    for request in requests:
        for index, low, high in bounds:
            if low < request.time <= high:
                found[index].append(request)
                break
    return found


def rerequested_after_journaled(done: list[JournalStep], requests: list[TapRequest]) -> list[str]:
    """Finished steps whose exact model request reached the model again after Restate had journaled their
    result: finished work done again. Must be empty."""
    again = []
    made = requests_by_run(done, requests)
    for step in done:
        ended = restate_time(step.completed_at)
        asked = {r.fingerprint for r in made[step.index] if r.fingerprint}
        if ended is None or not asked:
            continue
        later = [r for r in requests if r.fingerprint in asked and r.time > ended + TOLERANCE_S]
        if later:
            again.append(f"Run {step.index} ({step.name}): asked again {len(later)}x after its result was journaled")
    return again


def changed_results(before: list[JournalStep], after: list[JournalStep]) -> list[str]:
    """Runs completed before the fault whose entry the final journal no longer holds as it was."""
    final = {(s.index, s.name): s for s in after}
    changed = []
    for step in before:
        now = final.get((step.index, step.name))
        if now is None or not now.completed or now.result != step.result or now.completed_at != step.completed_at:
            changed.append(f"Run {step.index} ({step.name})")
    return changed


# -- checks -------------------------------------------------------------------------------------------


def completed(drill: Drill, row: probes.Row) -> None:
    """Completed with success (Restate's row and the CLI agree) and the output is retrievable."""
    checks.completed_with_success(drill, row, report_file=False)


def no_finished_run_again(drill: Drill, done: list[JournalStep], when: str = "the kill") -> None:
    requests = settled_tap_requests(drill)
    final = runs(probes.journal(drill))
    again = rerequested_after_journaled(done, requests)
    changed = changed_results(done, final)
    names = ", ".join(f"{s.index}:{s.name}" for s in done) or "none"
    if drill.tap is not None:
        drill.record.expect(
            f"no Run that had finished before {when} ran again (model requests at the tap)",
            not again,
            f"finished before {when}: {names}; {len(requests)} model requests seen; "
            + ("; ".join(again) if again else "none of their requests reached the model again"),
        )
    drill.record.expect(
        f"the journal still holds every result it held before {when}, unchanged",
        not changed,
        "changed or missing: " + ", ".join(changed) if changed else f"{len(done)} results kept",
    )
    drill.record.evidence["tap_requests"] = [asdict(r) for r in requests]


def asked_once(drill: Drill) -> None:
    """Each model question reached the model once: the retries replayed the finished model steps."""
    requests = settled_tap_requests(drill)
    repeated = Counter(r.fingerprint for r in requests if r.fingerprint)
    again = {f[:12]: n for f, n in repeated.items() if n > 1}
    drill.record.expect(
        "every model step asked the model exactly once (replayed, not re-run, on each retry)",
        bool(requests) and not again,
        f"{len(requests)} model requests, {len(repeated)} distinct"
        + (f"; asked more than once: {again}" if again else ""),
    )
    drill.record.evidence["tap_requests"] = [asdict(r) for r in requests]


def gone(drill: Drill, stopped: Stopped, sig: signal.Signals) -> None:
    checks.service_gone(
        drill, stopped, sig, target_of(drill.handles).what, target_of(drill.handles).spec.grace_period_s
    )


# -- the drills ---------------------------------------------------------------------------------------


def crash_scenario(sig: signal.Signals, at: str, resume: bool) -> Scenario:
    n = run_point(at)

    def scenario(drill: Drill) -> None:
        route_through_tap(drill)
        record = running_target(drill)
        send(drill)
        wait_run_in_flight(drill, n)
        stopped = kill_target(drill, record, sig)
        gone(drill, stopped, sig)
        row = probes.wait_invocation(drill, probes.retrying_or_done, "Restate to show the invocation retrying")
        steps = runs(probes.journal(drill))
        done = [s for s in steps if s.completed]
        drill.record.evidence["completed_at_kill"] = [f"{s.index}:{s.name}" for s in done]
        if sig == signal.SIGKILL and len(steps) >= n and steps[n - 1].completed:
            raise Inconclusive(
                f"the fault was not injected as planned: Run {n} ({steps[n - 1].name}) had finished when the "
                "kill landed; run again, or pick another --at"
            )
        checks.retried_after_kill(drill, row, sig)
        try:
            restart_target(drill)
        except ComponentError as exc:
            drill.record.expect("the target restarts and accepts connections", False, str(exc))
            return
        if row.get("status") != "completed":
            come_back(drill, resume)
        completed(drill, probes.wait_completed(drill))
        no_finished_run_again(drill, done)

    return scenario


def server_crash_scenario(sig: signal.Signals, at: str, resume: bool) -> Scenario:
    n = run_point(at)

    def scenario(drill: Drill) -> None:
        route_through_tap(drill)
        send(drill)
        wait_run_in_flight(drill, n)
        before = [s for s in runs(probes.journal(drill)) if s.completed]
        actions.kill_server(drill, sig)
        actions.start_server(drill)
        # A restarted server answers SQL before its partition has replayed the log: wait for what it had.
        probes.wait_journal(
            drill,
            lambda rows: len([s for s in runs(rows) if s.completed]) >= len(before),
            "the restarted server's journal to hold the steps finished before the crash",
        )
        if resume:
            actions.resume(drill)
        completed(drill, probes.wait_completed(drill))
        no_finished_run_again(drill, before, when="the server crash")

    return scenario


def tool_error_scenario(fail_first: int) -> Scenario:
    def scenario(drill: Drill) -> None:
        target = target_of(drill.handles)
        assert target.spec.tool_fault is not None  # checked before the drill
        step = target.spec.tool_fault.step
        route_through_tap(drill, tool_failures=fail_first)
        drill.fault_injected = True
        drill.record.event("fault armed", f"{target.spec.tool_fault.env}={fail_first}: {step} fails {fail_first}x")
        send(drill)
        retries: list[int] = [0]

        def watched(row: probes.Row) -> bool:
            # Restate keeps one journal event per distinct error, not one per retry: the retries are
            # counted from its row (backing off with retry_count k between attempts, ≥100 ms each).
            retries[0] = max(retries[0], int(row.get("retry_count") or 0))
            return row.get("status") == "completed"

        row = probes.wait_invocation(drill, watched, "the invocation to complete")
        drill.record.event("completed", f"completion_result={row.get('completion_result')}")
        completed(drill, row)
        errors = transient_errors(drill.restate.admin.journal_events(drill.invocation_id))
        on_step = [e for e in errors if e.get("related_command_name") == step]
        drill.record.expect(
            f"Restate's journal events show {step} failing",
            bool(on_step),
            f"{len(on_step)} transient error event(s) on {step}: "
            + "; ".join(first_line(e.get("error_message")) for e in on_step[:3]),
        )
        drill.record.expect(
            f"Restate retried it at least {fail_first} times",
            retries[0] >= fail_first,
            f"highest retry_count seen in sys_invocation: {retries[0]}",
        )
        asked_once(drill)
        steps = runs(probes.journal(drill))
        named = [s for s in steps if s.name == step]
        drill.record.expect(
            f"{step} journaled once, as a success",
            len(named) == 1 and named[0].completed and named[0].result == "Success",
            ", ".join(f"{s.index}:{s.name}={s.result}" for s in named) or f"no Run named {step}",
        )

    return scenario


def timeout_scenario(mode: str) -> Scenario:
    """The model is away (`down`: a closed port; `hang`: a listener that never answers) while the target
    runs its first model step; Restate retries; the model comes back; completed with success."""

    def scenario(drill: Drill) -> None:
        target = target_of(drill.handles)
        path = urlsplit(drill.config.writer_model.base_url).path
        with BlackHole() as hole:
            broken = hole.url.removesuffix("/v1") if mode == "hang" else f"http://127.0.0.1:{closed_port()}"
            drill.on_cleanup(f"{target.what} running as configured", target.start)
            target.start(llm_base_url=broken + path)
            drill.fault_injected = True
            drill.record.event("endpoint down" if mode == "down" else "endpoint hangs", broken + path)
            send(drill)
            row = probes.wait_invocation(drill, probes.is_retrying, "Restate to retry the model step")
            drill.record.expect(
                "Restate retries while the model cannot answer", probes.is_retrying(row), probes.row_detail(row)
            )
        route_through_tap(drill)
        drill.record.event("endpoint back", "the target points at the model (through the tap)")
        actions.resume(drill)
        completed(drill, probes.wait_completed(drill))

    return scenario


def come_back(drill: Drill, resume: bool) -> None:
    if resume:
        actions.resume(drill)
    probes.wait_invocation(drill, lambda r: r.get("status") in ("running", "completed"), "the invocation to run again")
    drill.record.event("running again", "")


def journal_shape(steps: list[JournalStep], requests: list[TapRequest]) -> list[dict[str, Any]]:
    """What `inv target.check` prints: each Run, its time and the model requests made inside it."""
    shape: list[dict[str, Any]] = []
    made = requests_by_run(steps, requests)
    for step in steps:
        began, ended = restate_time(step.started_at), restate_time(step.completed_at)
        shape.append(
            {
                "point": f"run:{len(shape) + 1}",
                "index": step.index,
                "name": step.name,
                "result": step.result,
                "seconds": round(ended - began, 3) if began is not None and ended is not None else None,
                "model_requests": len(made.get(step.index, [])),
            }
        )
    return shape


# -- the storm ----------------------------------------------------------------------------------------


def storm_scenario(n: int, kills: int, seed: int) -> Scenario:
    """N invocations at once (each its own nonce and idempotency key), K SIGKILLs of the target at seeded
    points of journal progress (completed Runs), restart, resume what backs off, all complete."""

    def scenario(drill: Drill) -> None:
        route_through_tap(drill)
        batch = actions.Batch()
        run = uuid.uuid4().hex[:8]
        target = target_of(drill.handles)
        started = time.monotonic()
        for i in range(n):
            nonce, key = new_nonce(), f"storm-{run}-{i}"
            invocation_id = send(drill, nonce, idempotency_key=key)
            batch.keys[invocation_id] = key
            batch.bodies[invocation_id] = target.body(nonce)
        recoveries = kill_at_progress(drill, batch, kills, seed)
        probes.wait_all_completed(drill, list(batch.keys))
        judge_storm(drill, batch, kills, time.monotonic() - started, recoveries)

    return scenario


def completed_runs(drill: Drill, ids: list[str]) -> int:
    rows = drill.restate.admin.query(
        f"SELECT count(*) AS done FROM sys_journal WHERE entry_type = 'Notification: Run' AND id IN ({sql_list(ids)})"
    )
    return int(rows[0].get("done") or 0) if rows else 0


def kill_at_progress(drill: Drill, batch: actions.Batch, kills: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    ids = list(batch.keys)
    recoveries = []
    for k in range(kills):
        done = completed_runs(drill, ids)
        goal = done + rng.randint(1, max(2, len(ids) // (kills - k)))

        def reached(seen: int, goal: int = goal) -> bool:
            drill.pace.observe(seen)
            return seen >= goal or all_done(drill, ids)

        seen = poll(lambda: completed_runs(drill, ids), reached, f"{goal} completed Runs", 24 * 3600, 0.05, drill.pace)
        if all_done(drill, ids):
            drill.record.note(f"every invocation finished before kill {k + 1}/{kills}")
            break
        drill.record.event(f"kill {k + 1}/{kills}", f"after {seen} completed Runs (goal {goal})")
        stopped = kill_target(drill, running_target(drill), signal.SIGKILL)
        gone(drill, stopped, signal.SIGKILL)
        restart_target(drill)
        restarted = time.monotonic()
        resume_backing_off(drill, ids)

        def moving(count: int, before: int = seen) -> bool:
            return count > before

        poll(lambda: completed_runs(drill, ids), moving, "work again", 24 * 3600, 0.05, drill.pace)
        recoveries.append(round(time.monotonic() - restarted, 3))
        drill.record.event("progress again", f"a Run completed {recoveries[-1]:.2f} s after the restart")
    return recoveries


def all_done(drill: Drill, ids: list[str]) -> bool:
    rows = drill.restate.admin.query(f"SELECT id, status FROM sys_invocation WHERE id IN ({sql_list(ids)})")
    return len(rows) == len(ids) and all(r.get("status") == "completed" for r in rows)


def resume_backing_off(drill: Drill, ids: list[str]) -> None:
    rows = drill.restate.admin.query(
        f"SELECT id FROM sys_invocation WHERE status IN ('backing-off', 'paused') AND id IN ({sql_list(ids)})"
    )
    for row in rows:
        actions.resume(drill, row["id"])


def judge_storm(drill: Drill, batch: actions.Batch, kills: int, wall_s: float, recoveries: list[float]) -> None:
    ids = list(batch.keys)
    checks.all_completed_with_success(drill, ids, probes.invocations(drill, ids))
    checks.same_output_again(
        drill, batch, service=target_of(drill.handles).service, handler=target_of(drill.handles).handler
    )
    again, llm_steps, requests = [], 0, 0
    for invocation_id in ids:
        steps = runs(probes.journal(drill, invocation_id))
        asked = settled_tap_requests(drill, invocation_id)
        requests += len(asked)
        llm_steps += sum(1 for made in requests_by_run(steps, asked).values() if made)
        again += [f"{invocation_id}: {what}" for what in rerequested_after_journaled(steps, asked)]
    drill.record.expect(
        "no Run Restate had journaled as done was requested again from the model (tap)",
        not again,
        f"{requests} model requests for {llm_steps} model steps" + (f"; again: {again[:5]}" if again else ""),
    )
    bound = llm_steps + 2 * kills * len(ids)
    drill.record.expect(
        f"model requests within the bound (model steps + 2·K·N = {bound})",
        requests <= bound,
        f"{requests} requests, {requests / llm_steps:.3f} per model step" if llm_steps else f"{requests} requests",
    )
    drill.record.evidence["storm"] = {
        "invocations": len(ids),
        "kills": kills,
        "wall_s": round(wall_s, 3),
        "throughput_per_s": round(len(ids) / wall_s, 3) if wall_s else None,
        "recovery_s": recoveries,
        "model_requests": requests,
        "model_steps": llm_steps,
    }
