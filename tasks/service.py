"""The writer service alone."""

from __future__ import annotations

import signal

from invoke.collection import Collection

from drillkit import flags, operations
from tasks._edge import CONFIG_HELP, stack_for, task


@task(name="start", help={"config": CONFIG_HELP})
def start(c, config=None):
    """Start the writer service (scripts/restate_writer_service.py) and wait for its health check."""
    with stack_for(c, config) as stack:
        operations.start_writer(stack)


@task(name="stop", help={"config": CONFIG_HELP})
def stop(c, config=None):
    """Stop the writer service gracefully (SIGTERM, then SIGKILL after the grace period)."""
    with stack_for(c, config) as stack:
        operations.kill(stack, signal.SIGTERM)


@task(name="restart", help={"config": CONFIG_HELP})
def restart(c, config=None):
    """Stop the writer service gracefully and start it again."""
    with stack_for(c, config) as stack:
        operations.kill(stack, signal.SIGTERM)
        operations.start_writer(stack)


@task(name="logs", help={"config": CONFIG_HELP, "tail": "lines to show"})
def logs(c, config=None, tail=50):
    """Show the writer service's log."""
    with stack_for(c, config) as stack:
        operations.component_log(stack.writer, flags.whole("tail", tail, 1))


ns = Collection("service", start, stop, restart, logs)
