"""Every task is discoverable, documented, and documents each of its flags."""

import inspect
import re

import pytest

import tasks


def all_tasks(collection, prefix=""):
    for name, task in collection.tasks.items():
        yield prefix + name, task
    for sub_name, sub in collection.collections.items():
        yield from all_tasks(sub, f"{prefix}{sub_name}.")


TASKS = dict(all_tasks(tasks.ns))


def test_the_howto_steps_are_all_there():
    expected = {
        "setup",
        "up",
        "down",
        "status",
        "register",
        "invoke",
        "send",
        "kill",
        "describe",
        "list",
        "resume",
        "restate.start",
        "restate.stop",
        "restate.logs",
        "service.start",
        "service.stop",
        "service.restart",
        "service.logs",
        "llm.start",
        "llm.stop",
    }
    assert expected <= set(TASKS)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_has_a_docstring_and_help_for_every_flag(name):
    task = TASKS[name]
    assert (task.__doc__ or "").strip(), f"{name} has no docstring"
    params = [p for p in inspect.signature(task.body).parameters if p != "c"]
    missing = [p for p in params if p not in task.help]
    assert not missing, f"{name}: no help for {missing}"


@pytest.mark.parametrize(
    ("value", "message"),
    [("x", "not a whole number"), ("0", "must be at least 1"), ("1e999", "not a whole number"), (None, "not a whole")],
)
def test_numeric_flags_are_refused_in_one_line_naming_flag_and_value(value, message):
    from drillkit import flags

    with pytest.raises(flags.FlagError) as err:
        flags.whole("tail", value, 1)
    text = str(err.value)
    assert text.startswith(f"--tail {value!r}") and message in text and "\n" not in text


def test_float_flags_refuse_nan_and_infinity():
    from drillkit import flags

    for value in ("nan", "inf"):
        with pytest.raises(flags.FlagError, match="not a finite number"):
            flags.number("deadline", value, float, 1)
    assert flags.number("deadline", "2.5", float, 1) == 2.5


@pytest.mark.parametrize(("value", "message"), [("x", "not a whole number"), ("0", "must be at least 1")])
def test_a_refused_number_is_one_error_line_and_exit_2(value, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_inv("service.logs", "--tail", value) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --tail ") and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("task", "kwargs", "flag"),
    [
        ("drill.storm", {"target": "db"}, "--target"),
        ("drill.storm", {"llm": "gpt"}, "--llm"),
        ("drill.storm", {"invocations": "many"}, "--invocations"),
        ("drill.timeout", {"mode": "slow"}, "--mode"),
        ("drill.crash", {"signal": "HUP"}, "--signal"),
        ("drill.node-loss", {"llm": "gpt"}, "--llm"),
        ("drill.node-loss", {"signal": "TERM"}, "--signal"),
        ("drill.partition", {"invocations": "0"}, "--invocations"),
        ("bench", {"only": "cold,nope"}, "--only"),
        ("restate.logs", {"tail": "-3"}, "--tail"),
    ],
)
def test_bad_flags_exit_2_before_anything_starts(task, kwargs, flag, capsys):
    from invoke import Context, Exit

    with pytest.raises(Exit) as err:
        TASKS[task].body(Context(), **kwargs)
    assert err.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: {flag}")


@pytest.mark.parametrize("task", ["drill.node-loss", "drill.partition"])
def test_a_cluster_drill_on_another_backend_is_refused_like_any_bad_flag(task, tmp_path, capsys):
    import yaml
    from invoke import Context, Exit

    from drillkit.config import PROJECT_ROOT

    data = yaml.safe_load((PROJECT_ROOT / "configs" / "local.yaml").read_text())
    data["runtime"]["state_dir"] = str(tmp_path / "state")
    config = tmp_path / "native.yaml"
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(Exit) as err:
        TASKS[task].body(Context(), config=str(config))
    assert err.value.code == 2
    err_text = capsys.readouterr().err
    assert err_text.startswith("error: ") and "not cluster" in err_text and str(config) in err_text
    assert not (tmp_path / "state" / "procs").exists() or not any((tmp_path / "state" / "procs").iterdir())


# -- flags as the command line parses them (invoke's Program, as `inv` runs it) --------------------------


def run_inv(*argv):
    """Run the real parser on argv; returns the exit code (0 when the task returned)."""
    from invoke import Program

    try:
        Program(namespace=tasks.ns, version="test").run(["inv", *argv])
    except SystemExit as exc:
        return exc.code or 0
    return 0


def typed_flags(kind):
    for name, task in sorted(TASKS.items()):
        for argument in task.get_arguments():
            if argument.kind is kind:
                yield name, argument.names[0]


@pytest.mark.parametrize(("name", "flag"), list(typed_flags(int)))
def test_every_integer_flag_given_a_word_is_one_error_line_and_exit_2(name, flag, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written where the test runs
    assert run_inv(name, f"--{flag}", "x") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --{flag} 'x': not a whole number"), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / ".drill").exists()


@pytest.mark.parametrize(("name", "flag"), [("drill.crash", "deadline"), ("drill.storm", "deadline")])
def test_a_float_flag_given_a_word_is_one_error_line_and_exit_2(name, flag, capsys):
    assert run_inv(name, f"--{flag}", "soon") == 2
    assert capsys.readouterr().err.startswith(f"error: --{flag} 'soon': not a number")


def test_dash_h_is_help_on_every_task_never_a_flag(capsys):
    for name, task in TASKS.items():
        shorts = {n for a in task.get_arguments() for n in a.names if len(n) == 1}
        assert shorts <= {"c", "v"}, f"{name}: short flags {shorts} (only -c --config and -v --verbose)"
        for argument in task.get_arguments():
            for short, long in (("c", "config"), ("v", "verbose")):
                if short in argument.names:
                    assert argument.name == long, f"{name}: -{short} is {argument.name}"
    assert run_inv("up", "-h") == 0
    out = capsys.readouterr().out
    assert "[--core-opts] up [--options]" in out and "--http1-1" in out


def shown(default):
    """How a help text names a default: on/off for a boolean, else the value itself."""
    return ("on" if default else "off") if isinstance(default, bool) else str(default)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_flag_has_help_that_states_its_default(name):
    """Walks every flag of every task as `inv --help` shows it. A flag with a value for a default must name
    that value (a boolean off may describe what off means instead); one without (None) must say what
    happens by default, or that it is required."""
    from invoke.parser import ParserContext

    context = ParserContext(name=name, args=TASKS[name].get_arguments())
    for argument in TASKS[name].get_arguments():
        flag = "--" + argument.names[0]
        text = context.help_for(flag)[1]
        assert text.strip(), f"inv {name} {flag}: no help"
        assert "default" in text or "required" in text, f"inv {name} {flag}: no default stated: {text!r}"
        if argument.default not in (None, False):
            value = shown(argument.default)
            stated = re.search(rf"\bdefault\b[^;)]*\b{re.escape(value)}\b|\b{re.escape(value)}\b[^;)]*\bdefault", text)
            assert stated, f"inv {name} {flag}: its default {value!r} is not the one stated: {text!r}"


def test_kill_help_names_its_real_default():
    (help_text,) = [a.help for a in TASKS["kill"].get_arguments() if a.name == "signal"]
    assert "TERM (graceful, default)" in help_text


def _config_copy(tmp_path, name):
    import yaml

    from drillkit.config import PROJECT_ROOT

    data = yaml.safe_load((PROJECT_ROOT / "configs" / name).read_text())
    data.setdefault("runtime", {})["state_dir"] = str(tmp_path / "state")
    if "extends" in data:
        data["extends"] = str(PROJECT_ROOT / "configs" / data["extends"])
    config = tmp_path / name
    config.write_text(yaml.safe_dump(data))
    return config


@pytest.mark.parametrize("task", ["restate.node-kill", "restate.node-stop", "restate.node-start"])
def test_a_node_the_cluster_does_not_have_is_exit_2_like_the_drills(task, tmp_path, capsys):
    config = _config_copy(tmp_path, "cluster.yaml")
    assert run_inv(task, "--config", str(config), "--node", "5") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --node '5': ") and "1..3" in err and str(config) in err
    assert run_inv(task, "--config", str(_config_copy(tmp_path, "local.yaml")), "--node", "1") == 2
    assert "not cluster" in capsys.readouterr().err
