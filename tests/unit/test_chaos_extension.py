"""The Chaos Toolkit extension's shape: discovery lists every action and probe, and each experiment
names only activities that exist, passing arguments their signatures accept."""

import importlib
import inspect
import json
import os
from pathlib import Path

import pytest

import drillkit.chaos
from drillkit import catalog, flags
from drillkit.chaos import actions, probes
from drillkit.errors import DrillError

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.json"))


def test_discover_lists_every_action_and_probe():
    pytest.importorskip("chaoslib")
    found = {(a["type"], a["name"]) for a in drillkit.chaos.discover()["activities"]}
    assert {("action", name) for name in actions.__all__} <= found
    assert {("probe", name) for name in probes.__all__} <= found


def test_activities_are_typed_and_take_a_config_path():
    for module in (actions, probes):
        for name in module.__all__:
            signature = inspect.signature(getattr(module, name))
            assert next(iter(signature.parameters)) == "config_path", name
            assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values()), name
            assert signature.return_annotation is not inspect.Signature.empty, name


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_experiments_name_real_activities(path):
    experiment = json.loads(path.read_text())
    activities = [
        *experiment["steady-state-hypothesis"]["probes"],
        *experiment["method"],
        *experiment.get("rollbacks", []),
    ]
    for activity in activities:
        provider = activity["provider"]
        function = getattr(importlib.import_module(provider["module"]), provider["func"])
        inspect.signature(function).bind(**provider["arguments"])
        module_kind = provider["module"].rsplit(".", 1)[-1]
        assert (activity["type"], module_kind) in (("action", "actions"), ("probe", "probes")), activity["name"]
    steady = {p["provider"]["func"] for p in experiment["steady-state-hypothesis"]["probes"]}
    assert {"writer_healthy", "invocation_completed_with_success"} <= steady
    assert steady <= {"writer_healthy", "invocation_completed_with_success", "last_drill_passed"}
    runs = [a["provider"]["arguments"] for a in experiment["method"] if a["provider"]["func"] == "run_drill"]
    for run in runs:  # a whole drill: a name the catalog knows, its mode one the drill takes
        declared = catalog.DRILLS[run["drill"]]
        declared.spec({"mode": run["mode"]} if "mode" in run else {})
    if runs:  # its verdict is part of the steady state after the method
        judged = [
            p for p in experiment["steady-state-hypothesis"]["probes"] if p["provider"]["func"] == "last_drill_passed"
        ]
        assert [p["provider"]["arguments"]["drill"] for p in judged] == [runs[-1]["drill"]]


def test_the_experiments():
    assert [p.name for p in EXPERIMENTS] == [
        "crash.json",
        "server-crash.json",
        "stuck-step-hang.json",
        "stuck.json",
        "tool-error.json",
        "upgrade.json",
    ]


def test_run_drill_refuses_an_unknown_drill_or_mode_before_anything_starts():
    with pytest.raises(DrillError, match=r"unknown drill 'sleep' \(known: .*stuck.*upgrade"):
        actions.run_drill("configs/local.yaml", "sleep")
    with pytest.raises(flags.FlagError, match=r"--mode.*'nap'"):
        actions.run_drill("configs/local.yaml", "stuck", mode="nap")


def test_last_drill_passed_reads_the_newest_report_of_that_drill(tmp_path, monkeypatch):
    config = tmp_path / "config.yaml"
    config.write_text(f"extends: {ROOT / 'configs' / 'local.yaml'}\nruntime:\n  state_dir: {tmp_path / 'state'}\n")
    reports = tmp_path / "state" / "reports"
    assert probes.last_drill_passed(str(config), "stuck")  # never ran here: nothing failed
    for number, (name, verdict) in enumerate([("stuck-1", "FAIL"), ("upgrade-1", "FAIL"), ("stuck-2", "PASS")]):
        (reports / name).mkdir(parents=True)
        (reports / name / "journal.json").write_text(json.dumps({"verdict": verdict}))
        os.utime(reports / name / "journal.json", (1000 + number, 1000 + number))
    assert probes.last_drill_passed(str(config), "stuck")
    assert not probes.last_drill_passed(str(config), "upgrade")
    os.utime(reports / "stuck-1" / "journal.json", (2000, 2000))
    assert not probes.last_drill_passed(str(config), "stuck")
