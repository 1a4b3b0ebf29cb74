"""The frame every drill runs in: one drill at a time, the stack up, a record, cleanups, a verdict.

`run_drill` runs a scenario and, whatever happens (PASS, FAIL, INCONCLUSIVE, an error, a Ctrl-C),
gathers Restate's rows and the writer's ledger for the invocations, kills any invocation a drill that
did not pass leaves running, runs the scenario's cleanups in reverse order, and writes journal.json,
report.md and junit.xml. The verdict is a function of that record (Jepsen's "record first, judge after").
"""

from __future__ import annotations

import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drillkit import progress, traces
from drillkit.components.llm_tap import LlmTap
from drillkit.components.target import TargetService
from drillkit.components.writer import WriterService
from drillkit.config import DrillConfig
from drillkit.errors import DrillError, Inconclusive
from drillkit.evidence import journal_steps, transient_errors
from drillkit.handles import Handles, ModelHandle, RestateEndpoints
from drillkit.interrupts import CleanupGuard, ForcedCleanup, stop_started
from drillkit.kit.pace import Pace
from drillkit.kit.watchdog import Stalled, Trip, Watchdog
from drillkit.reports import population
from drillkit.reports.record import ERROR, PASS, DrillRecord, row_summary
from drillkit.restate_api import is_query_error
from drillkit.stack import Stack
from drillkit.state import drill_lock
from drillkit.waits import WaitTimeout

if TYPE_CHECKING:
    from drillkit.components.restate_cluster import RestateCluster

STACK_DOWN = "stack down (the drill started it)"
POLL_S = 0.05  # journal and status polls: fast enough to catch a step in flight, cheap for Restate


@dataclass
class Drill:
    """One run of a scenario: its record, its pace, the cleanups it registered, and the handles it acts
    through (`restate`, `writer`, `target`, `model`, `cluster`, `config`). The stack is the frame's own
    (it brings it up and down); a drill never reaches through it."""

    stack: Stack
    record: DrillRecord
    pace: Pace
    cleanups: list[tuple[str, Callable[[], Any]]] = field(default_factory=list)
    fault_injected: bool = False
    """Set by the action that injects the fault: a wait that runs out before it means the environment
    failed (INCONCLUSIVE); after it, that the system under test did not recover (FAIL)."""
    invocations: list[str] = field(default_factory=list)
    nonces: dict[str, str] = field(default_factory=dict)
    """invocation id -> the nonce its body carries (configured targets: how the tap tells them apart)."""
    tap: LlmTap | None = None
    """The LLM tap in front of the model, when the drill put one there."""
    cause: Exception | None = None
    """What ended the scenario early, if anything (set by `judge_exception`)."""
    started_stack: bool = False
    """This run brought the stack up (and stops it at the end unless kept up)."""
    watchdog: Watchdog | None = None
    """Watches the scenario while it runs (`drillkit.kit.watchdog`); None outside `run_drill`."""

    def on_cleanup(self, what: str, action: Callable[[], Any]) -> None:
        """Run `action` at the end, on every path; registered once per `what` (a storm kills many times)."""
        if all(known != what for known, _ in self.cleanups):
            self.cleanups.append((what, action))

    @cached_property
    def handles(self) -> Handles:
        """What the drill acts on, composed by the stack once per run (`drillkit.handles`)."""
        return self.stack.handles()

    @property
    def restate(self) -> RestateEndpoints:
        return self.handles.restate

    @property
    def writer(self) -> WriterService:
        return self.handles.writer

    @property
    def target(self) -> TargetService | None:
        return self.handles.target

    @property
    def model(self) -> ModelHandle:
        return self.handles.model

    @property
    def cluster(self) -> RestateCluster:
        return self.handles.cluster

    @property
    def config(self) -> DrillConfig:
        return self.handles.config

    @property
    def invocation_id(self) -> str:
        if not self.record.invocation_id:
            raise DrillError("the drill has not sent its invocation yet")
        return self.record.invocation_id


Scenario = Callable[[Drill], None]


def bring_up(stack: Stack) -> bool:
    """`up` unless everything already runs; True when this call started it (and so should stop it)."""
    if stack.is_up():
        return False
    with progress.activity("bringing the stack up"):
        stack.up()
    return True


def collect_evidence(drill: Drill) -> None:
    """Restate's own view of the invocation, the CLI's text and the writer's ledger, into the record."""
    record = drill.record
    invocation_id = record.invocation_id
    if not invocation_id:
        return
    restate = drill.restate
    evidence = record.evidence
    gatherers: dict[str, Callable[[], Any]] = {
        "invocation": lambda: restate.admin.invocation(invocation_id),
        "journal_steps": lambda: [asdict(s) for s in journal_steps(restate.admin.journal(invocation_id))],
        "transient_errors": lambda: transient_errors(restate.admin.journal_events(invocation_id)),
        "cli_describe": lambda: restate.cli().describe(invocation_id),
    }
    for key, gather in gatherers.items():
        if evidence.get(key) is not None:
            continue  # already taken by the scenario at completion (the CLI's describe): not run twice
        try:
            evidence[key] = gather()
        except (DrillError, OSError) as exc:
            evidence[key] = None
            record.note(f"could not gather {key}: {exc}")
    if drill.target is None:  # a configured target keeps no ledger of ours
        evidence["ledger"] = [asdict(e) for e in drill.writer.ledger(invocation_id)]
    evidence["config"] = str(drill.config.source)
    if len(drill.invocations) > 1 and evidence.get("population") is None:
        try:  # the whole population, for report.html: many invocations are not drawn as one
            evidence["population"] = population.gather(restate.admin, drill.writer, drill.invocations)
        except (DrillError, OSError) as exc:
            record.note(f"could not gather population: {exc}")


def stop_unfinished(drill: Drill) -> None:
    """A drill that did not pass leaves nothing running on after it: its unfinished invocations are killed;
    unless what ended it was its own SQL query to Restate: that says nothing of the invocations, and
    killing them would throw away healthy, durable work (they are left to finish, and the record says so)."""
    ids = drill.invocations or ([drill.record.invocation_id] if drill.record.invocation_id else [])
    if ids and is_query_error(drill.cause):
        drill.record.note(f"unfinished invocations left to finish, not killed: the drill's query failed: {drill.cause}")
        return
    killed = []
    for invocation_id in ids:
        try:
            row = drill.restate.admin.invocation(invocation_id) or {}
            if row and row.get("status") != "completed":
                drill.restate.admin.kill_invocation(invocation_id)
                killed.append(invocation_id)
        except DrillError as exc:
            drill.record.note(f"could not kill unfinished invocation {invocation_id}: {exc}")
    if killed:
        drill.record.event("invocations killed", f"{len(killed)} unfinished (the drill did not pass): {killed[:5]}")


def run_drill(
    stack: Stack,
    name: str,
    parameters: dict[str, Any],
    scenario: Scenario,
    report_dir: Path | None = None,
    keep_up: bool = False,
    deadline_s: float | None = None,
) -> tuple[DrillRecord, Path]:
    """Run `scenario` with full bookkeeping; returns the record and the directory holding its reports.

    Only one drill runs per state dir (a second is refused at once, naming the first one's pid). A stack
    the drill had to bring up is brought down again at the end (unless `keep_up`): a drill leaves the
    machine as it found it, failed or not.
    """
    with drill_lock(stack.state, f"drill.{name}"):
        return _run_locked(stack, name, parameters, scenario, report_dir, keep_up, deadline_s)


def _run_locked(
    stack: Stack,
    name: str,
    parameters: dict[str, Any],
    scenario: Scenario,
    report_dir: Path | None,
    keep_up: bool,
    deadline_s: float | None,
) -> tuple[DrillRecord, Path]:
    directory = report_dir or stack.state.reports / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if stack.server.name != "native":
        note = (
            "no Restate trace: the Docker backend's server cannot reach the drill's loopback trace collector"
            if stack.server.name == "docker"
            else f"no Restate trace: only the native backend's server is traced (this is {stack.server.name})"
        )
        return _run_traced(stack, name, parameters, scenario, directory, keep_up, deadline_s, note)
    with traces.collecting() as collector:
        return _run_traced(stack, name, parameters, scenario, directory, keep_up, deadline_s, collector)


def _run_traced(
    stack: Stack,
    name: str,
    parameters: dict[str, Any],
    scenario: Scenario,
    directory: Path,
    keep_up: bool,
    deadline_s: float | None,
    collector: traces.TraceCollector | str,
) -> tuple[DrillRecord, Path]:
    record = DrillRecord(name, parameters)
    drill = Drill(stack, record, Pace(fixed_s=deadline_s))
    drill.watchdog = Watchdog(
        stack, record, drill.pace, directory, lambda: drill.fault_injected, lambda: watched_ids(drill)
    )
    progress.step(f"drill {name} " + " ".join(f"{k}={v}" for k, v in parameters.items()))
    interrupted = False
    try:
        if not stack.is_up():
            # Marked before `up`: a Ctrl-C in the middle of it must still stop what it had started.
            drill.started_stack = True
            if not keep_up:
                drill.on_cleanup(STACK_DOWN, stack.down)
            with progress.activity("bringing the stack up"):
                stack.up()
            record.event("stack up", "started for this drill")
        with drill.watchdog.watching():
            scenario(drill)
        if drill.watchdog.trip is not None:  # it tripped as the scenario's last step ended: said, not judged
            record.note(f"{drill.watchdog.trip.detail()} (the scenario then finished on its own)")
    except KeyboardInterrupt:
        interrupted = True
        record.error = "interrupted (Ctrl-C): cleanup ran, evidence so far kept"
        progress.warn(
            "Ctrl-C: cleaning up (Restate's view, unfinished invocations, what the drill started, then the verdict "
            "and the report); a second Ctrl-C is held until it is done"
        )
    except Exception as exc:  # judged below; a bug or an unforeseen failure still gets cleanup and a report
        judge_exception(drill, exc)
    finally:
        finish(drill, directory, collector, interrupted)
    if interrupted:
        raise KeyboardInterrupt
    return record, directory


def watched_ids(drill: Drill) -> list[str]:
    """The drill's invocations so far (a copy: the scenario appends while the watchdog reads)."""
    ids = list(drill.invocations)
    return ids or ([drill.record.invocation_id] if drill.record.invocation_id else [])


def judge_exception(drill: Drill, exc: Exception) -> None:
    """What an exception out of a scenario means for the verdict: the system's failure only after the
    fault; before it, the environment's (INCONCLUSIVE); anything unforeseen, the tool's (ERROR). A wait
    that gave up, or the watchdog's own finding, is judged with the watchdog's dump named."""
    record = drill.record
    drill.cause = exc
    watchdog = drill.watchdog
    if watchdog is not None and (watchdog.trip is not None or isinstance(exc, WaitTimeout)):
        judge_stuck(drill, exc, watchdog.trip or watchdog.trip_now(wait_said(exc)))
    elif isinstance(exc, WaitTimeout):
        why = "no progress for" if exc.stalled else "not seen within"
        detail = f"{why} {exc.timeout_s:g} s; last seen: {exc.last!r}"
        if drill.fault_injected:
            record.expect(f"wait for {exc.what}", False, detail)
        else:
            record.inconclusive = f"the environment failed before the fault: {exc.what}: {detail}"
    elif isinstance(exc, Inconclusive):
        record.inconclusive = str(exc)
    elif isinstance(exc, DrillError):
        if drill.fault_injected:
            record.error = str(exc)
        else:
            record.inconclusive = f"the environment failed before the fault: {exc}"
    else:
        record.error = f"unexpected {type(exc).__name__}: {exc}"
        record.note("traceback: " + "".join(traceback.format_exception(exc))[-3000:])


def wait_said(exc: Exception) -> str:
    if not isinstance(exc, WaitTimeout):
        return f"{type(exc).__name__}: {exc}"
    why = "no progress for" if exc.stalled else "not seen within"
    return f"a wait gave up: {exc.what}: {why} {exc.timeout_s:g} s; last seen: {str(exc.last)[:300]!r}"


def judge_stuck(drill: Drill, exc: Exception, trip: Trip) -> None:
    """INCONCLUSIVE before the fault landed, FAIL after; either way the reason names the dump."""
    detail = trip.detail()
    if not isinstance(exc, Stalled) and wait_said(exc) not in trip.reason:
        detail += f"; the scenario then stopped on: {wait_said(exc)}"
    if drill.fault_injected:
        name = f"wait for {exc.what}" if isinstance(exc, WaitTimeout) else "the drill kept making progress (watchdog)"
        drill.record.expect(name, False, detail)
    else:
        drill.record.inconclusive = f"the environment failed before the fault: {detail}"


INTERRUPTED_DRAIN_S = 2.0  # the writer's drain after a Ctrl-C: its steps are durable, Restate retries them


def finish(
    drill: Drill,
    directory: Path,
    collector: traces.TraceCollector | str = "no trace collector",
    interrupted: bool = False,
) -> None:
    """Evidence, then (unless PASS) kill what still runs, then cleanups, then the files and the verdict.

    Under a Ctrl-C guard (`drillkit.interrupts`): a Ctrl-C here is held; a second forces the rest to be
    skipped but what this run started is still stopped by recorded pid; the files and verdict always follow."""
    record = drill.record
    say = progress.step if interrupted else (lambda text: None)
    with CleanupGuard().guarding():
        try:
            say("cleanup: Restate's view of the invocations and the writer's ledger")
            collect_evidence(drill)  # first: a cleanup may stop the very server that holds it
            finished = (record.evidence.get("invocation") or {}).get("status") == "completed"
            record.evidence.update(
                traces.keep_invocation_trace(collector, record.invocation_id, record.started_at, directory, finished)
            )
            if record.verdict != PASS:
                say("cleanup: killing unfinished invocations")
                stop_unfinished(drill)
            if interrupted and any(what == STACK_DOWN for what, _ in drill.cleanups):
                say(f"cleanup: stopping the writer (its drain bounded to {INTERRUPTED_DRAIN_S:g} s)")
                _stop_quietly(record, "writer", lambda: drill.writer.kill(signal.SIGTERM, INTERRUPTED_DRAIN_S))
            for what, action in reversed(drill.cleanups):
                say(f"cleanup: {what}")
                _stop_quietly(record, what, action)
        except ForcedCleanup:
            record.note("cleanup forced by a third Ctrl-C: the rest was skipped; what this run started was stopped")
            for line in stop_started(drill.stack.procs, record.started_at, drill.started_stack):
                record.event("forced stop", line)
        record.evidence["pace"] = drill.pace.summary()
        record.finish()
        record.write(directory)
        show_verdict(record, directory)


def _stop_quietly(record: DrillRecord, what: str, action: Callable[[], Any]) -> None:
    try:
        action()
        record.event("cleanup", what)
    except Exception as exc:  # cleanup must go on: report, never mask the drill's own outcome
        record.note(f"cleanup '{what}' failed: {exc}")
        progress.warn(f"cleanup '{what}' failed: {exc}")


def show_verdict(record: DrillRecord, directory: Path) -> None:
    progress.verdict(
        record.verdict,
        f"drill {record.drill} in {record.duration_s:.1f} s",
        drill=record.drill,
        seconds=record.duration_s,
    )
    for reason in record.reasons():
        mark = "✓" if reason.startswith("met") else "✗"
        progress.info(f"  {mark} {reason}" if record.verdict != ERROR else f"  ✗ {reason}")
    if record.verdict != PASS:
        row = record.evidence.get("invocation")
        if row:
            summary = row_summary(row)
            progress.info("  Restate's row: " + ", ".join(f"{k}={str(v)[:200]!r}" for k, v in summary.items()))
    progress.info(f"  reports: {directory}/report.html, report.md, journal.json, junit.xml")
