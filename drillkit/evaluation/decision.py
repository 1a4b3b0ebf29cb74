"""The Go/NoGo: the team's three criteria, each met or not with its figure, from the evaluation's rows.

1. **Faults**: on the error scenarios (every fault both modes ran), the share of runs that recovered
   *cleanly* is at least `faults_points` (default 20) points higher with Restate than without. Clean:
   completed within the deadline, the report written exactly once and present, and no finished work
   done again: at most one model request per model step plus the one the fault cut in flight. A
   retrying caller can complete as often as Restate does; what it cannot avoid is asking the model
   again for what was already answered, and that is what a durable writer is for. The plain completion
   rate is given beside it.
2. **Nominal overhead**: the durable writer's median latency on the nominal path is at most
   `overhead_pct` (default 10 %) above the baseline's.
3. **Code**: durability adds at most `extra_lines` (default 50) lines, counted by the rule in
   `durability_lines`.

The model requests each mode spent against the minimum are reported beside them, not judged: they are
the cost of the caller's retries the team asked to see.
"""

from __future__ import annotations

import ast
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from drillkit.config import PROJECT_ROOT
from drillkit.evaluation.runner import DURABLE_ONLY, Evaluation, Row, rows
from drillkit.evaluation.subjects import BASELINE_PARTS, DURABLE_PARTS, CodeParts

MODES = ("baseline", "durable")


@dataclass(frozen=True)
class Criteria:
    faults_points: float = 20.0
    overhead_pct: float = 10.0
    extra_lines: int = 50


@dataclass
class Criterion:
    name: str
    target: str
    value: str
    met: bool


def code_lines(path: Path, name: str | None) -> int:
    """Code lines of a whole module (name None) or of one top-level function or class: not blank, not a
    comment, not a docstring."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    docstrings: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docstrings.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    lines = source.splitlines()
    spans = (
        [(1, len(lines))]
        if name is None
        else [(n.lineno, n.end_lineno or n.lineno) for n in tree.body if getattr(n, "name", None) == name]
    )
    if not spans:
        raise ValueError(f"{path}: no top-level {name}")
    counted = {
        number
        for first, last in spans
        for number in range(first, last + 1)
        if (text := lines[number - 1].strip()) and not text.startswith("#") and number not in docstrings
    }
    return len(counted)


def durability_lines(
    parts: tuple[CodeParts, CodeParts] = (DURABLE_PARTS, BASELINE_PARTS), root: Path = PROJECT_ROOT
) -> tuple[int, int]:
    """Code lines of the durable parts and of the baseline parts (`subjects.DURABLE_PARTS` states the
    rule for the shipped writer; a target states its own in `target.baseline`)."""
    durable, baseline = parts
    return sum(code_lines(root / p, n) for p, n in durable), sum(code_lines(root / p, n) for p, n in baseline)


def clean(run: Any) -> bool:
    """Completed, the report exactly once, and no finished model step asked again (one in flight may be)."""
    return (
        run.outcome.completed
        and not run.duplicated_effects
        and not run.lost_effects
        and run.model_requests <= run.min_requests + 1
    )


def share(runs: list[Any], good: Any) -> float:
    return 100.0 * sum(1 for r in runs if good(r)) / len(runs) if runs else 0.0


def decide(evaluation: Evaluation, criteria: Criteria = Criteria()) -> dict[str, Any]:
    table = rows(evaluation)
    compared = sorted({r.fault for r in evaluation.runs if r.fault != "nominal" and r.fault not in DURABLE_ONLY})
    faulted = {mode: [r for r in evaluation.runs if r.mode == mode and r.fault in compared] for mode in MODES}
    per_mode = {mode: share(faulted[mode], clean) for mode in MODES}
    completed = {mode: share(faulted[mode], lambda r: r.outcome.completed) for mode in MODES}
    gain = per_mode["durable"] - per_mode["baseline"]
    nominal = {r.mode: r for r in table if r.fault == "nominal"}
    overhead = None
    if nominal.get("baseline") and nominal.get("durable") and nominal["baseline"].p50_s and nominal["durable"].p50_s:
        overhead = 100.0 * (nominal["durable"].p50_s / nominal["baseline"].p50_s - 1.0)
    durable_lines, baseline_lines = durability_lines(evaluation.code_parts)
    extra = durable_lines - baseline_lines
    found = [
        Criterion(
            "faults: clean recoveries (no finished work redone), durable minus baseline",
            f">= {criteria.faults_points:g} points",
            f"{gain:+.1f} points ({per_mode['durable']:.0f} % vs {per_mode['baseline']:.0f} % over "
            f"{', '.join(compared)}; completed {completed['durable']:.0f} % vs {completed['baseline']:.0f} %)"
            if compared
            else "no fault run in both modes",
            bool(compared) and gain >= criteria.faults_points,
        ),
        Criterion(
            "nominal overhead: durable p50 over baseline p50",
            f"<= {criteria.overhead_pct:g} %",
            f"{overhead:+.1f} %" if overhead is not None else "nominal not run in both modes",
            overhead is not None and overhead <= criteria.overhead_pct,
        ),
        Criterion(
            "code durability adds (code lines, durable entry vs baseline entry)",
            f"<= {criteria.extra_lines}",
            f"{extra} ({durable_lines} durable - {baseline_lines} baseline)",
            extra <= criteria.extra_lines,
        ),
    ]
    return {
        "decision": "Go" if all(c.met for c in found) else "NoGo",
        "criteria": [asdict(c) for c in found],
        "rows": [{**asdict(r)} for r in table],
        "runs": [run.summary() for run in evaluation.runs],
        "throughput_per_s": evaluation.throughput,
        "nominal_concurrency": evaluation.nominal_concurrency,
        "reasons": [f"{'met' if c.met else 'NOT met'}: {c.name}: {c.value} (target {c.target})" for c in found],
    }


def row_line(row: Row) -> str:
    return (
        f"| {row.fault} | {row.mode} | {row.completed}/{row.runs} | {row.model_requests} / {row.min_requests} | "
        f"{row.duplicated_effects} | {row.lost_effects} | {row.p50_s} | {row.p95_s} |"
    )
