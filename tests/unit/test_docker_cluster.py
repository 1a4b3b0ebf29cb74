"""The docker-cluster backend's containers, network and faults, against a fake docker-py client."""

from __future__ import annotations

import signal
import tomllib
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import yaml

from drillkit import config as drill_config
from drillkit.components.docker_cluster import (
    DNS_NOWHERE,
    ContainerAddresses,
    DockerCluster,
    NetworkDisconnect,
    container_name,
    volume_name,
)
from drillkit.components.restate_cluster import NftPartitioner, node_toml
from drillkit.config import ClusterSettings, Runtime
from drillkit.errors import ComponentError, ConfigError, ConfigMismatch
from drillkit.procs import ProcessTable
from drillkit.restate_api import AdminApi, IngressApi
from drillkit.state import StateDir

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "docker.restate.dev/restatedev/restate:1.7.12"


class FakeContainer:
    def __init__(self, engine: FakeDocker, kwargs: dict[str, Any]) -> None:
        self.engine, self.kwargs = engine, kwargs
        self.name, self.short_id = kwargs["name"], "c0ffee"
        self.labels = kwargs.get("labels") or {}
        self.status = "running"
        self.pid = 4000 + len(engine.containers_by_name)
        self.networks = {kwargs["network"]}
        self.calls: list[str] = []

    @property
    def attrs(self) -> dict[str, Any]:
        return {
            "State": {"Pid": self.pid if self.status in ("running", "paused") else 0},
            "Args": self.kwargs["command"],
            "NetworkSettings": {"Networks": {n: {} for n in self.networks}},
        }

    def kill(self, signal: str) -> None:
        self.calls.append(f"kill {signal}")
        self.status = "exited"

    def stop(self, timeout: int) -> None:
        self.calls.append(f"stop {timeout}")
        self.status = "exited"

    def pause(self) -> None:
        self.calls.append("pause")
        self.status = "paused"

    def unpause(self) -> None:
        self.calls.append("unpause")
        self.status = "running"

    def remove(self, force: bool) -> None:
        self.engine.containers_by_name.pop(self.name, None)
        self.engine.removed.append(self.name)

    def logs(self, tail: int | None = None, stream: bool = False, follow: bool = False) -> bytes:
        return f"{self.name} said hello\n".encode()


class FakeNetwork:
    def __init__(self, engine: FakeDocker, name: str, subnet: str) -> None:
        self.engine, self.name = engine, name
        self.attrs = {"IPAM": {"Config": [{"Subnet": subnet, "Gateway": "x"}]}}

    def disconnect(self, container: str) -> None:
        self.engine.containers_by_name[container].networks.discard(self.name)
        self.engine.network_calls.append(f"disconnect {container}")

    def connect(self, container: str) -> None:
        self.engine.containers_by_name[container].networks.add(self.name)
        self.engine.network_calls.append(f"connect {container}")

    def remove(self) -> None:
        self.engine.networks_by_name.pop(self.name)


class FakeDocker:
    def __init__(self) -> None:
        self.containers_by_name: dict[str, FakeContainer] = {}
        self.networks_by_name: dict[str, FakeNetwork] = {}
        self.created_networks: list[dict[str, Any]] = []
        self.network_calls: list[str] = []
        self.removed: list[str] = []
        self.removed_volumes: list[str] = []
        self.run_calls: list[dict[str, Any]] = []
        outer = self

        class Containers:
            def get(self, name: str) -> FakeContainer:
                if name not in outer.containers_by_name:
                    raise docker.errors.NotFound("no such container")
                return outer.containers_by_name[name]

            def run(self, **kwargs: Any) -> FakeContainer:
                outer.run_calls.append(kwargs)
                container = FakeContainer(outer, kwargs)
                outer.containers_by_name[container.name] = container
                return container

        class Networks:
            def get(self, name: str) -> FakeNetwork:
                if name not in outer.networks_by_name:
                    raise docker.errors.NotFound("no such network")
                return outer.networks_by_name[name]

            def create(self, name: str, driver: str, ipam: Any, labels: dict[str, str]) -> FakeNetwork:
                pool = ipam["Config"][0]
                chosen = {"Subnet": pool["Subnet"], "Gateway": pool["Gateway"]}
                outer.created_networks.append({"name": name, "driver": driver, **chosen, "labels": labels})
                network = FakeNetwork(outer, name, pool["Subnet"])
                outer.networks_by_name[name] = network
                return network

        class Images:
            def get(self, name: str) -> None:
                if name != IMAGE:
                    raise docker.errors.ImageNotFound("no such image")

        class Volumes:
            def get(self, name: str) -> Any:
                class Volume:
                    def remove(self, force: bool) -> None:
                        outer.removed_volumes.append(name)

                return Volume()

        self.containers, self.networks, self.images, self.volumes = Containers(), Networks(), Images(), Volumes()


def make(tmp_path: Path, client: FakeDocker | None = None, identity: bool = True, **runtime: Any) -> DockerCluster:
    rt = Runtime.model_validate({"backend": "docker-cluster", **runtime})
    return DockerCluster(
        rt,
        AdminApi(rt.admin_url),
        IngressApi(rt.ingress_url),
        tmp_path / "restatectl",
        tmp_path / "cluster",
        tmp_path / "logs",
        ProcessTable(tmp_path / "procs"),
        config_source="configs/docker-cluster.yaml",
        identity=StateDir(tmp_path / "state").request_identity() if identity else None,
        client=client if client is not None else FakeDocker(),
    )


def test_the_config_file_is_the_native_clusters_in_containers():
    config = drill_config.load(ROOT / "configs" / "docker-cluster.yaml")
    native = drill_config.load(ROOT / "configs" / "cluster.yaml")
    assert config.runtime.backend == "docker-cluster" and config.runtime.is_cluster
    assert config.runtime.cluster == native.runtime.cluster
    assert native.runtime.is_cluster and not Runtime().is_cluster


def test_the_subnet_must_be_an_ipv4_network_big_enough():
    assert Runtime().docker.gateway() == "172.30.91.1"
    with pytest.raises(ValueError, match="not an IPv4 subnet"):
        Runtime.model_validate({"docker": {"subnet": "nonsense"}})
    with pytest.raises(ValueError, match="too small"):
        Runtime.model_validate({"docker": {"subnet": "10.0.0.0/30"}})


def test_the_cluster_name_must_make_valid_container_and_host_names(tmp_path):
    with pytest.raises(ConfigError, match=r"runtime\.cluster\.name 'we \"quote\"' names the node containers"):
        make(tmp_path, cluster={"name": 'we "quote"'})
    named = make(tmp_path, cluster={"name": "prod-eu1"})
    assert named.container_name(named.node(1)) == "restate-prod-eu1-n1"


def test_container_nodes_share_the_native_toml_but_reach_each_other_by_name():
    settings = ClusterSettings()
    names = [container_name(settings, n) for n in (1, 2, 3)]
    assert names == ["restate-drill-n1", "restate-drill-n2", "restate-drill-n3"]
    for n in (1, 2, 3):
        data = tomllib.loads(node_toml(settings, n, "/restate-data", "/etc/key.pem", ContainerAddresses(settings)))
        native = tomllib.loads(node_toml(settings, n, "/restate-data", "/etc/key.pem"))
        assert data["bind-ip"] == "0.0.0.0" and data["bind-port"] == 5122
        assert data["advertised-address"] == f"http://restate-drill-n{n}:5122"
        assert data["metadata-client"]["addresses"] == [f"http://{name}:5122" for name in names]
        assert data["admin"]["bind-port"] == 9070 and data["ingress"]["bind-port"] == 8080
        # Everything else is the native cluster's, key for key (node 1's ports are the image's too).
        addressing = {"bind-ip", "bind-port", "advertised-address", "metadata-client", "admin", "ingress"}
        assert data.keys() == native.keys()
        assert {k for k in native if native[k] != data[k]} <= addressing
        assert {k: v for k, v in data.items() if k not in addressing} == {
            k: v for k, v in native.items() if k not in addressing
        }
        assert data["auto-provision"] is (n == 1)


def test_a_node_container_publishes_the_native_ports_on_loopback(tmp_path):
    c = make(tmp_path)
    n2 = c.node(2)
    kwargs = c.run_kwargs(n2)
    assert (
        kwargs["image"] == IMAGE
        and kwargs["name"] == "restate-drill-n2"
        and kwargs["network"] == "restate_drill_cluster"
    )
    assert kwargs["ports"] == {
        "5122/tcp": ("127.0.0.1", 5123),
        "9070/tcp": ("127.0.0.1", 9071),
        "8080/tcp": ("127.0.0.1", 8081),
    }
    assert kwargs["command"] == ["--config-file", "/etc/restate-drill/node.toml", "--no-logo"]
    assert kwargs["extra_hosts"] == {"host.docker.internal": "172.30.91.1"}
    assert kwargs["dns"] == [DNS_NOWHERE]  # no name lookup leaves the network
    volumes = kwargs["volumes"]
    assert volumes[volume_name(c.settings, 2)] == {"bind": "/restate-data", "mode": "rw"}
    assert volumes[str(n2.config_file)] == {"bind": "/etc/restate-drill/node.toml", "mode": "ro"}
    assert volumes[str(c.identity.private_key_file)]["mode"] == "ro"
    assert kwargs["labels"]["drillkit.config-digest"] == c.settings_digest()
    assert c.host_gateway() == "172.30.91.1"
    assert c.default_deployment_uri(9080) == "http://host.docker.internal:9080"


def test_up_makes_the_network_then_each_node_with_its_toml(tmp_path):
    engine = FakeDocker()
    c = make(tmp_path, engine)
    c.prepare()
    assert engine.created_networks == [
        {
            "name": "restate_drill_cluster",
            "driver": "bridge",
            "Subnet": "172.30.91.0/24",
            "Gateway": "172.30.91.1",
            "labels": {"managed-by": "restate-writer-drills"},
        }
    ]
    where = c.launch()
    assert where.startswith("n1 container restate-drill-n1")
    toml = tomllib.loads(c.node(3).config_file.read_text())
    assert toml["advertised-address"] == "http://restate-drill-n3:5122"
    key = toml["worker"]["invoker"]["request-identity-private-key-pem-file"]
    assert key == "/etc/restate-drill/request-identity.pem"
    assert [n.name for n in c.live_nodes()] == ["n1", "n2", "n3"]
    assert c.running() == (
        "n1 container restate-drill-n1, pid 4000, n2 container restate-drill-n2, pid 4001, "
        "n3 container restate-drill-n3, pid 4002"
    )
    # Running again: reused, not recreated.
    assert "(already running)" in c.launch_node(c.node(1)) and len(engine.run_calls) == 3


def test_an_existing_network_on_another_subnet_is_refused_naming_the_fields(tmp_path):
    engine = FakeDocker()
    engine.networks_by_name["restate_drill_cluster"] = FakeNetwork(engine, "restate_drill_cluster", "10.9.0.0/24")
    with pytest.raises(ConfigError, match=r"10\.9\.0\.0/24, not runtime\.docker\.subnet 172\.30\.91\.0/24"):
        make(tmp_path, engine).prepare()


def test_a_node_of_other_settings_is_not_reused(tmp_path):
    engine = FakeDocker()
    make(tmp_path, engine).launch_node(make(tmp_path, engine).node(1))
    other = make(tmp_path, engine, server_env={"RESTATE_X": "1"})
    with pytest.raises(ConfigMismatch):
        other.launch_node(other.node(1))


def test_kill_freeze_and_start_again_through_docker(tmp_path):
    engine = FakeDocker()
    c = make(tmp_path, engine)
    c.launch()
    n2 = c.node(2)
    frozen = c.node_freeze(2)
    assert frozen is not None and frozen.pid == 4001 and c.frozen(n2)
    assert c.reachable() == [c.node(1), c.node(3)]  # restatectl asks no frozen node
    row = c.node_rows()[1]
    assert row[1] == "container restate-drill-n2, pid 4001" and row[3] == "frozen (docker pause)"
    assert c.node_thaw(2) is not None and not c.frozen(n2)
    stopped = c.node_kill(2, signal.SIGKILL)
    assert stopped is not None and stopped.record.pid == 4001 and stopped.signal == "SIGKILL"
    assert engine.containers_by_name["restate-drill-n2"].calls == ["pause", "unpause", "kill SIGKILL"]
    assert c.live(n2) is None and c.node_kill(2, signal.SIGKILL) is None
    # Back: the exited container is removed (its log kept in logs/restate-n2.log), a new one runs.
    c.launch_node(n2)
    assert "restate-drill-n2" in engine.removed and len(engine.run_calls) == 4
    assert "restate-drill-n2 said hello" in n2.log_file.read_text()
    assert c.live(n2) is not None


def test_a_node_that_exits_while_starting_fails_at_once_with_its_log(tmp_path):
    engine = FakeDocker()
    c = make(tmp_path, engine)
    c.launch_node(c.node(1))
    engine.containers_by_name["restate-drill-n1"].status = "exited"
    with pytest.raises(
        ComponentError, match="container restate-drill-n1 exited; its log:\nrestate-drill-n1 said hello"
    ):
        c.wait_node_healthy(c.node(1), timeout_s=30)


def test_stop_removes_every_container_and_the_network_and_purge_the_volumes(tmp_path):
    engine = FakeDocker()
    c = make(tmp_path, engine)
    c.prepare()
    c.launch()
    c.node_freeze(3)
    assert c.stop() is True
    assert engine.containers_by_name == {} and engine.networks_by_name == {}
    assert engine.removed_volumes == []
    assert c.stop(purge=True) is False  # nothing left to stop; the data goes
    assert engine.removed_volumes == [f"restate-drill-n{n}-data" for n in (1, 2, 3)]


def test_the_partition_is_a_network_disconnect_healed_by_connect(tmp_path):
    engine = FakeDocker()
    c = make(tmp_path, engine)
    c.prepare()
    c.launch()
    cut = c.partitioner(9080)
    assert isinstance(cut, NetworkDisconnect)
    cut.check_possible()
    n3 = c.node(3)
    assert cut.cut(n3) == {"cut": "docker network disconnect restate_drill_cluster restate-drill-n3"}
    assert not c.attached(n3)
    assert cut.heal(n3) is True and c.attached(n3)
    assert cut.heal(n3) is False  # idempotent: the cleanup calls it again
    assert engine.network_calls == ["disconnect restate-drill-n3", "connect restate-drill-n3"]


def test_no_network_means_no_partition(tmp_path):
    with pytest.raises(ComponentError, match="does not exist: run `inv up`"):
        make(tmp_path).partitioner(9080).check_possible()


def test_the_native_cluster_still_cuts_with_nftables(tmp_path):
    from tests.unit.test_cluster import cluster

    assert isinstance(cluster(tmp_path).partitioner(9080), NftPartitioner)


def test_the_stack_chooses_the_container_cluster(tmp_path, monkeypatch):
    from drillkit.components import docker_cluster
    from drillkit.stack import Stack

    monkeypatch.setattr(docker_cluster, "docker_client", lambda state_root: FakeDocker())
    data = yaml.safe_load((ROOT / "configs" / "local.yaml").read_text())
    data["runtime"] = {**data["runtime"], "backend": "docker-cluster", "state_dir": str(tmp_path / "state")}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    stack = Stack(drill_config.load(path))
    try:
        assert isinstance(stack.cluster, DockerCluster)
        assert stack.writer.host == "172.30.91.1"  # the writer listens where the containers reach it
        assert stack.binaries_needed()[-1].command == "restatectl"
    finally:
        stack.close()
