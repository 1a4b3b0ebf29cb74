"""How long a drill waits: as long as the system keeps moving, scaled by the pace it has shown.

A fixed 120 s is too long on an idle machine and too short on a busy one (LLM steps took 6-30 s with two
CPU hogs beside the drill). So every wait watches progress (a step finished, a status changed, a retry
was counted) and ends only when nothing has moved for `budget_s`: five times the slowest step seen so
far, never under `floor_s` (60 s); before any step has finished, `first_step_s` (the model's first answer).
`--deadline` fixes the budget instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

FLOOR_S = 60.0
FIRST_STEP_S = 120.0
FACTOR = 5.0


@dataclass
class Pace:
    fixed_s: float | None = None
    floor_s: float = FLOOR_S
    first_step_s: float = FIRST_STEP_S
    step_seconds: dict[str, float] = field(default_factory=dict)
    _last_progress: float = field(default_factory=time.monotonic)
    _seen: Any = None
    halted: str | None = None
    """Set by the drill's watchdog when it found the drill stuck: every wait under this pace ends at once."""

    @property
    def budget_s(self) -> float:
        if self.fixed_s is not None:
            return self.fixed_s
        if not self.step_seconds:
            return self.first_step_s
        return max(self.floor_s, FACTOR * max(self.step_seconds.values()))

    def __call__(self) -> bool:
        """Stalled: nothing moved for longer than the budget (the `stalled` of `drillkit.waits.poll`), or the
        watchdog halted the drill."""
        return self.halted is not None or time.monotonic() - self._last_progress > self.budget_s

    @property
    def last_progress(self) -> float:
        """When a wait last saw something move (`time.monotonic`)."""
        return self._last_progress

    def halt(self, reason: str) -> None:
        self.halted = reason

    def moved(self) -> None:
        self._last_progress = time.monotonic()

    def observe(self, state: Any) -> None:
        """Anything that differs from the last observation is progress."""
        if state != self._seen:
            self._seen = state
            self.moved()

    def step_took(self, name: str, seconds: float) -> None:
        if name not in self.step_seconds:
            self.step_seconds[name] = round(max(seconds, 0.0), 3)
            self.moved()

    def summary(self) -> dict[str, Any]:
        return {"budget_s": round(self.budget_s, 1), "fixed": self.fixed_s is not None, "steps_s": self.step_seconds}
