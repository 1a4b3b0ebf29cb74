"""Exactly once, from evidence that does not share a failure: Restate's rows and journals, the writer's
ledger (every execution of every step, with its start time) and the report files on disk.

- every invocation accepted completed with success;
- each idempotency key sent again (through a given node) returns the output Restate stored;
- each report file holds exactly that output;
- no step Restate had journaled as done was executed again (ledger after journal), none journaled twice.

The pure parts (`executed_again`, `journaled_twice`) take plain evidence, so they are tested without a stack.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from drillkit.components.writer import Execution
from drillkit.evidence import executions_after_journaled, journal_steps, journaled_completions
from drillkit.kit import actions, checks, probes
from drillkit.kit.checks import SHOWN
from drillkit.kit.frame import Drill
from drillkit.restate_api import IngressApi


def executed_again(journaled: dict[str, dict[str, float]], runs: list[Execution]) -> list[str]:
    """`<invocation>/<step>` for every execution that started after Restate had journaled that step as done."""
    late: set[str] = set()
    for invocation_id, done in journaled.items():
        mine = [e for e in runs if e.invocation_id == invocation_id]
        late |= {f"{invocation_id}/{e.step}" for e in executions_after_journaled(mine, done)}
    return sorted(late)


def journaled_twice(journals: dict[str, list[dict[str, Any]]]) -> list[str]:
    """`<invocation>/<step>` for every step with two completed entries in one journal."""
    twice = []
    for invocation_id, rows in journals.items():
        counts = Counter(step.name for step in journal_steps(rows) if step.completed)
        twice += [f"{invocation_id}/{name}" for name, n in counts.items() if n > 1]
    return sorted(twice)


def ledger_line(steps: int, executions: int, again: list[str]) -> str:
    """The counts, with what the executions beyond the journaled steps are: attempts cut in flight (never
    journaled as done, so run again: allowed), as against a step run again after it was journaled."""
    extra = executions - steps
    cut = (
        f" ({extra} more than journaled: attempts cut in flight, never journaled as done, so run again: allowed)"
        if extra > 0
        else ""
    )
    return (
        f"{steps} journaled steps, {executions} executions in the ledger{cut}; executed again after being "
        f"journaled as done: {again[:SHOWN] or 'none'}"
    )


def judge(drill: Drill, batch: actions.Batch, ingress: IngressApi | None = None) -> None:
    """Every check above on the batch's invocations; `ingress`: the node the keys are sent again through."""
    ids = list(batch.keys)
    checks.all_completed_with_success(drill, ids, probes.invocations(drill, ids))
    outputs = checks.same_output_again(drill, batch, ingress)
    checks.files_hold_outputs(drill, outputs)
    journals = probes.journals(drill, ids)
    journaled = {i: journaled_completions(rows) for i, rows in journals.items()}
    runs = [e for e in drill.writer.executions() if e.invocation_id in batch.keys]
    again, twice = executed_again(journaled, runs), journaled_twice(journals)
    steps = sum(len(done) for done in journaled.values())
    drill.record.expect(
        "no step Restate had journaled as done was executed again (ledger), nor journaled twice",
        not again and not twice,
        ledger_line(steps, len(runs), again) + (f"; journaled twice: {twice[:SHOWN]}" if twice else ""),
    )
    retried = sorted({f"{e.invocation_id}/{e.step}" for e in runs if (e.attempt or 1) > 1})
    drill.record.note(f"in-flight steps that ran again (allowed: never journaled as done): {retried[:10] or 'none'}")
