"""Actions: what a drill does to the system, each a step of the HOW-TO, each written into the record.

send, kill the writer, restart it, kill the Restate server, start it again, stop and start the model,
resume. An action that injects the drill's fault marks it (`drill.fault_injected`): a wait that runs out
before that point is the environment's failure (INCONCLUSIVE), after it the system's (FAIL). Every
action that takes something down registers the cleanup that brings it back, on every path.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from drillkit.components.llm_tap import LlmTap
from drillkit.components.stub_llm import StubLlm
from drillkit.errors import DrillError, HttpError
from drillkit.howto import RESTART_PROMPT, howto_body
from drillkit.kit.frame import Drill
from drillkit.procs import ProcessRecord, Stopped


def send(drill: Drill, body: dict[str, Any], idempotency_key: str | None = None) -> str:
    """§3.1 `curl .../WriterAgentRestate/run/send`."""
    invocation_id = drill.restate.ingress.send(body, idempotency_key=idempotency_key)
    drill.restate.remember_invocation(invocation_id)
    drill.record.invocation_id = drill.record.invocation_id or invocation_id
    drill.invocations.append(invocation_id)
    drill.record.event("sent", f"POST /WriterAgentRestate/run/send -> {invocation_id}")
    return invocation_id


@dataclass(kw_only=True)
class Batch:
    """Invocations sent together, each with its own idempotency key (so each can be sent again)."""

    keys: dict[str, str] = field(default_factory=dict)
    """invocation id -> idempotency key"""
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)


def send_batch(drill: Drill, batch: Batch, n: int, prefix: str) -> None:
    """N invocations of the HOW-TO's restart body, keyed `<prefix>-<run>-<i>`: a fresh key space per run,
    so an earlier run's keys never dedupe this one."""
    run = uuid.uuid4().hex[:8]
    for i in range(n):
        key = f"{prefix}-{run}-{i}"
        body = howto_body(f"{RESTART_PROMPT} ({i})")
        invocation_id = drill.restate.ingress.send(body, idempotency_key=key)
        drill.invocations.append(invocation_id)
        batch.keys[invocation_id] = key
        batch.bodies[invocation_id] = body
    drill.record.invocation_id = drill.invocations[0]
    drill.record.event("sent", f"{n} invocations with idempotency keys {prefix}-{run}-0..{n - 1}")


def running_writer(drill: Drill) -> ProcessRecord:
    writer = drill.writer.live()
    if writer is None:
        raise DrillError("the writer service is not running: nothing to crash (`inv service.start`)")
    drill.record.event("writer running", f"pid {writer.pid}")
    return writer


def kill_writer(drill: Drill, writer: ProcessRecord, sig: signal.Signals) -> Stopped:
    """§3.2 `kill <PID_WRITER>`: exactly the process read before (verified again), named in the report."""
    drill.on_cleanup("writer service running", drill.writer.start)
    return kill_recorded(drill, "the writer", writer, sig, drill.writer.kill_record)


def freeze_writer(drill: Drill, writer: ProcessRecord) -> None:
    """SIGSTOP to the writer read before (verified again): alive, its sockets open, answering nothing.
    Thawed on every path."""
    drill.on_cleanup("writer thawed", lambda: thaw_writer(drill, quiet=True))
    drill.fault_injected = True
    record = drill.writer.freeze()
    if record is None or record.pid != writer.pid:
        raise DrillError(f"the writer (pid {writer.pid}) was not running when the drill came to freeze it")
    drill.record.event("frozen", f"SIGSTOP to the writer's recorded pid {record.pid} (alive, silent)")


def thaw_writer(drill: Drill, quiet: bool = False) -> None:
    if not drill.writer.frozen():
        return
    record = drill.writer.thaw()
    if record is not None and not quiet:
        drill.record.event("thawed", f"SIGCONT to the writer's pid {record.pid}")


def kill_recorded(
    drill: Drill,
    what: str,
    record: ProcessRecord,
    sig: signal.Signals,
    kill_record: Callable[[ProcessRecord, signal.Signals], Stopped | None],
) -> Stopped:
    """The fault: `sig` to the process a drill read before (verified again), each step in the record."""
    drill.fault_injected = True
    drill.record.event("signalled", f"{sig.name} to {what}'s recorded pid {record.pid} (verified first)")
    stopped = kill_record(record, sig)
    if stopped is None:
        raise DrillError(f"{what} (pid {record.pid}) was no longer running when the drill killed it")
    drill.record.event(
        "killed",
        f"{sig.name} to pid {stopped.record.pid}; gone after {stopped.seconds:.2f} s"
        + (" (SIGTERM ignored: escalated to SIGKILL)" if stopped.escalated else ""),
    )
    return stopped


def restart_writer(drill: Drill, config_file: str | None = None) -> ProcessRecord:
    """§3.3: start the writer script again (a derived config for drills that break its endpoint)."""
    record = drill.writer.restart(config_file) if config_file else drill.writer.start()
    drill.record.event("restarted", f"writer pid {record.pid} healthy")
    return record


def kill_server(drill: Drill, sig: signal.Signals) -> str:
    """The Restate server dies mid-invocation: its verified pid (native) or `docker kill` (container)."""
    server = drill.restate.server
    drill.on_cleanup("restate-server running", server.start)
    drill.fault_injected = True
    drill.record.event("signalled", f"{sig.name} to restate-server ({server.name})")
    killed = server.kill(sig)
    if killed is None:
        raise DrillError("restate-server was not running when the drill killed it")
    drill.record.event("killed", f"restate-server {killed}")
    return killed


def start_server(drill: Drill) -> float:
    """Start the server again (its data kept); returns when it became ready (monotonic seconds)."""
    where = drill.restate.server.start()
    ready = time.monotonic()
    drill.record.event("server restarted", f"restate-server {where} ready (health and SQL)")
    return ready


def stop_model(drill: Drill) -> None:
    model = drill.model.local
    drill.on_cleanup("local model running", model.start)
    model.stop()
    drill.record.event("endpoint down", f"local model stopped ({model.url} refuses connections)")


def start_model(drill: Drill) -> None:
    drill.model.local.start()
    drill.record.event("endpoint back", f"local model serving at {drill.model.local.url}")


def resume(drill: Drill, invocation_id: str | None = None) -> bool:
    """Retry now rather than at the next backoff; False when Restate had already resumed it by itself."""
    chosen = invocation_id or drill.invocation_id
    try:
        drill.restate.admin.resume(chosen)
    except HttpError as exc:
        drill.record.note(f"resume of {chosen} not needed: {exc}")
        return False
    drill.record.event("resumed", "PATCH /invocations/<id>/resume")
    return True


def hold_model(drill: Drill, stub: StubLlm | None, after: int = 0) -> None:
    """From here to `release_model` no step can finish (but the next `after` answers): every invocation
    underway stays in flight while the drill lands its fault, however slow the machine (a delay alone
    was outrun)."""
    if stub is None:
        return
    drill.on_cleanup("stub LLM released", lambda: release_model(drill, stub, quiet=True))
    waiting = stub.hold(after)
    but = f" but {after} more answer(s)" if after else ""
    drill.record.event("model held", f"the stub answers nothing{but} until the fault has landed ({waiting} waiting)")


def release_model(drill: Drill, stub: StubLlm | None, quiet: bool = False) -> None:
    if stub is None or stub.live() is None:
        return
    waiting = stub.release()
    if not quiet:
        drill.record.event("model released", f"{waiting} held completion(s) answered")


def model_behind_tap(drill: Drill, llm: str, stub_delay_ms: float, name: str, prefix: str = "") -> tuple[LlmTap, str]:
    """The model (`stub`: the stub, answering after `stub_delay_ms`; otherwise the config's own endpoint) <-
    the LLM tap (its record named with `prefix`) <- the writer, restarted on a config derived as `name` that
    names the tap; the writer goes back to its own config at cleanup. Returns the tap and that config (a
    drill that restarts the writer restarts it on that config)."""
    handles = drill.handles
    base_url = handles.config.writer_model.base_url
    overrides: dict[str, Any] = {}
    if llm == "stub":
        stub = handles.model.stub()
        drill.on_cleanup("stub LLM stopped", stub.stop)
        stub.start(stub_delay_ms)
        base_url = f"{stub.url}/v1"
        overrides = {"writer_model.model": "stub", "writer_model.max_concurrency": 64}
        drill.record.event("stub LLM", f"{stub.url}, {stub_delay_ms:g} ms per answer")
    upstream = urlsplit(base_url)
    tap = handles.model.tap(prefix)
    drill.on_cleanup("LLM tap stopped", tap.stop)
    tap.start(f"{upstream.scheme}://{upstream.netloc}")
    overrides["writer_model.base_url"] = f"{tap.url}{upstream.path}"
    config = handles.writer.derived_config(name, overrides)
    drill.on_cleanup("writer on its own config", handles.writer.restart)
    restart_writer(drill, config)
    drill.record.event("tap", f"writer -> {tap.url}{upstream.path} -> {base_url}; record {tap.record}")
    drill.record.evidence["tap_record"] = str(tap.record)
    return tap, config
