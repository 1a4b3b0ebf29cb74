"""The cluster backend end to end, through the `inv` command line: three real restate-server nodes,
node-loss (the leader SIGKILLed), partition (an nftables cut, where nft can be used), a short soak
(45 s of load and faults), and `inv down` leaving none of the recorded processes alive. About three
minutes on an idle machine. The 3-minute soak of the issue's "done when" is opt-in (marked `long`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from drillkit import config as drill_config
from drillkit.procs import is_alive
from drillkit.stack import Stack
from tests.integration.conftest import inv, latest_journal

pytestmark = pytest.mark.cluster


def test_up_runs_three_nodes_with_every_partition_led(cluster_config):
    out = inv(cluster_config, "up")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "every node's admin API lists WriterAgentRestate" in out.stdout
    stack = Stack(drill_config.load(cluster_config))
    try:
        cluster = stack.cluster
        assert [n.name for n in cluster.live_nodes()] == ["n1", "n2", "n3"]
        assert len({cluster.live(n).pid for n in cluster.nodes}) == 3
        # Restate's scheduler may move a leader after the start (a partition between two for a moment):
        # every partition is led again within the ready timeout, asked of the nodes themselves.
        assert cluster.all_led(cluster.wait_leaders(60))
        for node in cluster.nodes:
            assert "WriterAgentRestate" in cluster.services_on(node)
            assert node.config_file.is_file() and node.log_file.is_file()
    finally:
        stack.close()
    status = inv(cluster_config, "status")
    assert status.returncode == 0
    assert "restate node n3" in status.stdout and "partition leaders" in status.stdout


def test_node_loss_passes_and_the_node_comes_back(cluster_config):
    out = inv(cluster_config, "drill.node-loss", "--keep-up")
    assert out.returncode == 0, out.stdout + out.stderr
    journal = latest_journal(cluster_config, "node-loss")
    assert journal["verdict"] == "PASS"
    assert journal["evidence"]["recovery_s"]["fault_to_progress_s"] > 0
    lost = journal["evidence"]["lost"]
    stack = Stack(drill_config.load(cluster_config))
    try:
        assert stack.cluster.live(stack.cluster.by_name(lost)) is not None
    finally:
        stack.close()


def test_partition_passes_where_nft_can_be_used(cluster_config):
    if shutil.which("nft") is None:
        out = inv(cluster_config, "drill.partition", "--keep-up")
        assert out.returncode == 3, out.stdout + out.stderr  # INCONCLUSIVE, never PASS
        pytest.skip("nft is not installed (scripts/test.sh installs Debian's nftables as root)")
    out = inv(cluster_config, "drill.partition", "--keep-up")
    if out.returncode == 3:
        reasons = " ".join(latest_journal(cluster_config, "partition")["reasons"])
        # Only a firewall that cannot be changed is a reason to skip; any other INCONCLUSIVE is a failure.
        assert "cannot change the firewall" in reasons or "cannot single out a node" in reasons, out.stdout[-3000:]
        pytest.skip("the firewall cannot be changed here: " + reasons[-400:])
    assert out.returncode == 0, out.stdout + out.stderr
    assert latest_journal(cluster_config, "partition")["verdict"] == "PASS"
    rules = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False)
    assert "drillkit_netcut" not in rules.stdout  # the cut is removed afterwards


def soak_faults(config: Path) -> str:
    """Every fault kind where a node can be cut off here (nft, and real root for per-node socket groups)."""
    stack = Stack(drill_config.load(config))
    try:
        can_cut = shutil.which("nft") is not None and stack.cluster.uses_socket_groups()
    finally:
        stack.close()
    return "kill,stop,partition,writer" if can_cut else "kill,stop,writer"


def check_soak_journal(config: Path, least_faults: int) -> dict:
    """PASS, at least `least_faults` faults each recovered within the bound, exactly once, load on every node."""
    journal = latest_journal(config, "soak")
    assert journal["verdict"] == "PASS", journal["reasons"]
    soak = journal["evidence"]["soak"]
    assert len(soak["faults"]) >= least_faults, soak["faults"]
    assert all(f["recovery_s"] is not None and f["recovery_s"] <= soak["recovery_bound_s"] for f in soak["faults"])
    passed = {e["name"] for e in journal["expectations"] if e["passed"]}
    assert "no step Restate had journaled as done was executed again (ledger), nor journaled twice" in passed
    assert "no step Restate had journaled as done was requested again from the model (tap)" in passed
    assert soak["load"]["accepted"] == soak["load"]["sent"] > 10
    assert set(soak["load"]["accepted_per_node"]) == {"n1", "n2", "n3"}  # the load went through every ingress
    return journal


def test_soak_injects_faults_under_load_and_every_invocation_runs_once(cluster_config):
    out = inv(
        cluster_config,
        "drill.soak",
        "--minutes",
        "0.75",
        "--seed",
        "3",
        "--faults",
        soak_faults(cluster_config),
        "--keep-up",
        timeout=480,
    )
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr
    check_soak_journal(cluster_config, least_faults=2)
    stack = Stack(drill_config.load(cluster_config))
    try:
        report = sorted(stack.state.reports.glob("soak-*"))[-1]
    finally:
        stack.close()
    assert "## Fault schedule (as it ran)" in (report / "report.md").read_text()
    assert "fault window" in (report / "report.html").read_text()  # the shaded windows' legend


@pytest.mark.long  # opt-in: --long or DRILL_LONG=1 (tests/conftest.py)
def test_three_minute_soak_injects_at_least_ten_faults(cluster_config):
    faults = soak_faults(cluster_config)
    out = inv(
        cluster_config, "drill.soak", "--minutes", "3", "--seed", "1", "--faults", faults, "--keep-up", timeout=900
    )
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr
    check_soak_journal(cluster_config, least_faults=10)


def test_down_leaves_no_restate_server_running(cluster_config):
    stack = Stack(drill_config.load(cluster_config))
    try:
        pids = [r.pid for r in (stack.cluster.live(n) for n in stack.cluster.nodes) if r is not None]
    finally:
        stack.close()
    assert len(pids) == 3
    out = inv(cluster_config, "down")
    assert out.returncode == 0, out.stdout + out.stderr
    assert not [pid for pid in pids if is_alive(pid)]
