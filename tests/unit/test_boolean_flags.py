"""Boolean flags as Invoke users write them (issue 21): `--flag`, `--no-flag` where the default is on, and
`--flag=true|false|yes|no|on|off|1|0` in any case, through Invoke's real parser (`Program.run`, as `inv`
runs it); a word that is none of these is one `error:` line and exit 2."""

import pytest
from invoke import Collection, Program

from drillkit import flags
from tasks import _edge
from tests.unit.test_tasks import TASKS, run_inv

WORDS = [(w, True) for w in flags.TRUE_WORDS] + [(w, False) for w in flags.FALSE_WORDS]


@pytest.fixture
def probe():
    """A namespace of two tasks built with the package's `task`: what each was called with is recorded."""
    calls = []

    @_edge.task(help={"keep_up": "keep it (default: off)", "resume": "resume (default: on)"})
    def one(c, keep_up=False, resume=True):
        """Record the flags."""
        calls.append(("one", keep_up, resume))

    @_edge.task(help={"count": "how many (default: 1)"})
    def other(c, count=1):
        """Record the count."""
        calls.append(("other", count))

    namespace = Collection(one, other)

    def run(*argv):
        calls.clear()
        try:
            Program(namespace=namespace, version="test").run(["inv", *argv])
        except SystemExit as exc:
            return exc.code or 0, list(calls)
        return 0, list(calls)

    return run


@pytest.mark.parametrize(
    ("argv", "keep_up", "resume"),
    [
        ([], False, True),
        (["--keep-up"], True, True),
        (["--no-resume"], False, False),
        (["--keep-up", "--no-resume"], True, False),
        (["--no-resume", "--keep-up"], True, False),
        (["--resume=off", "--keep-up=on"], True, False),
        (["--keep-up", "yes"], True, True),  # Invoke's optional values: the word may follow after a space
    ],
)
def test_flag_inverse_and_words(probe, argv, keep_up, resume):
    assert probe("one", *argv) == (0, [("one", keep_up, resume)])


@pytest.mark.parametrize(("word", "value"), WORDS)
@pytest.mark.parametrize("case", [str.lower, str.upper, str.title])
def test_every_word_in_any_case(probe, word, value, case):
    assert probe("one", f"--keep-up={case(word)}") == (0, [("one", value, True)])
    assert probe("one", f"--resume={case(word)}") == (0, [("one", False, value)])


def test_a_worded_flag_then_another_task(probe):
    assert probe("one", "--keep-up=true", "other", "--count=3") == (0, [("one", True, True), ("other", 3)])
    assert probe("one", "--keep-up", "--resume=no", "other") == (0, [("one", True, False), ("other", 1)])


def test_a_bad_word_is_one_error_line_and_exit_2(probe, capsys):
    assert probe("one", "--keep-up=maybe") == (2, [])
    err = capsys.readouterr().err
    assert err == "error: --keep-up 'maybe': not true or false (also yes/no, on/off, 1/0)\n"


def test_an_invoke_option_read_as_the_word_says_where_it_goes(probe, capsys):
    assert probe("one", "--keep-up", "-h") == (2, [])
    err = capsys.readouterr().err
    assert err.startswith("error: --keep-up '-h': ") and "give -h before" in err and err.count("\n") == 1


def test_help_shows_booleans_as_before(probe, capsys):
    assert probe("one", "-h") == (0, [])
    out = capsys.readouterr().out
    assert "--[no-]resume" in out and "--keep-up " in out and "STRING" not in out


def bool_flags():
    for name, task in sorted(TASKS.items()):
        for argument in task.get_arguments():
            if argument.kind is bool:
                yield name, argument


@pytest.mark.parametrize(("name", "argument"), list(bool_flags()), ids=lambda x: getattr(x, "name", x))
def test_every_boolean_flag_of_every_task_takes_a_word(name, argument, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written where the test runs
    assert isinstance(argument, _edge.BooleanArgument), f"inv {name} --{argument.names[0]}"
    flag = "--" + argument.names[0]
    assert run_inv(name, f"{flag}=Perhaps") == 2
    assert capsys.readouterr().err == f"error: {flag} 'Perhaps': not true or false (also yes/no, on/off, 1/0)\n"
    assert not (tmp_path / ".drill").exists()


def test_real_tasks_get_the_words_as_booleans(monkeypatch, tmp_path):
    """`inv down --purge=YES --forget-mismatched=0` and a drill's `--no-resume --keep-up=on`, as the
    library receives them."""
    from tasks import drill, stack
    from tests.unit.test_tasks import _config_copy

    config = str(_config_copy(tmp_path, "local.yaml"))
    downs, drills = [], []
    monkeypatch.setattr(stack.operations, "down", lambda _stack, **kwargs: downs.append(kwargs))
    monkeypatch.setattr(drill, "_run_drill", lambda c, cfg, spec, report_dir, keep_up: drills.append((spec, keep_up)))
    assert run_inv("down", "--config", config, "--purge=YES", "--forget-mismatched=0") == 0
    assert downs == [{"purge": True, "forget_mismatched": False}]
    assert run_inv("drill.crash", "--no-resume", "--keep-up=on", "--signal=term") == 0
    (spec, keep_up), *_ = drills
    assert spec.parameters["resume"] is False and spec.parameters["signal"] == "TERM" and keep_up is True
