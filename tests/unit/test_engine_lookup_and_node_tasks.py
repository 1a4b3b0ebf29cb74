"""Where the Docker backends find their engine, the docker-cluster subnet, and the cluster node tasks
when the cluster runs in another PID namespace, is down, or is purged: no stack, no engine."""

from __future__ import annotations

from dataclasses import replace

import pytest

from drillkit.components import docker_engine
from drillkit.errors import ComponentError
from drillkit.procs import ProcessRecord, ProcessTable, pid_namespace
from tests.unit.test_tasks import _config_copy, run_inv

# -- 1. the engine: DOCKER_HOST, else this tool's own (`inv engine.start`), else the default socket -------


def test_docker_host_when_set_is_the_only_engine_tried(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    assert docker_engine.engine_candidates(tmp_path) == [("DOCKER_HOST", "tcp://127.0.0.1:2375")]


def test_without_docker_host_the_private_engine_comes_before_the_default_socket(tmp_path, monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    urls = [url for _, url in docker_engine.engine_candidates(tmp_path)]
    assert urls == [docker_engine.socket_url(tmp_path), docker_engine.DEFAULT_SOCKET]


def test_the_private_engine_is_used_without_docker_host(tmp_path, monkeypatch):
    """What `inv engine.start` started answers on its socket: both backends' clients find it there."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    sock = docker_engine.engine_dir(tmp_path) / "docker.sock"
    sock.parent.mkdir(parents=True)
    sock.touch()
    asked = []

    class Client:
        def __init__(self, base_url: str, timeout: int) -> None:
            asked.append(base_url)

        def ping(self) -> bool:
            return True

    monkeypatch.setattr(docker_engine.docker, "DockerClient", Client)
    assert isinstance(docker_engine.docker_client(tmp_path), Client)
    assert asked == [docker_engine.socket_url(tmp_path)]


def test_no_engine_is_one_line_naming_each_socket_tried_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(docker_engine, "DEFAULT_SOCKET", f"unix://{tmp_path}/no-default.sock")
    with pytest.raises(ComponentError) as caught:
        docker_engine.docker_client(tmp_path)
    text = str(caught.value)
    assert "\n" not in text and "Connection aborted" not in text
    assert docker_engine.socket_url(tmp_path) in text and "no-default.sock: no such socket" in text
    assert "inv engine.start --config FILE" in text


def test_both_docker_backends_look_in_the_state_dir_of_their_process_table(tmp_path, monkeypatch):
    from drillkit import config as drill_config
    from drillkit.components import docker_cluster, restate_docker
    from drillkit.stack import Stack
    from tests.unit.test_docker_cluster import FakeDocker

    asked = []

    def client(state_root=None):
        asked.append(state_root)
        return FakeDocker()

    monkeypatch.setattr(docker_cluster, "docker_client", client)
    monkeypatch.setattr(restate_docker, "docker_client", client)
    for name in ("docker.yaml", "docker-cluster.yaml"):
        stack = Stack(drill_config.load(_config_copy(tmp_path, name)))
        try:
            assert stack.server.client is not None
        finally:
            stack.close()
    assert asked == [tmp_path / "state", tmp_path / "state"]


def test_status_prints_its_table_when_no_engine_answers(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(docker_engine, "DEFAULT_SOCKET", f"unix://{tmp_path}/no-default.sock")
    config = _config_copy(tmp_path, "docker-cluster.yaml")
    assert run_inv("status", "--config", str(config)) == 0
    out = capsys.readouterr()
    text = out.out + out.err
    assert "no Docker engine answers" in text and "inv engine.start" in text
    for n in (1, 2, 3):
        assert f"restate node n{n}" in text
    assert "unknown" in text and "partition leaders: unknown" in text


# -- 2. the docker-cluster network's subnet is a private range -------------------------------------------


@pytest.mark.parametrize("subnet", ["8.8.8.0/24", "100.64.0.0/24", "127.0.0.0/24"])
def test_a_public_subnet_is_refused_naming_file_field_and_value(subnet, tmp_path):
    import yaml

    from drillkit import config as drill_config
    from drillkit.errors import ConfigError

    config = _config_copy(tmp_path, "docker-cluster.yaml")
    data = yaml.safe_load(config.read_text())
    data["runtime"]["docker"] = {"subnet": subnet}
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as caught:
        drill_config.load(config)
    text = str(caught.value)
    assert str(config) in text and "subnet" in text and subnet in text and "not a private range" in text


@pytest.mark.parametrize("subnet", ["172.30.91.0/24", "10.9.0.0/24", "192.168.77.0/28"])
def test_rfc1918_subnets_are_accepted(subnet):
    from drillkit.config import Runtime

    assert Runtime.model_validate({"docker": {"subnet": subnet}}).docker.subnet == subnet


# -- 3, 4. a native cluster in another PID namespace ------------------------------------------------------


def _node_elsewhere(config_path, number: int = 2) -> ProcessRecord:
    """A record of node nN as `inv up` writes it inside a `--contained` shell: another PID namespace."""
    from drillkit import config as drill_config

    procs = drill_config.load(config_path).state_root() / "procs"
    procs.mkdir(parents=True, exist_ok=True)
    record = ProcessRecord(
        f"restate-server-n{number}", 4242, 1, ["restate-server"], 0.0, "n.log", pid_namespace=pid_namespace()
    )
    record = replace(record, pid_namespace="pid:[1]")
    ProcessTable(procs).save(record)
    return record


@pytest.mark.parametrize("task", ["restate.node-kill", "restate.node-stop", "restate.node-start"])
def test_a_node_in_another_pid_namespace_is_refused_like_down(task, tmp_path, capsys):
    config = _config_copy(tmp_path, "cluster.yaml")
    _node_elsewhere(config)
    assert run_inv(task, "--config", str(config), "--node", "2") == 1
    err = capsys.readouterr().err
    assert "restate node n2 (pid 4242) runs in another PID namespace" in err
    assert "nothing was signalled" in err and f"inv {task} --node 2" in err
    assert "not running" not in err


def test_status_shows_a_node_in_another_pid_namespace_as_the_writer_row_does(tmp_path, capsys):
    config = _config_copy(tmp_path, "cluster.yaml")
    _node_elsewhere(config)
    assert run_inv("status", "--config", str(config)) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "restate node n2" in line)
    assert "pid 4242 in another PID namespace" in row and "not reachable from here" in row


# -- 5. node-start with the cluster down ----------------------------------------------------------------


def test_node_start_with_no_node_running_says_the_cluster_is_down_at_once(tmp_path, capsys):
    config = _config_copy(tmp_path, "cluster.yaml")
    assert run_inv("restate.node-start", "--config", str(config), "--node", "2") == 1
    err = capsys.readouterr().err
    assert "the cluster is down" in err and f"inv up --config {config}" in err and "nothing was started" in err
    assert not list((tmp_path / "state" / "procs").glob("*.json"))


# -- 6. down --purge names what it deleted -----------------------------------------------------------------


def test_purge_names_the_cluster_dirs_and_the_docker_volumes(tmp_path, monkeypatch):
    from drillkit import config as drill_config
    from drillkit import operations
    from drillkit.components import docker_cluster
    from drillkit.stack import Stack
    from tests.unit.test_docker_cluster import FakeDocker

    monkeypatch.setattr(docker_cluster, "docker_client", lambda *_: FakeDocker())
    texts = {}
    for name in ("local.yaml", "cluster.yaml", "docker-cluster.yaml"):
        stack = Stack(drill_config.load(_config_copy(tmp_path, name)))
        try:
            texts[name] = operations.purged_data(stack)
        finally:
            stack.close()
    assert texts["local.yaml"].endswith("restate-data)")
    assert "restate-cluster" in texts["cluster.yaml"] and "restate-data" not in texts["cluster.yaml"]
    assert (
        "Docker volumes restate-drill-n1-data, restate-drill-n2-data, restate-drill-n3-data"
        in (texts["docker-cluster.yaml"])
    )
