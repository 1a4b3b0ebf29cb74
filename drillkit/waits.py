"""Waiting with a deadline: every readiness check and poll goes through here (tenacity), never a sleep."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from tenacity import RetryCallState, RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed
from tenacity.stop import stop_base

from drillkit.errors import DrillError

T = TypeVar("T")


class Stall(Protocol):
    """Says when progress has stopped for longer than its budget (a drill's learned pace)."""

    @property
    def budget_s(self) -> float: ...

    def __call__(self) -> bool: ...


class WaitTimeout(DrillError):
    """A condition did not hold before its deadline; carries the last value seen."""

    def __init__(self, what: str, timeout_s: float, last: object, stalled: bool = False) -> None:
        self.what = what
        self.timeout_s = timeout_s
        self.last = last
        self.stalled = stalled
        why = f"no progress for {timeout_s:g} s" if stalled else f"timed out after {timeout_s:g} s"
        super().__init__(f"{why} waiting for {what} (last seen: {last!r})")


def poll(
    probe: Callable[[], T],
    until: Callable[[T], bool],
    what: str,
    timeout_s: float,
    interval_s: float = 0.05,
    stalled: Stall | None = None,
) -> T:
    """Call `probe` every `interval_s` until `until(result)`; return that result or raise WaitTimeout.

    With `stalled`, the wait also ends (WaitTimeout) as soon as `stalled()` says progress has stopped:
    a drill waits as long as the system keeps moving, not for a fixed time chosen on an idle machine."""
    last: list[T] = []

    def probe_and_keep() -> T:
        value = probe()
        last[:] = [value]
        return value

    stop: stop_base = stop_after_delay(timeout_s)
    if stalled is not None:
        stop = stop | stop_when(stalled)
    retrying = Retrying(
        stop=stop,
        wait=wait_fixed(interval_s),
        retry=retry_if_result(lambda value: not until(value)),
    )
    try:
        return retrying(probe_and_keep)
    except RetryError:
        if stalled is not None and stalled():
            raise WaitTimeout(what, stalled.budget_s, last[0] if last else None, stalled=True) from None
        raise WaitTimeout(what, timeout_s, last[0] if last else None) from None


class stop_when(stop_base):  # tenacity's naming style
    """A tenacity stop condition from a plain predicate."""

    def __init__(self, predicate: Callable[[], bool]) -> None:
        self.predicate = predicate

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.predicate()
