"""The Go/NoGo evaluation: every fault on the writer with Restate and without it."""

from __future__ import annotations

from invoke.exceptions import Exit

from drillkit import flags, operations
from tasks._edge import CONFIG_HELP, stack_for, task


@task(
    help={
        "config": CONFIG_HELP,
        "runs": "runs of each fault in each mode (default 3; --quick: 1)",
        "faults": "comma-separated faults (default all: nominal,kill,term,llm-down,tool-error,server-crash)",
        "quick": "one run of each fault, nominal at 4 concurrent: about 5 minutes on this machine",
        "seed": "seed for the run order (default 7)",
        "concurrency": "requests sent at once for the nominal throughput (default 8; --quick: 4)",
        "report_dir": "where to write evaluation.json/.md/.html (default .drill/reports/evaluation-<time>)",
    }
)
def evaluate(c, config=None, runs=None, faults=None, quick=False, seed=7, concurrency=None, report_dir=None):
    """Run every fault on the writer with Restate and without it, and decide Go or NoGo."""
    chosen_runs = flags.whole("runs", runs, 1) if runs is not None else (1 if quick else 3)
    chosen = [f.strip() for f in faults.split(",") if f.strip()] if faults else None
    at_once = flags.whole("concurrency", concurrency, 1) if concurrency is not None else (4 if quick else 8)
    with stack_for(c, config) as stack:
        result = operations.evaluate(stack, chosen_runs, chosen, flags.whole("seed", seed, 0), at_once, report_dir)
    if result is None:
        raise Exit(code=3)
