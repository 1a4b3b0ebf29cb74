"""Each drill's parameters are declared once (catalog.DRILLS): its task's flags, defaults and help, the
DrillSpec functions' defaults and the parameter checks all come from that declaration."""

import signal

import pytest

from drillkit import catalog
from drillkit.drills import any_target
from drillkit.drills.timeout import DEFAULT_EXPECT
from drillkit.flags import FlagError
from tests.unit.test_tasks import TASKS, run_inv

DRILL_TASKS = sorted(name.removeprefix("drill.") for name in TASKS if name.startswith("drill.") and name != "drill.all")


def test_every_drill_task_has_a_declaration_and_every_declaration_a_task():
    assert sorted(catalog.DRILLS) == DRILL_TASKS


@pytest.mark.parametrize("name", DRILL_TASKS)
def test_the_task_flags_defaults_and_help_are_the_declarations(name):
    declared = catalog.DRILLS[name]
    params = {p.flag: p for p in (*declared.flags, catalog.REPORT_DIR, catalog.KEEP_UP)}
    arguments = {a.names[0]: a for a in TASKS[f"drill.{name}"].get_arguments()}
    assert set(arguments) == {"config", *params}
    for flag, param in params.items():
        assert arguments[flag].default == param.default, flag
        assert arguments[flag].help == param.help_text(), flag


@pytest.mark.parametrize("name", DRILL_TASKS)
def test_the_spec_functions_defaults_are_the_declarations(name):
    declared = catalog.DRILLS[name]
    required = {p.name: p.choices[0] for p in declared.params if p.required}  # drill.model's --fault
    from_flags = declared.spec(required)
    from_code = declared.make(
        **{p.arg or p.name: p.parse(v) for p in declared.params for k, v in required.items() if k == p.name}
    )
    assert from_flags.parameters == from_code.parameters
    for param in declared.params:
        if param.name in from_code.parameters and param.default is not None:
            assert from_code.parameters[param.name] == param.default, param.name


def test_declared_defaults_say_what_the_drills_do():
    at = catalog.CRASH.params[1]
    assert catalog.WRITER_AT in at.help_text() and any_target.DEFAULT_AT in at.help_text()
    assert catalog.crash().parameters["at"] == catalog.WRITER_AT
    expect = catalog.TIMEOUT.params[1]
    for mode, outcome in DEFAULT_EXPECT.items():
        assert f"{outcome} for {mode}" in expect.help_text()
        assert catalog.timeout(mode).parameters["expect"] == outcome
    assert catalog.CRASH.defaults["signal"] is signal.SIGKILL


@pytest.mark.parametrize(
    ("name", "given", "message"),
    [
        ("storm", {"invocations": "many"}, "--invocations 'many': not a whole number"),
        ("storm", {"kills": "-1"}, "--kills '-1': must be at least 0"),
        ("storm", {"llm": "gpt"}, "--llm 'gpt': use local or stub"),
        ("node-loss", {"signal": "TERM"}, "--signal 'TERM': use KILL or STOP"),
        ("timeout", {"expect": "win"}, "--expect 'win': use recover, fail or pause"),
        ("tool-error", {"fail_first": "0"}, "--fail-first '0': must be at least 1"),
        ("crash", {"resume": "perhaps"}, "--resume 'perhaps': not true or false"),
        ("crash", {"deadline": "nan"}, "--deadline 'nan': not a finite number"),
    ],
)
def test_values_typed_for_a_drill_are_checked_by_its_declaration(name, given, message):
    with pytest.raises(FlagError) as err:
        catalog.DRILLS[name].spec(given)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (lambda: catalog.storm(invocations=0), "--invocations 0: must be at least 1"),
        (lambda: catalog.storm(llm="gpt"), "--llm 'gpt': use local or stub"),
        (lambda: catalog.node_loss(count=0), "--count 0: must be at least 1"),
    ],
)
def test_a_spec_built_in_code_is_checked_by_the_same_declaration(spec, message):
    with pytest.raises(FlagError) as err:
        catalog.check(spec(), stack=None)  # refused before the config (the stack) is looked at
    assert str(err.value) == message


def test_a_required_flag_left_out_is_named_with_its_choices(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_inv("drill.model") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --fault is required: 429, 500, 503, 400, hang,"), err
    assert "default: none, required" in catalog.MODEL.params[0].help_text()


def test_drill_all_skips_only_drills_it_runs():
    assert catalog.skipped("storm, model") == {"storm", "model"}
    assert catalog.skipped(None) == frozenset()
    with pytest.raises(FlagError, match=r"--skip stormy: drill\.all runs"):
        catalog.skipped("stormy")


def test_inv_report_on_a_path_that_is_not_there_is_a_usage_error(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_inv("report", str(tmp_path / "gone")) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'gone'}: no such file or directory")
