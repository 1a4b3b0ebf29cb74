"""The Restate server as the HOW-TO runs it: `docker run --name restate_dev --rm -p 8080:8080 -p 9070:9070
--add-host=host.docker.internal:host-gateway ...`, through docker-py.

Restate's data lives on a named volume with a fixed node name, so a container that is killed (and, with
`--rm`, removed) and started again keeps its journal. Imported only when the Docker backend is chosen:
docker-py costs every `inv` a fifth of a second otherwise.
"""

from __future__ import annotations

import ipaddress
import signal
from collections.abc import Iterator
from typing import Any

import docker.errors

from drillkit.components import docker_engine
from drillkit.components.docker_engine import (
    DATA_DIR_IN_IMAGE,
    docker_client,
    ensure_image,
    interface_ipv4,
    state_root_of,
)
from drillkit.components.restate_server import RestateServer, host_of, port_of
from drillkit.config import Runtime
from drillkit.errors import ComponentError
from drillkit.identity import SERVER_KEY_ENV, RequestIdentity
from drillkit.procs import ProcessTable
from drillkit.restate_api import AdminApi, IngressApi
from drillkit.waits import WaitTimeout, poll

MANAGED_BY = "restate-writer-drills"
# The state dir's private key, mounted read-only at this path (outside Restate's data volume).
IDENTITY_KEY_IN_CONTAINER = "/etc/restate-drill/request-identity.pem"
DIGEST_LABEL = "drillkit.config-digest"
SOURCE_LABEL = "drillkit.config-source"


def _started_with(container: Any) -> tuple[str | None, str | None]:
    """The settings digest and config file a container was started with (its labels; None before them)."""
    labels = container.labels or {}
    return labels.get(DIGEST_LABEL), labels.get(SOURCE_LABEL)


class DockerServer(RestateServer):
    name = "docker"

    def __init__(
        self,
        runtime: Runtime,
        admin: AdminApi,
        ingress: IngressApi,
        client: Any = None,
        procs: ProcessTable | None = None,
        config_source: str = "<config>",
        identity: RequestIdentity | None = None,
    ) -> None:
        super().__init__(runtime, admin, ingress, config_source, identity)
        self._client = client
        self.procs = procs

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = docker_client(state_root_of(self.procs))
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
            "environment": {"RESTATE_NODE_NAME": "drill", **self.identity_env(), **rt.server_env},
            "volumes": {rt.docker.volume: {"bind": DATA_DIR_IN_IMAGE, "mode": "rw"}, **self.identity_volume()},
            # What the native backend keeps in its process record: a running container is reused only
            # on the settings it was started with.
            "labels": {
                "managed-by": MANAGED_BY,
                DIGEST_LABEL: self.settings_digest(),
                SOURCE_LABEL: self.config_source,
            },
        }

    def identity_env(self) -> dict[str, str]:
        return {SERVER_KEY_ENV: IDENTITY_KEY_IN_CONTAINER} if self.identity else {}

    def identity_volume(self) -> dict[str, dict[str, str]]:
        """The private key file bind-mounted read-only: the engine must see the state dir (a local engine;
        the image's server runs as root, so the owner-only file is readable to it)."""
        if self.identity is None:
            return {}
        return {str(self.identity.private_key_file): {"bind": IDENTITY_KEY_IN_CONTAINER, "mode": "ro"}}

    def _container(self) -> Any:
        try:
            return self.client.containers.get(self.runtime.docker.container_name)
        except docker.errors.NotFound:
            return None

    def launch(self) -> str:
        existing = self._container()
        if existing is not None and existing.status == "running":
            running = f"container {existing.name} {existing.short_id}"
            self.refuse_other_settings(running, *_started_with(existing))
            return f"{running} (already running)"
        if existing is not None:
            existing.remove(force=True)
        ensure_image(self.client, self.runtime.image())
        if self.procs is not None:  # a clear error naming the port, its owner and the config field
            self.ensure_ports_free(self.procs)
        try:
            container = self.client.containers.run(**self.run_kwargs())
        except docker.errors.APIError as exc:
            raise ComponentError(f"docker run {self.runtime.image()}: {exc.explanation or exc}") from None
        return f"container {container.name} {container.short_id}"

    def _wait_removed(self, container: Any) -> None:
        """--rm removes it once stopped; wait for that rather than race it with our own remove."""
        try:
            poll(self._container, lambda c: c is None, f"container {container.name} to be removed", 30.0, 0.1)
        except WaitTimeout:
            container.remove(force=True)

    def stop(self, purge: bool = False) -> bool:
        container = self._container()
        stopped = False
        if container is not None:
            try:
                container.stop(timeout=10)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                raise ComponentError(f"docker stop {container.name}: {exc.explanation or exc}") from None
            self._wait_removed(container)
            stopped = True
        if purge:
            try:
                self.client.volumes.get(self.runtime.docker.volume).remove(force=True)
            except docker.errors.NotFound:
                pass
        return stopped

    def kill(self, sig: signal.Signals) -> str | None:
        """`docker kill --signal SIG restate_dev`: the server dies, the container goes (--rm), the volume stays."""
        container = self._container()
        if container is None or container.status != "running":
            return None
        try:
            container.kill(signal=sig.name)
        except docker.errors.APIError as exc:
            raise ComponentError(f"docker kill {container.name}: {exc.explanation or exc}") from None
        self._wait_removed(container)
        return f"container {container.name} {container.short_id} (docker kill --signal {sig.name})"

    def running(self) -> str | None:
        container = self._container()
        if container is None or container.status != "running":
            return None
        cell = f"container {container.name} {container.short_id}"
        digest, source = _started_with(container)
        if digest != self.settings_digest():
            cell += f" (started with another config: {source or 'unrecorded'})"
        return cell

    def log_lines(self, tail: int) -> list[str]:
        container = self._container()
        return [] if container is None else docker_engine.log_lines(container, tail)

    def follow_logs(self) -> Iterator[str]:
        container = self._container()
        if container is not None:
            yield from docker_engine.follow_logs(container)

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
