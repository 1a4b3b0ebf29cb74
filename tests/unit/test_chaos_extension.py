"""The Chaos Toolkit extension's shape: discovery lists every action and probe, and each experiment
names only activities that exist, passing arguments their signatures accept."""

import importlib
import inspect
import json
from pathlib import Path

import pytest

import drillkit.chaos
from drillkit.chaos import actions, probes

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
    assert {p["provider"]["func"] for p in experiment["steady-state-hypothesis"]["probes"]} == {
        "writer_healthy",
        "invocation_completed_with_success",
    }


def test_three_experiments():
    assert [p.name for p in EXPERIMENTS] == ["crash.json", "server-crash.json", "tool-error.json"]
