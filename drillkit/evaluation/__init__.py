"""`inv evaluate`: the decision the POC left open. The writer with Restate (durable) and without it (the
same pipeline in a plain ASGI app, its caller retrying), each fault N times, then Go or NoGo against the
team's criteria (`decision.py`), written as evaluation.json, .md and .html."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from drillkit import progress
from drillkit.evaluation import decision, report
from drillkit.evaluation.runner import FAULTS, Evaluator, check_faults
from drillkit.stack import Stack
from drillkit.state import drill_lock

__all__ = ["FAULTS", "QUICK_FAULTS", "SECONDS_PER_RUN", "evaluate"]

QUICK_FAULTS = list(FAULTS)
SECONDS_PER_RUN = 20.0  # one request on the local model with its fault and recovery, measured on 2 cores
TOO_MANY_INCONCLUSIVE = 1 / 3


def evaluate(
    stack: Stack, runs: int, faults: list[str], seed: int, concurrency: int, report_dir: Path | None
) -> tuple[dict[str, Any], Path, bool]:
    """Run the evaluation; returns the result, where it was written, and whether it was conclusive."""
    check_faults(faults)
    planned = sum(runs * (1 if f in ("server-crash",) else 2) for f in faults) + 2
    progress.info(
        f"evaluate: {len(faults)} fault(s) x {runs} run(s) on both modes, then {concurrency} at once: "
        f"{planned} requests in all, about {planned * SECONDS_PER_RUN / 60:.0f} min on this machine's local model"
    )
    directory = report_dir or stack.state.reports / f"evaluation-{time.strftime('%Y%m%d-%H%M%S')}"
    with drill_lock(stack.state, "evaluate"):
        evaluation = Evaluator(stack, runs, faults, seed, concurrency).run()
    result = decision.decide(evaluation)
    result["context"] = report.context(
        stack.config.source,
        {"restate-server": stack.rt.restate_version, "model": stack.config.writer_model.model, "runs": str(runs)},
    )
    result["inconclusive"] = evaluation.inconclusive
    files = report.write(directory, result)
    judged = len(evaluation.runs)
    conclusive = judged > 0 and len(evaluation.inconclusive) <= TOO_MANY_INCONCLUSIVE * (
        judged + len(evaluation.inconclusive)
    )
    progress.table(
        f"evaluation: {result['decision']}",
        ("", "criterion", "target", "value"),
        [("✓" if c["met"] else "✗", c["name"], c["target"], c["value"]) for c in result["criteria"]],
    )
    progress.info(f"written: {', '.join(str(f) for f in files)}")
    return result, directory, conclusive
