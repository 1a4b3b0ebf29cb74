"""The drills: each task's flags, defaults and help come from the drill's declaration in
drillkit.catalog (DRILLS); a task here adds only its one-line docstring. And `report`, which draws a
drill's report again."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit

from drillkit import catalog, console
from drillkit.errors import ConfigError, DrillError
from drillkit.reports import html_report
from tasks._edge import CONFIG_HELP, Task, finish, path_or_none, stack_for, task, usage

CLUSTER_CONFIG_HELP = (
    CONFIG_HELP
    + "; needs runtime.backend: cluster or docker-cluster (configs/cluster.yaml, configs/docker-cluster.yaml)"
)
NATIVE_CLUSTER_CONFIG_HELP = (
    CONFIG_HELP
    + "; needs the native cluster, runtime.backend: cluster (configs/cluster.yaml); docker-cluster is refused"
)


def _run_drill(c: Context, config: str | None, spec: catalog.DrillSpec, report_dir: str | None, keep_up: bool) -> None:
    """Check the drill's parameters against the config (a refusal is a usage error, exit 2), run it,
    exit with its verdict's code."""
    with stack_for(c, config) as stack:
        spec = catalog.resolve(spec, stack)  # a configured target's variant; not applicable: exit 2
        try:
            catalog.check(spec, stack)
        except ConfigError:
            raise
        except DrillError as exc:
            usage(str(exc))
        try:
            finish([catalog.run(stack, spec, path_or_none(report_dir), keep_up)[0].verdict])
        except KeyboardInterrupt:  # cleaned up and reported by the drill's frame; 130 as for any shell Ctrl-C
            raise Exit(code=130) from None


def _drill_task(name: str, doc: str, config_help: str = CONFIG_HELP) -> Task:
    """The task `drill.<name>`: `--config`, then a flag for each parameter the catalog declares for the drill
    (its default and help from there), then `--report-dir` and `--keep-up`. The signature is built from the
    declaration because Invoke reads a task's flags and defaults from its signature: written out by hand,
    every default would be declared twice."""
    declared = catalog.DRILLS[name]
    shared = (catalog.REPORT_DIR, catalog.KEEP_UP)

    def body(c: Context, config: str | None = None, **given: Any) -> None:
        report_dir, keep_up = (given.pop(p.name, p.default) for p in shared)
        _run_drill(c, config, declared.spec(given), report_dir, keep_up)

    keyword = inspect.Parameter.KEYWORD_ONLY
    body.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("config", keyword, default=None),
            *(inspect.Parameter(p.name, keyword, default=p.default) for p in (*declared.flags, *shared)),
        ]
    )
    body.__doc__ = doc
    body.__name__ = body.__qualname__ = "drill_" + name.replace("-", "_")
    helps = {"config": config_help, **{p.name: p.help_text() for p in (*declared.flags, *shared)}}
    return task(name=name, help=helps)(body)


crash = _drill_task(
    "crash", "Kill the writer mid-invocation, restart it, and prove the invocation completes with no step re-run."
)
server_crash = _drill_task(
    "server-crash",
    "Kill the Restate server mid-invocation, start it again, and prove the journal kept every finished step.",
)
timeout = _drill_task(
    "timeout", "Break the LLM endpoint and check Restate retries, then recovers, fails or pauses as expected."
)
tool_error = _drill_task(
    "tool-error", "Make the durable tool fail N times and prove only it was retried, then the invocation succeeded."
)
storm = _drill_task(
    "storm",
    "Run many invocations through an LLM tap, SIGKILL the writer (or server) K times, prove nothing ran twice.",
)
node_loss = _drill_task(
    "node-loss",
    "Lose cluster node(s) with invocations in flight; prove all complete, nothing done ran twice, it rejoins.",
    CLUSTER_CONFIG_HELP,
)
partition = _drill_task(
    "partition",
    "Cut a cluster node off its peers and the writer (nftables, or docker network disconnect for containers); "
    "prove the rest go on and it rejoins.",
    CLUSTER_CONFIG_HELP,
)
data_loss = _drill_task(
    "data-loss",
    "Stop a cluster node, delete its partition store, start it; prove it rebuilds from its peers, nothing lost.",
    NATIVE_CLUSTER_CONFIG_HELP,
)
rolling_upgrade = _drill_task(
    "rolling-upgrade",
    "Replace the cluster's nodes one at a time by --to under load, roll back to --from; prove nothing lost. "
    "Starts the cluster afresh: refuses to delete one it did not create unless --fresh (or `inv down --purge`).",
    NATIVE_CLUSTER_CONFIG_HELP,
)
soak = _drill_task(
    "soak",
    "Soak the cluster: steady keyed load for minutes while a seeded schedule kills, freezes and cuts off one "
    "thing at a time; prove every invocation ran exactly once and each fault recovered.",
    CLUSTER_CONFIG_HELP,
)
model = _drill_task(
    "model",
    "Make the model fail through the LLM tap and prove the writer retries, waits, repairs or stops as it should.",
)
stuck = _drill_task(
    "stuck",
    "Freeze the writer mid-step, or hang one step; prove Restate aborts the attempt, retries and completes.",
)

upgrade = _drill_task(
    "upgrade", "Deploy a second writer revision with invocations in flight; prove pinning, drain, removal, mismatch."
)


@task(
    name="all",
    help={
        "config": CONFIG_HELP,
        "report_dir": "parent folder for every drill's reports (default: .drill/reports/all-<time>)",
        "keep_up": catalog.KEEP_UP.help_text(),
        "skip": "comma-separated drill names drill.all leaves out, e.g. storm (default: none)",
        "protocols": "all (h2c, http1, suspend: the matrix, a table per protocol and one of protocol x drill) or a "
        "comma-separated list, e.g. h2c,suspend; see drill.crash --help for --protocol (default: h2c)",
    },
)
def all_drills(c, config=None, report_dir=None, keep_up=False, skip=None, protocols=None):
    """Run every drill in turn (crash, server-crash, timeout modes, tool-error, a small storm, model errors)."""
    with stack_for(c, config) as stack:
        try:
            left_out = catalog.skipped(skip)
            over = catalog.protocols_given(protocols)
        except DrillError as exc:
            usage(str(exc))
        try:
            results = catalog.run_all(stack, path_or_none(report_dir), keep_up, skip=left_out, over=over)
        except KeyboardInterrupt:  # the drill under way was reported, the stack drill.all started stopped
            raise Exit(code=130) from None
        finish([r.verdict for r, _ in results])


@task(help={"path": "a drill's journal.json, its report dir, or a drill.all dir (required)"})
def report(c, path):
    """Render a drill's report.html again from its journal.json."""
    if not Path(path).exists():
        usage(f"{path}: no such file or directory (give a drill's journal.json, its report dir, or a drill.all dir)")
    try:
        written = html_report.rerender(Path(path))
    except DrillError as exc:
        console.error(str(exc))
        raise Exit(code=1) from None
    console.ok(f"wrote {written}")


ns = Collection(
    "drill",
    crash,
    server_crash,
    timeout,
    tool_error,
    storm,
    node_loss,
    partition,
    soak,
    data_loss,
    rolling_upgrade,
    model,
    stuck,
    upgrade,
    all_drills,
)
