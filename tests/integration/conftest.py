"""Integration fixtures: real restate-server, real writer process, real local model, loopback only.

The binaries and the model come from the project's own cache (`inv setup`, run by scripts/test.sh);
each test module gets a fresh state dir (Restate data, ledger, process records) linked to that cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from drillkit import config as drill_config
from drillkit.errors import DrillError
from drillkit.procs import ProcessTable
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


def make_cluster_config(directory: Path, project_state: Path, backend: str = "cluster", **overrides: Any) -> Path:
    """`make_config` for a three-node cluster (`backend`: cluster or docker-cluster), its nodes given 120 s."""
    return make_config(
        directory, project_state, **{"runtime.backend": backend, "runtime.ready_timeout_s": 120, **overrides}
    )


def inv(config: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """`inv <args> --config <config>` as a person runs it, its output captured; the caller checks the exit."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args, "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def latest_journal(config: Path, drill: str) -> dict[str, Any]:
    """The journal of the config's latest report of `drill`."""
    stack = Stack(drill_config.load(config))
    try:
        reports = sorted(stack.state.reports.glob(f"{drill}-*"))
        return dict(json.loads((reports[-1] / "journal.json").read_text()))
    finally:
        stack.close()


@pytest.fixture(scope="module")
def cluster_config(tmp_path_factory: pytest.TempPathFactory, project_state: Path) -> Iterator[Path]:
    """A three-node cluster config for the module's tests; `inv down --purge` after the last."""
    path = make_cluster_config(tmp_path_factory.mktemp("cluster"), project_state)
    yield path
    inv(path, "down", "--purge")


@pytest.fixture(scope="module")
def engine(project_state: Path) -> Iterator[Any]:
    """A docker-py client of DOCKER_HOST's engine, else of a private dockerd started here and stopped by its
    PID afterwards, with the configured image present (built from the native binary when no registry has
    it). Skips, saying why, where no engine can run. docker-py is imported only by the tests that ask."""
    import docker

    from drillkit.components import docker_engine
    from drillkit.engine_steps import ensure_image

    dockerd = docker_engine.Dockerd(
        project_state, ProcessTable(project_state / "procs"), project_state / "logs" / "dockerd.log"
    )
    started = False
    if not os.environ.get("DOCKER_HOST"):
        try:
            dockerd.start()
        except DrillError as exc:
            print(f"\nDocker tests skipped: {exc}", file=sys.stderr)
            pytest.skip(f"no Docker engine can run here: {exc}")
        os.environ["DOCKER_HOST"] = dockerd.health_url()
        started = True
    ensure_image(Stack(drill_config.load(LOCAL_CONFIG)))
    yield docker.from_env()
    if started:
        dockerd.stop()
        del os.environ["DOCKER_HOST"]


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
