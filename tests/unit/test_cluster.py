"""The cluster backend without servers: node TOML, restatectl's rows read into leaders, key ranges,
the choice of the node to lose, and the nftables cut (rules, and INCONCLUSIVE where it cannot be made)."""

import subprocess
import tomllib
from datetime import UTC
from pathlib import Path

import pytest

from drillkit.binaries import CTL
from drillkit.components.netcut import Cut, NetCut, ruleset
from drillkit.components.restate_cluster import (
    RestateCluster,
    Restatectl,
    active_leaders,
    node_toml,
    parse_jsonl,
    partition_of,
)
from drillkit.config import ClusterSettings, Runtime
from drillkit.errors import ComponentError, DrillError, Inconclusive
from drillkit.kit.cluster_actions import Flight
from drillkit.kit.cluster_probes import choose
from drillkit.procs import ProcessTable
from drillkit.restate_api import AdminApi, IngressApi
from drillkit.state import StateDir


def test_node_toml_has_the_measured_keys(tmp_path):
    settings = ClusterSettings()
    for n in (1, 2, 3):
        data = tomllib.loads(node_toml(settings, n, tmp_path / f"n{n}"))
        assert data["node-name"] == f"n{n}"
        assert data["cluster-name"] == "drill"
        assert data["base-dir"] == str(tmp_path / f"n{n}")
        assert data["auto-provision"] is (n == 1)
        assert data["default-replication"] == 2
        assert data["default-num-partitions"] == 4
        assert data["bind-ip"] == "127.0.0.1"
        assert data["listen-mode"] == "tcp"
        assert data["bind-port"] == 5121 + n
        assert data["advertised-address"] == f"http://127.0.0.1:{5121 + n}"
        assert data["metadata-client"] == {
            "type": "replicated",
            "addresses": ["http://127.0.0.1:5122", "http://127.0.0.1:5123", "http://127.0.0.1:5124"],
        }
        assert data["bifrost"]["default-provider"] == "replicated"
        assert data["admin"]["bind-port"] == 9069 + n
        assert data["ingress"]["bind-port"] == 8079 + n


def test_node_toml_follows_the_settings(tmp_path):
    settings = ClusterSettings(nodes=5, name='we "quote"', replication=3, partitions=8, fabric_base_port=6000)
    data = tomllib.loads(node_toml(settings, 5, tmp_path))
    assert data["cluster-name"] == 'we "quote"'
    assert data["default-replication"] == 3 and data["default-num-partitions"] == 8
    assert data["bind-port"] == 6005
    assert len(data["metadata-client"]["addresses"]) == 5


def test_replication_cannot_exceed_the_nodes():
    with pytest.raises(ValueError, match="replication 3 needs at least 3 nodes"):
        ClusterSettings(nodes=2, replication=3)
    assert Runtime.model_validate({"backend": "cluster"}).cluster.nodes == 3


STATE = """\
{"partition_id":0,"plain_node_id":"N1","effective_mode":"Leader","replay_status":"active","leader_epoch":"e3"}
{"partition_id":0,"plain_node_id":"N3","effective_mode":"Follower","replay_status":"active","leader_epoch":"e3"}
{"partition_id":1,"plain_node_id":"N2","effective_mode":"Leader","replay_status":"active","leader_epoch":"e4"}
{"partition_id":1,"plain_node_id":"N1","effective_mode":"Leader","replay_status":"active","leader_epoch":"e5"}
{"partition_id":2,"plain_node_id":"N2","effective_mode":"Leader","replay_status":"catching-up","leader_epoch":"e3"}
{"partition_id":3,"plain_node_id":"N3","effective_mode":"Candidate","replay_status":"active","leader_epoch":"e3"}
5 rows. Query took 43.43472ms
"""


def test_leaders_from_restatectl_rows():
    rows = parse_jsonl(STATE)
    assert len(rows) == 6  # the summary line is not a row
    leaders = active_leaders(rows, {"N1": "n1", "N2": "n2", "N3": "n3"})
    # p1: two claim it, the newer epoch wins; p2 is not active yet; p3 has only a candidate.
    assert leaders == {0: "n1", 1: "n1"}


def test_partition_of_a_key():
    ranges = [
        {"partition_id": 0, "start_key": 0, "end_key": 4611686018427387903},
        {"partition_id": 1, "start_key": 4611686018427387904, "end_key": 18446744073709551615},
    ]
    assert partition_of(0, ranges) == 0
    assert partition_of(4611686018427387904, ranges) == 1
    assert partition_of(18446744073709551615, ranges) == 1


def test_restatectl_asks_only_the_given_nodes_and_wraps_failures(tmp_path):
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 1, "", "Error: Failed to run query")

    ctl = Restatectl(tmp_path / "restatectl", run=run)
    with pytest.raises(ComponentError, match="Failed to run query"):
        ctl.sql(["http://127.0.0.1:5123", "http://127.0.0.1:5124"], "SELECT 1")
    assert calls[0][1:3] == ["--address", "http://127.0.0.1:5123,http://127.0.0.1:5124"]
    assert calls[0][-3:] == ["sql", "--jsonl", "SELECT 1"]
    with pytest.raises(ComponentError, match="no reachable node"):
        ctl.sql([], "SELECT 1")


def test_restatectl_is_fetched_like_the_other_binaries():
    assert (CTL.command, CTL.npm_stem, CTL.archive_stem) == ("restatectl", "restatectl", "restatectl")


def cluster(tmp_path: Path, identity: bool = False) -> RestateCluster:
    """A default three-node cluster under tmp_path (nothing started); `identity`: its nodes sign requests."""
    runtime = Runtime.model_validate({"backend": "cluster"})
    return RestateCluster(
        runtime,
        AdminApi(runtime.admin_url),
        IngressApi(runtime.ingress_url),
        tmp_path / "restate-server",
        tmp_path / "restatectl",
        tmp_path / "cluster",
        tmp_path / "logs",
        ProcessTable(tmp_path / "procs"),
        identity=StateDir(tmp_path / "state").request_identity() if identity else None,
    )


def test_node_ports_and_files(tmp_path):
    c = cluster(tmp_path)
    n2 = c.node(2)
    assert (n2.fabric_port, n2.admin_port, n2.ingress_port) == (5123, 9071, 8081)
    assert n2.process == "restate-server-n2" and n2.log_file.name == "restate-n2.log"
    assert c.entry == c.node(1)  # node 1 when none runs
    assert c.entry_surviving({2, 3}) == c.node(1)  # the entry stays while it survives
    assert c.entry_surviving({1}) == n2 == c.entry
    assert c.admin.base_url == "http://127.0.0.1:9070"  # the clients are the Stack's: the cluster leaves them
    with pytest.raises(DrillError, match="no node would be left"):
        c.entry_surviving({1, 2, 3})


def test_choose_the_node_to_lose(tmp_path):
    c = cluster(tmp_path)
    leaders = {0: "n1", 1: "n2", 2: "n2", 3: "n3"}
    flight = Flight(partitions={"a": 0, "b": 1, "c": 2, "d": 2, "e": 3})
    assert [n.name for n in choose(c, "leader", 1, leaders, flight)] == ["n2"]
    assert flight.watched == {"b", "c", "d"}
    assert [n.name for n in choose(c, "follower", 1, leaders, flight)] == ["n1"]
    assert [n.name for n in choose(c, "3", 1, leaders, flight)] == ["n3"]
    assert [n.name for n in choose(c, "leader", 2, leaders, flight)] == ["n2", "n1"]
    assert [n.name for n in choose(c, "3", 2, leaders, flight)] == ["n3", "n2"]


CUT = Cut("n3", 5124, 46003, (5122, 5123), 9080)


def test_the_cut_drops_both_directions_by_port_and_the_nodes_own_connections_by_group():
    text = ruleset(CUT)
    assert "table inet drillkit_netcut" in text
    assert "tcp dport 5124 drop" in text
    assert "tcp sport 5124 drop" in text
    assert "meta skgid 46003 tcp dport { 5122, 5123 } drop" in text
    assert "meta skgid 46003 tcp dport 9080 drop" in text


def test_no_nft_is_inconclusive(monkeypatch):
    monkeypatch.setattr("drillkit.components.netcut.shutil.which", lambda name: None)
    with pytest.raises(Inconclusive, match="not installed"):
        NetCut().check_possible(socket_groups=True)


def test_no_permission_is_inconclusive():
    def run(argv, **kwargs):
        return subprocess.CompletedProcess(argv, 1, "", "Error: Operation not permitted")

    with pytest.raises(Inconclusive, match="Operation not permitted"):
        NetCut(run=run, nft="/usr/sbin/nft").check_possible(socket_groups=True)


def test_no_socket_groups_is_inconclusive():
    def run(argv, **kwargs):
        return subprocess.CompletedProcess(argv, 0, "", "")

    with pytest.raises(Inconclusive, match="single out"):
        NetCut(run=run, nft="/usr/sbin/nft").check_possible(socket_groups=False)


def test_apply_replaces_an_old_table_and_heal_removes_it():
    calls = []
    tables = {"present": True}

    def run(argv, **kwargs):
        calls.append((argv[1:], kwargs.get("input")))
        if argv[1:] == ["list", "table", "inet", "drillkit_netcut"]:
            return subprocess.CompletedProcess(argv, 0 if tables["present"] else 1, "", "")
        if argv[1] == "delete":
            tables["present"] = False
        if argv[1] == "-f":
            tables["present"] = True
        return subprocess.CompletedProcess(argv, 0, "", "")

    cut = NetCut(run=run, nft="nft")
    cut.apply(CUT)
    assert calls[1][0] == ["delete", "table", "inet", "drillkit_netcut"]  # the leftover first
    assert calls[-1][0] == ["-f", "-"] and "skgid 46003" in calls[-1][1]
    assert cut.heal() is True
    assert cut.heal() is False


def _journal(*steps):
    """Journal rows for completed Run steps: (name, completed at epoch seconds)."""
    from datetime import datetime

    rows = []
    for i, (name, done_at) in enumerate(steps, start=1):
        stamp = datetime.fromtimestamp(done_at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        run = f'{{"Command":{{"Run":{{"completion_id":{i},"name":"{name}"}}}}}}'
        note = f'{{"Notification":{{"ty":{{"Completion":"Run"}},"id":{{"CompletionId":{i}}},"result":"Success"}}}}'
        rows.append({"entry_type": "Command: Run", "name": name, "index": 2 * i - 1, "entry_lite_json": run})
        rows.append({"entry_type": "Notification: Run", "index": 2 * i, "entry_lite_json": note, "appended_at": stamp})
    return rows


def test_a_deposed_leaders_re_execution_is_reported_and_any_other_fails():
    """A frozen or cut-off leader that comes back may drive a step from its stale state before it steps
    down: reported, as Restate runs side effects at least once. The same re-run outside that window, on
    a partition it did not lead, or after a kill, fails; so does a step journaled twice."""
    from types import SimpleNamespace

    from drillkit.components.writer import Execution
    from drillkit.drills.node_loss import reexecutions
    from drillkit.kit.cluster_actions import Flight

    runs = {
        "inv_led": [
            Execution("inv_led", "section:2", 1, 9, 100.0, 100.3, "ok"),  # journaled at 100.4
            Execution("inv_led", "section:2", 2, 9, 112.5, None, None),
        ],  # the deposed leader, 112.5
        "inv_other": [
            Execution("inv_other", "outline", 1, 9, 100.0, 100.2, "ok"),
            Execution("inv_other", "outline", 2, 9, 112.6, 112.9, "ok"),
        ],  # not a partition it led
    }
    drill = SimpleNamespace(writer=SimpleNamespace(executions=lambda i: runs.get(i, [])))
    flight = Flight(keys={"inv_led": "k1", "inv_other": "k2", "inv_twice": "k3"}, watched={"inv_led"})
    journals = {
        "inv_led": _journal(("section:2", 100.4)),
        "inv_other": _journal(("outline", 100.3)),
        "inv_twice": _journal(("outline", 100.0), ("outline", 101.0)),
    }
    found = reexecutions(drill, flight, journals, window=(111.0, 114.0))
    assert found.by_deposed == ["inv_led/section:2"]
    assert found.rerun == ["inv_other/outline"]
    assert found.twice == ["inv_twice/outline"]
    after_a_kill = reexecutions(drill, flight, journals, window=None)  # a killed node is not a deposed leader
    assert after_a_kill.by_deposed == [] and after_a_kill.rerun == ["inv_led/section:2", "inv_other/outline"]
    outside = reexecutions(drill, flight, journals, window=(111.0, 112.0))  # the re-run came after its step-down
    assert outside.rerun == ["inv_led/section:2", "inv_other/outline"]


def test_progress_after_the_fault_or_inconclusive_when_the_watched_work_had_already_finished():
    from types import SimpleNamespace

    from drillkit.components.writer import Execution
    from drillkit.kit.cluster_probes import wait_progress
    from drillkit.kit.pace import Pace

    runs = [Execution("inv_a", "save_report", 1, 9, 9.0, 10.5, "ok")]  # started before the fault at 10.0
    writer = SimpleNamespace(steps=lambda: ["outline", "save_report"], executions=lambda: runs)
    drill = SimpleNamespace(writer=writer, pace=Pace())
    flight = Flight(keys={"inv_a": "k1", "inv_b": "k2"}, watched={"inv_a"})
    with pytest.raises(Inconclusive, match="landed too late"):
        wait_progress(drill, flight, 10.0, "a step after the fault")
    runs.append(Execution("inv_a", "save_report", 2, 9, 10.2, 11.0, "ok"))  # started after it: progress
    assert wait_progress(drill, flight, 10.0, "a step after the fault") == pytest.approx(1.0)


def test_only_the_stack_repoints_its_clients_and_the_cluster_talks_through_them(tmp_path):
    from tests.unit.test_records_ports_configs import _stack_on

    stack = _stack_on(tmp_path, **{"runtime.backend": "cluster"})
    cluster = stack.cluster  # built by the Stack, which points its clients at the entry node (node 1 here)
    assert stack.admin.base_url == cluster.entry.admin_url and stack.ingress.base_url == cluster.entry.ingress_url
    n3 = cluster.entry_surviving({1, 2})
    assert stack.admin.base_url == cluster.node(1).admin_url  # choosing a survivor moves no client
    stack.point_clients_at(n3.admin_url, n3.ingress_url)
    assert (stack.admin.base_url, stack.ingress.base_url) == ("http://127.0.0.1:9072", "http://127.0.0.1:8082")
    assert cluster.admin is stack.admin and cluster.ingress is stack.ingress  # the cluster's health checks follow
    stack.close()
