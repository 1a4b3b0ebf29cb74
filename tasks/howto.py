"""The HOW-TO's manual steps, one task each: register, call, send, kill, describe, list, resume."""

from __future__ import annotations

from drillkit import flags, operations
from tasks._edge import CONFIG_HELP, stack_for, task


@task(
    help={
        "config": CONFIG_HELP,
        "http1_1": "pass --use-http1.1; it only turns HTTP/1.1 on, off leaves it to the config "
        "(default: runtime.use_http11 from the config)",
        "force": "pass --force to replace an existing deployment at the same URI (default on)",
    }
)
def register(c, config=None, http1_1=False, force=True):
    """Register the writer with Restate using the downloaded `restate` CLI."""
    with stack_for(c, config) as stack:
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
    with stack_for(c, config) as stack:
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
    with stack_for(c, config) as stack:
        operations.send(stack, prompt=prompt, body_file=body)


@task(help={"config": CONFIG_HELP, "signal": "TERM (graceful, default) or KILL (the HOW-TO's kill -9 crash)"})
def kill(c, config=None, signal="TERM"):
    """Kill the writer's recorded PID (verified first) and wait until it is gone."""
    with stack_for(c, config) as stack:
        operations.kill(stack, flags.signal_named("signal", signal))


@task(help={"config": CONFIG_HELP, "id": "invocation id (default: the last one sent)"})
def describe(c, config=None, id=None):
    """Describe an invocation with the CLI (`restate invocations describe`)."""
    with stack_for(c, config) as stack:
        operations.describe(stack, id)


@task(name="list", help={"config": CONFIG_HELP, "all": "include completed invocations"})
def list_invocations(c, config=None, all=False):
    """List invocations with the CLI (`restate invocations list`)."""
    with stack_for(c, config) as stack:
        operations.list_invocations(stack, include_completed=all)


@task(help={"config": CONFIG_HELP, "id": "invocation id (default: the last one sent)"})
def resume(c, config=None, id=None):
    """Resume a backing-off or paused invocation now instead of at its next retry."""
    with stack_for(c, config) as stack:
        operations.resume(stack, id)
