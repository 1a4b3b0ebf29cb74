"""A configured target (a durable service other than the shipped writer)."""

from __future__ import annotations

from invoke.collection import Collection

from drillkit import operations
from tasks._edge import CONFIG_HELP, stack_for, task


@task(
    name="check",
    help={
        "config": CONFIG_HELP + "; it must have a `target` section",
        "keep_up": "leave the stack running afterwards when the check had to start it (default: stop it)",
    },
)
def check(c, config=None, keep_up=False):
    """Start the configured target, register it, send one invocation, and show its journal's shape."""
    with stack_for(c, config) as stack:
        operations.target_check(stack, keep_up)


ns = Collection("target", check)
