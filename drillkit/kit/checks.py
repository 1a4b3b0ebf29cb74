"""Checks: the expectations drills share, each written into the record as met or not, with its evidence.

Chaos Toolkit's steady-state hypothesis in this project's words: the invocation completes with success
(Restate's row and the CLI agree), its output is retrievable, the report file exists, and no step
Restate had journaled as finished ran again (the ledger says so, and the LLM tap when one is on).
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from drillkit.errors import HttpError, Inconclusive
from drillkit.evidence import reexecuted_after_journaled
from drillkit.kit.actions import Batch
from drillkit.kit.frame import Drill
from drillkit.kit.probes import Row, Rows, is_retrying, row_detail
from drillkit.procs import Stopped
from drillkit.restate_api import HANDLER, SERVICE, IngressApi

SHOWN = 5
"""How many offending ids a check names in its detail."""


def completed_with_success(drill: Drill, row: Row, report_file: bool = True) -> None:
    """Completed with success (Restate and the CLI agree), output retrievable, report file present (the
    shipped writer's output names its file; a configured target's output is only checked to exist)."""
    record = drill.record
    record.expect(
        "completed with success (sys_invocation)",
        row.get("completion_result") == "success",
        f"status={row.get('status')}, completion_result={row.get('completion_result')}"
        + (f", failure={row.get('completion_failure')!r}" if row.get("completion_failure") else ""),
    )
    describe = drill.restate.cli().describe(drill.invocation_id)
    record.evidence["cli_describe"] = describe
    record.expect(
        "`restate invocations describe` says completed with success",
        "completed with success" in describe,
        next((line.strip() for line in describe.splitlines() if "Status:" in line), "no Status line"),
    )
    output = fetch_output(drill)
    if not report_file:
        record.expect(
            "the output is retrievable from Restate",
            "output" in record.evidence,
            f"GET /restate/invocation/{drill.invocation_id}/output",
        )
        return
    record.expect(
        "the output is retrievable from Restate",
        output is not None and "output_path" in output,
        f"GET /restate/invocation/{drill.invocation_id}/output",
    )
    path = Path(str(output.get("output_path"))) if output else None
    record.expect("the report file exists", path is not None and path.is_file(), str(path))


def all_completed_with_success(drill: Drill, ids: list[str], rows: Rows) -> None:
    """Every invocation of a batch completed with success (Restate's rows, one per id)."""
    failed = [r["id"] for r in rows if r.get("completion_result") != "success"]
    drill.record.expect(
        f"all {len(ids)} invocations completed with success",
        len(rows) == len(ids) and not failed,
        f"{len(rows) - len(failed)}/{len(ids)} success" + (f"; not: {failed[:SHOWN]}" if failed else ""),
    )


def same_output_again(
    drill: Drill, batch: Batch, ingress: IngressApi | None = None, service: str = SERVICE, handler: str = HANDLER
) -> dict[str, Any]:
    """Each idempotency key sent again (the synchronous call, through `ingress` when given: a surviving
    node) returns what Restate stored for its invocation. Returns the stored outputs."""
    outputs: dict[str, Any] = {}
    differ = []
    again_through = ingress or drill.restate.ingress
    for invocation_id, key in batch.keys.items():
        try:
            outputs[invocation_id] = drill.restate.ingress.output(invocation_id)
            again = again_through.call(
                batch.bodies[invocation_id], idempotency_key=key, timeout_s=60, service=service, handler=handler
            )
        except HttpError as exc:
            differ.append(f"{invocation_id}: {exc}")
            continue
        if again != outputs[invocation_id]:
            differ.append(f"{invocation_id}: another output for key {key}")
    where = f" (through {again_through.base_url})" if ingress is not None else ""
    drill.record.expect(
        f"sending any idempotency key again{where} returns the same output",
        not differ,
        f"{len(batch.keys) - len(differ)}/{len(batch.keys)} keys answered with the stored output"
        + (f"; {differ[:5]}" if differ else ""),
    )
    return outputs


def files_hold_outputs(drill: Drill, outputs: dict[str, Any]) -> None:
    """Every report file holds exactly the markdown Restate stored as its invocation's output."""
    wrong = []
    for invocation_id, output in outputs.items():
        path = Path(str(output.get("output_path"))) if isinstance(output, dict) else None
        if path is None or not path.is_file() or path.read_text(encoding="utf-8") != output.get("markdown_report"):
            wrong.append(f"{invocation_id}: {path}")
    drill.record.expect(
        "every report file holds exactly Restate's output",
        not wrong and bool(outputs),
        f"{len(outputs) - len(wrong)}/{len(outputs)} files equal their invocation's markdown_report"
        + (f"; not: {wrong[:5]}" if wrong else ""),
    )


def fetch_output(drill: Drill) -> dict[str, Any] | None:
    try:
        output = drill.restate.ingress.output(drill.invocation_id)
    except HttpError as exc:
        drill.record.note(f"output not retrievable: {exc}")
        return None
    drill.record.evidence["output"] = output
    return output if isinstance(output, dict) else None


def writer_gone(drill: Drill, stopped: Stopped, sig: signal.Signals) -> None:
    service_gone(drill, stopped, sig, "the writer", drill.config.service.grace_period_s)


def service_gone(drill: Drill, stopped: Stopped, sig: signal.Signals, what: str, grace: float) -> None:
    pid = stopped.record.pid
    if sig == signal.SIGKILL:
        drill.record.expect(
            f"{what} (pid {pid}) is gone after SIGKILL", True, f"pid {pid} verified, signalled and gone"
        )
        return
    drill.record.expect(
        f"{what} (pid {pid}) shut down gracefully on SIGTERM",
        not stopped.escalated,
        f"exited by itself after {stopped.seconds:.2f} s (grace period {grace:g} s)"
        if not stopped.escalated
        else "it did not exit within its grace period and had to be SIGKILLed",
    )


def retried_after_kill(drill: Drill, row: Row, sig: signal.Signals) -> None:
    if sig == signal.SIGKILL:
        drill.record.expect("Restate shows the invocation retrying after the kill", is_retrying(row), row_detail(row))
        return
    # A graceful stop drains in-flight requests: the invocation either finished before the process
    # exited, or the drain was cut at the grace period and Restate retries it. Both are correct; a
    # pending invocation that Restate neither finished nor retries is not.
    drained = row.get("status") == "completed"
    drill.record.expect(
        "Restate either saw the invocation finish during the drain or retries it",
        drained or is_retrying(row),
        ("finished during the drain: " if drained else "retried: ") + row_detail(row),
    )


def fault_landed_as_planned(drill: Drill, at: str, in_flight: str | None) -> None:
    """The kill was meant to cut `at` in flight; if it had finished first, the drill cannot judge what it
    set out to (the environment outran it): INCONCLUSIVE, never a PASS on a fault that did not happen."""
    if in_flight != at:
        raise Inconclusive(
            f"the fault was not injected as planned: step {at} was no longer in flight when the kill landed "
            f"(in flight: {in_flight or 'none'}); run again, or pick another --at"
        )


def no_finished_step_ran_again(drill: Drill, journaled: dict[str, float], when: str = "the kill") -> None:
    """No step Restate had journaled as finished executed again (ledger), nor reached the model (tap)."""
    rerun = reexecuted_after_journaled(drill.writer.executions(drill.invocation_id), journaled)
    done = ", ".join(journaled) or "none"
    drill.record.expect(
        f"no step that had finished before {when} ran again",
        not rerun,
        f"journaled as finished before {when}: {done}; "
        + (f"executed again: {', '.join(rerun)}" if rerun else "none executed again (replayed from the journal)"),
    )
