"""configs/ts-writer.yaml and the TypeScript service it describes must agree: the drills know the
service only through this file, so a renamed step or variable on either side would turn a drill into
a silent no-op (a fault hook nobody reads, a model URL nobody uses)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from drillkit import config as drill_config
from drillkit.components.target import holds_placeholder

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "targets" / "ts_writer"
SOURCE = (TARGET / "src" / "app.ts").read_text()


def target() -> drill_config.Target:
    loaded = drill_config.load(ROOT / "configs" / "ts-writer.yaml")
    assert loaded.target is not None
    return loaded.target


def test_it_runs_the_built_service_where_the_config_expects_it():
    spec = target()
    package = json.loads((TARGET / "package.json").read_text())
    assert spec.command == ["node", "targets/ts_writer/" + package["main"]]
    assert package["scripts"]["build"].startswith("tsc")
    assert spec.env["PORT"] == str(spec.port)
    assert f'envInt("PORT", {spec.port})' in SOURCE  # the default agrees too


def test_every_variable_and_step_the_config_names_is_read_by_the_service():
    spec = target()
    assert spec.tool_fault is not None
    for variable in (spec.llm_base_url_env, spec.tool_fault.env, spec.identity_key_env, *spec.env):
        assert f"process.env.{variable}" in SOURCE or f'"{variable}"' in SOURCE, variable
    steps = re.findall(r'ctx\.run\("([^"]+)"', SOURCE)
    assert steps == ["outline", "draft", "save_report"]
    assert spec.tool_fault.step in steps
    assert re.search(rf'name: "{spec.service}"', SOURCE)
    assert re.search(rf"\b{spec.handler}: async", SOURCE)


def test_the_body_tells_invocations_apart_and_writes_inside_the_allowed_root():
    spec = target()
    assert isinstance(spec.body, dict)
    assert holds_placeholder(spec.body["topic"])
    roots = spec.env["ALLOWED_ROOTS"].split(":")
    assert any(str(spec.body["output_dir"]).startswith(root.rstrip("/") + "/") for root in roots)


def test_exact_versions_locked():
    package = json.loads((TARGET / "package.json").read_text())
    lock = json.loads((TARGET / "package-lock.json").read_text())
    for name, version in {**package["dependencies"], **package["devDependencies"]}.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name}: {version} is not an exact version"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version, name
