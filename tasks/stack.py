"""The whole stack at once: fetch what it needs, start it, stop it, show it."""

from __future__ import annotations

from drillkit import operations
from tasks._edge import CONFIG_HELP, stack_for, task


@task(help={"config": CONFIG_HELP})
def setup(c, config=None):
    """Fetch the pinned restate-server and restate CLI binaries and the local model (idempotent)."""
    with stack_for(c, config) as stack:
        operations.setup(stack)


@task(
    help={
        "config": CONFIG_HELP,
        "http1_1": "register the writer over HTTP/1.1 (--use-http1.1), as the HOW-TO does; it only "
        "turns HTTP/1.1 on, off leaves it to the config (default: runtime.use_http11 from the config)",
        "verbose": "show the restate CLI's whole registration text (default: one line)",
    }
)
def up(c, config=None, http1_1=False, verbose=False):
    """Check every prerequisite, then start Restate, the local model and the writer, and register it if new."""
    with stack_for(c, config) as stack:
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
    with stack_for(c, config) as stack:
        operations.down(stack, purge=purge, forget_mismatched=forget_mismatched)


@task(help={"config": CONFIG_HELP})
def status(c, config=None):
    """Show a table of every component: process or container, URL, health."""
    with stack_for(c, config) as stack:
        operations.status(stack)
