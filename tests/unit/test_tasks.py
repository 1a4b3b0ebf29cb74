"""Every task is discoverable, documented, and documents each of its flags."""

import inspect

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
def test_numeric_flags_fail_with_one_line_and_exit_2(value, message, capsys):
    from invoke import Exit

    with pytest.raises(Exit) as err:
        tasks._number("tail", value, int, 1)
    assert err.value.code == 2
    err_text = capsys.readouterr().err
    assert err_text.startswith("error: --tail") and message in err_text and err_text.count("\n") == 1


def test_float_flags_refuse_nan_and_infinity(capsys):
    from invoke import Exit

    for value in ("nan", "inf"):
        with pytest.raises(Exit) as err:
            tasks._number("deadline", value, float, 1)
        assert err.value.code == 2
    assert tasks._number("deadline", "2.5", float, 1) == 2.5


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
