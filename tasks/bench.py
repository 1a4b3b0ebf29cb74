"""The benchmarks."""

from __future__ import annotations

from tasks._edge import CONFIG_HELP, path_or_none, stack_for, task, usage


@task(
    help={
        "config": CONFIG_HELP,
        "quick": "fewer repeats and sizes (a few minutes); the full run repeats more and loads 200 invocations",
        "only": "comma-separated groups: cold, drills, recovery, durability, load, stub-load, storm, gate, "
        "cluster (default: all but gate and cluster; with a cluster config, cluster; gate needs nginx)",
        "out": "JSON file for the results (default: .drill/bench/bench-<time>.json)",
    }
)
def bench(c, config=None, quick=False, only=None, out=None):
    """Measure cold start, drill times, recovery latency, the cost of durability, load and a crash storm."""
    from drillkit.bench import runner as bench_runner  # imports the writer (openai, restate): only when asked

    groups = [g.strip() for g in only.split(",")] if only else None
    unknown = sorted(set(groups or []) - set(bench_runner.GROUPS))
    if unknown:
        usage(f"--only {only!r}: unknown group(s) {', '.join(unknown)}; use {', '.join(bench_runner.GROUPS)}")
    with stack_for(c, config) as stack:
        bench_runner.run(stack, quick=quick, only=groups, out=path_or_none(out))
