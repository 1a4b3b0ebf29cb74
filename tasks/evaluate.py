"""The Go/NoGo evaluation: every fault on the writer with Restate and without it."""

from __future__ import annotations

from invoke.exceptions import Exit

from drillkit import flags, operations
from drillkit.config import PROJECT_ROOT
from tasks._edge import CONFIG_HELP, stack_for, task, usage

# The reference targets by name: each is a config whose `target` (if any) has a `baseline`.
TARGETS = {"writer": "configs/local.yaml", "agents": "configs/agents-writer.yaml"}


@task(
    help={
        "config": CONFIG_HELP,
        "runs": "runs of each fault in each mode (default 3; --quick: 1)",
        "faults": "comma-separated faults (default all: nominal,kill,term,llm-down,llm-hang,llm-5xx,llm-429,"
        "llm-truncated,tool-error,server-crash)",
        "target": "writer (the shipped writer) or agents (the Agents SDK writer through DurableRunner), or a "
        "config file with a `target` that has a `baseline`; instead of --config (default: the config's own)",
        "quick": "one run of each fault, throughput at 4 concurrent: about 5 minutes on a quiet 2-core machine "
        "with the local model (default: off)",
        "seed": "seed for the run order (default 7)",
        "concurrency": "requests sent at once for the nominal throughput (default 8; --quick: 4)",
        "report_dir": "where to write evaluation.json/.md/.html (default .drill/reports/evaluation-<time>)",
    }
)
def evaluate(
    c, config=None, runs=None, faults=None, quick=False, seed=7, concurrency=None, report_dir=None, target=None
):
    """Run every fault on the writer with Restate and without it, and decide Go or NoGo."""
    if target is not None:
        if config is not None:
            usage("give --target or --config, not both (--target names a config)")
        config = str(PROJECT_ROOT / TARGETS[target]) if target in TARGETS else target
    chosen_runs = flags.whole("runs", runs, 1) if runs is not None else (1 if quick else 3)
    chosen = [f.strip() for f in faults.split(",") if f.strip()] if faults else None
    at_once = flags.whole("concurrency", concurrency, 1) if concurrency is not None else (4 if quick else 8)
    with stack_for(c, config) as stack:
        result = operations.evaluate(stack, chosen_runs, chosen, flags.whole("seed", seed, 0), at_once, report_dir)
    if result is None:
        raise Exit(code=3)
