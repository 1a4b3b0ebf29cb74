"""The live status: counts from the ledger, shown through progress.live; quiet where nothing draws it."""

import json
import time
from types import SimpleNamespace

from drillkit import console, live, progress


class Recorder(progress.Silent):
    def __init__(self):
        self.updates = []

    def live(self, title):
        from contextlib import contextmanager

        @contextmanager
        def area():
            yield lambda fields: self.updates.append((title, dict(fields)))

        return area()


def entry(step, outcome="ok", invocation="inv_1"):
    return (
        json.dumps(
            {
                "time": time.time(),
                "invocation_id": invocation,
                "step": step,
                "attempt": 1,
                "pid": 1,
                "outcome": outcome,
                "duration_ms": 1.0,
                "error": None,
            }
        )
        + "\n"
    )


def test_watch_counts_steps_and_invocations_from_the_ledger(tmp_path, monkeypatch):
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text(entry("outline"))  # history before the watch: not counted
    stack = SimpleNamespace(config=SimpleNamespace(ledger_file=lambda: ledger))
    recorder = Recorder()
    previous = progress.install(recorder)
    monkeypatch.setattr(live, "INTERVAL_S", 0.01)
    try:
        # A storm inside drill.all: the nested watch shows nothing of its own.
        with live.watch(stack, "drill.all"), live.watch(stack, "drill.storm"), ledger.open("a") as handle:
            handle.write(entry("section:1") + entry("section:2", "error") + entry("save_report"))
            handle.write(entry("section:1", "started"))  # the two-line format's first line
    finally:
        progress.install(previous)
    titles = {t for t, _ in recorder.updates}
    assert titles == {"drill.all"}
    final = recorder.updates[-1][1]
    assert final["steps done"] == 2 and final["invocations completed"] == 1 and final["elapsed"].endswith(" s")


def test_an_observer_without_live_shows_nothing_live():
    class Old:
        def __init__(self):
            self.messages = []

        def message(self, kind, text):
            self.messages.append((kind, text))

    old = Old()
    previous = progress.install(old)  # type: ignore[arg-type]
    try:
        with progress.live("x") as update:
            update({"a": 1})  # accepted and dropped: no AttributeError for the missing `live`
        progress.info("after")  # the observer is still the one installed, and still hears messages
    finally:
        progress.install(previous)
    assert old.messages == [("info", "after")]  # the live fields never reached it as a message


def test_console_live_off_a_terminal_prints_plain_lines_at_most(monkeypatch, capsys):
    monkeypatch.setattr(console, "interactive", lambda: False)
    with console.live("bench") as update:
        for n in range(50):
            update({"steps done": n})
    out = capsys.readouterr().out
    assert out.count("bench: steps done") == 1 and "steps done 49" in out
