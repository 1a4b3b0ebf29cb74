"""The library's only voice: progress goes to one observer that the edge installs, as data.

drillkit never prints and never styles. It reports what it is doing (a step begins, something is ready,
a wait is under way, a drill's timeline entry, its verdict) as an `Event`: a kind, a subject in plain
text, typed fields and a level. Whoever drives it decides how that looks: `tasks/_edge.py` installs the
rich console (`drillkit.console.ConsoleObserver`, the one module that knows marks, colours and markup);
tests and benchmarks that run the library in-process install nothing and stay quiet, or install a
recorder to assert on it. Besides events: an activity (a spinner), a transfer, a table and a live status.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Literal, Protocol

Kind = Literal["step", "ok", "info", "warn", "raw", "verdict", "timed"]
"""step: something begins; ok: something is ready or done; info, warn: said as is; raw: external text
(CLI output, logs) shown as given; verdict: a drill's verdict (fields `verdict`); timed: a drill's
timeline entry (fields `offset_s`, `event`, `detail`, `from_restate`)."""
Level = Literal["info", "warning", "error"]

LINE_KINDS: frozenset[str] = frozenset({"step", "ok", "info", "warn", "raw"})
"""The kinds an observer's `message(kind, text)` understands; the others reach it as `info`."""

VERDICT_LEVELS: dict[str, Level] = {"PASS": "info", "INCONCLUSIVE": "warning"}  # FAIL, ERROR: error


@dataclass(frozen=True)
class Event:
    """One progress event, as data. `subject` is plain text (a path with brackets stays a path)."""

    kind: Kind
    subject: str
    fields: Mapping[str, object] = field(default_factory=dict)
    level: Level = "info"

    @property
    def verdict(self) -> str:
        """A verdict event's word (PASS, FAIL, ERROR, INCONCLUSIVE); empty for any other kind."""
        return str(self.fields.get("verdict", ""))

    @property
    def offset_s(self) -> float:
        """A timed event's offset into its drill, in seconds; 0.0 for any other kind."""
        value = self.fields.get("offset_s", 0.0)
        return float(value) if isinstance(value, int | float) else 0.0

    def text(self) -> str:
        """The event as one line of plain text, for an observer that draws lines, not events."""
        if self.kind == "verdict":
            return f"{self.verdict} {self.subject}"
        if self.kind == "timed":
            return f"{self.offset_s:7.2f}s {self.subject}"
        return self.subject


class Observer(Protocol):
    def message(self, kind: str, text: str) -> None:
        """A line: kind step, ok, info, warn or raw (external text shown as is). An observer that also has
        `event(Event)` gets every event there instead, with its fields."""

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


def emit(event: Event) -> None:
    """Send one event: to the observer's `event` when it has one, else as a line to its `message`."""
    hook = getattr(_observer, "event", None)
    if hook is not None:
        hook(event)
    else:
        _observer.message(event.kind if event.kind in LINE_KINDS else "info", event.text())


def step(text: str, **fields: object) -> None:
    emit(Event("step", text, fields))


def ok(text: str, **fields: object) -> None:
    emit(Event("ok", text, fields))


def info(text: str, **fields: object) -> None:
    emit(Event("info", text, fields))


def warn(text: str, **fields: object) -> None:
    emit(Event("warn", text, fields, "warning"))


def raw(text: str) -> None:
    emit(Event("raw", text))


def verdict(word: str, text: str, **fields: object) -> None:
    """A drill's verdict (PASS, FAIL, ERROR, INCONCLUSIVE) and what it is about: the word is a field, its
    colour the console's business; an observer without `event` gets one info line."""
    emit(Event("verdict", text, {"verdict": word, **fields}, VERDICT_LEVELS.get(word, "error")))


def timed(offset_s: float, text: str, **fields: object) -> None:
    """A timeline entry `offset_s` seconds into a drill; an observer without `event` gets one info line."""
    emit(Event("timed", text, {"offset_s": offset_s, **fields}))


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
