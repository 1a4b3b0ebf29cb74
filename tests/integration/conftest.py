"""Integration fixtures: real restate-server, real writer process, real local model, loopback only.

The binaries and the model come from the project's own cache (`inv setup`, run by scripts/test.sh);
each test module gets a fresh state dir (Restate data, ledger, process records) linked to that cache.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from drillkit import config as drill_config
from drillkit.stack import Stack
from writer_service.config import apply_overrides

ROOT = Path(__file__).resolve().parents[2]
LOCAL_CONFIG = ROOT / "configs" / "local.yaml"


def _routes_off_loopback() -> list[str]:
    lines = Path("/proc/net/route").read_text().splitlines()[1:]
    return [line.split()[0] for line in lines if line.split() and line.split()[0] != "lo"]


@pytest.fixture(scope="session", autouse=True)
def loopback_only() -> None:
    """restate-server calls out to GitHub at start: these tests must run where no traffic can leave."""
    routes = _routes_off_loopback()
    if routes and not os.environ.get("DRILL_ALLOW_NETWORK"):
        pytest.fail(
            f"integration tests must run in a loopback-only network namespace (routes via {sorted(set(routes))}); "
            "use `bash scripts/test.sh`, or `scripts/loopback-only python -m pytest tests/integration`",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def project_state() -> Path:
    stack = Stack(drill_config.load(LOCAL_CONFIG))
    try:
        if stack.needs_setup():
            pytest.fail("binaries or model missing: run `inv setup` (scripts/test.sh does)", pytrace=False)
        return stack.state.root.resolve()
    finally:
        stack.close()


def make_config(directory: Path, project_state: Path, base: Path = LOCAL_CONFIG, **overrides: Any) -> Path:
    """A copy of `base` (configs/local.yaml) whose state lives in `directory`, sharing the binary/model cache."""
    data = yaml.safe_load(base.read_text())
    state = directory / "state"
    state.mkdir(parents=True, exist_ok=True)
    for cached in ("bin", "models"):
        link = state / cached
        if not link.exists():
            link.symlink_to(project_state / cached)
    data["runtime"]["state_dir"] = str(state)
    data["ledger"]["path"] = str(directory / "ledger.jsonl")
    apply_overrides(data, overrides)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def our_live_processes(stack: Stack) -> list[str]:
    return [name for name in stack.procs.names() if stack.procs.live(name)]


@contextmanager
def stack_up(path: Path) -> Iterator[Stack]:
    """The stack of a config, up for the block, then down with its data; nothing of ours left running."""
    s = Stack(drill_config.load(path))
    try:
        s.up()
        yield s
    finally:
        s.down(purge=True)
        assert our_live_processes(s) == []
        s.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, project_state: Path) -> Iterator[Stack]:
    with stack_up(make_config(tmp_path_factory.mktemp("stack"), project_state)) as s:
        yield s
