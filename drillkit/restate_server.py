"""The Restate server, two backends behind one interface: a native child process or a Docker container.

Native runs the pinned `restate-server` with `--base-dir` in the state dir. Docker runs the HOW-TO's
container through docker-py (name `restate_dev`, ports 8080/9070 published, `host.docker.internal`
mapped to the host gateway, removed on stop), with its data on a named volume so a restart keeps the
journal. Both are ready only when both health endpoints and a SQL query answer.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import shutil
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from drillkit import console
from drillkit.config import Runtime
from drillkit.errors import ComponentError, DrillError
from drillkit.procs import ProcessTable
from drillkit.restate_api import AdminApi, IngressApi
from drillkit.waits import WaitTimeout, poll

PROCESS_NAME = "restate-server"


class ServerBackend(Protocol):
    name: str

    def start(self) -> str:
        """Start the server (no-op when running); returns a description (pid or container)."""
        ...

    def stop(self, purge: bool = False) -> bool:
        """Stop the server; True if something was stopped. `purge` also deletes its data."""
        ...

    def running(self) -> str | None:
        """The pid or container id when running, else None."""
        ...

    def log_lines(self, tail: int) -> list[str]: ...

    def follow_logs(self) -> Iterator[str]: ...

    def default_deployment_uri(self, service_port: int) -> str: ...

    def host_gateway(self) -> str | None:
        """Where the writer must listen for this backend's server to reach it; None: service.host."""
        ...


def port_of(url: str) -> int:
    port = urlsplit(url).port
    if port is None:
        raise DrillError(f"{url}: the URL needs an explicit port")
    return port


def host_of(url: str) -> str:
    return urlsplit(url).hostname or "127.0.0.1"


class NativeServer:
    name = "native"

    def __init__(self, runtime: Runtime, binary: Path, data_dir: Path, procs: ProcessTable, log_file: Path) -> None:
        self.runtime = runtime
        self.binary = binary
        self.data_dir = data_dir
        self.procs = procs
        self.log_file = log_file

    def argv(self) -> list[str]:
        return [str(self.binary), "--base-dir", str(self.data_dir), "--no-logo", "--node-name", "drill"]

    def env(self) -> dict[str, str]:
        ingress, admin = self.runtime.ingress_url, self.runtime.admin_url
        fabric_host = host_of(admin)
        return {
            **os.environ,
            "RESTATE_INGRESS__BIND_ADDRESS": f"{host_of(ingress)}:{port_of(ingress)}",
            "RESTATE_ADMIN__BIND_ADDRESS": f"{host_of(admin)}:{port_of(admin)}",
            # The node-to-node fabric (5122) stays on loopback too: nothing of ours listens outside.
            "RESTATE_BIND_ADDRESS": f"{fabric_host}:5122",
            "RESTATE_ADVERTISED_ADDRESS": f"http://{fabric_host}:5122",
            "RESTATE_LOG_DISABLE_ANSI_CODES": "true",  # the log file is read by people and by `restate.logs`
            **self.runtime.server_env,
        }

    def start(self) -> str:
        live = self.procs.live(PROCESS_NAME)
        if live:
            return f"pid {live.pid} (already running)"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        record = self.procs.spawn(PROCESS_NAME, self.argv(), self.log_file, env=self.env())
        return f"pid {record.pid}"

    def stop(self, purge: bool = False) -> bool:
        stopped = self.procs.kill(PROCESS_NAME) is not None
        if purge:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        return stopped

    def running(self) -> str | None:
        live = self.procs.live(PROCESS_NAME)
        return f"pid {live.pid}" if live else None

    def log_lines(self, tail: int) -> list[str]:
        try:
            return self.log_file.read_text(errors="replace").splitlines()[-tail:]
        except FileNotFoundError:
            return []

    def follow_logs(self) -> Iterator[str]:
        yield from follow_file(self.log_file)

    def default_deployment_uri(self, service_port: int) -> str:
        return f"http://127.0.0.1:{service_port}"

    def host_gateway(self) -> str | None:
        return None  # Restate runs on this host: the writer's configured address is reachable as is


class DockerServer:
    """The HOW-TO's `docker run --name restate_dev --rm -p 8080:8080 -p 9070:9070 --add-host=...`."""

    name = "docker"
    DATA_DIR = "/restate-data"

    def __init__(self, runtime: Runtime, client: Any = None) -> None:
        self.runtime = runtime
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = docker_client()
        return self._client

    def run_kwargs(self) -> dict[str, Any]:
        """docker-py `containers.run` arguments, the HOW-TO's flags one for one."""
        rt = self.runtime
        return {
            "image": rt.image(),
            "name": rt.docker.container_name,
            "detach": True,
            "auto_remove": True,  # --rm
            "ports": {
                "8080/tcp": (host_of(rt.ingress_url), port_of(rt.ingress_url)),
                "9070/tcp": (host_of(rt.admin_url), port_of(rt.admin_url)),
            },
            "extra_hosts": {"host.docker.internal": "host-gateway"},
            # A fixed node name: the data volume outlives the container, and Restate refuses data written
            # under another name (by default the name is the hostname, i.e. the container id).
            "environment": {"RESTATE_NODE_NAME": "drill", **rt.server_env},
            "volumes": {rt.docker.volume: {"bind": self.DATA_DIR, "mode": "rw"}},
            "labels": {"managed-by": "restate-writer-drills"},
        }

    def _container(self) -> Any:
        import docker.errors

        try:
            return self.client.containers.get(self.runtime.docker.container_name)
        except docker.errors.NotFound:
            return None

    def start(self) -> str:
        import docker.errors

        existing = self._container()
        if existing is not None and existing.status == "running":
            return f"container {existing.name} {existing.short_id} (already running)"
        if existing is not None:
            existing.remove(force=True)
        self._ensure_image()
        try:
            container = self.client.containers.run(**self.run_kwargs())
        except docker.errors.APIError as exc:
            raise ComponentError(f"docker run {self.runtime.image()}: {exc.explanation or exc}") from None
        return f"container {container.name} {container.short_id}"

    def _ensure_image(self) -> None:
        import docker.errors

        image = self.runtime.image()
        try:
            self.client.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
        repository, _, tag = image.rpartition(":")
        try:
            with console.activity(f"pulling {image}"):
                pull_progress(self.client.api.pull(repository, tag=tag, stream=True, decode=True), image)
        except docker.errors.APIError as exc:
            raise ComponentError(
                f"the image {image} is not present and cannot be pulled: {exc.explanation or exc}. "
                "Pull or build it, or set runtime.docker.image in the config."
            ) from None

    def stop(self, purge: bool = False) -> bool:
        import docker.errors

        container = self._container()
        stopped = False
        if container is not None:
            try:
                container.stop(timeout=10)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                raise ComponentError(f"docker stop {container.name}: {exc.explanation or exc}") from None
            # --rm removes it once stopped; wait for that rather than race it with our own remove.
            try:
                poll(
                    self._container,
                    lambda c: c is None,
                    f"container {container.name} to be removed",
                    30.0,
                    interval_s=0.1,
                )
            except WaitTimeout:
                container.remove(force=True)
            stopped = True
        if purge:
            try:
                self.client.volumes.get(self.runtime.docker.volume).remove(force=True)
            except docker.errors.NotFound:
                pass
        return stopped

    def running(self) -> str | None:
        container = self._container()
        if container is None or container.status != "running":
            return None
        return f"container {container.name} {container.short_id}"

    def log_lines(self, tail: int) -> list[str]:
        container = self._container()
        if container is None:
            return []
        return list(container.logs(tail=tail).decode(errors="replace").splitlines())

    def follow_logs(self) -> Iterator[str]:
        container = self._container()
        if container is None:
            return
        for chunk in container.logs(stream=True, follow=True):
            yield chunk.decode(errors="replace").rstrip("\n")

    def default_deployment_uri(self, service_port: int) -> str:
        return f"http://host.docker.internal:{service_port}"

    def host_gateway(self) -> str:
        """The address `host.docker.internal` resolves to in the container: the writer must listen there.

        The bridge's IPAM gateway when the engine reports one (a fresh data root may not), else the
        address of the bridge interface itself, else the first host of its subnet (Docker's own rule).
        """
        attrs = self.client.networks.get("bridge").attrs
        config = attrs.get("IPAM", {}).get("Config") or []
        gateway = next((c.get("Gateway") for c in config if c.get("Gateway")), None)
        if gateway:
            return str(gateway)
        bridge = (attrs.get("Options") or {}).get("com.docker.network.bridge.name", "docker0")
        address = interface_ipv4(bridge)
        if address:
            return address
        subnet = next((c.get("Subnet") for c in config if c.get("Subnet")), None)
        if subnet:
            return str(next(ipaddress.ip_network(subnet).hosts()))
        raise ComponentError("cannot find the Docker bridge's gateway address (docker network inspect bridge)")


def interface_ipv4(name: str) -> str | None:
    """The IPv4 address of a network interface in this namespace (SIOCGIFADDR), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            packed = fcntl.ioctl(probe.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def pull_progress(events: Iterator[dict[str, Any]], image: str) -> None:
    """Follow `docker pull` events: one line per layer state change, errors raised with the image name."""
    seen: dict[str, str] = {}
    for event in events:
        if "error" in event:
            raise ComponentError(f"docker pull {image}: {event['error']}")
        layer, status = event.get("id"), event.get("status", "")
        if layer and status and not status.startswith(("Downloading", "Extracting")) and seen.get(layer) != status:
            seen[layer] = status
            console.info(f"  {image} {layer}: {status}")
        elif not layer and status:
            console.info(f"  {image}: {status}")


def docker_client() -> Any:
    """A docker-py client for the engine in the environment (DOCKER_HOST or the default socket)."""
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except docker.errors.DockerException as exc:
        raise ComponentError(f"no Docker engine answers: {exc}") from None
    return client


def docker_available() -> bool:
    try:
        docker_client().close()
    except ComponentError:
        return False
    return True


def wait_ready(admin: AdminApi, ingress: IngressApi, timeout_s: float) -> None:
    """Both health endpoints answer and the SQL API finds its partitions."""
    poll(admin.healthy_admin, bool, f"admin health at {admin.base_url}/health", timeout_s)
    poll(ingress.healthy_ingress, bool, f"ingress health at {ingress.base_url}/restate/health", timeout_s)
    poll(admin.query_ready, bool, f"SQL queries at {admin.base_url}/query", timeout_s)


def follow_file(path: Path) -> Iterator[str]:
    """Lines of a growing file, `tail -f` style (waits on the file, not on a timer of ours)."""
    import time

    with open(path, errors="replace") as handle:
        while True:
            line = handle.readline()
            if line:
                yield line.rstrip("\n")
            else:
                time.sleep(0.2)
