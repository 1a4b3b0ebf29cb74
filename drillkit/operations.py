"""The HOW-TO's steps as functions that do the step, check it worked and say so.

`tasks.py` calls these one for one. Each is a `Stack` method plus what a person at a terminal needs
(progress, a table, the CLI's text); the drills call the same `Stack` methods and keep their own record
instead of printing. Failures raise `DrillError`.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from drillkit import console, docker_engine
from drillkit.binaries import SERVER
from drillkit.errors import DrillError, HttpError
from drillkit.howto import RESTART_PROMPT, fault_headers, howto_body, read_body
from drillkit.procs import ProcessRecord, Stopped
from drillkit.restate_server import docker_client
from drillkit.stack import LLM, WRITER, Stack


def setup(stack: Stack) -> None:
    console.step(f"setup: Restate {stack.rt.restate_version} binaries and the local model into {stack.state.root}")
    rows = stack.setup()
    console.table("setup", ("item", "path", "source"), rows)


def up(stack: Stack, use_http11: bool | None = None) -> None:
    console.step(f"up: {stack.config.source} ({stack.rt.backend} backend)")
    timings = stack.up(use_http11=use_http11)
    phases = ", ".join(f"{k} {v:.2f} s" for k, v in timings.phases.items())
    console.ok(f"all up ({phases})")


def down(stack: Stack, purge: bool = False) -> None:
    with console.activity("stopping what this tool started"):
        stopped = stack.down(purge=purge)
    if stopped:
        console.ok("stopped: " + ", ".join(stopped))
    else:
        console.info("nothing of ours was running")
    if purge:
        console.ok(f"deleted Restate's data ({stack.state.restate_data}) and the ledger ({stack.config.ledger.path})")


def status(stack: Stack) -> None:
    console.table("components", ("component", "process", "URL", "health"), stack.status())
    last = stack.state.last_invocation()
    if last:
        console.info(f"last invocation: {last}")


def start_restate(stack: Stack) -> None:
    with console.activity(f"starting restate-server ({stack.backend.name})"):
        where = stack.start_restate()
    console.ok(f"restate-server {where}: ingress {stack.rt.ingress_url}, admin {stack.rt.admin_url}")


def stop_restate(stack: Stack, purge: bool = False) -> None:
    if stack.stop_restate(purge=purge):
        console.ok("restate-server stopped" + (" and its data deleted" if purge else ""))
    else:
        console.info("restate-server was not running")


def restate_logs(stack: Stack, follow: bool = False, tail: int = 50) -> None:
    for line in stack.backend.log_lines(tail):
        console.raw(line)
    if follow:
        for line in stack.backend.follow_logs():
            console.raw(line)


def component_log(stack: Stack, component: str, tail: int) -> None:
    path = stack.state.log_file(component)
    if not path.exists():
        raise DrillError(f"no log yet at {path}")
    for line in path.read_text(errors="replace").splitlines()[-tail:]:
        console.raw(line)


def start_llm(stack: Stack) -> None:
    if not stack.config.local_model.enabled:
        console.info(f"the LLM endpoint is remote ({stack.config.writer_model.base_url}): nothing to start")
        return
    with console.activity("starting the local model"):
        where = stack.start_llm()
    console.ok(f"local model {where}: {stack.llm_url()}/v1 as {stack.config.local_model.alias!r}")


def stop_llm(stack: Stack) -> None:
    if not stack.config.local_model.enabled:
        console.info("the LLM endpoint is remote: nothing to stop")
        return
    _report_stop(stack.stop_llm(), LLM)


def start_writer(stack: Stack) -> ProcessRecord:
    with console.activity("starting the writer service"):
        record = stack.start_writer()
    console.ok(f"writer service pid {record.pid}: {stack.writer_url()} (log {record.log_file})")
    return record


def kill(stack: Stack, sig: signal.Signals) -> Stopped | None:
    stopped = stack.kill_writer(sig)
    _report_stop(stopped, WRITER)
    return stopped


def _report_stop(stopped: Stopped | None, name: str) -> None:
    if stopped is None:
        console.info(f"{name}: not running")
        return
    how = " (it ignored SIGTERM past its grace period: escalated to SIGKILL)" if stopped.escalated else ""
    console.ok(
        f"{name}: pid {stopped.record.pid} verified, sent {stopped.signal}, gone after {stopped.seconds:.2f} s{how}"
    )


def register(stack: Stack, use_http11: bool | None = None, force: bool = True) -> None:
    console.step(f"registering {stack.deployment_uri()} with {stack.cli().binary}")
    console.raw(stack.register(use_http11=use_http11, force=force))
    console.ok("registered")


def request_body(prompt: str | None, body_file: str | None, default_prompt: str) -> dict[str, Any]:
    if body_file:
        return read_body(Path(body_file))
    return howto_body(prompt or default_prompt)


def call(stack: Stack, prompt: str | None = None, body_file: str | None = None) -> Any:
    body = request_body(prompt, body_file, howto_body()["prompt"])
    with console.activity("POST /WriterAgentRestate/run (waiting for the report)"):
        try:
            result = stack.ingress.call(body, headers=fault_headers(stack.state, body))
        except HttpError as exc:
            raise DrillError(f"the invocation failed: {exc}") from None
    console.ok(f"report written to {result.get('output_path')}")
    console.raw(json.dumps(result, indent=2, ensure_ascii=False))
    return result


def send(stack: Stack, prompt: str | None = None, body_file: str | None = None) -> str:
    body = request_body(prompt, body_file, RESTART_PROMPT)
    invocation_id = stack.ingress.send(body, headers=fault_headers(stack.state, body))
    stack.state.remember_invocation(invocation_id)
    console.ok(f"sent: invocation {invocation_id} (remembered as the last invocation)")
    return invocation_id


def last_or(stack: Stack, invocation_id: str | None) -> str:
    chosen = invocation_id or stack.state.last_invocation()
    if not chosen:
        raise DrillError("no invocation id given and none sent yet (use `inv send` or pass --id)")
    return chosen


def describe(stack: Stack, invocation_id: str | None = None) -> str:
    text = stack.cli().describe(last_or(stack, invocation_id))
    console.raw(text)
    return text


def list_invocations(stack: Stack, include_completed: bool = False) -> str:
    text = stack.cli().list(include_completed=include_completed)
    console.raw(text)
    return text


def resume(stack: Stack, invocation_id: str | None = None) -> None:
    chosen = last_or(stack, invocation_id)
    stack.admin.resume(chosen)
    console.ok(f"resumed {chosen}")


def drill_exit_code(verdicts: list[str]) -> int:
    """0 when every drill passed; 1 otherwise (FAIL or ERROR)."""
    return 0 if verdicts and all(v == "PASS" for v in verdicts) else 1


def install_engine() -> None:
    docker_engine.install_engine()
    console.ok("dockerd is installed")


def start_engine(stack: Stack, build: bool = True) -> str:
    """Start the private engine, point this process's docker clients at it, build the image if asked."""
    url = docker_engine.start_engine(stack.state.root, stack.procs, stack.state.log_file("dockerd"))
    os.environ["DOCKER_HOST"] = url
    record = stack.procs.live(docker_engine.PROCESS_NAME)
    console.ok(f"dockerd pid {record.pid if record else '?'} answers at {url}")
    console.info(f"use it with: export DOCKER_HOST={url}")
    if build:
        ensure_image(stack)
    return url


def ensure_image(stack: Stack) -> None:
    import docker.errors

    client = docker_client()
    image = stack.rt.image()
    try:
        client.images.get(image)
        console.ok(f"image {image} is present")
    except docker.errors.ImageNotFound:
        build_image(stack, client)


def build_image(stack: Stack, client: Any = None) -> None:
    found = stack.binaries.find(SERVER)
    if found is None:
        raise DrillError("restate-server is not installed: run `inv setup` first")
    image = stack.rt.image()
    docker_engine.build_image(client or docker_client(), found[0], image)
    console.ok(f"built {image} from {found[0]}")


def stop_engine(stack: Stack) -> None:
    if docker_engine.stop_engine(stack.procs):
        console.ok("dockerd stopped")
    else:
        console.info("no private dockerd of ours was running")
