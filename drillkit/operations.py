"""The HOW-TO's steps as functions that do the step, check it worked and say so.

`tasks/` calls these one for one. Each calls a component or the stack and reports through drillkit's
progress observer (a table, the CLI's text); the drills call the same components and keep their own
record instead. Failures raise `DrillError`.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

from drillkit import preflight, progress
from drillkit.components.process import ManagedProcess
from drillkit.components.restate_server import PROCESS_NAME
from drillkit.errors import ComponentError, ConfigError, DrillError, HttpError
from drillkit.howto import RESTART_PROMPT, howto_body, read_body
from drillkit.procs import Stopped
from drillkit.restate_api import HANDLER, SERVICE
from drillkit.stack import Stack


def setup(stack: Stack) -> None:
    progress.step(f"setup: Restate {stack.rt.restate_version} binaries and the local model into {stack.state.root}")
    progress.table("setup", ("item", "path", "source"), stack.setup())


def up(stack: Stack, use_http11: bool | None = None, verbose: bool = False) -> None:
    progress.step(f"up: {stack.config.source} ({stack.rt.backend} backend)")
    timings = stack.up(use_http11=use_http11, verbose=verbose)
    phases = ", ".join(f"{k} {v:.2f} s" for k, v in timings.phases.items())
    progress.ok(f"all up ({phases})")


def down(stack: Stack, purge: bool = False, forget_mismatched: bool = False) -> None:
    unseen = [r.name for r, where in stack.procs.elsewhere() if where.startswith("PID namespace")]
    if unseen:  # their pids mean nothing here: stopping "nothing" would leave them running, unsaid
        raise ComponentError(
            f"{', '.join(unseen)} run in another PID namespace (a `scripts/loopback-only --contained` shell): "
            "their pids cannot be signalled from here. Run `inv down` in that shell; nothing was stopped"
        )
    with progress.activity("stopping what this tool started"):
        stopped = stack.down(purge=purge, forget_mismatched=forget_mismatched)
    if stopped:
        progress.ok("stopped: " + ", ".join(stopped))
    else:
        progress.info("nothing of ours was running")
    if purge:
        progress.ok(f"deleted {purged_data(stack)} and the ledger ({stack.config.ledger_file()})")


def purged_data(stack: Stack) -> str:
    """What `inv down --purge` deleted of Restate's, per backend: a directory, or Docker volumes."""
    backend, rt = stack.server.name, stack.rt
    if backend == "docker":
        return f"Restate's data (Docker volume {rt.docker.volume})"
    if backend in ("cluster", "docker-cluster"):
        names = [f"n{n}" for n in range(1, rt.cluster.nodes + 1)]
        home = stack.state.root / "restate-cluster"
        if backend == "cluster":
            return f"the nodes' data ({home}: {', '.join(names)})"
        from drillkit.components.docker_cluster import volume_name  # docker-py is loaded already: the server

        volumes = ", ".join(volume_name(rt.cluster, n) for n in range(1, rt.cluster.nodes + 1))
        return f"the nodes' data (Docker volumes {volumes}) and their TOML files ({home})"
    return f"Restate's data ({stack.state.restate_data})"


def status(stack: Stack) -> None:
    elsewhere = stack.elsewhere()
    if elsewhere:
        progress.warn(elsewhere)
    other = preflight.other_configs_text(stack)
    if other:
        progress.warn(other)
    progress.table("components", ("component", "process", "URL", "health"), stack.status())
    mismatched = stack.mismatched()
    if mismatched:
        progress.warn(
            "process records whose pid now runs another process (never signalled; kept until "
            "`inv down --forget-mismatched`):"
        )
        rows = [
            (seen.record.name, seen.record.pid, what, recorded, now)
            for seen in mismatched
            for what, recorded, now in seen.differences()
        ]
        progress.table("records that no longer match", ("record", "pid", "what", "recorded", "now"), rows)
    if stack.rt.is_cluster:
        try:
            cluster = stack.cluster
        except ComponentError:  # no Docker engine answers: the table's warning said so
            progress.info("partition leaders: unknown (the nodes cannot be asked)")
            return
        leaders = cluster.leaders_or_none() if cluster.reachable() else None
        if leaders is None:
            progress.info("partition leaders: unknown (no node answers restatectl)")
        else:
            led = [(str(p), leaders.get(p, "none")) for p in range(cluster.settings.partitions)]
            progress.table("partition leaders (restatectl)", ("partition", "leader"), led)
    last = stack.state.last_invocation()
    if last:
        progress.info(f"last invocation: {last}")


def start_restate(stack: Stack) -> None:
    with progress.activity(f"starting restate-server ({stack.server.name})"):
        where = stack.server.start()
    progress.ok(f"restate-server {where}: ingress {stack.rt.ingress_url}, admin {stack.rt.admin_url}")


def stop_restate(stack: Stack, purge: bool = False) -> None:
    if stack.server.stop(purge=purge):
        progress.ok("restate-server stopped" + (" and its data deleted" if purge else ""))
    else:
        progress.info("restate-server was not running")


def kill_restate(stack: Stack, sig: signal.Signals) -> None:
    killed = stack.server.kill(sig)
    if killed is None:
        progress.info("restate-server: not running")
    else:
        progress.ok(f"restate-server: {killed}")


def restate_logs(stack: Stack, follow: bool = False, tail: int = 50) -> None:
    for line in stack.server.log_lines(tail):
        progress.raw(line)
    if follow:
        for line in stack.server.follow_logs():
            progress.raw(line)


def component_log(component: ManagedProcess, tail: int) -> None:
    if not component.log_file.exists():
        raise DrillError(f"no log yet at {component.log_file}")
    for line in component.logs(tail):
        progress.raw(line)


def start_llm(stack: Stack) -> None:
    if not stack.model.enabled:
        progress.info(f"the LLM endpoint is remote ({stack.config.writer_model.base_url}): nothing to start")
        return
    with progress.activity("starting the local model"):
        record = stack.model.start()
    progress.ok(f"local model pid {record.pid}: {stack.model.url}/v1 as {stack.config.local_model.alias!r}")


def stop_llm(stack: Stack) -> None:
    if not stack.model.enabled:
        progress.info("the LLM endpoint is remote: nothing to stop")
        return
    _report_stop(stack.model.stop(), stack.model.name)


def start_writer(stack: Stack) -> None:
    """Start the service under drill: the shipped writer, or the configured target's command."""
    service = stack.service
    if stack.target is not None:
        stack.target.require_startable("start it")
    with progress.activity(f"starting the {service.what}"):
        record = service.start()
    progress.ok(f"{service.what} pid {record.pid}: {service.url} (log {record.log_file})")


def kill(stack: Stack, sig: signal.Signals) -> Stopped | None:
    if stack.target is not None:
        stack.target.require_startable("kill it")
    stopped = stack.service.kill(sig)
    _report_stop(stopped, stack.service.name)
    return stopped


def _report_stop(stopped: Stopped | None, name: str) -> None:
    if stopped is None:
        progress.info(f"{name}: not running")
        return
    how = " (it ignored SIGTERM past its grace period: escalated to SIGKILL)" if stopped.escalated else ""
    progress.ok(
        f"{name}: pid {stopped.record.pid} verified, sent {stopped.signal}, gone after {stopped.seconds:.2f} s{how}"
    )


def restate_answers(stack: Stack) -> None:
    """The HOW-TO's steps talk to a running Restate: say so at once, naming the config and the fix, instead of
    a connection error from the CLI or the HTTP client."""
    stack.check_reachable()
    if not stack.server.healthy():
        config = stack.config
        raise ComponentError(
            f"Restate does not answer at {config.runtime.admin_url} (admin) / {config.runtime.ingress_url} "
            f"(ingress), as configured in {config.source}: start the stack with `inv up --config {config.source}`"
        )


def register(stack: Stack, use_http11: bool | None = None, force: bool = True) -> None:
    restate_answers(stack)
    progress.step(f"registering {stack.deployment_uri()} with {stack.cli().binary}")
    progress.raw(stack.register(use_http11=use_http11, force=force))
    progress.ok("registered")


def request_body(stack: Stack, prompt: str | None, body_file: str | None, default_prompt: str) -> dict[str, Any]:
    if body_file:
        return read_body(Path(body_file))
    if stack.target is not None:
        if prompt:
            raise ConfigError("--prompt is the shipped writer's; for a configured target pass --body FILE")
        return stack.target.body()
    return howto_body(prompt or default_prompt)


def _address(stack: Stack) -> dict[str, str]:
    target = stack.target
    return (
        {"service": target.service, "handler": target.handler} if target else {"service": SERVICE, "handler": HANDLER}
    )


def call(stack: Stack, prompt: str | None = None, body_file: str | None = None) -> Any:
    restate_answers(stack)
    body = request_body(stack, prompt, body_file, howto_body()["prompt"])
    address = _address(stack)
    where = f"{address['service']}/{address['handler']}"
    with progress.activity(f"POST /{where} (waiting for the result)"):
        try:
            result = stack.ingress.call(body, service=address["service"], handler=address["handler"])
        except HttpError as exc:
            raise DrillError(f"the invocation failed: {exc}") from None
    if isinstance(result, dict) and result.get("output_path"):
        progress.ok(f"report written to {result.get('output_path')}")
    progress.raw(json.dumps(result, indent=2, ensure_ascii=False))
    return result


def send(stack: Stack, prompt: str | None = None, body_file: str | None = None) -> str:
    restate_answers(stack)
    body = request_body(stack, prompt, body_file, RESTART_PROMPT)
    address = _address(stack)
    invocation_id = stack.ingress.send(body, service=address["service"], handler=address["handler"])
    stack.state.remember_invocation(invocation_id)
    progress.ok(f"sent: invocation {invocation_id} (remembered as the last invocation)")
    return invocation_id


def last_or(stack: Stack, invocation_id: str | None) -> str:
    chosen = invocation_id or stack.state.last_invocation()
    if not chosen:
        raise DrillError("no invocation id given and none sent yet (use `inv send` or pass --id)")
    return chosen


def describe(stack: Stack, invocation_id: str | None = None) -> str:
    restate_answers(stack)
    text = stack.cli().describe(last_or(stack, invocation_id))
    progress.raw(text)
    return text


def list_invocations(stack: Stack, include_completed: bool = False) -> str:
    restate_answers(stack)
    text = stack.cli().list(include_completed=include_completed)
    if re.search(r"\binv_[0-9A-Za-z]+", text) is None:  # the CLI prints nothing at all for none
        progress.info(
            "no invocations" if include_completed else "no invocations in flight (`inv list --all` adds completed ones)"
        )
        return text
    progress.raw(text)
    return text


def resume(stack: Stack, invocation_id: str | None = None) -> None:
    restate_answers(stack)
    chosen = last_or(stack, invocation_id)
    stack.admin.resume(chosen)
    progress.ok(f"resumed {chosen}")


# -- one node of a cluster (runtime.backend: cluster) --------------------------------------------------


def _refuse_node_elsewhere(stack: Stack, number: int, what: str) -> None:
    """A node recorded in another PID namespace (a `scripts/loopback-only --contained` shell): its pid means
    nothing here, so "not running" would be false and a start would collide with it. Said as `inv down` says
    it, nothing signalled."""
    name = f"{PROCESS_NAME}-n{number}"
    seen = stack.procs.observe(name)
    if seen is not None and seen.state == "elsewhere":
        raise ComponentError(
            f"restate node n{number} (pid {seen.record.pid}) runs in another PID namespace (a `scripts/loopback-only "
            f"--contained` shell): its pid cannot be signalled from here. Run `inv restate.{what} --node {number}` "
            "in that shell; nothing was signalled"
        )


def start_node(stack: Stack, number: int) -> None:
    _refuse_node_elsewhere(stack, number, "node-start")
    cluster = stack.cluster
    if not cluster.live_nodes():
        # The other nodes are what it would join: alone it never becomes healthy (a 30 s wait, a log tail).
        raise ComponentError(
            f"the cluster is down (no node of {stack.config.source} runs): start it with "
            f"`inv up --config {stack.config.source}`; nothing was started"
        )
    with progress.activity(f"starting restate node n{number}"):
        where = cluster.node_start(number)
    leaders = cluster.leaders()
    progress.ok(f"restate node {where} healthy; every partition has a leader: {_leaders_text(leaders)}")


def stop_node(stack: Stack, number: int) -> None:
    _refuse_node_elsewhere(stack, number, "node-stop")
    stopped = stack.cluster.node_stop(number)
    if stopped is None:
        progress.info(f"restate node n{number}: not running")
    else:
        progress.ok(f"restate node n{number}: pid {stopped.record.pid} stopped after {stopped.seconds:.2f} s")


def kill_node(stack: Stack, number: int, sig: signal.Signals) -> None:
    _refuse_node_elsewhere(stack, number, "node-kill")
    cluster = stack.cluster
    if sig == signal.SIGSTOP:
        record = cluster.node_freeze(number)
        if record is None:
            progress.info(f"restate node n{number}: not running")
        else:
            how = cluster.freeze_how
            progress.ok(f"restate node n{number}: pid {record.pid} frozen ({how}); `inv restate.node-start` thaws it")
        return
    stopped = cluster.node_kill(number, sig)
    if stopped is None:
        progress.info(f"restate node n{number}: not running")
    else:
        progress.ok(f"restate node n{number}: pid {stopped.record.pid} gone {stopped.seconds:.2f} s after {sig.name}")


def _leaders_text(leaders: dict[int, str]) -> str:
    return ", ".join(f"p{p} {node}" for p, node in leaders.items())


def target_check(stack: Stack, keep_up: bool = False) -> None:
    from drillkit import target_check as checker

    result = checker.check(stack, keep_up)
    progress.ok(
        f"{stack.service.what}: invocation {result.invocation_id} completed with success in {result.seconds:.1f} s"
    )
    progress.table(
        "the journal's Run steps",
        ("point", "journal index", "name", "result", "seconds", "model requests"),
        [(s["point"], s["index"], s["name"], s["result"], s["seconds"], s["model_requests"]) for s in result.shape],
    )
    progress.info(f"{len(result.shape)} Runs, {result.model_requests} model requests (seen at the LLM tap)")
    progress.table("what each drill will use", ("drill", "kill point or fault"), result.kill_points)


def evaluate(
    stack: Stack, runs: int, faults: list[str] | None, seed: int, concurrency: int, report_dir: str | None
) -> dict[str, Any] | None:
    """`inv evaluate`: the result (Go or NoGo, both answers), or None when too many runs could not be judged."""
    from drillkit import evaluation

    result, _, conclusive = evaluation.evaluate(
        stack, runs, faults or list(evaluation.FAULTS), seed, concurrency, Path(report_dir) if report_dir else None
    )
    progress.ok(f"decision: {result['decision']}")
    return result if conclusive else None
