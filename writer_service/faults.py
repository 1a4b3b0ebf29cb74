"""Fault injection for drills, off by default (the HOW-TO's "flag d'injection").

Attempt numbers come from the execution ledger, so "the first N attempts" and "the first attempt"
keep their meaning across a process restart.

A request may ask for faults only when the config allows it and it carries the stack's key (the key
file is made by the drill runtime, readable by its owner only): otherwise anyone who can reach Restate's
ingress could crash the writer.
"""

from __future__ import annotations

import hmac
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from writer_service.config import FAULT_KEY_FILE_ENV, FAULT_KEY_HEADER, Faults

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


def load_fault_key(environ: Mapping[str, str] | None = None) -> str | None:
    """The stack's fault key, from the file `RESTATE_WRITER_FAULT_KEY_FILE` names; None (request faults
    always refused) when the variable is unset or the file cannot be read. Never logged."""
    env = os.environ if environ is None else environ
    name = env.get(FAULT_KEY_FILE_ENV)
    if not name:
        log.info("no %s: request fault injection will be refused", FAULT_KEY_FILE_ENV)
        return None
    try:
        key = Path(name).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("%s=%s cannot be read (%s): request faults will be refused", FAULT_KEY_FILE_ENV, name, exc)
        return None
    if not key:
        log.warning("%s=%s is empty: request faults will be refused", FAULT_KEY_FILE_ENV, name)
        return None
    return key


def fault_key_matches(key: str | None, headers: Mapping[str, str]) -> bool:
    """Does the request carry the key in `x-drill-fault-key`? Constant-time, so the answer's timing
    tells nothing about how much of a guess was right."""
    if key is None:
        return False
    given = next((v for k, v in headers.items() if k.lower() == FAULT_KEY_HEADER), None)
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), key.encode("utf-8", "surrogatepass"))
