"""Fault injection for drills, off by default (the HOW-TO's "flag d'injection").

Attempt numbers come from the execution ledger, so "the first N attempts" and "the first attempt"
keep their meaning across a process restart.

Faults come only from the writer's config (`faults`), never from a request: Restate journals every
request's body and headers where anyone who reaches its admin API can read them back, so nothing in a
request may be able to crash the writer. Drills restart the writer on a derived config instead.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from writer_service.config import Faults

log = logging.getLogger("writer_service.faults")


class InjectedToolError(RuntimeError):
    """The failure `tool_error.fail_first` asks for; retryable like any tool outage."""


def maybe_fail_tool(faults: Faults, step: str, attempt: int) -> None:
    if step == "save_report" and attempt <= faults.tool_error.fail_first:
        raise InjectedToolError(
            f"injected tool error: save_report attempt {attempt} of {faults.tool_error.fail_first} set to fail"
        )


def crash_due(faults: Faults, step: str, attempt: int) -> bool:
    return faults.crash.during_step == step and attempt == 1


def crash_now(step: str) -> None:
    """Die as a SIGKILL would: no cleanup, no graceful shutdown, no response to Restate."""
    log.error("injected crash: SIGKILL to self (pid %d) during step %s", os.getpid(), step)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)
