"""Invoke tasks: every step of the HOW-TO, and drills that chain them. `inv --list` shows them all.

Each task is a docstring, help for its flags and a few calls into drillkit; the logic lives there.
Every task takes `--config FILE` (default: $RESTATE_WRITER_CONFIG, else `drill.config` from
invoke.yaml / INVOKE_DRILL_CONFIG, else configs/local.yaml).

Exit codes: 0 success (a drill: PASS); 1 failure (a drill: FAIL, or anything that could not be done);
2 usage or config (a flag's value, a config file, a running component started with another config);
3 inconclusive (a drill whose environment failed before the fault could be judged). Every error is one
`error: ...` message on stderr.
"""

from __future__ import annotations

import inspect
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import invoke
from invoke import Collection, Context, Exit
from invoke.parser import Argument

from drillkit import config as drill_config
from drillkit import console, operations, preflight, progress
from drillkit.drills import catalog, html_report
from drillkit.drills.record import exit_code
from drillkit.errors import ConfigError, DrillError
from drillkit.stack import Stack

CONFIG_HELP = "config file (default: $RESTATE_WRITER_CONFIG, else configs/local.yaml)"
progress.install(console.ConsoleObserver())  # the library reports progress; this edge draws it


class _LenientArgument(Argument):  # type: ignore[misc]
    """A typed flag whose value the task checks: Invoke's own cast of `--tail x` is a ValueError traceback
    (exit 1); the raw text is kept instead and the task's `_number` says what is wrong (one line, exit 2)."""

    def set_value(self, value: object, cast: bool = True) -> None:
        try:
            super().set_value(value, cast)
        except (TypeError, ValueError):
            self.raw_value = value
            self._value = value


SHORT_FLAGS = {"config": "c", "verbose": "v"}  # the only short flags: one meaning on every task


class _Task(invoke.Task):  # type: ignore[misc]
    """Every task's flags, built one way: no automatic short flags (one took `-h` from help on `inv up` and
    gave one letter different meanings on different drills), only SHORT_FLAGS; integers parsed by the task;
    a default stated in every help text (taken from the signature when the text does not say it)."""

    def arg_opts(self, name: str, default: object, taken_names: set[str]) -> dict[str, object]:
        opts: dict[str, object] = super().arg_opts(name, default, taken_names)
        if name in SHORT_FLAGS:
            opts["names"] = [*opts["names"], SHORT_FLAGS[name]]  # type: ignore[misc]
        text = str(opts.get("help") or "")
        if "default" not in text and default is not None and default is not inspect.Parameter.empty:
            shown = ("on" if default else "off") if isinstance(default, bool) else default
            opts["help"] = f"{text} (default: {shown})".strip()
        return opts

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        kept = dict(self.help)  # Invoke pops each help text as it builds a flag; help can be asked for twice
        try:
            arguments: list[Argument] = super().get_arguments(ignore_unknown_help)
        finally:
            self.help = kept
        return [_lenient(a) if a.kind is int else a for a in arguments]


def _lenient(argument: Argument) -> _LenientArgument:
    return _LenientArgument(
        names=argument.names,
        kind=argument.kind,
        default=argument.default,
        help=argument.help,
        positional=argument.positional,
        optional=argument.optional,
        incrementable=argument.incrementable,
        attr_name=argument.attr_name,
    )


def task(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
    """invoke.task with this file's flag rules (`_Task`)."""
    kwargs.setdefault("klass", _Task)
    kwargs.setdefault("auto_shortflags", False)
    return invoke.task(*args, **kwargs)


def _usage(message: str) -> NoReturn:
    """A flag's value that cannot be used: one line on stderr, exit 2, never a traceback."""
    console.error(message)
    raise Exit(code=2)


@contextmanager
def _stack(c: Context, config: str | None) -> Iterator[Stack]:
    """A Stack for the config; drillkit errors become a clean non-zero exit with their message
    (2: a config error, 1: anything else)."""
    try:
        stack = Stack(drill_config.load(drill_config.config_file(config, c.config.get("drill", {}).get("config"))))
    except ConfigError as exc:
        console.error(f"config: {exc}")
        raise Exit(code=2) from None
    try:
        yield stack
    except ConfigError as exc:
        console.error(f"config: {exc}" + _other_configs(stack))
        raise Exit(code=2) from None
    except DrillError as exc:
        console.error(str(exc) + _other_configs(stack))
        raise Exit(code=1) from None
    finally:
        stack.close()


def _other_configs(stack: Stack) -> str:
    """An error while a cluster (or any part) started with another config runs: say which, and where."""
    try:
        text = preflight.other_configs_text(stack)
    except DrillError:
        return ""
    return f"\n  ({text})" if text else ""


# -- setup, up, down, status ------------------------------------------------------------------------


@task(help={"config": CONFIG_HELP})
def setup(c, config=None):
    """Fetch the pinned restate-server and restate CLI binaries and the local model (idempotent)."""
    with _stack(c, config) as stack:
        operations.setup(stack)


@task(
    help={
        "config": CONFIG_HELP,
        "http1_1": "register the writer over HTTP/1.1 (--use-http1.1), as the HOW-TO does "
        "(default: runtime.use_http11 from the config)",
        "verbose": "show the restate CLI's whole registration text (default: one line)",
    }
)
def up(c, config=None, http1_1=False, verbose=False):
    """Check every prerequisite, then start Restate, the local model and the writer, and register it if new."""
    with _stack(c, config) as stack:
        operations.up(stack, use_http11=True if http1_1 else None, verbose=verbose)


@task(
    help={
        "config": CONFIG_HELP,
        "purge": "also delete Restate's data, the ledger and the last invocation id",
        "forget_mismatched": "drop the records whose pid now runs another process (never signalled; check "
        "`inv status` first)",
    }
)
def down(c, config=None, purge=False, forget_mismatched=False):
    """Stop everything this tool started (writer, model, Restate server or container). Idempotent."""
    with _stack(c, config) as stack:
        operations.down(stack, purge=purge, forget_mismatched=forget_mismatched)


@task(help={"config": CONFIG_HELP})
def status(c, config=None):
    """Show a table of every component: process or container, URL, health."""
    with _stack(c, config) as stack:
        operations.status(stack)


# -- HOW-TO steps -----------------------------------------------------------------------------------


@task(
    help={
        "config": CONFIG_HELP,
        "http1_1": "pass --use-http1.1 (default: runtime.use_http11 from the config)",
        "force": "pass --force to replace an existing deployment at the same URI (default on)",
    }
)
def register(c, config=None, http1_1=False, force=True):
    """Register the writer with Restate using the downloaded `restate` CLI."""
    with _stack(c, config) as stack:
        operations.register(stack, use_http11=True if http1_1 else None, force=force)


@task(
    name="invoke",
    help={
        "config": CONFIG_HELP,
        "prompt": "prompt to send (default: the HOW-TO's)",
        "body": "JSON file with the whole request body (default: the HOW-TO's body with the prompt)",
    },
)
def call(c, config=None, prompt=None, body=None):
    """Call WriterAgentRestate/run synchronously (the HOW-TO's sanity check) and show the report."""
    with _stack(c, config) as stack:
        operations.call(stack, prompt=prompt, body_file=body)


@task(
    help={
        "config": CONFIG_HELP,
        "prompt": "prompt to send (default: the HOW-TO's restart prompt)",
        "body": "JSON file with the whole request body (default: the HOW-TO's body with the prompt)",
    }
)
def send(c, config=None, prompt=None, body=None):
    """Send an asynchronous invocation (/run/send); print and remember its id."""
    with _stack(c, config) as stack:
        operations.send(stack, prompt=prompt, body_file=body)


@task(help={"config": CONFIG_HELP, "signal": "TERM (graceful, default) or KILL (the HOW-TO's kill -9 crash)"})
def kill(c, config=None, signal="TERM"):
    """Kill the writer's recorded PID (verified first) and wait until it is gone."""
    with _stack(c, config) as stack:
        operations.kill(stack, _signal(signal))


@task(help={"config": CONFIG_HELP, "id": "invocation id (default: the last one sent)"})
def describe(c, config=None, id=None):
    """Describe an invocation with the CLI (`restate invocations describe`)."""
    with _stack(c, config) as stack:
        operations.describe(stack, id)


@task(name="list", help={"config": CONFIG_HELP, "all": "include completed invocations"})
def list_invocations(c, config=None, all=False):
    """List invocations with the CLI (`restate invocations list`)."""
    with _stack(c, config) as stack:
        operations.list_invocations(stack, include_completed=all)


@task(help={"config": CONFIG_HELP, "id": "invocation id (default: the last one sent)"})
def resume(c, config=None, id=None):
    """Resume a backing-off or paused invocation now instead of at its next retry."""
    with _stack(c, config) as stack:
        operations.resume(stack, id)


def _signal(name: str, allowed: tuple[str, ...] = ("KILL", "TERM")) -> signal.Signals:
    """KILL or TERM only (or what `allowed` says): a drill that says SIGTERM must have sent SIGTERM."""
    chosen = str(name).upper().removeprefix("SIG")
    if chosen not in allowed:
        _usage(f"--signal {name!r}: use {' or '.join(allowed)}")
    return signal.Signals["SIG" + chosen]


def _choice(flag: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        _usage(f"--{flag} {value!r}: use {', '.join(choices[:-1])} or {choices[-1]}")
    return str(value)


def _number(flag: str, value: object, kind: type = float, minimum: float = 0) -> float:
    """A numeric flag, checked: one line of error and exit 2, never a traceback."""
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        _usage(f"--{flag} {value!r}: not a {'whole ' if kind is int else ''}number")
    if number != number or number in (float("inf"), float("-inf")):  # nan, inf: parse, but mean nothing
        _usage(f"--{flag} {value!r}: not a finite number")
    if number < minimum:
        _usage(f"--{flag} {value!r}: must be at least {minimum:g}")
    return number


# -- components -------------------------------------------------------------------------------------


@task(name="start", help={"config": CONFIG_HELP})
def restate_start(c, config=None):
    """Start the Restate server (native binary or Docker container, per runtime.backend)."""
    with _stack(c, config) as stack:
        operations.start_restate(stack)


@task(name="stop", help={"config": CONFIG_HELP, "purge": "also delete its data"})
def restate_stop(c, config=None, purge=False):
    """Stop the Restate server."""
    with _stack(c, config) as stack:
        operations.stop_restate(stack, purge=purge)


@task(name="kill", help={"config": CONFIG_HELP, "signal": "KILL (a crash, default) or TERM (graceful)"})
def restate_kill(c, config=None, signal="KILL"):
    """Kill the Restate server: its recorded, verified pid, or `docker kill` of the container."""
    with _stack(c, config) as stack:
        operations.kill_restate(stack, _signal(signal))


@task(name="logs", help={"config": CONFIG_HELP, "follow": "keep streaming new lines", "tail": "lines to show"})
def restate_logs(c, config=None, follow=False, tail=50):
    """Show the Restate server's log (the container's logs with Docker)."""
    with _stack(c, config) as stack:
        operations.restate_logs(stack, follow=follow, tail=int(_number("tail", tail, int, 1)))


NODE_HELP = "the node's number, 1..runtime.cluster.nodes (required; cluster backend: configs/cluster.yaml)"


def _node(stack: Stack, value: object) -> int:
    """--node N checked against the config: a node it does not have, or a config without a cluster, is a
    usage error (exit 2) like any bad flag, before anything is signalled."""
    if value is None:
        _usage("--node N is required (1..runtime.cluster.nodes)")
    number = int(_number("node", value, int, 1))
    try:
        nodes = len(stack.cluster.nodes)
    except DrillError as exc:
        _usage(str(exc))
    if number > nodes:
        _usage(f"--node {value!r}: {stack.config.source} has nodes 1..{nodes}")
    return number


@task(name="node-start", help={"config": CONFIG_HELP, "node": NODE_HELP})
def restate_node_start(c, config=None, node=None):
    """Start (or thaw) one node of the cluster and wait until every partition has a leader again."""
    with _stack(c, config) as stack:
        operations.start_node(stack, _node(stack, node))


@task(name="node-stop", help={"config": CONFIG_HELP, "node": NODE_HELP})
def restate_node_stop(c, config=None, node=None):
    """Stop one node of the cluster gracefully (SIGTERM to its recorded pid, verified first)."""
    with _stack(c, config) as stack:
        operations.stop_node(stack, _node(stack, node))


@task(
    name="node-kill",
    help={
        "config": CONFIG_HELP,
        "node": NODE_HELP,
        "signal": "KILL (a crash, default), TERM, or STOP (freeze it: alive but silent; node-start thaws it)",
    },
)
def restate_node_kill(c, config=None, node=None, signal="KILL"):
    """Kill one node of the cluster (its recorded, verified pid), or freeze it with STOP."""
    with _stack(c, config) as stack:
        operations.kill_node(stack, _node(stack, node), _signal(signal, allowed=("KILL", "TERM", "STOP")))


@task(name="start", help={"config": CONFIG_HELP})
def service_start(c, config=None):
    """Start the writer service (scripts/restate_writer_service.py) and wait for its health check."""
    with _stack(c, config) as stack:
        operations.start_writer(stack)


@task(name="stop", help={"config": CONFIG_HELP})
def service_stop(c, config=None):
    """Stop the writer service gracefully (SIGTERM, then SIGKILL after the grace period)."""
    with _stack(c, config) as stack:
        operations.kill(stack, signal.SIGTERM)


@task(name="restart", help={"config": CONFIG_HELP})
def service_restart(c, config=None):
    """Stop the writer service gracefully and start it again."""
    with _stack(c, config) as stack:
        operations.kill(stack, signal.SIGTERM)
        operations.start_writer(stack)


@task(name="logs", help={"config": CONFIG_HELP, "tail": "lines to show"})
def service_logs(c, config=None, tail=50):
    """Show the writer service's log."""
    with _stack(c, config) as stack:
        operations.component_log(stack.writer, int(_number("tail", tail, int, 1)))


@task(name="start", help={"config": CONFIG_HELP})
def llm_start(c, config=None):
    """Serve the local model (llama.cpp); says so and does nothing for a remote endpoint."""
    with _stack(c, config) as stack:
        operations.start_llm(stack)


@task(name="stop", help={"config": CONFIG_HELP})
def llm_stop(c, config=None):
    """Stop the local model server."""
    with _stack(c, config) as stack:
        operations.stop_llm(stack)


# -- drills -----------------------------------------------------------------------------------------

DEADLINE_HELP = (
    "fixed seconds for each wait (step running, retrying, completion); default: waits last as long as the "
    "system makes progress, scaled by the pace the drill observes"
)
REPORT_HELP = "where to write journal.json, report.md and junit.xml (default: .drill/reports/<drill>-<time>)"
KEEP_UP_HELP = "leave the stack running afterwards when the drill had to start it (default: stop what it started)"


def _drill_help(config: str = CONFIG_HELP, **flags: str) -> dict[str, str]:
    """A drill's help: its own flags between the config and the flags every drill shares."""
    return {"config": config, **flags, "deadline": DEADLINE_HELP, "report_dir": REPORT_HELP, "keep_up": KEEP_UP_HELP}


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _deadline(value: object) -> float | None:
    return None if value is None else _number("deadline", value, float, 1)


def _run_drill(c: Context, config: str | None, spec: catalog.DrillSpec, report_dir: str | None, keep_up: bool) -> None:
    """Check the drill's parameters against the config (a refusal is a usage error, exit 2), run it,
    exit with its verdict's code."""
    with _stack(c, config) as stack:
        spec = catalog.resolve(spec, stack)  # a configured target's variant; not applicable: exit 2
        if spec.check is not None:
            try:
                spec.check(stack)
            except ConfigError:
                raise
            except DrillError as exc:
                _usage(str(exc))
        try:
            _finish([catalog.run(stack, spec, _path(report_dir), keep_up)[0]])
        except KeyboardInterrupt:  # cleaned up and reported by the drill's frame; 130 as for any shell Ctrl-C
            raise Exit(code=130) from None


def _finish(records: list) -> None:
    """Exit 0 on PASS, 1 on FAIL or error, 3 when a drill was INCONCLUSIVE (the environment failed)."""
    code = exit_code([r.verdict for r in records])
    if code:
        raise Exit(code=code)


@task(
    name="crash",
    help=_drill_help(
        signal="KILL (the HOW-TO's kill -9 crash, default) or TERM (graceful shutdown)",
        at="the step to interrupt: outline, section:N, summary or save_report (default section:2); on a "
        "configured target run:N, the Nth Run of its journal (default run:2)",
        resume="after the restart, resume at once (default); --no-resume waits for Restate's own backoff",
    ),
)
def drill_crash(c, config=None, signal="KILL", at=None, resume=True, deadline=None, report_dir=None, keep_up=False):
    """Kill the writer mid-invocation, restart it, and prove the invocation completes with no step re-run."""
    spec = catalog.crash(_signal(signal), at, resume, _deadline(deadline))
    _run_drill(c, config, spec, report_dir, keep_up)


@task(
    name="server-crash",
    help=_drill_help(
        signal="KILL (a crash, default) or TERM (graceful shutdown) of restate-server",
        at="the step in flight when the server dies: outline, section:N, summary or save_report (default "
        "section:2); on a configured target run:N (default run:2)",
        resume="after the server is back, resume at once (default); --no-resume waits for Restate's own retry",
    ),
)
def drill_server_crash(
    c, config=None, signal="KILL", at=None, resume=True, deadline=None, report_dir=None, keep_up=False
):
    """Kill the Restate server mid-invocation, start it again, and prove the journal kept every finished step."""
    spec = catalog.server_crash(_signal(signal), at, resume, _deadline(deadline))
    _run_drill(c, config, spec, report_dir, keep_up)


@task(
    name="timeout",
    help=_drill_help(
        mode="down (endpoint unreachable, then back), hang (accepts, never answers) or pause (retries run out)",
        expect="recover, fail or pause (default: recover for down, fail for hang, pause for pause)",
    ),
)
def drill_timeout(c, config=None, mode="down", expect=None, deadline=None, report_dir=None, keep_up=False):
    """Break the LLM endpoint and check Restate retries, then recovers, fails or pauses as expected."""
    _choice("mode", mode, ("down", "hang", "pause"))
    if expect is not None:
        _choice("expect", expect, ("recover", "fail", "pause"))
    spec = catalog.timeout(mode, expect, _deadline(deadline))
    _run_drill(c, config, spec, report_dir, keep_up)


@task(
    name="tool-error",
    help=_drill_help(
        fail_first="how many attempts of the save_report tool fail before it succeeds (default 2)",
    ),
)
def drill_tool_error(c, config=None, fail_first=2, deadline=None, report_dir=None, keep_up=False):
    """Make the durable tool fail N times and prove only it was retried, then the invocation succeeded."""
    spec = catalog.tool_error(int(_number("fail-first", fail_first, int, 1)), _deadline(deadline))
    _run_drill(c, config, spec, report_dir, keep_up)


@task(
    name="storm",
    help=_drill_help(
        invocations="how many invocations in flight at once, each with its own idempotency key (default 40)",
        kills="how many SIGKILLs of the target, at seeded points of progress (default 2)",
        target="what is killed: writer (default) or server (restate-server)",
        llm="local (the config's own endpoint, default) or stub (a 50 ms stub: the point is Restate)",
        seed="seed for the kill points (default 7): the same seed kills at the same progress",
    ),
)
def drill_storm(
    c,
    config=None,
    invocations=40,
    kills=2,
    target="writer",
    llm="local",
    seed=7,
    deadline=None,
    report_dir=None,
    keep_up=False,
):
    """Run many invocations through an LLM tap, SIGKILL the writer (or server) K times, prove nothing ran twice."""
    spec = catalog.storm(
        int(_number("invocations", invocations, int, 1)),
        int(_number("kills", kills, int, 0)),
        _choice("target", target, ("writer", "server")),  # type: ignore[arg-type]
        _choice("llm", llm, ("local", "stub")),  # type: ignore[arg-type]
        int(_number("seed", seed, int, 0)),
        _deadline(deadline),
    )
    _run_drill(c, config, spec, report_dir, keep_up)


CLUSTER_NODE_HELP = (
    "which node: leader (default: the one leading the partitions with the most invocations in flight), "
    "follower (one leading none of them), or its number 1..N"
)
CLUSTER_LLM_HELP = "stub (default: a stub answering in 300 ms; the point is Restate) or local (the real model)"


@task(
    name="node-loss",
    help=_drill_help(
        config=CONFIG_HELP + "; needs runtime.backend: cluster (configs/cluster.yaml)",
        node=CLUSTER_NODE_HELP,
        signal="KILL (a crash, default) or STOP (frozen: alive but silent), sent to the recorded, verified pid",
        count="how many nodes are lost: 1 (default; the others go on) or 2 (a majority: nothing moves meanwhile)",
        invocations="how many invocations in flight, spread over the partitions (default 8)",
        llm=CLUSTER_LLM_HELP,
    ),
)
def drill_node_loss(
    c,
    config=None,
    node="leader",
    signal="KILL",
    count=1,
    invocations=8,
    llm="stub",
    deadline=None,
    report_dir=None,
    keep_up=False,
):
    """Lose cluster node(s) with invocations in flight; prove all complete, nothing done ran twice, it rejoins."""
    spec = catalog.node_loss(
        str(node),
        _signal(signal, allowed=("KILL", "STOP")),
        int(_number("count", count, int, 1)),
        int(_number("invocations", invocations, int, 1)),
        _llm(llm),
        _deadline(deadline),
    )
    _run_drill(c, config, spec, report_dir, keep_up)


@task(
    name="partition",
    help=_drill_help(
        config=CONFIG_HELP + "; needs runtime.backend: cluster (configs/cluster.yaml)",
        node=CLUSTER_NODE_HELP,
        invocations="how many invocations in flight, spread over the partitions (default 8)",
        llm=CLUSTER_LLM_HELP,
    ),
)
def drill_partition(
    c, config=None, node="leader", invocations=8, llm="stub", deadline=None, report_dir=None, keep_up=False
):
    """Cut a cluster node off its peers and the writer (nftables); prove the rest go on and it rejoins."""
    spec = catalog.partition(
        str(node), int(_number("invocations", invocations, int, 1)), _llm(llm), _deadline(deadline)
    )
    _run_drill(c, config, spec, report_dir, keep_up)


def _llm(value: str) -> str:
    return _choice("llm", value, ("stub", "local"))


@task(
    name="all",
    help={
        "config": CONFIG_HELP,
        "report_dir": "parent folder for every drill's reports (default: .drill/reports/all-<time>)",
        "keep_up": KEEP_UP_HELP,
    },
)
def drill_all(c, config=None, report_dir=None, keep_up=False):
    """Run every drill in turn (crash, server-crash, timeout down/hang/pause, tool-error, a small storm)."""
    with _stack(c, config) as stack:
        try:
            results = catalog.run_all(stack, _path(report_dir), keep_up)
        except KeyboardInterrupt:  # the drill under way was reported, the stack drill.all started stopped
            raise Exit(code=130) from None
        _finish([r for r, _ in results])


@task(help={"path": "a drill's journal.json, its report dir, or a drill.all dir (required)"})
def report(c, path):
    """Render a drill's report.html again from its journal.json."""
    try:
        written = html_report.rerender(Path(path))
    except DrillError as exc:
        console.error(str(exc))
        raise Exit(code=1) from None
    console.ok(f"wrote {written}")


drill_ns = Collection(
    "drill",
    drill_crash,
    drill_server_crash,
    drill_timeout,
    drill_tool_error,
    drill_storm,
    drill_node_loss,
    drill_partition,
    drill_all,
)


# -- drill.upgrade: a self-contained block (a redeploy with invocations in flight, issue 18) -----------------


@task(
    name="upgrade",
    help=_drill_help(
        mode="drain (default: revision 1 drains, then is removed), early (its process killed before its "
        "invocations finish: they back off, then complete once it returns) or incompatible (one moved onto a "
        "revision whose journal differs: journal mismatch caught, moved back, completed)",
        invocations="how many invocations are in flight on revision 1 at the redeploy, and how many are sent "
        "after it (default 4)",
    ),
)
def drill_upgrade(c, config=None, mode="drain", invocations=4, deadline=None, report_dir=None, keep_up=False):
    """Deploy a second writer revision with invocations in flight; prove pinning, drain, removal, mismatch."""
    spec = catalog.upgrade(
        _choice("mode", mode, ("drain", "early", "incompatible")),  # type: ignore[arg-type]
        int(_number("invocations", invocations, int, 1)),
        _deadline(deadline),
    )
    _run_drill(c, config, spec, report_dir, keep_up)


drill_ns.add_task(drill_upgrade)
# -- benchmarks -------------------------------------------------------------------------------------


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
        _usage(f"--only {only!r}: unknown group(s) {', '.join(unknown)}; use {', '.join(bench_runner.GROUPS)}")
    with _stack(c, config) as stack:
        bench_runner.run(stack, quick=quick, only=groups, out=_path(out))


# -- a private Docker engine (for the Docker backend where none runs) -------------------------------


def _engine_steps():  # type: ignore[no-untyped-def]
    """drillkit.engine_steps, imported when an engine task runs: it brings docker-py, which the rest skip."""
    from drillkit import engine_steps

    return engine_steps


@task(name="install", help={"config": CONFIG_HELP})
def engine_install(c, config=None):
    """Install Debian's docker.io when no dockerd is on this machine (root; needs the Debian mirror)."""
    with _stack(c, config):
        _engine_steps().install_engine()


@task(
    name="start",
    help={
        "config": CONFIG_HELP,
        "image": "also build the configured Restate image from the native binary if the engine lacks it",
    },
)
def engine_start(c, config=None, image=True):
    """Start a private dockerd under the state dir (reused when running); prints its DOCKER_HOST."""
    with _stack(c, config) as stack:
        _engine_steps().start_engine(stack, build=image)


@task(name="stop", help={"config": CONFIG_HELP})
def engine_stop(c, config=None):
    """Stop the private dockerd by its recorded PID."""
    with _stack(c, config) as stack:
        _engine_steps().stop_engine(stack)


@task(name="image", help={"config": CONFIG_HELP})
def engine_image(c, config=None):
    """Build the configured Restate image (docker import of the native binary and a CA bundle)."""
    with _stack(c, config) as stack:
        _engine_steps().build_image(stack)


@task(
    name="check",
    help={
        "config": CONFIG_HELP + "; it must have a `target` section",
        "keep_up": "leave the stack running afterwards when the check had to start it (default: stop it)",
    },
)
def target_check(c, config=None, keep_up=False):
    """Start the configured target, register it, send one invocation, and show its journal's shape."""
    with _stack(c, config) as stack:
        operations.target_check(stack, keep_up)


target_ns = Collection("target", target_check)


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
    chosen_runs = int(_number("runs", runs, int, 1)) if runs is not None else (1 if quick else 3)
    chosen = [f.strip() for f in faults.split(",") if f.strip()] if faults else None
    at_once = int(_number("concurrency", concurrency, int, 1)) if concurrency is not None else (4 if quick else 8)
    with _stack(c, config) as stack:
        result = operations.evaluate(
            stack, chosen_runs, chosen, int(_number("seed", seed, int, 0)), at_once, report_dir
        )
    if result is None:
        raise Exit(code=3)


engine_ns = Collection("engine", engine_install, engine_start, engine_stop, engine_image)
restate_ns = Collection(
    "restate",
    restate_start,
    restate_stop,
    restate_kill,
    restate_logs,
    restate_node_start,
    restate_node_stop,
    restate_node_kill,
)
service_ns = Collection("service", service_start, service_stop, service_restart, service_logs)
llm_ns = Collection("llm", llm_start, llm_stop)

ns = Collection(
    setup, up, down, status, register, call, send, kill, describe, list_invocations, resume, bench, report, evaluate
)
ns.add_collection(restate_ns)
ns.add_collection(service_ns)
ns.add_collection(llm_ns)
ns.add_collection(drill_ns)
ns.add_collection(engine_ns)
ns.add_collection(target_ns)
ns.configure({"drill": {"config": None}})  # invoke.yaml or INVOKE_DRILL_CONFIG may set it
