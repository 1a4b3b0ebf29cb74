"""Console output for the edge (tasks/): rich tables and progress on a terminal, plain timestamped
lines in CI logs. The library never imports this; tasks install `ConsoleObserver` as drillkit's
progress observer (`drillkit.progress.install`), which draws the library's events (`progress.Event`:
kind, subject, fields, level). This is the one module that knows marks, colours and rich markup."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager

from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table
from rich.text import Text

from drillkit.progress import Event

_console = Console(highlight=False, soft_wrap=True)
if not _console.is_terminal:
    # CI logs and pipes: wide enough that tables keep one row per line.
    _console = Console(highlight=False, soft_wrap=True, width=200)
_errors = Console(stderr=True, highlight=False, soft_wrap=True)
_live_areas: list[str] = []  # live status areas on screen now (`live`)


def interactive() -> bool:
    return _console.is_terminal


def _line(mark: str, style: str, message: str) -> Text:
    """A styled mark, then the message as plain text: a message is data (a path with brackets, a flag's
    value, a pip extra such as `.[local-llm]`), never rich markup, so it prints exactly as given."""
    return Text.assemble((mark, style), " ", message) if mark else Text(message)


def _print(line: Text) -> None:
    if not interactive():
        line = Text.assemble(time.strftime("%H:%M:%S") + " ", line)
    _console.print(line)


def info(message: str) -> None:
    _print(Text(message))


def step(message: str) -> None:
    _print(_line(">", "bold cyan", message))


def ok(message: str) -> None:
    _print(_line("✓", "green", message))


def warn(message: str) -> None:
    _print(_line("!", "yellow", message))


def error(message: str) -> None:
    _errors.print(_line("error:", "bold red", message))


VERDICT_STYLES = {"PASS": "bold green", "INCONCLUSIVE": "bold yellow"}


def verdict(word: str, message: str) -> None:
    """A drill's verdict word in its colour (red for FAIL and ERROR), then the message as plain text."""
    _print(_line(word, VERDICT_STYLES.get(word, "bold red"), message))


def timed(offset_s: float, message: str) -> None:
    """A drill's timeline entry: its offset dimmed, the message as plain text."""
    _print(_line(f"{offset_s:7.2f}s", "dim", message))


def raw(text: str) -> None:
    """Print external output (CLI text, logs) as is: no markup interpretation."""
    _console.print(text, markup=False, end="" if text.endswith("\n") else "\n")


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    grid = Table(title=Text(title), title_justify="left")
    for column in columns:
        grid.add_column(Text(column))
    for row in rows:
        grid.add_row(*(Text(str(cell)) for cell in row))
    _console.print(grid)


@contextmanager
def activity(message: str) -> Iterator[None]:
    """A spinner on a terminal, a start line and a timed end line otherwise."""
    started = time.monotonic()
    if interactive() and not _live_areas:  # rich before 14 allows one live display at a time
        with _console.status(Text(message)):
            yield
    else:
        info(f"{message} ...")
        yield
    info(f"  {message}: done in {time.monotonic() - started:.1f} s")


@contextmanager
def transfer(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n_bytes)`: a progress bar on a terminal, a line per 25 % otherwise."""
    if interactive():
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
        with Progress(*columns, console=_console, transient=False) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)
        return
    done = 0
    next_mark = 0.25
    info(f"{description}: {total / 1e6:.1f} MB" if total else f"{description} ...")

    def advance(n: int) -> None:
        nonlocal done, next_mark
        done += n
        if total and done / total >= next_mark:
            info(f"  {description}: {done * 100 // total}%")
            next_mark += 0.25

    yield advance


PLAIN_EVERY_S = 15.0  # a live status in CI logs: one plain line at most this often


def status_line(title: str, fields: Mapping[str, object]) -> str:
    return f"{title}: " + ", ".join(f"{name} {value}" for name, value in fields.items())


@contextmanager
def live(title: str) -> Iterator[Callable[[Mapping[str, object]], None]]:
    """One status line kept up to date below the scrolling output (rich's Live) on a terminal; in logs,
    a plain line at most every PLAIN_EVERY_S seconds, and the last values once at the end."""
    if interactive():
        with Live(Text(title, style="bold"), console=_console, refresh_per_second=4, transient=True) as area:
            _live_areas.append(title)
            try:
                yield lambda fields: area.update(Text.assemble((title, "bold"), " ", status_line("", fields)[2:]))
            finally:
                _live_areas.remove(title)
        return
    last: dict[str, object] = {}
    shown = [time.monotonic()]

    def update(fields: Mapping[str, object]) -> None:
        last.clear()
        last.update(fields)
        if time.monotonic() - shown[0] >= PLAIN_EVERY_S:
            shown[0] = time.monotonic()
            info(status_line(title, fields))

    yield update
    if last:
        info(status_line(title, last))


LINES: dict[str, Callable[[str], None]] = {"step": step, "ok": ok, "info": info, "warn": warn, "raw": raw}
EVENTS: dict[str, Callable[[Event], None]] = {
    "verdict": lambda event: verdict(event.verdict, event.subject),
    "timed": lambda event: timed(event.offset_s, event.subject),
}


def render(event: Event) -> None:
    """Draw one library event: its kind chooses the mark and colour, its fields what is shown beside the
    subject (a verdict's word, a timeline entry's offset); the subject is printed as plain text."""
    drawn = EVENTS.get(event.kind)
    if drawn is not None:
        drawn(event)
    else:
        LINES.get(event.kind, info)(event.subject)


class ConsoleObserver:
    """drillkit's progress, drawn on this console."""

    def event(self, event: Event) -> None:
        render(event)

    def message(self, kind: str, text: str) -> None:
        LINES.get(kind, info)(text)

    def activity(self, text: str) -> AbstractContextManager[None]:
        return activity(text)

    def transfer(self, description: str, total: int | None) -> AbstractContextManager[Callable[[int], None]]:
        return transfer(description, total)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        table(title, columns, rows)

    def live(self, title: str) -> AbstractContextManager[Callable[[Mapping[str, object]], None]]:
        return live(title)
