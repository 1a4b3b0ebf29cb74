"""A Restate cluster of N containers (`runtime.backend: docker-cluster`), the cluster backend's sibling.

The same cluster as `restate_cluster.py` (the same TOML from `node_toml`: node 1 provisions, replicated
metadata and log, the configured replication and partitions), but each node is a container of the Restate
image on a user-defined bridge network of its own (`runtime.docker.network`, `runtime.docker.subnet`).
Inside, every node uses the image's ports (fabric 5122, admin 9070, ingress 8080) and its peers reach it
by its container name; on the host each node's ports are published on 127.0.0.1 at the native cluster's
ports (`<base>_port + N`), so the drills, `restatectl` and the health checks on the host ask nodes exactly
as they ask native ones. The writer runs on the host and listens on the network's gateway, which the
containers know as `host.docker.internal`.

Faults are Docker's: a node is killed with `docker kill --signal`, frozen with `docker pause` (the cgroup
freezer: alive, its sockets open, silent), and cut off with `docker network disconnect` (no traffic to or
from its peers, the writer or the host) until `docker network connect` gives it back. Each node's data
lives on a named volume (`restate-<cluster>-nN-data`): a killed node comes back with its data. `stop`
removes every container and the network; `purge` removes the volumes too. A container's log is appended
to `logs/restate-nN.log` before the container is removed, so evidence outlives it.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
import docker.types

from drillkit.components import docker_engine
from drillkit.components.docker_engine import DATA_DIR_IN_IMAGE, docker_client, ensure_image, state_root_of
from drillkit.components.process import config_digest, http_ok
from drillkit.components.restate_cluster import HOST, Node, NodeAddresses, Partitioner, RestateCluster, node_toml
from drillkit.components.restate_docker import DIGEST_LABEL, IDENTITY_KEY_IN_CONTAINER, MANAGED_BY, SOURCE_LABEL
from drillkit.config import ClusterSettings, Runtime
from drillkit.errors import ComponentError, ConfigError
from drillkit.identity import RequestIdentity
from drillkit.procs import ProcessRecord, ProcessTable, Stopped
from drillkit.restate_api import AdminApi, IngressApi
from drillkit.state import write_text_atomically
from drillkit.waits import WaitTimeout, poll

CONFIG_IN_CONTAINER = "/etc/restate-drill/node.toml"
SERVER_IN_IMAGE = Path("/usr/local/bin/restate-server")
FABRIC_IN_IMAGE, ADMIN_IN_IMAGE, INGRESS_IN_IMAGE = 5122, 9070, 8080
NODE_LABEL = "drillkit.cluster-node"
HEALTH_TIMEOUT_S = 2.0
DNS_NOWHERE = "127.0.0.1"
STOP_TIMEOUT_S = 10


def container_name(settings: ClusterSettings, number: int) -> str:
    """`restate-<cluster>-nN`: also its host name on the network (hyphens: a valid DNS label)."""
    return f"restate-{settings.name}-n{number}"


def volume_name(settings: ClusterSettings, number: int) -> str:
    return f"{container_name(settings, number)}-data"


@dataclass(frozen=True)
class ContainerAddresses(NodeAddresses):
    """Inside the network: each node binds every interface of its own container, on the image's ports,
    and its peers reach it by its container name."""

    bind_ip: str = "0.0.0.0"  # the container's own network namespace

    def fabric_url(self, number: int) -> str:
        return f"http://{container_name(self.settings, number)}:{FABRIC_IN_IMAGE}"

    def fabric_port(self, number: int) -> int:
        return FABRIC_IN_IMAGE

    def admin_port(self, number: int) -> int:
        return ADMIN_IN_IMAGE

    def ingress_port(self, number: int) -> int:
        return INGRESS_IN_IMAGE


def _labels_of(container: Any) -> tuple[str | None, str | None]:
    labels = container.labels or {}
    return labels.get(DIGEST_LABEL), labels.get(SOURCE_LABEL)


class DockerCluster(RestateCluster):
    name = "docker-cluster"
    freeze_how = "docker pause"
    thaw_how = "docker unpause"

    def __init__(
        self,
        runtime: Runtime,
        admin: AdminApi,
        ingress: IngressApi,
        ctl_binary: Path,
        home: Path,
        logs: Path,
        procs: ProcessTable,
        config_source: str = "<config>",
        identity: RequestIdentity | None = None,
        client: Any = None,
    ) -> None:
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?", runtime.cluster.name):
            raise ConfigError(
                f"{config_source}: runtime.cluster.name {runtime.cluster.name!r} names the node containers and "
                "their host names on the network (restate-<name>-nN): use lower-case letters, digits and '-'"
            )
        self._client = client  # before the base class asks which nodes run
        self.docker = runtime.docker
        super().__init__(
            runtime, admin, ingress, SERVER_IN_IMAGE, ctl_binary, home, logs, procs, config_source, identity
        )

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = docker_client(state_root_of(self.procs))
        return self._client

    # -- containers ---------------------------------------------------------------------------------------

    def container_name(self, node: Node) -> str:
        return container_name(self.settings, node.number)

    def container(self, node: Node) -> Any:
        try:
            return self.client.containers.get(self.container_name(node))
        except docker.errors.NotFound:
            return None

    def run_kwargs(self, node: Node) -> dict[str, Any]:
        """docker-py `containers.run` arguments for one node."""
        volumes = {
            volume_name(self.settings, node.number): {"bind": DATA_DIR_IN_IMAGE, "mode": "rw"},
            str(node.config_file): {"bind": CONFIG_IN_CONTAINER, "mode": "ro"},
        }
        if self.identity is not None:
            volumes[str(self.identity.private_key_file)] = {"bind": IDENTITY_KEY_IN_CONTAINER, "mode": "ro"}
        return {
            "image": self.runtime.image(),
            "name": self.container_name(node),
            "hostname": self.container_name(node),
            "command": ["--config-file", CONFIG_IN_CONTAINER, "--no-logo"],
            "detach": True,
            "network": self.docker.network,
            "ports": {
                f"{FABRIC_IN_IMAGE}/tcp": (HOST, node.fabric_port),
                f"{ADMIN_IN_IMAGE}/tcp": (HOST, node.admin_port),
                f"{INGRESS_IN_IMAGE}/tcp": (HOST, node.ingress_port),
            },
            # The writer listens on the network's gateway (the host's side of the bridge).
            "extra_hosts": {"host.docker.internal": self.docker.gateway()},
            # Docker's DNS answers for the nodes' names and forwards any other name to this server: none
            # (nothing listens there), so a lookup off the network fails at once. A stopped peer's name is
            # such a name: forwarded to the host's resolvers instead, each lookup of it took ~30 s in the
            # loopback-only namespace and held the metadata client that long (node-loss: 35 s to recover).
            "dns": [DNS_NOWHERE],
            "environment": {"RESTATE_LOG_DISABLE_ANSI_CODES": "true", **self.runtime.server_env},
            "volumes": volumes,
            "labels": {
                "managed-by": MANAGED_BY,
                NODE_LABEL: node.name,
                DIGEST_LABEL: self.settings_digest(),
                SOURCE_LABEL: self.config_source,
            },
        }

    def node_toml_text(self) -> dict[int, str]:
        key = IDENTITY_KEY_IN_CONTAINER if self.identity else None
        addresses = ContainerAddresses(self.settings)
        return {n.number: node_toml(self.settings, n.number, DATA_DIR_IN_IMAGE, key, addresses) for n in self.nodes}

    def _remove(self, node: Node, container: Any) -> None:
        """Its log appended to `logs/restate-nN.log` (evidence outlives the container), then removed."""
        try:
            text = container.logs().decode(errors="replace")
            if text:
                node.log_file.parent.mkdir(parents=True, exist_ok=True)
                with node.log_file.open("a") as log:
                    log.write(f"--- container {container.name} {container.short_id}, removed {time.ctime()}\n")
                    log.write(text if text.endswith("\n") else text + "\n")
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            raise ComponentError(f"docker rm {container.name}: {exc.explanation or exc}") from None

    def _record(self, container: Any) -> ProcessRecord:
        """The container's restate-server as the host sees it: its pid there (`State.Pid`), its labels."""
        state = container.attrs.get("State") or {}
        digest, source = _labels_of(container)
        return ProcessRecord(
            name=container.name,
            pid=int(state.get("Pid") or 0),
            start_ticks=0,
            cmdline=[str(SERVER_IN_IMAGE), *(container.attrs.get("Args") or [])],
            started_at=0.0,
            log_file=f"docker logs {container.name}",
            config_digest=digest,
            config_source=source,
        )

    def _wait_exited(self, node: Node, timeout_s: float = 30.0) -> None:
        poll(
            lambda: self.container(node),
            lambda c: c is None or c.status not in ("running", "paused", "restarting"),
            f"container {self.container_name(node)} to exit",
            timeout_s,
            0.05,
        )

    # -- the network ----------------------------------------------------------------------------------------

    def network(self) -> Any:
        try:
            return self.client.networks.get(self.docker.network)
        except docker.errors.NotFound:
            return None

    def prepare(self) -> None:
        """The network, before the writer listens on its gateway (`inv up` calls this first)."""
        self.ensure_network()

    def ensure_network(self) -> Any:
        """The user-defined bridge with the configured subnet; an existing one on another subnet is refused."""
        found = self.network()
        if found is not None:
            subnets = [c.get("Subnet") for c in (found.attrs.get("IPAM") or {}).get("Config") or []]
            if self.docker.subnet not in subnets:
                raise ConfigError(
                    f"{self.config_source}: Docker network {self.docker.network} exists with subnet "
                    f"{', '.join(str(s) for s in subnets) or 'none'}, not runtime.docker.subnet {self.docker.subnet}: "
                    f"remove it (`docker network rm {self.docker.network}`) or set runtime.docker.network"
                )
            return found
        ipam = docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet=self.docker.subnet, gateway=self.docker.gateway())]
        )
        try:
            return self.client.networks.create(
                self.docker.network, driver="bridge", ipam=ipam, labels={"managed-by": MANAGED_BY}
            )
        except docker.errors.APIError as exc:
            raise ComponentError(
                f"docker network create {self.docker.network} --subnet {self.docker.subnet} "
                f"(runtime.docker.network, runtime.docker.subnet): {exc.explanation or exc}"
            ) from None

    def remove_network(self) -> bool:
        found = self.network()
        if found is None:
            return False
        try:
            found.remove()
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as exc:
            raise ComponentError(f"docker network rm {self.docker.network}: {exc.explanation or exc}") from None
        return True

    def attached(self, node: Node) -> bool:
        container = self.container(node)
        networks = ((container.attrs.get("NetworkSettings") or {}).get("Networks") or {}) if container else {}
        return self.docker.network in networks

    # -- nodes (RestateCluster's per-node operations, on containers) ---------------------------------------

    def live(self, node: Node) -> ProcessRecord | None:
        container = self.container(node)
        if container is None or container.status not in ("running", "paused"):
            return None
        return self._record(container)

    def node_where(self, node: Node, record: ProcessRecord) -> str:
        return f"container {record.name}, pid {record.pid}"

    def frozen(self, node: Node) -> bool:
        container = self.container(node)
        return container is not None and container.status == "paused"

    def node_healthy(self, node: Node) -> bool:
        container = self.container(node)
        return (
            container is not None
            and container.status == "running"
            and http_ok(f"{node.admin_url}/health", HEALTH_TIMEOUT_S)
            and http_ok(f"{node.ingress_url}/restate/health", HEALTH_TIMEOUT_S)
        )

    def wait_node_healthy(self, node: Node, timeout_s: float) -> None:
        """Until its admin and ingress answer on the published ports; at once when the container is gone."""

        def probe() -> str:
            container = self.container(node)
            if container is None or container.status in ("exited", "dead"):
                return "gone"
            return "ok" if self.node_healthy(node) else "waiting"

        try:
            seen = poll(
                probe,
                lambda s: s != "waiting",
                f"{node.name} at {node.admin_url} and {node.ingress_url}",
                timeout_s,
                0.1,
            )
        except WaitTimeout as exc:
            raise ComponentError(f"restate node {node.name}: {exc}\n" + "\n".join(self.node_log(node, 20))) from None
        if seen == "gone":
            raise ComponentError(
                f"restate node {node.name}: container {self.container_name(node)} exited; its log:\n"
                + "\n".join(self.node_log(node, 20))
            )

    def launch_node(self, node: Node) -> str:
        existing = self.container(node)
        if existing is not None and existing.status in ("running", "paused"):
            where = f"{node.name} container {existing.name} {existing.short_id}"
            self.refuse_other_settings(where, *_labels_of(existing))
            return f"{where} (already running)"
        if existing is not None:
            self._remove(node, existing)
        ensure_image(self.client, self.runtime.image())
        self.ensure_network()
        node.config_file.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(node.config_file, self.node_toml_text()[node.number])
        try:
            container = self.client.containers.run(**self.run_kwargs(node))
        except docker.errors.APIError as exc:
            raise ComponentError(f"docker run {self.container_name(node)}: {exc.explanation or exc}") from None
        return f"{node.name} container {container.name} {container.short_id}"

    def node_stop(self, number: int) -> Stopped | None:
        """`docker stop` (SIGTERM, KILL after 10 s); the container stays until the node starts again."""

        def stop(container: Any) -> None:
            try:
                if container.status == "paused":
                    container.unpause()
                container.stop(timeout=STOP_TIMEOUT_S)
            except docker.errors.NotFound:
                pass

        return self._end_container(number, "docker stop", "TERM", stop, escalated_after=STOP_TIMEOUT_S)

    def node_kill(self, number: int, sig: signal.Signals) -> Stopped | None:
        """`docker kill --signal SIG` and wait until the container has exited (its data volume stays)."""
        command = f"docker kill --signal {sig.name}"
        return self._end_container(number, command, sig.name, lambda container: container.kill(signal=sig.name))

    def _end_container(
        self, number: int, command: str, sig: str, end: Callable[[Any], None], escalated_after: float = float("inf")
    ) -> Stopped | None:
        """`end` the running (or paused) container of node `number` (`command`, in an error) and wait until it
        has exited; escalated when that took `escalated_after` s or more. None when it was not running."""
        node = self.node(number)
        container = self.container(node)
        if container is None or container.status not in ("running", "paused"):
            return None
        record, started = self._record(container), time.monotonic()
        try:
            end(container)
        except docker.errors.APIError as exc:
            raise ComponentError(f"{command} {container.name}: {exc.explanation or exc}") from None
        self._wait_exited(node)
        seconds = time.monotonic() - started
        return Stopped(record, sig, seconds >= escalated_after, round(seconds, 3))

    def node_freeze(self, number: int) -> ProcessRecord | None:
        """`docker pause`: every process of the container frozen (cgroup freezer), its sockets kept."""
        return self._pause_or_unpause(number, "running", "pause")

    def node_thaw(self, number: int) -> ProcessRecord | None:
        return self._pause_or_unpause(number, "paused", "unpause")

    def _pause_or_unpause(self, number: int, status: str, verb: str) -> ProcessRecord | None:
        """`docker pause`/`unpause` on node `number`'s container when it is `status`; None when it is not."""
        container = self.container(self.node(number))
        if container is None or container.status != status:
            return None
        try:
            getattr(container, verb)()
        except docker.errors.APIError as exc:
            raise ComponentError(f"docker {verb} {container.name}: {exc.explanation or exc}") from None
        return self._record(container)

    def partitioner(self, writer_port: int) -> Partitioner:
        return NetworkDisconnect(self)

    def node_log(self, node: Node, tail: int) -> list[str]:
        container = self.container(node)
        if container is None:
            return self.process_of(node).logs(tail)  # what `_remove` kept
        return docker_engine.log_lines(container, tail)

    # -- the whole cluster ----------------------------------------------------------------------------------

    def settings_digest(self) -> str:
        return config_digest(
            {
                "cluster": super().settings_digest(),
                "image": self.runtime.image(),
                "network": [self.docker.network, self.docker.subnet],
            }
        )

    def stop(self, purge: bool = False) -> bool:
        """Every node at once (thawed first), every container removed, then the network; `purge`: the
        volumes and the nodes' TOML files too."""
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            stopped = list(pool.map(lambda n: self.node_stop(n.number), self.nodes))
        for node in self.nodes:
            container = self.container(node)
            if container is not None:
                self._remove(node, container)
        removed = self.remove_network()
        if purge:
            for node in self.nodes:
                try:
                    self.client.volumes.get(volume_name(self.settings, node.number)).remove(force=True)
                except docker.errors.NotFound:
                    pass
                node.config_file.unlink(missing_ok=True)
        return any(s is not None for s in stopped) or removed

    def log_lines(self, tail: int) -> list[str]:
        return [f"{n.name} | {line}" for n in self.nodes for line in self.node_log(n, tail)]

    def follow_logs(self) -> Iterator[str]:
        container = self.container(self.entry)
        if container is not None:
            yield from docker_engine.follow_logs(container)

    def default_deployment_uri(self, service_port: int) -> str:
        return f"http://host.docker.internal:{service_port}"

    def host_gateway(self) -> str:
        """The network's gateway (`runtime.docker.subnet`'s first address): the writer listens there."""
        return self.docker.gateway()


@dataclass
class NetworkDisconnect:
    """`docker network disconnect` cuts a node off from everything (its peers, the writer, the host's
    published ports); `docker network connect` gives it back under the same name."""

    cluster: DockerCluster
    how: str = "docker network disconnect: no traffic to or from its peers, the writer or the host"

    def check_possible(self) -> None:
        if self.cluster.network() is None:
            raise ComponentError(f"Docker network {self.cluster.docker.network} does not exist: run `inv up`")

    def cut(self, node: Node) -> dict[str, str]:
        name = self.cluster.container_name(node)
        try:
            self.cluster.ensure_network().disconnect(name)
        except docker.errors.APIError as exc:
            raise ComponentError(f"docker network disconnect {self.cluster.docker.network} {name}: {exc}") from None
        return {"cut": f"docker network disconnect {self.cluster.docker.network} {name}"}

    def heal(self, node: Node) -> bool:
        if self.cluster.container(node) is None or self.cluster.attached(node):
            return False
        name = self.cluster.container_name(node)
        try:
            self.cluster.ensure_network().connect(name)
        except docker.errors.APIError as exc:
            raise ComponentError(f"docker network connect {self.cluster.docker.network} {name}: {exc}") from None
        return True
