"""A value a person typed for a flag, checked into what the library takes.

Invoke-free: the tasks and the drill catalog's declarations (`drillkit.catalog.Param`) both call
these, so a flag is checked the same way whichever door it came in by. A refusal is a `FlagError` whose
message names the flag and the value in one line; the edge prints it as `error: ...` and exits 2.
"""

from __future__ import annotations

import signal

from drillkit.errors import DrillError

TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


class FlagError(DrillError):
    """A flag's value that cannot be used: a usage error (exit 2), never a traceback."""


def boolean(flag: str, value: object) -> bool:
    """`--flag=yes` and the like, any case; a bool given by the parser (`--flag`, `--no-flag`) as it is."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise FlagError(f"--{flag} {value!r}: not true or false (also yes/no, on/off, 1/0)")


def number(flag: str, value: object, kind: type = float, minimum: float = 0) -> float:
    """A numeric flag: a whole number when `kind` is int, finite, at least `minimum`."""
    try:
        parsed = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise FlagError(f"--{flag} {value!r}: not a {'whole ' if kind is int else ''}number") from None
    if parsed != parsed or parsed in (float("inf"), float("-inf")):  # nan, inf: parse, but mean nothing
        raise FlagError(f"--{flag} {value!r}: not a finite number")
    if parsed < minimum:
        raise FlagError(f"--{flag} {value!r}: must be at least {minimum:g}")
    return float(parsed) if kind is float else parsed


def whole(flag: str, value: object, minimum: int = 0) -> int:
    """A whole-number flag (`--tail 50`, `--invocations 40`)."""
    return int(number(flag, value, int, minimum))


def choice(flag: str, value: object, choices: tuple[str, ...]) -> str:
    """One of a fixed set of words, exactly as listed."""
    if value not in choices:
        raise FlagError(f"--{flag} {value!r}: use {', '.join(choices[:-1])} or {choices[-1]}")
    return str(value)


def signal_named(flag: str, value: object, allowed: tuple[str, ...] = ("KILL", "TERM")) -> signal.Signals:
    """A signal by name (KILL, kill, SIGKILL), only one of `allowed`: a drill that says SIGTERM must have
    sent SIGTERM."""
    chosen = str(value).upper().removeprefix("SIG")
    if chosen not in allowed:
        raise FlagError(f"--{flag} {value!r}: use {' or '.join(allowed)}")
    return signal.Signals["SIG" + chosen]
