"""drill.data-loss and drill.rolling-upgrade without a stack: release versions and their binary cache,
the node TOML an older release reads, the per-node binary, the wipe, restatectl's worker state, the
keyed load's counts and rotation, the exactly-once checks and the drills' parameter checks."""

from __future__ import annotations

import signal
import subprocess
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

from drillkit import catalog
from drillkit.binaries import SERVER, BinaryStore, parse_version, roll_refusal
from drillkit.components.restate_cluster import RestateCluster, Restatectl, active_leaders, node_toml
from drillkit.components.writer import Execution
from drillkit.config import ClusterSettings
from drillkit.drills.data_loss import check_data_loss
from drillkit.drills.rolling_upgrade import check_rolling_upgrade
from drillkit.errors import ComponentError, DrillError
from drillkit.kit.exactly_once import executed_again, journaled_twice
from drillkit.kit.keyed_load import KeyedLoad, Send, summary
from drillkit.kit.rebuild import replayed
from drillkit.procs import ProcessRecord
from tests.unit.test_cluster import _journal, cluster
from tests.unit.test_records_ports_configs import _stack_on

# -- versions and their binaries ------------------------------------------------------------------------


def test_versions_are_releases_and_a_roll_moves_one_minor_version():
    assert parse_version("1.6.2") == (1, 6, 2)
    for wrong in ("1.6", "v1.6.2", "1.6.x", "latest", ""):
        with pytest.raises(DrillError, match=r"x\.y\.z"):
            parse_version(wrong, "--from")
    assert roll_refusal("1.6.2", "1.7.12") is None
    assert roll_refusal("1.7.10", "1.7.12") is None  # patch releases of one minor version
    assert "skips a minor version" in (roll_refusal("1.5.3", "1.7.12") or "")
    assert "both 1.7.12" in (roll_refusal("1.7.12", "1.7.12") or "")
    assert "newer than --to" in (roll_refusal("1.7.12", "1.6.2") or "")
    assert "changes the major version" in (roll_refusal("1.7.12", "2.0.0") or "")
    assert "skips a minor" not in (roll_refusal("1.6.2", "9.9.9") or "") and "--to 1.7.x" in (
        roll_refusal("1.6.2", "9.9.9") or ""
    )


def test_each_release_has_its_own_cache_and_setup_fetches_the_other_versions(tmp_path, monkeypatch):
    stack = _stack_on(tmp_path, **{"runtime.backend": "cluster", "runtime.cluster.other_versions": ["1.6.2"]})
    pinned, older = stack.binaries_of("1.7.12"), stack.binaries_of("1.6.2")
    releases = stack.handles().releases
    assert releases is not None and releases("1.6.2").cache == older.cache  # what a drill is handed
    assert pinned is stack.binaries
    assert older.cache == stack.state.bin / "1.6.2" and pinned.cache == stack.state.bin / "1.7.12"
    assert stack.other_versions() == ["1.6.2"]
    asked: list[tuple[str, str]] = []

    def ensure(self: BinaryStore, binary):
        asked.append((self.version, binary.command))
        return self.cached(binary), "cache"

    monkeypatch.setattr(BinaryStore, "ensure", ensure)
    monkeypatch.setattr(stack.model, "setup", lambda: ("x", "cache"))
    rows = stack.setup()
    assert ("1.6.2", "restate-server") in asked and ("1.6.2", "restatectl") not in asked
    assert ("restate-server 1.6.2", str(older.cached(SERVER)), "cache") in rows
    stack.close()
    native = _stack_on(tmp_path, **{"runtime.cluster.other_versions": ["1.6.2"]})
    assert native.other_versions() == []  # only the cluster backend rolls between releases
    native.close()


def test_other_versions_must_be_releases():
    with pytest.raises(ValueError, match=r"x\.y\.z"):
        ClusterSettings(other_versions=["1.6"])
    assert ClusterSettings().other_versions == []


# -- the cluster: an older release's TOML, a node's own binary, the wipe, worker state ---------------------


def test_an_older_release_reads_the_request_identity_key_at_the_top_level(tmp_path):
    key = tmp_path / "key.pem"
    settings = ClusterSettings()
    old = tomllib.loads(node_toml(settings, 2, tmp_path, key, version=(1, 6, 2)))
    assert old["request-identity-private-key-pem-file"] == str(key)
    assert "request-identity-private-key-pem-file" not in old.get("worker", {}).get("invoker", {})
    for version in (None, (1, 7, 12)):
        new = tomllib.loads(node_toml(settings, 2, tmp_path, key, version=version))
        assert new["worker"]["invoker"]["request-identity-private-key-pem-file"] == str(key)
        assert "request-identity-private-key-pem-file" not in new


def test_leaders_in_a_mixed_cluster_whatever_case_the_release_writes():
    rows = [
        {"partition_id": 0, "plain_node_id": "N1", "effective_mode": "leader", "replay_status": "active"},  # 1.6
        {"partition_id": 1, "plain_node_id": "N2", "effective_mode": "Leader", "replay_status": "active"},  # 1.7
        {"partition_id": 2, "plain_node_id": "N3", "effective_mode": "follower", "replay_status": "active"},
    ]
    assert active_leaders(rows, {"N1": "n1", "N2": "n2"}) == {0: "n1", 1: "n2"}


def test_a_node_runs_its_own_binary_until_given_back_the_pinned_one(tmp_path):
    c = cluster(tmp_path)
    n2 = c.node(2)
    assert c.node_argv(n2)[0] == str(tmp_path / "restate-server")
    c.run_node_on(2, tmp_path / "bin" / "1.6.2" / "restate-server", (1, 6, 2))
    assert c.node_argv(n2)[0] == str(tmp_path / "bin" / "1.6.2" / "restate-server")
    assert c.node_argv(c.node(1))[0] == str(tmp_path / "restate-server")
    c.run_node_on(2, None)
    assert c.node_argv(n2)[0] == str(tmp_path / "restate-server") and c.node_binaries == {}
    with pytest.raises(DrillError, match="no node 4"):
        c.run_node_on(4, None)


def test_a_running_node_of_another_release_is_not_reused(tmp_path):
    c = cluster(tmp_path)
    for version in ("1.7.12", "1.6.2"):
        exe = tmp_path / version / "restate-server"
        exe.parent.mkdir()
        exe.write_text(f"#!/bin/sh\necho restate-server {version}\n")
        exe.chmod(0o755)
    c.binary = tmp_path / "1.7.12" / "restate-server"
    old = ProcessRecord("restate-server-n1", 42, 1, [str(tmp_path / "1.6.2" / "restate-server")], 0.0, "log")
    with pytest.raises(ComponentError, match=r"n1 pid 42 runs restate-server 1\.6\.2 .* not 1\.7\.12"):
        c.refuse_other_release(c.node(1), old)
    c.refuse_other_release(c.node(1), ProcessRecord("restate-server-n1", 42, 1, [str(c.binary)], 0.0, "log"))
    c.run_node_on(1, tmp_path / "1.6.2" / "restate-server", (1, 6, 2))
    c.refuse_other_release(c.node(1), old)  # the release a rolling upgrade gave it


def test_the_partition_store_is_wiped_only_while_the_node_is_down(tmp_path, monkeypatch):
    c = cluster(tmp_path)
    n3 = c.node(3)
    assert n3.partition_store == tmp_path / "cluster" / "n3" / "n3" / "db"
    (n3.partition_store / "sub").mkdir(parents=True)
    (n3.partition_store / "CURRENT").write_bytes(b"12345")
    (n3.partition_store / "sub" / "000001.sst").write_bytes(b"abc")
    (n3.data_dir / "n3" / "log-store").mkdir()
    record = ProcessRecord("restate-server-n3", 42, 1, ["restate-server"], 0.0, "log")
    monkeypatch.setattr(c, "live", lambda node: record)
    with pytest.raises(DrillError, match="n3 is running"):
        c.wipe_partition_store(3)
    assert (n3.partition_store / "CURRENT").exists()
    monkeypatch.setattr(c, "live", lambda node: None)
    assert c.wipe_partition_store(3) == (n3.partition_store, 2, 8)
    assert not n3.partition_store.exists()
    assert (n3.data_dir / "n3" / "log-store").is_dir()  # the log-server's segments stay: see docs/drills.md


def ctl_answering(tmp_path, monkeypatch, ids: str, answer: str) -> tuple[RestateCluster, list[list[str]]]:
    """A cluster whose restatectl maps plain node ids to names by `ids` (its `sql` answer) and answers
    every other command with `answer`; the argv of every call, in order."""
    calls: list[list[str]] = []

    def run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, ids if "sql" in argv else answer, "")

    c = cluster(tmp_path)
    c.ctl = Restatectl(tmp_path / "restatectl", run=run)
    monkeypatch.setattr(c, "reachable", lambda: c.nodes)
    return c, calls


def test_worker_state_is_set_by_plain_node_id_not_by_name(tmp_path, monkeypatch):
    ids = '{"plain_node_id":"N1","name":"n1"}\n{"plain_node_id":"N3","name":"n2"}\n2 rows.\n'
    c, calls = ctl_answering(
        tmp_path, monkeypatch, ids, "N3:2 worker-state has been updated\n  from active to draining"
    )
    answer = c.set_worker_state(2, "draining")
    assert calls[-1][-6:] == ["nodes", "set-worker-state", "--nodes", "3", "--worker-state", "draining"]
    assert answer == "N3:2 worker-state has been updated from active to draining"


def test_leadership_is_pinned_and_unpinned_by_plain_node_id(tmp_path, monkeypatch):
    ids = '{"plain_node_id":"N1","name":"n3"}\n{"plain_node_id":"N3","name":"n1"}\n2 rows.\n'
    c, calls = ctl_answering(tmp_path, monkeypatch, ids, "Pinned partition 2 leader to node N1.\n")
    assert c.pin_leader(2, 3) == "Pinned partition 2 leader to node N1."
    assert calls[-1][-6:] == ["partitions", "leadership", "pin", "--node", "1", "2"]
    c.unpin_leader(2)
    assert calls[-1][-4:] == ["partitions", "leadership", "unpin", "2"]


# -- the load, the checks ----------------------------------------------------------------------------------


def test_the_loads_counts_tell_a_retry_from_a_failure():
    sends = [
        Send("k0", 1.0, "inv_0", "n1"),
        Send("k1", 2.0, "inv_1", "n2", ["n1: connection refused"]),  # refused by one, accepted by the next
        Send("k2", 3.0, None, None, ["n1: refused", "n2: refused", "n3: refused"]),
    ]
    assert [s.retried for s in sends] == [False, True, False]
    assert [s.failed for s in sends] == [False, False, True]
    assert summary(sends) == {"sent": 3, "accepted": 2, "retried": 1, "failed": 1}


def test_a_node_taken_out_of_the_rotation_gets_no_send(tmp_path):
    c = cluster(tmp_path)
    load = KeyedLoad(c.nodes, 2.0)
    assert {load._next_node(i, 0).name for i in range(6)} == {"n1", "n2", "n3"}
    load.take_out(2)
    assert "n2" not in {load._next_node(i, a).name for i in range(6) for a in range(3)}
    load.put_back(2)
    assert "n2" in {load._next_node(i, 0).name for i in range(6)}


def test_executed_again_after_the_journal_and_journaled_twice():
    journals = {"inv_a": _journal(("outline", 100.0), ("summary", 101.0)), "inv_b": _journal(("outline", 100.0))}
    journaled = {"inv_a": {"outline": 100.0, "summary": 101.0}, "inv_b": {"outline": 100.0}}
    runs = [
        Execution("inv_a", "outline", 1, 9, 99.0, 99.9, "ok"),
        Execution("inv_a", "summary", 1, 9, 100.1, None, None),  # cut off before its result was journaled
        Execution("inv_a", "summary", 2, 9, 100.5, 100.9, "ok"),  # allowed: never journaled before it started
        Execution("inv_b", "outline", 1, 9, 99.0, 99.9, "ok"),
        Execution("inv_b", "outline", 2, 9, 100.5, 100.9, "ok"),  # started after the journal had it: a FAIL
    ]
    assert executed_again(journaled, runs) == ["inv_b/outline"]
    assert journaled_twice(journals) == []
    assert journaled_twice({"inv_c": _journal(("outline", 1.0), ("outline", 2.0))}) == ["inv_c/outline"]


def test_a_wiped_node_counts_as_rebuilt_once_every_processor_it_runs_is_active():
    assert not replayed([])
    active, starting = {"partition_id": 1, "replay_status": "active"}, {"partition_id": 2, "replay_status": "starting"}
    assert not replayed([active, starting])
    assert replayed([active, {**starting, "replay_status": "active"}])


# -- the drills' declarations and checks -------------------------------------------------------------------


def test_the_rolling_upgrade_flags_are_from_to_mode_rate_fresh():
    declared = catalog.DRILLS["rolling-upgrade"]
    assert [p.flag for p in declared.params] == ["from", "to", "mode", "rate", "fresh"]
    spec = declared.spec({"from_": "1.6.2", "mode": "maintenance"})
    assert spec.parameters["from"] == "1.6.2" and spec.parameters["to"] == "1.7.12"
    assert spec.parameters["mode"] == "maintenance"
    with pytest.raises(DrillError, match="--mode"):
        declared.spec({"mode": "yolo"})
    assert [p.flag for p in catalog.DRILLS["data-loss"].params] == ["node", "signal", "invocations", "llm"]


def _fake_stack(replication: int = 2, nodes: int = 3, fetched: list[str] | None = None, backend: str = "cluster"):
    """The drill's handles as far as its check reads them."""

    def releases(version: str):
        return SimpleNamespace(ensure=lambda binary: fetched.append(version) if fetched is not None else None)

    nowhere = Path("/nonexistent/cluster")
    cluster_ = SimpleNamespace(
        nodes=[SimpleNamespace(name=f"n{i}", data_dir=nowhere / f"n{i}") for i in range(1, nodes + 1)],
        settings=SimpleNamespace(replication=replication),
        home=nowhere,
        live=lambda node: None,
    )
    config = SimpleNamespace(source="c.yaml", runtime=SimpleNamespace(backend=backend))
    model = SimpleNamespace(state=SimpleNamespace(last_invocation=lambda: None))
    return SimpleNamespace(cluster=cluster_, releases=releases, config=config, model=model)


def test_the_rolling_upgrade_refuses_before_anything_starts_and_fetches_both_releases():
    fetched: list[str] = []
    check_rolling_upgrade(_fake_stack(fetched=fetched), "1.6.2", "1.7.12", 2.0)  # type: ignore[arg-type]
    assert fetched == ["1.6.2", "1.7.12"]
    with pytest.raises(DrillError, match="skips a minor version"):
        check_rolling_upgrade(_fake_stack(), "1.5.3", "1.7.12", 2.0)  # type: ignore[arg-type]
    with pytest.raises(DrillError, match="replication >= 2"):
        check_rolling_upgrade(_fake_stack(replication=1), "1.6.2", "1.7.12", 2.0)  # type: ignore[arg-type]
    with pytest.raises(DrillError, match="--rate"):
        check_rolling_upgrade(_fake_stack(), "1.6.2", "1.7.12", 50.0)  # type: ignore[arg-type]
    with pytest.raises(DrillError, match="native cluster"):
        check_rolling_upgrade(_fake_stack(backend="docker-cluster"), "1.6.2", "1.7.12", 2.0)  # type: ignore[arg-type]


def test_the_data_loss_drill_refuses_what_cannot_rebuild():
    check_data_loss(_fake_stack(), "leader", signal.SIGKILL, 8)  # type: ignore[arg-type]
    with pytest.raises(DrillError, match="replication 2 or more"):
        check_data_loss(_fake_stack(replication=1), "leader", signal.SIGKILL, 8)  # type: ignore[arg-type]
    with pytest.raises(DrillError, match="--signal"):
        check_data_loss(_fake_stack(), "leader", signal.SIGSTOP, 8)  # type: ignore[arg-type]
    with pytest.raises(DrillError, match="--node"):
        check_data_loss(_fake_stack(), "7", signal.SIGKILL, 8)  # type: ignore[arg-type]
    with pytest.raises(DrillError, match="native cluster"):
        check_data_loss(_fake_stack(backend="docker-cluster"), "leader", signal.SIGKILL, 8)  # type: ignore[arg-type]


def test_the_cluster_config_fetches_the_release_the_drill_starts_on():
    from drillkit import config as drill_config
    from drillkit.config import PROJECT_ROOT

    loaded = drill_config.load(PROJECT_ROOT / "configs" / "cluster.yaml")
    assert catalog.ROLLING_UPGRADE.defaults["from_"] in loaded.runtime.cluster.other_versions
    assert catalog.ROLLING_UPGRADE.defaults["to"] == loaded.runtime.restate_version
    assert Path(PROJECT_ROOT / "configs" / "cluster.yaml").is_file()


# -- the reviewer's findings: deleting a cluster it did not create, Ctrl-C mid-replace, flags, wording ---------


def test_the_roll_refuses_a_cluster_it_did_not_create_unless_fresh(tmp_path, monkeypatch):
    """`inv up; inv send; inv drill.rolling-upgrade` would have deleted the invocation: refused, naming it."""
    from drillkit.kit import rolling
    from drillkit.state import StateDir

    c, state = cluster(tmp_path), StateDir(tmp_path / "state")
    handles = SimpleNamespace(**{**vars(_fake_stack()), "cluster": c, "model": SimpleNamespace(state=state)})
    check_rolling_upgrade(handles, "1.6.2", "1.7.12", 2.0)  # type: ignore[arg-type]  # nothing there: runs
    (c.node(2).data_dir / "db").mkdir(parents=True)  # `inv up` wrote data, `inv send` remembered one
    state.remember_invocation("inv_1send")
    with pytest.raises(DrillError) as refused:
        check_rolling_upgrade(handles, "1.6.2", "1.7.12", 2.0)  # type: ignore[arg-type]
    text = str(refused.value)
    assert f"its data in {c.home} (n2)" in text and "inv_1send" in text
    assert "inv down --purge --config c.yaml" in text and "--fresh" in text
    check_rolling_upgrade(handles, "1.6.2", "1.7.12", 2.0, fresh=True)  # type: ignore[arg-type]
    state.last_invocation_file.unlink()
    assert rolling.in_the_way(c, state) == [f"its data in {c.home} (n2)"]  # data the drill did not write
    (c.home / rolling.BORN_HERE).write_text("x")
    assert rolling.in_the_way(c, state) == []  # the drill's own data from an earlier run: no refusal
    monkeypatch.setattr(c, "live", lambda node: object() if node.number == 1 else None)
    assert rolling.in_the_way(c, state) == ["the running cluster (n1)", f"its data in {c.home} (n2)"]
    spec = catalog.DRILLS["rolling-upgrade"].spec({"fresh": "yes"})
    assert spec.parameters["fresh"] is True and catalog.DRILLS["rolling-upgrade"].spec({}).parameters["fresh"] is False


def _pinned_back_cluster(live: set[int], other: set[int], fails: set[int]):
    """What `back_to_pinned` asks of a cluster; records what it was told to do."""
    done: list[str] = []
    nodes = [SimpleNamespace(number=n, name=f"n{n}") for n in (1, 2, 3)]

    def launch(node):
        done.append(f"launch n{node.number}")
        live.add(node.number)

    def healthy(node, timeout_s):
        if node.number in fails:
            raise ComponentError("did not answer")

    fake = SimpleNamespace(
        nodes=nodes,
        node_binaries={n: (Path("/old"), (1, 6, 2)) for n in other},
        run_node_on=lambda number, binary: fake.node_binaries.pop(number, None),
        live=lambda node: object() if node.number in live else None,
        node_stop=lambda number: (done.append(f"stop n{number}"), live.discard(number)),
        launch_node=launch,
        wait_node_healthy=healthy,
        ready_timeout=lambda: 1.0,
    )
    return SimpleNamespace(cluster=fake, pace=SimpleNamespace(budget_s=1.0)), done


def test_the_cleanup_starts_a_node_a_ctrl_c_left_stopped_and_never_claims_a_false_success():
    from drillkit.kit.rolling import back_to_pinned

    # Ctrl-C between n2's stop and its start on the other release: n2 is down, n1 still on the other one.
    drill, done = _pinned_back_cluster(live={1, 3}, other={1}, fails=set())
    back_to_pinned(drill)  # type: ignore[arg-type]
    assert done == ["stop n1", "launch n1", "launch n2"] and drill.cluster.node_binaries == {}
    drill, done = _pinned_back_cluster(live={1, 3}, other=set(), fails={2})
    with pytest.raises(DrillError, match=r"not started on the pinned restate-server: n2 \(did not answer\)"):
        back_to_pinned(drill)  # type: ignore[arg-type]


def test_the_cluster_only_drills_refuse_docker_cluster_from_the_config_before_any_docker(tmp_path, monkeypatch):
    stack = _stack_on(tmp_path, **{"runtime.backend": "docker-cluster"})
    monkeypatch.setattr(stack, "handles", lambda: pytest.fail("handles built: a Docker engine would be asked"))
    for name in ("data-loss", "rolling-upgrade"):
        with pytest.raises(DrillError, match=r"native cluster .*configs/cluster\.yaml.* only"):
            catalog.check(catalog.DRILLS[name].spec({}), stack)
    stack.close()
    with pytest.raises(DrillError, match="native cluster only"):
        check_data_loss(_fake_stack(backend="native"), "leader", signal.SIGKILL, 8)  # type: ignore[arg-type]
    from tasks import drill as drill_tasks

    for task in (drill_tasks.data_loss, drill_tasks.rolling_upgrade):
        assert "docker-cluster is refused" in task.help["config"] and "native cluster" in task.help["config"]
    assert "--fresh" in (drill_tasks.rolling_upgrade.__doc__ or "")


@pytest.mark.parametrize(
    ("name", "flag"),
    [(d, p.flag) for d, declared in sorted(catalog.DRILLS.items()) for p in declared.flags if p.kind == "float"],
)
def test_every_float_flag_given_a_word_is_one_error_line_and_exit_2(name, flag, capsys, tmp_path, monkeypatch):
    from tests.unit.test_tasks import run_inv

    monkeypatch.chdir(tmp_path)
    assert run_inv(f"drill.{name}", f"--{flag}", "abc") == 2
    err = capsys.readouterr().err
    assert err == f"error: --{flag} 'abc': not a number\n", err


def test_the_rate_flag_shows_that_it_takes_a_number():
    from tests.unit.test_tasks import TASKS

    rate = next(a for a in TASKS["drill.rolling-upgrade"].get_arguments() if a.name == "rate")
    assert rate.takes_value and "a number" in (rate.help or "")


def test_an_unpublished_release_is_one_line_naming_the_ones_that_exist(tmp_path):
    import json

    from drillkit.binaries import Platform

    def npm(argv, **kwargs):
        if argv[-1] == "--json" and "versions" in argv:
            return subprocess.CompletedProcess(argv, 0, json.dumps(["1.5.0", "1.6.1", "1.6.2", "1.7.12"]), "")
        return subprocess.CompletedProcess(
            argv,
            1,
            "",
            (
                "npm error code E404\nnpm error 404 No match found for version 1.6.99\n"
                "npm error 404 The requested resource could not be found"
            ),
        )

    store = BinaryStore(
        tmp_path, "1.6.99", run=npm, plat=Platform("x", "linux-x64"), use_path=False, reach=lambda: "offline"
    )
    with pytest.raises(DrillError) as err:
        store.ensure(SERVER)
    assert str(err.value) == (
        "restate-server 1.6.99 is not a published Restate release (npm has no "
        "@restatedev/restate-server-linux-x64@1.6.99); published: 1.6.1, 1.6.2"
    )


def test_the_ledger_line_says_what_the_extra_executions_are():
    from drillkit.kit.exactly_once import ledger_line

    line = ledger_line(48, 55, [])
    assert line.startswith("48 journaled steps, 55 executions in the ledger (7 more than journaled: attempts cut")
    assert line.endswith("executed again after being journaled as done: none")
    assert "more than journaled" not in ledger_line(4, 4, ["inv_1/outline"])
