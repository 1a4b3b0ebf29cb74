"""The local model server alone."""

from __future__ import annotations

from invoke.collection import Collection

from drillkit import operations
from tasks._edge import CONFIG_HELP, stack_for, task


@task(name="start", help={"config": CONFIG_HELP})
def start(c, config=None):
    """Serve the local model (llama.cpp); says so and does nothing for a remote endpoint."""
    with stack_for(c, config) as stack:
        operations.start_llm(stack)


@task(name="stop", help={"config": CONFIG_HELP})
def stop(c, config=None):
    """Stop the local model server."""
    with stack_for(c, config) as stack:
        operations.stop_llm(stack)


ns = Collection("llm", start, stop)
