"""drill.stuck's modes without a stack: the flag, and the arithmetic that makes `step-hang` a hang Restate
must end (each trickled piece comes before the writer's read timeout; the whole outlasts Restate's
inactivity and abort timeouts many times over)."""

from __future__ import annotations

import pytest

from drillkit import catalog, flags
from drillkit.components.tap_faults import FaultPlan, trickle
from drillkit.drills import stuck


def test_the_default_mode_is_the_freeze_and_step_hang_is_the_other():
    assert catalog.STUCK.defaults["mode"] == "freeze"
    assert catalog.stuck().parameters == {"mode": "freeze"}
    spec = catalog.DRILLS["stuck"].spec({"mode": "step-hang", "deadline": "90"})
    assert spec.parameters == {"mode": "step-hang", "deadline_s": 90.0}
    assert catalog.label(spec) == "stuck-step-hang"


def test_an_unknown_mode_is_refused_naming_the_flag_and_the_choices():
    with pytest.raises(flags.FlagError, match=r"--mode.*'sleep'.*freeze.*step-hang"):
        catalog.DRILLS["stuck"].spec({"mode": "sleep"})


def test_the_hung_step_never_trips_the_writers_own_timeout_but_outlasts_restates():
    plan = FaultPlan("slow", burst=1, steps=(stuck.HUNG_STEP,), slow_s=stuck.HANG_S)
    answer = b"x" * 400  # a stub completion is a few hundred bytes: twenty pieces
    parts, pause = trickle(answer, plan.slow_s)
    assert len(parts) == 20
    assert pause < stuck.MODEL_TIMEOUT_S  # every read gets a piece before the client's timeout
    assert stuck.HANG_S > 3 * (stuck.INACTIVITY_S + stuck.ABORT_S)  # only Restate's abort can end it
