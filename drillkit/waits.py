"""Waiting with a deadline: every readiness check and poll goes through here (tenacity), never a sleep."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from drillkit.errors import DrillError

T = TypeVar("T")


class WaitTimeout(DrillError):
    """A condition did not hold before its deadline; carries the last value seen."""

    def __init__(self, what: str, timeout_s: float, last: object) -> None:
        self.what = what
        self.timeout_s = timeout_s
        self.last = last
        super().__init__(f"timed out after {timeout_s:g} s waiting for {what} (last seen: {last!r})")


def poll(
    probe: Callable[[], T],
    until: Callable[[T], bool],
    what: str,
    timeout_s: float,
    interval_s: float = 0.05,
) -> T:
    """Call `probe` every `interval_s` until `until(result)`; return that result or raise WaitTimeout."""
    last: list[T] = []

    def probe_and_keep() -> T:
        value = probe()
        last[:] = [value]
        return value

    retrying = Retrying(
        stop=stop_after_delay(timeout_s),
        wait=wait_fixed(interval_s),
        retry=retry_if_result(lambda value: not until(value)),
    )
    try:
        return retrying(probe_and_keep)
    except RetryError:
        raise WaitTimeout(what, timeout_s, last[0] if last else None) from None
