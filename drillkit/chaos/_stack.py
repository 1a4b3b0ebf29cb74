"""One stack per activity, built from the experiment's config path and closed after it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from drillkit import config as drill_config
from drillkit.errors import DrillError
from drillkit.stack import Stack


@contextmanager
def stack_for(config_path: str) -> Iterator[Stack]:
    stack = Stack(drill_config.load(drill_config.config_file(config_path or None)))
    try:
        yield stack
    finally:
        stack.close()


def chosen_invocation(stack: Stack, invocation_id: str) -> str:
    """The given id, else the last one sent (`send_invocation`, `inv send`)."""
    chosen = invocation_id or stack.state.last_invocation()
    if not chosen:
        raise DrillError("no invocation id given and none sent yet (send_invocation first)")
    return chosen
