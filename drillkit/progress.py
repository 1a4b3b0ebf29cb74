"""The library's only voice: progress goes to one observer that the edge installs.

drillkit never prints. It reports what it is doing here (a step begins, something is ready, a wait is
under way, a download advances, a table of results), and whoever drives it decides how that looks:
`tasks/_edge.py` installs the rich console (`drillkit.console.ConsoleObserver`); tests and benchmarks that
run the library in-process install nothing and stay quiet, or install a recorder to assert on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class Observer(Protocol):
    def message(self, kind: str, text: str) -> None:
        """kind: step, ok, info, warn or raw (external text shown as is)."""

    def activity(self, text: str) -> AbstractContextManager[None]:
        """Something that takes a while (a spinner, or a start and a timed end line)."""

    def transfer(self, description: str, total: int | None) -> AbstractContextManager[Callable[[int], None]]:
        """A download: the context yields `advance(n_bytes)`."""

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None: ...

    def live(self, title: str) -> AbstractContextManager[Callable[[Mapping[str, object]], None]]:
        """A status that keeps changing (steps done, invocations completed, elapsed): the context yields
        `update(fields)`, each call replacing the previous values."""


Updater = Callable[[Mapping[str, object]], None]


class Silent:
    """The default: the library run in-process says nothing."""

    def message(self, kind: str, text: str) -> None:
        pass

    @contextmanager
    def activity(self, text: str) -> Iterator[None]:
        yield

    @contextmanager
    def transfer(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        yield lambda n: None

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        pass

    @contextmanager
    def live(self, title: str) -> Iterator[Updater]:
        yield lambda fields: None


_observer: Observer = Silent()


def install(observer: Observer) -> Observer:
    """Route progress to `observer`; returns the one it replaces."""
    global _observer
    previous, _observer = _observer, observer
    return previous


def step(text: str) -> None:
    _observer.message("step", text)


def ok(text: str) -> None:
    _observer.message("ok", text)


def info(text: str) -> None:
    _observer.message("info", text)


def warn(text: str) -> None:
    _observer.message("warn", text)


def raw(text: str) -> None:
    _observer.message("raw", text)


def verdict(word: str, text: str) -> None:
    """A drill's verdict (PASS, FAIL, ERROR, INCONCLUSIVE) and what it is about: data, drawn by the observer
    (a colour for the word); an observer without `verdict` gets one info line."""
    hook = getattr(_observer, "verdict", None)
    if hook is not None:
        hook(word, text)
    else:
        _observer.message("info", f"{word} {text}")


def timed(offset_s: float, text: str) -> None:
    """A timeline entry `offset_s` seconds into a drill; an observer without `timed` gets one info line."""
    hook = getattr(_observer, "timed", None)
    if hook is not None:
        hook(offset_s, text)
    else:
        _observer.message("info", f"{offset_s:7.2f}s {text}")


def activity(text: str) -> AbstractContextManager[None]:
    return _observer.activity(text)


def transfer(description: str, total: int | None) -> AbstractContextManager[Callable[[int], None]]:
    return _observer.transfer(description, total)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    _observer.table(title, columns, rows)


def live(title: str) -> AbstractContextManager[Updater]:
    # An observer written before `live` existed (a test's recorder) simply shows nothing live.
    hook = getattr(_observer, "live", None)
    return hook(title) if hook is not None else Silent().live(title)
