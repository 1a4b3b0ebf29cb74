"""The Docker backend's container arguments and life cycle, against a fake docker-py client."""

import socket
from pathlib import Path
from types import SimpleNamespace

import docker.errors
import pytest

from drillkit.components.docker_engine import engine_dir, interface_ipv4, pull_progress, socket_url
from drillkit.components.restate_docker import DockerServer as _DockerServer
from drillkit.config import Runtime
from drillkit.errors import ComponentError, ConfigMismatch
from drillkit.restate_api import AdminApi, IngressApi


def DockerServer(runtime, client=None):
    return _DockerServer(runtime, AdminApi(runtime.admin_url), IngressApi(runtime.ingress_url), client=client)


class FakeContainer:
    def __init__(self, name, status="running", registry=None, labels=None):
        self.name, self.status, self.short_id = name, status, "abc123"
        self.labels = labels or {}
        self.stopped = self.removed = False
        self.registry = registry if registry is not None else {}

    def stop(self, timeout):
        self.stopped = True
        self.registry.pop(self.name, None)  # auto_remove (--rm): the engine removes it once stopped

    def remove(self, force):
        self.removed = True

    def logs(self, tail=None, stream=False, follow=False):
        return b"line 1\nline 2\n"


class FakeDocker:
    def __init__(self, images=("docker.restate.dev/restatedev/restate:1.7.12",), pull_error=None):
        self.running: dict[str, FakeContainer] = {}
        self.run_calls: list[dict] = []
        self.known_images = set(images)
        self.pull_error = pull_error
        self.removed_volumes: list[str] = []
        outer = self

        class Containers:
            def get(self, name):
                if name not in outer.running:
                    raise docker.errors.NotFound("no such container")
                return outer.running[name]

            def run(self, **kwargs):
                outer.run_calls.append(kwargs)
                container = FakeContainer(kwargs["name"], registry=outer.running, labels=kwargs.get("labels"))
                outer.running[kwargs["name"]] = container
                return container

        class Images:
            def get(self, name):
                if name not in outer.known_images:
                    raise docker.errors.ImageNotFound("no such image")

        class Volumes:
            def get(self, name):
                return SimpleNamespace(remove=lambda force: outer.removed_volumes.append(name))

        class Api:
            def pull(self, repository, tag, stream, decode):
                if outer.pull_error:
                    raise docker.errors.APIError(outer.pull_error)
                return iter([{"status": "Downloaded"}])

        self.containers, self.images, self.volumes, self.api = Containers(), Images(), Volumes(), Api()


def test_container_arguments_match_the_howtos_docker_run():
    kwargs = DockerServer(Runtime()).run_kwargs()
    assert kwargs["image"] == "docker.restate.dev/restatedev/restate:1.7.12"
    assert kwargs["name"] == "restate_dev"
    assert kwargs["auto_remove"] is True  # --rm
    assert kwargs["detach"] is True
    assert kwargs["ports"] == {"8080/tcp": ("127.0.0.1", 8080), "9070/tcp": ("127.0.0.1", 9070)}
    assert kwargs["extra_hosts"] == {"host.docker.internal": "host-gateway"}
    assert kwargs["volumes"] == {"restate_dev_data": {"bind": "/restate-data", "mode": "rw"}}


def test_image_version_and_server_env_come_from_config():
    rt = Runtime(restate_version="1.7.9", server_env={"RESTATE_DEFAULT_RETRY_POLICY__MAX_ATTEMPTS": 5})
    kwargs = DockerServer(rt).run_kwargs()
    assert kwargs["image"].endswith(":1.7.9")
    assert kwargs["environment"] == {"RESTATE_NODE_NAME": "drill", "RESTATE_DEFAULT_RETRY_POLICY__MAX_ATTEMPTS": "5"}


def test_start_is_idempotent_and_stop_removes_the_container():
    fake = FakeDocker()
    server = DockerServer(Runtime(), client=fake)
    assert "restate_dev" in server.launch()  # start() is launch() plus the readiness wait (integration tests)
    assert "already running" in server.launch()
    assert len(fake.run_calls) == 1
    assert server.running().startswith("container restate_dev")
    assert server.log_lines(10) == ["line 1", "line 2"]
    container = fake.running["restate_dev"]
    assert server.stop(purge=True) is True
    assert container.stopped and "restate_dev" not in fake.running
    assert server.running() is None
    assert fake.removed_volumes == ["restate_dev_data"]


def test_missing_image_that_cannot_be_pulled_names_the_image():
    fake = FakeDocker(images=(), pull_error="registry unreachable")
    with pytest.raises(ComponentError, match=r"restate:1\.7\.12 is not present and cannot be pulled"):
        DockerServer(Runtime(), client=fake).launch()


def test_docker_deployment_uri_reaches_the_host():
    assert DockerServer(Runtime()).default_deployment_uri(9080) == "http://host.docker.internal:9080"


def test_pull_progress_reports_layers_and_names_the_image_on_error(progress_lines):
    events = [
        {"status": "Pulling from restatedev/restate", "id": "1.7.12"},
        {"status": "Pulling fs layer", "id": "abc"},
        {"status": "Downloading", "id": "abc", "progressDetail": {"current": 1, "total": 2}},
        {"status": "Download complete", "id": "abc"},
        {"status": "Digest: sha256:0"},
    ]
    pull_progress(iter(events), "img:1")
    out = "\n".join(progress_lines)
    assert "abc: Pulling fs layer" in out and "abc: Download complete" in out and "Downloading" not in out
    with pytest.raises(ComponentError, match="docker pull img:1: manifest unknown"):
        pull_progress(iter([{"error": "manifest unknown"}]), "img:1")


def test_engine_sockets_stay_short_in_deep_checkouts(tmp_path):
    deep = tmp_path / ("x" * 80) / ".drill"
    assert len(socket_url(deep)) < 100
    assert engine_dir(deep) == engine_dir(deep)  # stable: the same checkout finds its engine again
    assert engine_dir(Path("/w/.drill")) == Path("/w/.drill/docker")


@pytest.mark.parametrize(
    ("ipam", "interface", "expected"),
    [
        ([{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}], None, "172.17.0.1"),
        ([{"Subnet": "172.18.0.0/16"}], "172.18.0.1", "172.18.0.1"),  # a fresh engine: no Gateway reported
        ([{"Subnet": "10.9.0.0/24"}], None, "10.9.0.1"),
    ],
)
def test_host_gateway_fallbacks(monkeypatch, ipam, interface, expected):
    fake = FakeDocker()
    fake.networks = SimpleNamespace(
        get=lambda name: SimpleNamespace(
            attrs={"IPAM": {"Config": ipam}, "Options": {"com.docker.network.bridge.name": "br-test"}}
        )
    )
    monkeypatch.setattr("drillkit.components.restate_docker.interface_ipv4", lambda name: interface)
    assert DockerServer(Runtime(), client=fake).host_gateway() == expected


def test_interface_ipv4_reads_loopback():
    assert interface_ipv4("lo") == "127.0.0.1"
    assert interface_ipv4("no-such-if0") is None


def test_kill_signals_the_container_and_waits_for_its_removal():
    fake = FakeDocker()
    server = DockerServer(Runtime(), client=fake)
    server.launch()
    container = fake.running["restate_dev"]
    signals = []

    def kill(signal):
        signals.append(signal)
        fake.running.pop(container.name, None)  # --rm: the engine removes the dead container

    container.kill = kill
    assert "docker kill --signal SIGKILL" in server.kill(__import__("signal").SIGKILL)
    assert signals == ["SIGKILL"] and server.running() is None
    assert server.kill(__import__("signal").SIGKILL) is None  # nothing left to kill


def test_a_running_container_is_reused_only_on_the_settings_it_was_started_with(progress_lines):
    fake = FakeDocker()
    first = _DockerServer(
        Runtime(), AdminApi("http://127.0.0.1:9070"), IngressApi("http://127.0.0.1:8080"), fake, None, "a.yaml"
    )
    first.launch()
    assert "already running" in first.launch()
    other = Runtime(server_env={"RESTATE_DEFAULT_RETRY_POLICY__MAX_ATTEMPTS": "5"})
    second = _DockerServer(other, AdminApi(other.admin_url), IngressApi(other.ingress_url), fake, None, "b.yaml")
    with pytest.raises(ConfigMismatch, match=r"runs with the runtime settings of a\.yaml; b\.yaml asks for different"):
        second.launch()
    assert len(fake.run_calls) == 1  # refused: the running container was neither replaced nor restarted
    assert second.running().endswith("(started with another config: a.yaml)")  # what `inv status` shows
    assert first.running() == "container restate_dev abc123"
    fake.running["restate_dev"].labels = {"managed-by": "restate-writer-drills"}  # started by an older tool
    assert "already running" in second.launch()
    assert any("not started by this tool with a recorded config" in line for line in progress_lines)


def test_a_busy_port_is_named_with_its_config_field_before_docker_run(tmp_path):
    from drillkit.ports import PortInUse
    from drillkit.procs import ProcessTable

    fake = FakeDocker()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        rt = Runtime(ingress_url=f"http://127.0.0.1:{port}")
        server = _DockerServer(rt, AdminApi(rt.admin_url), IngressApi(rt.ingress_url), fake, ProcessTable(tmp_path))
        server.port_release_grace_s = 0.2  # a killed server gets 5 s; nothing is killed here
        with pytest.raises(PortInUse, match=rf"port {port} .*another program.*runtime\.ingress_url"):
            server.launch()  # after the port's release grace (a killed server may hold it a moment)
    assert fake.run_calls == []
