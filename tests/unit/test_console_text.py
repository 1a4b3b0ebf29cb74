"""What a person reads is printed as given: brackets in a path, a flag's value or a pip extra are text,
never rich markup (issue 21: `--at "[/]"` was a MarkupError traceback, `/tmp/[x]/c.yaml` printed as
`/tmp//c.yaml`, and the install hint lost its `[local-llm]`)."""

import ast
import re
import shlex
import sys
import tomllib

import pytest

from drillkit import console, progress
from drillkit.components import local_model
from drillkit.config import PROJECT_ROOT

HOSTILE = ["[/]", "/tmp/[x]/c.yaml", "pip install -e '.[local-llm]'", "[bold red]not bold[/]", ":smile: [link=x]y"]


@pytest.mark.parametrize("text", HOSTILE)
def test_every_console_line_prints_its_text_exactly(text, capsys):
    console.error(text)
    assert capsys.readouterr().err == f"error: {text}\n"
    for show in (console.info, console.ok, console.warn, console.step):
        show(text)
        assert capsys.readouterr().out.rstrip("\n").endswith(text)
    console.verdict("FAIL", text)
    console.timed(1.5, text)
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(f"FAIL {text}") and out[1].endswith(f"   1.50s {text}")
    console.table(text, [text], [[text]])
    assert capsys.readouterr().out.count(text) == 3
    with console.live(text) as update:
        update({text: text})
    assert capsys.readouterr().out.count(text) == 3  # title, field name, value


def test_the_library_sends_verdicts_and_timeline_entries_as_data(progress_lines):
    progress.verdict("PASS", "drill crash in 1.0 s")
    progress.timed(2.25, "killed [x]")
    assert progress_lines == ["info: PASS drill crash in 1.0 s", "info:    2.25s killed [x]"]


def test_the_local_model_install_hint_is_this_pythons_pip_on_this_project_with_its_extra():
    argv = shlex.split(local_model.install_hint())
    assert argv[:5] == [sys.executable, "-m", "pip", "install", "-e"]
    assert argv[5] == f"{PROJECT_ROOT}[local-llm]"
    extras = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert local_model.SERVER_MODULE in " ".join(extras[local_model.EXTRA])


@pytest.mark.parametrize(("flag", "value"), [("at", "[/]"), ("config", "/tmp/[x]/c.yaml")])
def test_a_bracketed_flag_value_is_named_exactly_in_a_one_line_error(flag, value, capsys):
    from tests.unit.test_tasks import run_inv

    assert run_inv("drill.crash", f"--{flag}", value) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and value in err and err.count("\n") == 1, err


class EventRecorder(progress.Silent):
    def __init__(self) -> None:
        self.events: list[progress.Event] = []

    def event(self, event: progress.Event) -> None:
        self.events.append(event)


def test_library_events_are_data_with_fields_and_a_level():
    from drillkit.reports.record import DrillRecord

    recorder = EventRecorder()
    previous = progress.install(recorder)
    try:
        DrillRecord("crash", {}).event("killed", "SIGKILL to pid 7 [x]")
        progress.verdict("INCONCLUSIVE", "drill crash in 1.0 s", drill="crash")
        progress.warn("careful")
    finally:
        progress.install(previous)
    timed, verdict, warn = recorder.events
    assert timed.kind == "timed" and timed.subject == "killed: SIGKILL to pid 7 [x]"
    assert timed.fields["event"] == "killed" and timed.fields["detail"] == "SIGKILL to pid 7 [x]"
    assert isinstance(timed.fields["offset_s"], float) and timed.level == "info"
    assert verdict.fields == {"verdict": "INCONCLUSIVE", "drill": "crash"} and verdict.level == "warning"
    assert warn.kind == "warn" and warn.level == "warning"


@pytest.mark.parametrize("text", HOSTILE)
def test_the_console_renders_each_event_as_its_line(text, capsys):
    for kind, mark in (("step", ">"), ("ok", "✓"), ("warn", "!"), ("info", "")):
        console.render(progress.Event(kind, text))  # type: ignore[arg-type]
        assert capsys.readouterr().out.rstrip("\n").endswith(f"{mark} {text}" if mark else text)
    console.render(progress.Event("verdict", text, {"verdict": "PASS"}))
    console.render(progress.Event("timed", text, {"offset_s": 1.5}))
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(f"PASS {text}") and out[1].endswith(f"   1.50s {text}")


MARKUP = re.compile(
    r"\[/?(bold|dim|italic|underline|reverse|blink|strike|red|green|yellow|blue|cyan|magenta|white|black|link)\b|\[/\]"
)


def test_no_markup_or_rich_outside_the_console():
    """The library emits events; only drillkit/console.py knows marks, colours and rich markup."""
    found = []
    for path in sorted([*(PROJECT_ROOT / "drillkit").rglob("*.py"), *(PROJECT_ROOT / "tasks").rglob("*.py")]):
        if path == PROJECT_ROOT / "drillkit" / "console.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and MARKUP.search(node.value):
                found.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} {node.value[:60]!r}")
            modules = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            found += [
                f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} imports {m}"
                for m in modules
                if m.split(".")[0] == "rich"
            ]
    assert not found, found
