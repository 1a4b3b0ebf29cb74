"""The model gate under Restate's timeouts scaled far down (inactivity 2 s, abort 4 s), a gate of 1 and 8
invocations at once on the real model: nginx, in front of the model and not part of this project,
counts exactly one request per LLM step for every invocation, all of them answered, and every invocation
completes; no ledger execution is left open (no process was killed) and no step attempt was cancelled.

Without the bound on the slot wait, the later invocations' steps wait far longer than 6 s inside their
step, Restate aborts them, and their answers are asked for again (more than 5 requests an invocation)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from drillkit import config as drill_config
from drillkit.bench.gate import gate_stack, run_gate_check
from drillkit.stack import Stack
from tests.integration.conftest import make_config

INVOCATIONS = 8


@pytest.mark.skipif(
    shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
    reason="nginx (the independent proxy) is not installed: apt-get install -y nginx (scripts/bootstrap.sh does)",
)
def test_gate_of_one_under_two_and_four_second_timeouts_wastes_no_model_request(tmp_path, project_state):
    base = Stack(drill_config.load(make_config(tmp_path, project_state)))
    try:
        with gate_stack(base) as (stack, proxy):
            assert stack.config.writer_model.max_slot_wait_s == 1.0  # 2 + 4 - 4 (model) - 1 (slack)
            result = run_gate_check(stack, proxy, INVOCATIONS, timeout_s=240)
    finally:
        base.close()
    print(result)
    assert result.succeeded == INVOCATIONS, result
    assert result.requests_per_invocation and all(
        n == result.llm_steps for n in result.requests_per_invocation.values()
    ), result.requests_per_invocation
    assert result.proxy_statuses == {"200": INVOCATIONS * result.llm_steps}, result.proxy_statuses
    assert result.executions_open == 0, result
    assert result.cancelled == 0, result
    # The scenario must have pressed on the gate, or it proved nothing: with 40 calls through one slot,
    # later steps cannot all have found it free within 2 s.
    assert result.gave_up_waiting > 0, result
