"""drill.upgrade: a new revision of the writer deployed while invocations are in flight (issue 18).

Restate pins an invocation to the deployment that started it (`sys_invocation.pinned_deployment_id`):
registering a new revision sends only new invocations there, and an old revision may be removed once no
invocation pinned to it is left unfinished (drained). Restate 1.7 deletes a deployment only by force, so
nothing but the operator's own check stands between a removal and the invocations still on it: the drill
is that check, done from Restate's rows.

The writer runs on the stub model, held while the drill changes deployments (`StubLlm.hold`), so the
invocations are surely in flight when it happens, whatever the machine's pace. Revision 1 is the stack's
writer; revision 2 a second writer process on the next port (`revision.number: 2` in a derived config),
registered with `POST /deployments`. Modes:

- `drain` (default): N invocations in flight on revision 1; revision 2 registered; N more sent. PASS: the
  first N stay pinned to revision 1 and every step of theirs runs in its process, the new N are pinned to
  revision 2 and run in its process (its output says `revision: 2`), all complete with success; revision 1
  is reported drained (no unfinished invocation pinned to it) and only then removed (`DELETE
  /deployments/{id}`, its process stopped); the service still answers, on revision 2.
- `early`: the same, but revision 1's process is SIGKILLed while its invocations are in flight. PASS
  adds: they back off, still pinned to revision 1 (not lost, not moved), the new ones complete on revision
  2 meanwhile, and once revision 1 is back they complete on it.
- `incompatible`: a revision whose journal differs (`revision.journal: incompatible`: its first step has
  another name) is registered; one in-flight invocation is paused and moved onto it (`PATCH
  /invocations/{id}/resume?deployment=`). PASS: Restate surfaces the journal mismatch (570, RT0016) and
  keeps the invocation backing off or paused (never completed by the other code: its journal gains
  nothing, the incompatible process runs no step of it); moved back to revision 1 it completes with
  success, and no step journaled before the move runs again.

Revision 2 (or the incompatible one) is stopped and its deployment removed on every path, Ctrl-C
included; the stack's writer is put back on its own config and registered as the service's latest revision.
"""

from __future__ import annotations

import signal
from dataclasses import asdict
from typing import Any, Literal

from drillkit.components.stub_llm import StubLlm
from drillkit.components.writer import WriterService
from drillkit.errors import ConfigError, DrillError, HttpError, Inconclusive
from drillkit.evidence import journaled_completions
from drillkit.handles import Handles
from drillkit.howto import howto_body
from drillkit.kit import actions, checks, probes
from drillkit.kit import upgrade_checks as judge
from drillkit.kit.actions import Batch, hold_model, release_model
from drillkit.kit.frame import INTERRUPTED_DRAIN_S, POLL_S, Drill, Scenario
from drillkit.kit.upgrade_checks import Revision, deployment_sql, shown
from drillkit.registration import existing
from drillkit.restate_api import SERVICE, sql_list
from drillkit.waits import poll

UpgradeMode = Literal["drain", "early", "incompatible"]
MODES: tuple[UpgradeMode, ...] = ("drain", "early", "incompatible")
DEFAULT_INVOCATIONS = 4
MAX_INVOCATIONS = 50
STUB_DELAY_MS = 100.0
"""Per model answer: short (the point is Restate's deployments), not zero (steps take a visible time)."""
PORT_OFFSETS = {"compatible": 1, "incompatible": 2}
"""Revision 2 listens on the writer's port + 1, the incompatible revision on + 2."""
COLUMNS = "id, status, pinned_deployment_id, completion_result, retry_count, last_failure_error_code"


def check_upgrade(handles: Handles, mode: str, invocations: int) -> None:
    """Refuse, before anything starts, what this config cannot run."""
    if mode not in MODES:
        raise ConfigError(f"--mode {mode}: must be one of {', '.join(MODES)}")
    if not 1 <= invocations <= MAX_INVOCATIONS:
        raise ConfigError(f"--invocations {invocations}: must be 1 to {MAX_INVOCATIONS}")
    port = handles.config.service.port + PORT_OFFSETS["incompatible" if mode == "incompatible" else "compatible"]
    if port > 65535:
        raise ConfigError(
            f"{handles.config.source}: service.port {handles.config.service.port}: the drill's second revision listens "
            f"on the next port{'s' if mode == 'incompatible' else ''} ({port}), which does not exist"
        )


def upgrade_scenario(mode: UpgradeMode = "drain", invocations: int = DEFAULT_INVOCATIONS) -> Scenario:
    def scenario(drill: Drill) -> None:
        stub, overrides = writer_on_stub(drill)
        first = revision_one(drill)
        hold_model(drill, stub)
        old = send(drill, invocations, "upgrade-old")
        wait_in_flight(drill, stub, old, first, parked=invocations)
        if mode == "incompatible":
            move_onto_incompatible(drill, stub, overrides, first, old)
        else:
            redeploy(drill, stub, overrides, first, old, early=mode == "early")

    return scenario


# -- the revisions ------------------------------------------------------------------------------------------


def writer_on_stub(drill: Drill) -> tuple[StubLlm, dict[str, Any]]:
    """The stub model (held at will) for every revision; the stack's writer restarted on it. Returns the
    stub and the config overrides every revision shares."""
    handles = drill.handles
    stub = handles.model.stub()
    # Registered first, so run last: once the writer is back on its own config, it is the latest revision.
    drill.on_cleanup("writer registered as the service's latest revision", lambda: give_back_registration(handles))
    drill.on_cleanup("stub LLM stopped", stub.stop)
    stub.start(STUB_DELAY_MS)
    overrides: dict[str, Any] = {
        "writer_model.base_url": f"{stub.url}/v1",
        "writer_model.model": "stub",
        # The writer's gate is sized for the real model's slots (local_model.parallel, 4); on the stub every
        # invocation of the drill must reach the model at once, or those past the gate are not in flight
        # where the drill holds them (measured: 8 invocations took 60 s to be parked, until Restate's
        # inactivity timeout reshuffled them).
        "writer_model.max_concurrency": MAX_INVOCATIONS + 1,
    }
    path = handles.writer.derived_config("upgrade-revision-1", overrides)
    drill.on_cleanup("writer on its own config", handles.writer.restart)
    actions.restart_writer(drill, path)
    drill.record.evidence["revision_1_config"] = path
    drill.record.event("stub LLM", f"{stub.url}, {STUB_DELAY_MS:g} ms per answer")
    return stub, overrides


def give_back_registration(handles: Handles) -> None:
    """The stack's writer is the service's latest revision again: with revision 1 removed, or revision 2
    left latest, new invocations would go to a process that is gone."""
    uri = handles.restate.deployment_uri()
    ours = existing(handles.restate.admin.deployments(), uri, SERVICE)
    latest = latest_deployment(handles)
    if ours is None or latest != ours.get("id"):
        handles.restate.register(force=True)


def latest_deployment(handles: Handles) -> str | None:
    """The deployment new invocations of the service run on (None: the service is not registered)."""
    try:
        return str(handles.restate.admin.service(SERVICE).get("deployment_id") or "") or None
    except HttpError as exc:
        if exc.status == 404:
            return None
        raise


def revision_one(drill: Drill) -> Revision:
    """The stack's writer as revision 1: its deployment, made the service's latest if an earlier run left
    another one latest (a forced stop of this drill can leave revision 2 registered)."""
    handles = drill.handles
    uri = handles.restate.deployment_uri()
    ours = existing(handles.restate.admin.deployments(), uri, SERVICE)
    if ours is None or latest_deployment(handles) != ours.get("id"):
        drill.record.note(f"the stack's writer ({uri}) was not the service's latest deployment: registered again")
        handles.restate.register(force=True)
        ours = existing(handles.restate.admin.deployments(), uri, SERVICE)
    if ours is None:
        raise DrillError(f"Restate has no deployment at {uri} serving {SERVICE} after registering it")
    writer = actions.running_writer(drill)
    first = Revision("revision 1", 1, "compatible", str(ours["id"]), uri, [writer.pid], restate_revision(ours))
    drill.record.event("revision 1", f"deployment {first.deployment_id} at {uri}, writer pid {writer.pid}")
    keep_revisions(drill, first)
    return first


def restate_revision(deployment: dict[str, Any]) -> int | None:
    for service in deployment.get("services") or []:
        if service.get("name") == SERVICE and service.get("revision") is not None:
            return int(service["revision"])
    return None


def start_revision(
    drill: Drill, overrides: dict[str, Any], number: int, journal: str
) -> tuple[Revision, WriterService]:
    """A second writer process serving revision `number` on the next port, registered as a new deployment
    while the first one's invocations are in flight. Stopped, and its deployment removed, on every path."""
    handles = drill.handles
    port = handles.config.service.port + PORT_OFFSETS[journal]
    name = f"writer-revision-{number}" + ("-incompatible" if journal == "incompatible" else "")
    label = f"revision {number}" + (" (incompatible)" if journal == "incompatible" else "")
    service = handles.writer.beside(
        name, {**overrides, "service.port": port, "revision.number": number, "revision.journal": journal}
    )
    registered: list[str] = []

    def take_away() -> None:
        known = {str(d.get("id")) for d in handles.restate.admin.deployments()}
        for deployment_id in registered:
            if deployment_id in known:
                handles.restate.admin.delete_deployment(deployment_id)
        # Its drain bounded, then SIGKILL: after a Ctrl-C its steps may wait on the held model for the whole
        # grace period, and whatever it ran is durable (Restate retries it); on a normal end it is idle.
        service.kill(signal.SIGTERM, INTERRUPTED_DRAIN_S)

    drill.on_cleanup(f"{label} stopped and its deployment removed", take_away)
    process = service.start()
    uri = handles.restate.server.default_deployment_uri(port)
    answer = handles.restate.admin.register_deployment(uri, use_http11=handles.restate.use_http11)
    registered.append(str(answer["id"]))
    revision = Revision(label, number, journal, str(answer["id"]), uri, [process.pid], restate_revision(answer))
    revision.registered_s = drill.record.event(
        "registered",
        f"{label}: deployment {revision.deployment_id} at {uri} ({SERVICE} revision {revision.restate_revision} "
        f"in Restate), writer pid {process.pid}, while revision 1's invocations are in flight",
    ).offset_s
    keep_revisions(drill, revision)
    return revision, service


def keep_revisions(drill: Drill, *revisions: Revision) -> None:
    """The revisions as the report shows them (updated as pids change)."""
    known = {r["label"]: r for r in drill.record.evidence.get("revisions", [])}
    for revision in revisions:
        known[revision.label] = asdict(revision)
    drill.record.evidence["revisions"] = list(known.values())


# -- the invocations ----------------------------------------------------------------------------------------


def send(drill: Drill, n: int, prefix: str) -> Batch:
    """N invocations, each with its own idempotency key; the record's invocation stays the first ever sent."""
    batch = Batch()
    actions.send_batch(drill, batch, n, prefix)
    return batch


def rows(drill: Drill, ids: list[str]) -> list[dict[str, Any]]:
    return drill.restate.admin.query(
        f"SELECT {COLUMNS}, last_failure FROM sys_invocation WHERE id IN ({sql_list(ids)})"
    )


def wait_in_flight(drill: Drill, stub: StubLlm, batch: Batch, revision: Revision, parked: int) -> None:
    """Until every invocation of `batch` runs pinned to `revision` (Restate's rows) and `parked` model
    requests wait at the held stub (its own count): each is mid-step, not between steps."""
    ids = list(batch.keys)

    def probe() -> tuple[list[str], int]:
        found = rows(drill, ids)
        wrong = judge.pinned_elsewhere(found, ids, revision.deployment_id)
        wrong += [f"{r['id']}: {r.get('status')}" for r in found if r.get("status") != "running"]
        waiting = stub.waiting()
        drill.pace.observe((len(wrong), waiting))
        return wrong, waiting

    poll(
        probe,
        lambda seen: not seen[0] and seen[1] >= parked,
        f"{len(ids)} invocations running on {revision.label} with their model requests held",
        timeout_s=drill.pace.fixed_s or 24 * 3600,
        interval_s=POLL_S,
        stalled=drill.pace,
    )
    drill.record.event(
        "in flight",
        f"{len(ids)} invocations running, pinned to {revision.label} ({revision.deployment_id}), "
        f"{parked} model request(s) held",
    )


def wait_all_completed(drill: Drill, ids: list[str], what: str) -> list[dict[str, Any]]:
    def probe() -> list[dict[str, Any]]:
        found = rows(drill, ids)
        drill.pace.observe(sorted((r.get("id"), r.get("status"), r.get("retry_count")) for r in found))
        return found

    done = poll(
        probe,
        lambda found: len(found) == len(ids) and all(r.get("status") == "completed" for r in found),
        what,
        timeout_s=drill.pace.fixed_s or 24 * 3600,
        interval_s=POLL_S,
        stalled=drill.pace,
    )
    drill.record.event("completed", f"{len(ids)} invocation(s): {what.removeprefix('the ')}")
    return done


def outputs_of(drill: Drill, ids: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for invocation_id in ids:
        try:
            found[invocation_id] = drill.restate.ingress.output(invocation_id)
        except HttpError as exc:
            found[invocation_id] = None
            drill.record.note(f"output of {invocation_id} not retrievable: {exc}")
    return found


# -- drain and early ------------------------------------------------------------------------------------------


def redeploy(drill: Drill, stub: StubLlm, overrides: dict[str, Any], first: Revision, old: Batch, early: bool) -> None:
    handles, record = drill.handles, drill.record
    old_ids = list(old.keys)
    drill.fault_injected = True  # the redeploy under load is the fault: from here a wait that runs out fails
    second, _ = start_revision(drill, overrides, 2, "compatible")
    latest = latest_deployment(handles)
    record.expect(
        "revision 2 is the service's latest deployment once registered (GET /services)",
        latest == second.deployment_id,
        f"new invocations go to {latest}; revision 2 is {second.deployment_id}",
    )
    new = send(drill, len(old_ids), "upgrade-new")
    new_ids = list(new.keys)
    wait_in_flight(drill, stub, new, second, parked=2 * len(old_ids))
    draining = judge.unfinished_pinned(pinned_rows(drill, first), first.deployment_id)
    record.event("draining", f"revision 1: {len(draining)} unfinished invocation(s) pinned to {first.deployment_id}")
    record.evidence["draining_at_registration"] = draining
    if early:
        take_revision_one_away(drill, stub, first, old_ids, new_ids, second)
    else:
        release_model(drill, stub)
    wait_all_completed(drill, old_ids + new_ids, "the invocations of both revisions to complete")
    judge_pinning(drill, first, second, old_ids, new_ids)
    drain_and_remove(drill, first, handles.writer)
    answered_after(drill, second)


def take_revision_one_away(
    drill: Drill, stub: StubLlm, first: Revision, old_ids: list[str], new_ids: list[str], second: Revision
) -> None:
    """Revision 1's process SIGKILLed with its invocations mid-step (a rollout that stopped it too early):
    they must back off, still pinned to it, while revision 2 goes on; then it returns and they complete."""
    handles, record = drill.handles, drill.record
    writer = handles.writer.live()
    if writer is None or writer.pid not in first.pids:
        raise DrillError("revision 1's writer is not the process the drill started it as: cannot take it away")
    actions.kill_writer(drill, writer, signal.SIGKILL)
    release_model(drill, stub)
    seen: dict[str, dict[str, Any]] = {}

    def probe() -> dict[str, dict[str, Any]]:
        for row in rows(drill, old_ids):
            if row.get("status") in judge.STOPPED:
                seen.setdefault(str(row["id"]), row)
        drill.pace.observe(len(seen))
        return seen

    poll(
        probe,
        lambda found: len(found) == len(old_ids),
        "revision 1's invocations to back off while its process is gone",
        timeout_s=drill.pace.fixed_s or 24 * 3600,
        interval_s=POLL_S,
        stalled=drill.pace,
    )
    codes = sorted({str(r.get("last_failure_error_code")) for r in seen.values()})
    record.event("backing off", f"all {len(old_ids)} of revision 1's invocations (errors {', '.join(codes)})")
    moved = judge.pinned_elsewhere(seen.values(), old_ids, first.deployment_id)
    record.expect(
        "with revision 1's process gone its invocations back off, still pinned to it (not lost, not moved)",
        not moved,
        f"{len(seen)}/{len(old_ids)} seen backing-off or paused, pinned to {first.deployment_id} "
        f"(errors {', '.join(codes)})" + (f"; moved: {shown(moved)}" if moved else ""),
    )
    wait_all_completed(drill, new_ids, "the new invocations to complete on revision 2 while revision 1 is gone")
    ongoing = [r for r in rows(drill, old_ids) if r.get("status") == "completed"]
    record.expect(
        "none of revision 1's invocations completed while its process was gone",
        not ongoing,
        f"{len(ongoing)} completed meanwhile" if ongoing else f"all {len(old_ids)} still waiting for revision 1",
    )
    back = actions.restart_writer(drill, str(record.evidence["revision_1_config"]))
    first.pids.append(back.pid)
    keep_revisions(drill, first)
    for invocation_id in old_ids:
        actions.resume(drill, invocation_id)


def judge_pinning(drill: Drill, first: Revision, second: Revision, old_ids: list[str], new_ids: list[str]) -> None:
    handles, record = drill.handles, drill.record
    final = rows(drill, old_ids + new_ids)
    keep_pinned(drill, final)
    failed = judge.not_completed_with_success(final, old_ids + new_ids)
    record.expect(
        f"all {len(old_ids) + len(new_ids)} invocations completed with success (sys_invocation)",
        not failed,
        f"{len(old_ids) + len(new_ids) - len(failed)} success" + (f"; not: {shown(failed)}" if failed else ""),
    )
    wrong_old = judge.pinned_elsewhere(final, old_ids, first.deployment_id)
    record.expect(
        "the invocations in flight at the redeploy finished on the deployment that started them (pinned_deployment_id)",
        not wrong_old,
        f"{len(old_ids) - len(wrong_old)}/{len(old_ids)} pinned to revision 1 ({first.deployment_id})"
        + (f"; not: {shown(wrong_old)}" if wrong_old else ""),
    )
    wrong_new = judge.pinned_elsewhere(final, new_ids, second.deployment_id)
    record.expect(
        "the invocations sent after the redeploy ran on revision 2 (pinned_deployment_id)",
        not wrong_new,
        f"{len(new_ids) - len(wrong_new)}/{len(new_ids)} pinned to revision 2 ({second.deployment_id})"
        + (f"; not: {shown(wrong_new)}" if wrong_new else ""),
    )
    runs = handles.writer.executions()
    record.evidence["ledger_by_revision"] = judge.executions_by_revision(runs, old_ids + new_ids, [first, second])
    elsewhere = judge.ran_elsewhere(runs, old_ids, first.pids) + judge.ran_elsewhere(runs, new_ids, second.pids)
    mine = len([e for e in runs if e.invocation_id in set(old_ids + new_ids)])
    record.expect(
        "the writer's ledger agrees: every step ran in the process of the revision its invocation is pinned to",
        not elsewhere and mine > 0,
        f"{mine} executions: revision 1's invocations by pid {', '.join(map(str, first.pids))}, revision 2's by "
        f"pid {', '.join(map(str, second.pids))}"
        + (
            f"; elsewhere: {shown([f'{e.invocation_id} {e.step} pid {e.pid}' for e in elsewhere])}" if elsewhere else ""
        ),
    )
    revisions = judge.output_revisions(outputs_of(drill, old_ids + new_ids))
    wrong = [i for i in old_ids if revisions.get(i) != 1] + [i for i in new_ids if revisions.get(i) != 2]
    record.expect(
        "Restate's stored outputs say which code finished them: revision 1's without `revision`, the new with 2",
        not wrong,
        f"revision per output: old {sorted({revisions.get(i, 0) for i in old_ids})}, "
        f"new {sorted({revisions.get(i, 0) for i in new_ids})} (0: no output)"
        + (f"; wrong: {shown(wrong)}" if wrong else ""),
    )


def keep_pinned(drill: Drill, found: list[dict[str, Any]]) -> None:
    """Each invocation's deployment as Restate's row says at the end (the report's revision lanes)."""
    drill.record.evidence["pinned"] = {str(r.get("id")): r.get("pinned_deployment_id") for r in found}


def pinned_rows(drill: Drill, revision: Revision) -> list[dict[str, Any]]:
    return drill.restate.admin.query(
        f"SELECT id, status, pinned_deployment_id FROM sys_invocation "
        f"WHERE pinned_deployment_id = '{deployment_sql(revision.deployment_id)}'"
    )


def drain_and_remove(drill: Drill, revision: Revision, service: WriterService) -> None:
    """Wait until no unfinished invocation is pinned to `revision` (Restate's rows), say so, and only then
    remove its deployment and stop its process."""
    record = drill.record

    def probe() -> list[dict[str, Any]]:
        found = pinned_rows(drill, revision)
        drill.pace.observe(len(judge.unfinished_pinned(found, revision.deployment_id)))
        return found

    found = poll(
        probe,
        lambda found: not judge.unfinished_pinned(found, revision.deployment_id),
        f"{revision.label} to drain",
        timeout_s=drill.pace.fixed_s or 24 * 3600,
        interval_s=POLL_S,
        stalled=drill.pace,
    )
    record.event(
        "drained",
        f"{revision.label}: no unfinished invocation pinned to {revision.deployment_id} "
        f"({len(found)} completed on it, sys_invocation)",
    )
    left = judge.unfinished_pinned(pinned_rows(drill, revision), revision.deployment_id)  # read again, just before
    if left:
        raise DrillError(f"{revision.label} had unfinished invocations again before its removal: {shown(left)}")
    drill.restate.admin.delete_deployment(revision.deployment_id)
    removed = record.event("removed", f"{revision.label}: DELETE /deployments/{revision.deployment_id}?force=true")
    revision.removed_s = removed.offset_s
    keep_revisions(drill, revision)
    stopped = service.stop()
    record.event(
        "stopped", f"{revision.label}'s writer" + (f" pid {stopped.record.pid}" if stopped else " (already gone)")
    )
    known = {str(d.get("id")) for d in drill.restate.admin.deployments()}
    record.expect(
        f"{revision.label} reported drained (no unfinished invocation pinned to it) and only then removed",
        revision.deployment_id not in known,
        f"drained with {len(found)} completed invocation(s) pinned to it and none unfinished; then "
        f"DELETE /deployments/{revision.deployment_id}: Restate lists it no more",
    )


def answered_after(drill: Drill, second: Revision) -> None:
    """After revision 1 is gone, the service answers, on revision 2."""
    try:
        output = drill.restate.ingress.call(howto_body("Upgrade drill: after revision 1 was removed"), timeout_s=60)
    except HttpError as exc:
        drill.record.expect("the service answers after revision 1 is removed", False, str(exc))
        return
    revision = judge.output_revisions({"call": output}).get("call")
    latest = latest_deployment(drill.handles)
    drill.record.expect(
        "after revision 1 is removed the service answers, on revision 2",
        revision == 2 and latest == second.deployment_id,
        f"a synchronous call returned the output of revision {revision}; latest deployment {latest}",
    )


# -- incompatible -----------------------------------------------------------------------------------------


def move_onto_incompatible(drill: Drill, stub: StubLlm, overrides: dict[str, Any], first: Revision, old: Batch) -> None:
    """One in-flight invocation paused, moved onto a revision whose journal differs, caught, moved back."""
    moved = drill.invocation_id  # the first sent
    bad, bad_service = start_revision(drill, overrides, 2, "incompatible")
    before = pause_on_revision_one(drill, stub, moved)
    caught_on_incompatible(drill, moved, bad, before)
    back_on_revision_one(drill, moved, first, bad, list(old.keys), journaled_completions(before))
    drain_and_remove(drill, bad, bad_service)


def pause_on_revision_one(drill: Drill, stub: StubLlm, moved: str) -> list[dict[str, Any]]:
    """Paused mid-flight on revision 1; returns its journal then. Restate moves only a paused (or
    suspended) invocation, and 1.7.12 pauses a running one at its next journal entry, so the model is
    released once the pause is asked."""
    drill.restate.admin.pause(moved)
    drill.record.event("pause asked", f"PATCH /invocations/{moved}/pause (it is mid-step on revision 1)")
    release_model(drill, stub)
    row = probes.wait_invocation(
        drill, lambda r: r.get("status") in ("paused", "completed"), "the invocation to pause on revision 1"
    )
    if row.get("status") == "completed":
        raise Inconclusive(f"{moved} completed before Restate paused it: there was nothing left to move")
    before = probes.journal(drill, moved)
    done = ", ".join(journaled_completions(before)) or "nothing yet"
    drill.record.event("paused", f"{moved}: journaled on revision 1: {done}")
    return before


def caught_on_incompatible(drill: Drill, moved: str, bad: Revision, before: list[dict[str, Any]]) -> None:
    """The fault: moved onto the incompatible revision. Restate's row must show the journal mismatch; paused
    again, the invocation's journal must not have changed and the incompatible code must have run nothing."""
    handles, record = drill.handles, drill.record
    drill.fault_injected = True
    handles.restate.admin.resume(moved, deployment=bad.deployment_id)
    onto = record.event("moved", f"PATCH /invocations/{moved}/resume?deployment={bad.deployment_id}: onto {bad.label}")
    record.evidence["moved"] = {"id": moved, "onto": bad.deployment_id, "from_s": onto.offset_s}
    row, events = wait_mismatch(drill, moved)
    seen, logged, detail = judge.row_mismatch(row), judge.event_mismatch(events), judge.mismatch_detail(row)
    record.evidence["mismatch_row"] = row
    record.event("journal mismatch", f"{seen}; {detail}" if seen else f"not in the row: status={row.get('status')}")
    record.expect(
        "moved onto the incompatible revision, Restate's row shows the journal mismatch (570) and it does not complete",
        seen is not None and row.get("status") != "completed",
        f"status={row.get('status')} retry_count={row.get('retry_count')}; {seen or 'no mismatch in the row'}"
        + (f"; {detail}" if detail else "")
        + (f"; {logged}" if logged else ""),
    )
    # Caught: paused for a person rather than retried on code that cannot replay it.
    handles.restate.admin.pause(moved)
    row = probes.wait_invocation(
        drill, lambda r: r.get("status") in ("paused", "completed"), "the moved invocation to pause"
    )
    after = probes.journal(drill, moved)
    grown = judge.same_journal(before, after)
    on_bad = [e for e in handles.writer.executions(moved) if e.pid in bad.pids]
    record.expect(
        "no silent divergence: the incompatible revision ran no step and its journal gained nothing",
        not grown and not on_bad and row.get("status") == "paused",
        f"status={row.get('status')}; journal {len(before)} entries before, {len(after)} after"
        + (f" (new: {shown(grown)})" if grown else "")
        + f"; executions by pid {', '.join(map(str, bad.pids))}: {len(on_bad)}",
    )


def wait_mismatch(drill: Drill, moved: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Until Restate's row says what the replay on the other code did (or the invocation completed)."""
    events: list[dict[str, Any]] = []

    def probe() -> dict[str, Any]:
        found = probes.invocation(drill, moved)
        events[:] = drill.restate.admin.journal_events(moved)
        drill.pace.observe((found.get("status"), found.get("retry_count")))
        return found

    row = poll(
        probe,
        lambda r: r.get("status") == "completed" or judge.row_mismatch(r) is not None,
        "Restate's row to show what the replay on the incompatible revision did",
        timeout_s=drill.pace.fixed_s or 24 * 3600,
        interval_s=POLL_S,
        stalled=drill.pace,
    )
    return row, events


def back_on_revision_one(
    drill: Drill, moved: str, first: Revision, bad: Revision, old_ids: list[str], journaled: dict[str, float]
) -> None:
    """The recovery: moved back onto revision 1, it completes there with nothing journaled run again."""
    handles, record = drill.handles, drill.record
    handles.restate.admin.resume(moved, deployment=first.deployment_id)
    back = record.event(
        "moved back", f"PATCH /invocations/{moved}/resume?deployment={first.deployment_id}: onto revision 1"
    )
    record.evidence["moved"]["back_s"] = back.offset_s
    done = wait_all_completed(drill, old_ids, "revision 1's invocations to complete, the moved one included")
    keep_pinned(drill, done)
    checks.completed_with_success(drill, next(r for r in done if r.get("id") == moved))
    wrong = judge.pinned_elsewhere(done, old_ids, first.deployment_id)
    failed = judge.not_completed_with_success(done, old_ids)
    record.expect(
        "every invocation completed with success on revision 1, the moved one back on it (pinned_deployment_id)",
        not wrong and not failed,
        f"{len(old_ids) - len(wrong)}/{len(old_ids)} pinned to {first.deployment_id}"
        + (f"; elsewhere: {shown(wrong)}" if wrong else "")
        + (f"; failed: {shown(failed)}" if failed else ""),
    )
    checks.no_finished_step_ran_again(drill, journaled, when="the move")
    runs = handles.writer.executions()
    record.evidence["ledger_by_revision"] = judge.executions_by_revision(runs, old_ids, [first, bad])
    elsewhere = judge.ran_elsewhere(runs, old_ids, first.pids)
    record.expect(
        "the writer's ledger agrees: every step of these invocations ran in revision 1's process",
        not elsewhere,
        f"pid {', '.join(map(str, first.pids))} only"
        + (
            f"; elsewhere: {shown([f'{e.invocation_id} {e.step} pid {e.pid}' for e in elsewhere])}" if elsewhere else ""
        ),
    )
