"""drill.data-loss and drill.rolling-upgrade end to end through the `inv` command line, on three real
restate-server nodes: a node's partition store deleted while it is down and rebuilt from its peers
(about 40 s), and the nodes rolled 1.6.2 -> 1.7.12 -> 1.6.2 under load (about 2 min). The planned-
maintenance variant (each node drained first) takes as long again: opt-in, marked `long` (`--long`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drillkit import config as drill_config
from drillkit.binaries import reported_version
from drillkit.stack import Stack
from tests.integration.conftest import inv, latest_journal

pytestmark = pytest.mark.cluster


def expectations(journal: dict) -> dict[str, bool]:
    return {e["name"]: e["passed"] for e in journal["expectations"]}


def test_data_loss_passes_and_the_wiped_node_rebuilt_its_store(cluster_config):
    out = inv(cluster_config, "drill.data-loss", "--keep-up", timeout=400)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    journal = latest_journal(cluster_config, "data-loss")
    assert journal["verdict"] == "PASS"
    wiped = journal["evidence"]["wiped"]
    assert wiped["files"] > 0 and wiped["bytes"] > 0  # there was a store to lose
    stack = Stack(drill_config.load(cluster_config))
    try:
        node = stack.cluster.by_name(wiped["node"])
        # Seen from here, not from the drill: the node runs, its store exists again, it hosts partitions.
        assert stack.cluster.live(node) is not None
        assert Path(wiped["path"]) == node.partition_store and any(node.partition_store.iterdir())
        assert stack.cluster.hosted(node)
    finally:
        stack.close()


def _roll(cluster_config: Path, *extra: str) -> dict:
    versions = ("--from", "1.6.2", "--to", "1.7.12")
    # --fresh: the cluster the test before left up is not the drill's own (without it: refused, below).
    out = inv(cluster_config, "drill.rolling-upgrade", *versions, "--keep-up", "--fresh", *extra, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    journal = latest_journal(cluster_config, "rolling-upgrade")
    assert journal["verdict"] == "PASS"
    versions = journal["evidence"]["versions"]
    assert list(versions) == ["born on 1.6.2", "upgraded to 1.7.12", "rolled back to 1.6.2"]
    for stage, expected in zip(versions, ("1.6.2", "1.7.12", "1.6.2"), strict=True):
        assert {v["nodes_table"] for v in versions[stage].values()} == {expected}
        assert {v["process"] for v in versions[stage].values()} == {expected}
    assert journal["evidence"]["load"]["failed"] == 0 and journal["evidence"]["load"]["accepted"] > 0
    stack = Stack(drill_config.load(cluster_config))
    try:
        # The cleanup gave every node back the pinned binary: asked of the files the live pids execute.
        for node in stack.cluster.nodes:
            record = stack.cluster.live(node)
            assert record is not None
            assert reported_version(Path(os.readlink(f"/proc/{record.pid}/exe"))) == stack.rt.restate_version
    finally:
        stack.close()
    return journal


def test_rolling_upgrade_forward_and_back_under_load_loses_nothing(cluster_config):
    assert inv(cluster_config, "up", timeout=300).returncode == 0  # a cluster someone runs (`inv up`)
    refused = inv(cluster_config, "drill.rolling-upgrade", timeout=120)
    assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-2000:]
    assert "the running cluster (n1, n2, n3)" in refused.stderr and "--fresh" in refused.stderr
    journal = _roll(cluster_config)
    assert all(expectations(journal).values())


@pytest.mark.long
def test_rolling_upgrade_in_maintenance_mode_has_zero_failed_or_retried_sends(cluster_config):
    journal = _roll(cluster_config, "--mode", "maintenance")
    assert journal["evidence"]["load"]["retried"] == 0
    assert any(e["event"] == "drain" for e in journal["timeline"])
