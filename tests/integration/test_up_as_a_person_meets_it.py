"""`inv up` as a new user meets it (issue 21): registration once, then "already registered" with the same
revision (no new one per call), its text in one line (the CLI's whole text with -v); `inv list` with
nothing says so."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from drillkit import config as drill_config

from .conftest import ROOT, make_cluster_config, make_config


@pytest.fixture(scope="module")
def cfg(tmp_path_factory, project_state):
    path = make_config(tmp_path_factory.mktemp("person"), project_state)
    yield path
    subprocess.run([sys.executable, "-m", "invoke", "down", "--purge", "--config", str(path)], cwd=ROOT, check=False)


def inv(cfg, *args):
    out = subprocess.run(
        [sys.executable, "-m", "invoke", *args, "--config", str(cfg)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert out.returncode == 0, f"inv {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def revisions(cfg):
    admin = drill_config.load(cfg).runtime.admin_url
    deployments = httpx.get(f"{admin}/deployments", timeout=10).json()["deployments"]
    return [(d["id"], s["revision"]) for d in deployments for s in d["services"] if s["name"] == "WriterAgentRestate"]


def test_up_registers_once_then_says_already_registered(cfg):
    first = inv(cfg, "up")
    lines = [line for line in first.splitlines() if "registered http://127.0.0.1:9080" in line]
    assert len(lines) == 1 and "WriterAgentRestate revision 1" in lines[0], first
    assert "Are you sure" not in first and "Auto-confirming" not in first
    before = revisions(cfg)
    again = inv(cfg, "up")
    assert "already registered: http://127.0.0.1:9080" in again, again
    assert revisions(cfg) == before == [(before[0][0], 1)]  # no new revision per call
    verbose = inv(cfg, "up", "-v")
    assert "No changes will be made" in verbose and "already registered" in verbose


def test_list_with_nothing_says_so(cfg):
    inv(cfg, "up")
    assert "no invocations in flight (`inv list --all` adds completed ones)" in inv(cfg, "list")


def test_up_on_the_default_config_while_a_cluster_runs_is_exit_2_naming_both(cfg, tmp_path, project_state):
    inv(cfg, "down")  # the other tests' stack holds the ports this one needs
    local = make_config(tmp_path / "local", project_state)
    state = drill_config.load(local).state_root()
    cluster = make_cluster_config(tmp_path / "cluster", project_state, **{"runtime.state_dir": str(state)})
    try:
        inv(cluster, "up")
        out = subprocess.run(
            [sys.executable, "-m", "invoke", "up", "--config", str(local)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 2, out.stdout + out.stderr
        assert "✓" not in out.stdout, "something was started before the refusal"
        assert out.stderr.startswith("error: config: nothing was started; first:")
        assert str(cluster) in out.stderr and str(local) in out.stderr
        status = inv(local, "status")
        assert f"started with {cluster}" in status and f"inv status --config {cluster}" in status
        # Node n1 answers on the native server's ports: not called the native server's "ok".
        [server_row] = [line for line in status.splitlines() if "restate-server (native)" in line]
        assert "answered by a process this config did not start" in server_row, status
    finally:
        subprocess.run([sys.executable, "-m", "invoke", "down", "--purge", "--config", str(cluster)], cwd=ROOT)


def test_status_from_another_namespace_says_not_reachable_never_down(cfg):
    inv(cfg, "up")
    out = subprocess.run(
        [str(ROOT / "scripts" / "loopback-only"), sys.executable, "-m", "invoke", "status", "--config", str(cfg)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [line for line in out.stdout.splitlines() if "│" in line and "pid " in line]
    assert len(rows) == 3 and all("not reachable from here (another network namespace)" in r for r in rows), out.stdout
    assert " down " not in out.stdout
