"""Chaos Toolkit actions: what an experiment does to the writer and Restate (drillkit's own actions)."""

from __future__ import annotations

import signal as signals

from drillkit import catalog
from drillkit.chaos._stack import chosen_invocation, stack_for
from drillkit.errors import DrillError
from drillkit.howto import RESTART_PROMPT, howto_body

__all__ = [
    "kill_server",
    "kill_writer",
    "resume_invocation",
    "run_drill",
    "send_invocation",
    "start_server",
    "start_writer",
]


def _signal(name: str) -> signals.Signals:
    try:
        return signals.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    except KeyError:
        raise DrillError(f"unknown signal {name!r} (KILL, TERM, ...)") from None


def send_invocation(config_path: str, prompt: str = RESTART_PROMPT, tool_failures: int = 0) -> str:
    """Send the HOW-TO's asynchronous invocation (`/WriterAgentRestate/run/send`); returns its id, which
    is remembered as the last invocation. `tool_failures` > 0 first restarts the writer (or the configured
    target) with its tool failing its first N attempts; the rollback `start_writer` puts it back."""
    with stack_for(config_path) as stack:
        target = stack.target
        if target is not None:  # a configured target: its own body; its tool fault set at its start
            if tool_failures:
                target.restart(tool_failures=tool_failures)
            invocation_id = stack.ingress.send(target.body(), service=target.service, handler=target.handler)
            stack.state.remember_invocation(invocation_id)
            return invocation_id
        if tool_failures:  # out of band, as drill.tool-error does: never a fault (or a key) in the request
            faulty = {"faults.tool_error.fail_first": tool_failures}
            stack.writer.restart(stack.writer.derived_config("chaos-tool-error", faulty))
        invocation_id = stack.ingress.send(howto_body(prompt))
        stack.state.remember_invocation(invocation_id)
        return invocation_id


def kill_writer(config_path: str, signal: str = "KILL") -> dict[str, object]:
    """Signal the writer's (or the configured target's) recorded pid, verified first; wait until it is gone."""
    with stack_for(config_path) as stack:
        if stack.target is not None:
            stack.target.require_startable("kill it")
        stopped = stack.service.kill(_signal(signal))
        if stopped is None:
            raise DrillError(f"the {stack.service.what} was not running")
        return {"pid": stopped.record.pid, "signal": _signal(signal).name, "gone_after_s": round(stopped.seconds, 3)}


def start_writer(config_path: str) -> int:
    """Start the writer or the configured target (reusing a running one) and wait for its health check;
    returns its pid."""
    with stack_for(config_path) as stack:
        if stack.target is not None:
            stack.target.require_startable("start it")
        return stack.service.start().pid


def kill_server(config_path: str, signal: str = "KILL") -> str:
    """Signal restate-server (its verified pid, or the container)."""
    with stack_for(config_path) as stack:
        killed = stack.server.kill(_signal(signal))
        if killed is None:
            raise DrillError("restate-server was not running")
        return killed


def start_server(config_path: str) -> str:
    """Start restate-server (its data kept; reusing a running one) and wait until it is ready."""
    with stack_for(config_path) as stack:
        return stack.server.start()


def resume_invocation(config_path: str, invocation_id: str = "") -> str:
    """Retry a backing-off or paused invocation now (default: the last one sent)."""
    with stack_for(config_path) as stack:
        chosen = chosen_invocation(stack, invocation_id)
        stack.admin.resume(chosen)
        return chosen


def run_drill(config_path: str, drill: str, mode: str = "", deadline_s: float = 0) -> dict[str, object]:
    """Run a whole drill by name (`stuck`, `upgrade`, ...; `mode` for its --mode, `deadline_s` > 0 for its
    --deadline) on the running stack, its cleanups and reports included, as `inv drill.<name>` does. Its
    invocation becomes the last one sent, so `invocation_completed_with_success` then reads Restate's own
    row for it; `last_drill_passed` reads the verdict from its report. Returns the verdict, its reasons
    and the report dir; a verdict other than PASS is not raised: the steady state judges it."""
    declared = catalog.DRILLS.get(drill)
    if declared is None:
        raise DrillError(f"unknown drill {drill!r} (known: {', '.join(sorted(catalog.DRILLS))})")
    given: dict[str, object] = {"deadline": deadline_s or None}
    if mode:
        given["mode"] = mode
    spec = declared.spec(given)
    with stack_for(config_path) as stack:
        record, directory = catalog.run(stack, spec, keep_up=True)
        if record.invocation_id:
            stack.state.remember_invocation(record.invocation_id)
        return {"drill": drill, "verdict": record.verdict, "reasons": record.reasons(), "reports": str(directory)}
