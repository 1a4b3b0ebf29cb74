"""What every drill shares: bring the stack up, watch Restate, collect evidence, clean up, write reports.

`run_drill` is the frame: it runs a scenario function, and whatever happens (PASS, FAIL, an error, a
Ctrl-C) it runs the scenario's cleanups in reverse order, gathers Restate's rows and the writer's ledger
for the invocation, and writes journal.json, report.md and junit.xml.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from drillkit import console
from drillkit.drills.record import ERROR, PASS, DrillRecord, row_summary
from drillkit.errors import DrillError, HttpError
from drillkit.evidence import journal_steps, transient_errors
from drillkit.howto import fault_headers
from drillkit.stack import Stack
from drillkit.waits import WaitTimeout, poll
from writer_service.ledger import read_ledger

POLL_S = 0.05  # journal and status polls: fast enough to catch a step in flight, cheap for Restate


@dataclass
class Drill:
    """One run of a scenario: the stack, its record and the cleanups it registered."""

    stack: Stack
    record: DrillRecord
    cleanups: list[tuple[str, Callable[[], Any]]] = field(default_factory=list)

    def on_cleanup(self, what: str, action: Callable[[], Any]) -> None:
        self.cleanups.append((what, action))

    def send(self, body: dict[str, Any]) -> str:
        # A body asking for faults carries the stack's fault key, or the writer refuses it (403).
        invocation_id = self.stack.ingress.send(body, headers=fault_headers(self.stack.state, body))
        self.stack.state.remember_invocation(invocation_id)
        self.record.invocation_id = invocation_id
        self.record.event("sent", f"POST /WriterAgentRestate/run/send -> {invocation_id}")
        return invocation_id

    def invocation(self) -> dict[str, Any]:
        assert self.record.invocation_id
        return self.stack.admin.invocation(self.record.invocation_id) or {}

    def wait_invocation(self, until: Callable[[dict[str, Any]], bool], what: str, timeout_s: float) -> dict[str, Any]:
        return poll(self.invocation, until, what, timeout_s, interval_s=POLL_S)

    def wait_completed(self, timeout_s: float) -> dict[str, Any]:
        row = self.wait_invocation(lambda r: r.get("status") == "completed", "the invocation to complete", timeout_s)
        self.record.event("completed", f"completion_result={row.get('completion_result')}")
        return row

    def journal(self) -> list[dict[str, Any]]:
        assert self.record.invocation_id
        return self.stack.admin.journal(self.record.invocation_id)


def collect_evidence(drill: Drill) -> None:
    """Restate's own view of the invocation, the CLI's text and the writer's ledger, into the record."""
    record, stack = drill.record, drill.stack
    invocation_id = record.invocation_id
    if not invocation_id:
        return
    evidence = record.evidence
    gatherers: dict[str, Callable[[], Any]] = {
        "invocation": lambda: stack.admin.invocation(invocation_id),
        "journal_steps": lambda: [asdict(s) for s in journal_steps(stack.admin.journal(invocation_id))],
        "transient_errors": lambda: transient_errors(stack.admin.journal_events(invocation_id)),
        "cli_describe": lambda: stack.cli().describe(invocation_id),
    }
    for key, gather in gatherers.items():
        if evidence.get(key) is not None:
            continue  # already taken by the scenario at completion (the CLI's describe): not run twice
        try:
            evidence[key] = gather()
        except (DrillError, OSError) as exc:
            evidence[key] = None
            record.note(f"could not gather {key}: {exc}")
    evidence["ledger"] = [asdict(e) for e in read_ledger(stack.config.ledger.path, invocation_id)]


def fetch_output(drill: Drill) -> dict[str, Any] | None:
    assert drill.record.invocation_id
    try:
        output = drill.stack.ingress.output(drill.record.invocation_id)
    except HttpError as exc:
        drill.record.note(f"output not retrievable: {exc}")
        return None
    drill.record.evidence["output"] = output
    return output if isinstance(output, dict) else None


Scenario = Callable[[Drill], None]


def bring_up(stack: Stack) -> bool:
    """`up` unless everything already runs; True when this call started it (and so should stop it)."""
    if stack.is_up():
        return False
    with console.activity("bringing the stack up"):
        stack.up()
    return True


def run_drill(
    stack: Stack,
    name: str,
    parameters: dict[str, Any],
    scenario: Scenario,
    report_dir: Path | None = None,
    keep_up: bool = False,
) -> tuple[DrillRecord, Path]:
    """Run `scenario` with full bookkeeping; returns the record and the directory holding its reports.

    A stack the drill had to bring up is brought down again at the end (unless `keep_up`): a drill leaves
    the machine as it found it, failed or not.
    """
    record = DrillRecord(name, parameters)
    drill = Drill(stack, record)
    directory = report_dir or stack.state.reports / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    console.step(f"drill {name} " + " ".join(f"{k}={v}" for k, v in parameters.items()))
    interrupted = False
    try:
        if bring_up(stack):
            record.event("stack up", "started for this drill")
            if not keep_up:
                drill.on_cleanup("stack down (the drill started it)", stack.down)
        scenario(drill)
    except WaitTimeout as exc:
        record.expect(f"wait for {exc.what}", False, f"not seen within {exc.timeout_s:g} s; last seen: {exc.last!r}")
    except DrillError as exc:
        record.error = str(exc)
    except KeyboardInterrupt:
        interrupted = True
        record.error = "interrupted (Ctrl-C): cleanup ran, evidence so far kept"
    except Exception as exc:  # a bug or an unforeseen failure still gets cleanup and a report
        record.error = f"unexpected {type(exc).__name__}: {exc}"
        record.note("traceback: " + "".join(traceback.format_exception(exc))[-3000:])
    finally:
        # Evidence first: a cleanup may stop the very server that holds it.
        collect_evidence(drill)
        for what, action in reversed(drill.cleanups):
            try:
                action()
                record.event("cleanup", what)
            except Exception as exc:  # cleanup must go on: report, never mask the drill's own outcome
                record.note(f"cleanup '{what}' failed: {exc}")
                console.warn(f"cleanup '{what}' failed: {exc}")
        record.finish()
        record.write(directory)
        show_verdict(record, directory)
    if interrupted:
        raise KeyboardInterrupt
    return record, directory


def show_verdict(record: DrillRecord, directory: Path) -> None:
    colour = "green" if record.verdict == PASS else "red"
    console.info(f"[bold {colour}]{record.verdict}[/] drill {record.drill} in {record.duration_s:.1f} s")
    for reason in record.reasons():
        mark = "✓" if reason.startswith("met") else "✗"
        console.info(f"  {mark} {reason}" if record.verdict != ERROR else f"  ✗ {reason}")
    if record.verdict != PASS:
        row = record.evidence.get("invocation")
        if row:
            summary = row_summary(row)
            console.info("  Restate's row: " + ", ".join(f"{k}={str(v)[:200]!r}" for k, v in summary.items()))
    console.info(f"  reports: {directory}/report.md, journal.json, junit.xml")
