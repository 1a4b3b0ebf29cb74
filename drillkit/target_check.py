"""`inv target.check`: does a configured target start, register and answer, and what will the drills see?

It brings the stack up with the target (the server, the local model, the target's command), puts the
LLM tap in front of the model, sends the target's body once, waits for the result, and reads Restate's
journal: each Run (its name, result, time) and the model requests made inside it. From that shape it
says what each drill will use as its kill point, or why a drill does not apply. Every failure is one
clear message: the target does not start (its log), does not register, exposes another service than
`target.service`, refuses the body, or ends with a failure.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from drillkit import progress
from drillkit.components.llm_tap import LlmTap
from drillkit.components.target import TargetService, new_nonce
from drillkit.drills import any_target
from drillkit.errors import DrillError
from drillkit.evidence import journal_steps, run_point
from drillkit.stack import Stack
from drillkit.waits import poll

COMPLETION_TIMEOUT_S = 600.0  # one invocation on the local model takes seconds; a busy machine, minutes


@dataclass
class CheckResult:
    invocation_id: str
    seconds: float
    output: Any
    shape: list[dict[str, Any]] = field(default_factory=list)
    model_requests: int = 0
    kill_points: list[tuple[str, str]] = field(default_factory=list)
    """(drill, what it will use or why it does not apply)"""


def check(stack: Stack, keep_up: bool = False) -> CheckResult:
    target = any_target.target_of(stack.handles())
    started = not stack.is_up()
    if started:
        with progress.activity(f"bringing up restate-server, the model and {target.what}"):
            stack.up()
    try:
        expose(stack, target)
        return run_once(stack, target)
    finally:
        if started and not keep_up:
            stack.down()


def expose(stack: Stack, target: TargetService) -> None:
    services = stack.admin.services()
    if target.service not in services:
        raise DrillError(
            f"{stack.config.source}: target.service {target.service!r} is not registered; Restate lists "
            f"{', '.join(services) or 'no service'} (the deployment at {stack.deployment_uri()} serves another name?)"
        )


def run_once(stack: Stack, target: TargetService) -> CheckResult:
    tap = None
    if target.startable and target.spec.llm_base_url_env:
        upstream = urlsplit(stack.config.writer_model.base_url)
        tap = LlmTap(
            stack.procs, stack.state.log_file("llm-tap"), stack.state.root / "llm-tap" / f"{uuid.uuid4().hex}.jsonl"
        )
        tap.start(f"{upstream.scheme}://{upstream.netloc}")
        target.restart(llm_base_url=f"{tap.url}{upstream.path}")
    try:
        nonce = new_nonce()
        began = time.monotonic()
        invocation_id = stack.ingress.send(target.body(nonce), service=target.service, handler=target.handler)
        stack.state.remember_invocation(invocation_id)
        progress.info(f"sent {target.service}/{target.handler} -> {invocation_id}")
        with progress.activity("waiting for the invocation to complete"):
            row = poll(
                lambda: stack.admin.invocation(invocation_id) or {},
                lambda r: r.get("status") == "completed" or (r.get("retry_count") or 0) >= 3,
                f"invocation {invocation_id} to complete",
                COMPLETION_TIMEOUT_S,
                interval_s=0.1,
            )
        seconds = time.monotonic() - began
        if row.get("status") != "completed" or row.get("completion_result") != "success":
            stack.admin.kill_invocation(invocation_id)
            raise DrillError(
                f"{target.what} did not complete the invocation with success: status={row.get('status')}, "
                f"retry_count={row.get('retry_count')}, failure="
                f"{str(row.get('completion_failure') or row.get('last_failure') or '')[:400]!r} "
                f"(the invocation was killed; log {target.log_file})"
            )
        steps = journal_steps(stack.admin.journal(invocation_id))
        requests = [r for r in tap.requests() if nonce in r.nonces] if tap else []
        result = CheckResult(invocation_id, seconds, stack.ingress.output(invocation_id))
        result.shape = any_target.journal_shape(steps, requests)
        result.model_requests = len(requests)
        result.kill_points = kill_points(stack, target, result.shape, bool(tap), target.tells_invocations_apart())
        return result
    finally:
        if tap is not None:
            tap.stop()
            target.restart()


def kill_points(
    stack: Stack, target: TargetService, shape: list[dict[str, Any]], tapped: bool, nonce: bool
) -> list[tuple[str, str]]:
    """What each drill will act on, read off the journal's shape."""
    default = run_point(any_target.DEFAULT_AT)
    points = []
    if len(shape) >= default:
        run = shape[default - 1]
        cut = f"{any_target.DEFAULT_AT}: {run['name']} cut in flight, {shape[0]['name']} finished before"
    else:
        cut = f"only {len(shape)} Run(s): pass --at run:1 (nothing finished before the fault to protect)"
    kill = cut if target.startable else "not applicable: target.uri (the tool cannot kill what it did not start)"
    points.append(("crash", kill))
    points.append(("server-crash", cut))
    if not tapped:
        points.append(("timeout", "not applicable: no target.llm_base_url_env (the drill cannot break its model)"))
    else:
        first_llm = next((s for s in shape if s["model_requests"]), None)
        where = f"{first_llm['point']} ({first_llm['name']})" if first_llm else "no Run made a model request"
        points.append(("timeout", f"down and hang: the model is away when {where} asks it"))
    fault = target.spec.tool_fault
    if fault is None:
        points.append(("tool-error", "not applicable: no target.tool_fault hook"))
    elif not any(s["name"] == fault.step for s in shape):
        points.append(("tool-error", f"target.tool_fault.step {fault.step!r} is not a Run of this journal"))
    else:
        points.append(("tool-error", f"{fault.env}=N makes {fault.step} fail N times"))
    if not nonce:
        points.append(("(tap)", "the body has no {{nonce}}: many invocations cannot be told apart at the model"))
    return points
