"""The components of one config, composed: setup, up, down, status. Nothing else.

Each component (`drillkit/components/`) owns its own start, stop, kill, restart, health and logs; the
stack only knows how they fit: which backend serves Restate, where the writer must listen for that
backend to reach it, which URI Restate registers, and that up/down touch every part even when one
fails. Progress goes to drillkit's observer (`drillkit.progress`); nothing here prints.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from drillkit import preflight, progress, registration
from drillkit.binaries import CLI, CTL, SERVER, Binary, BinaryStore
from drillkit.components.local_model import LocalModel
from drillkit.components.restate_server import PROCESS_NAME, NativeServer, RestateServer
from drillkit.components.target import TargetService
from drillkit.components.writer import NAME as WRITER_NAME
from drillkit.components.writer import WriterService
from drillkit.config import DrillConfig
from drillkit.errors import ComponentError, ConfigError, DrillError
from drillkit.handles import Handles, ModelHandle, RestateEndpoints
from drillkit.procs import Observed, ProcessTable, net_namespace
from drillkit.registration import Registration
from drillkit.restate_api import SERVICE, AdminApi, IngressApi
from drillkit.restate_cli import RestateCli
from drillkit.state import StateDir

if TYPE_CHECKING:
    from drillkit.components.docker_cluster import DockerCluster
    from drillkit.components.restate_cluster import RestateCluster


@dataclass
class Timings:
    """Seconds spent per phase of `up` (read by the benchmarks)."""

    phases: dict[str, float] = field(default_factory=dict)

    def measure(self, phase: str, action: Callable[[], Any]) -> Any:
        started = time.monotonic()
        try:
            return action()
        finally:
            self.phases[phase] = round(time.monotonic() - started, 3)


class Stack:
    def __init__(self, config: DrillConfig) -> None:
        self.config = config
        self.rt = config.runtime
        self.state = StateDir(config.state_root(), backend=self.rt.backend)
        self.state.prepare()
        self.procs = ProcessTable(self.state.procs)
        self.binaries = BinaryStore(self.state.bin, self.rt.restate_version)
        self.admin = AdminApi(self.rt.admin_url)
        self.ingress = IngressApi(self.rt.ingress_url)
        self.model = LocalModel(config, self.state, self.procs)
        self._server: RestateServer | None = None
        self._writer: WriterService | None = None
        self._target: TargetService | None = None

    def close(self) -> None:
        self.admin.close()
        self.ingress.close()

    def point_clients_at(self, admin_url: str, ingress_url: str) -> None:
        """The one place the Stack's Restate clients change address: a cluster's entry node, and the
        survivor a cluster drill moves to. Everything that talks to Restate through the Stack (the server
        component, the drills, the CLI) follows; no component rewrites these clients itself."""
        self.admin.retarget(admin_url)
        self.ingress.retarget(ingress_url)

    # -- the parts ------------------------------------------------------------------------------------

    @property
    def server(self) -> RestateServer:
        """The Restate server of the configured backend (`auto`: Docker when an engine answers)."""
        if self._server is None:
            self._server = restate_backend(self)
        return self._server

    @property
    def writer(self) -> WriterService:
        if self._writer is None:
            # A containerised server reaches the writer through the bridge's gateway, not loopback.
            host = self.server.host_gateway() or self.config.service.host
            self._writer = WriterService(self.config, self.state, self.procs, host)
        return self._writer

    @property
    def target(self) -> TargetService | None:
        """The configured target (`target:` in the config); None when the shipped writer is the target."""
        if self._target is None and self.config.target is not None:
            self._target = TargetService(self.config, self.state, self.procs)
        return self._target

    @property
    def service(self) -> WriterService | TargetService:
        """The service the drills act on: the configured target, else the shipped writer."""
        return self.target or self.writer

    @property
    def service_name(self) -> str:
        return self.target.service if self.target else SERVICE

    @property
    def cluster(self) -> RestateCluster:
        """The cluster backend's server (its nodes, leaders, per-node actions); DrillError otherwise."""
        from drillkit.components.restate_cluster import RestateCluster

        if not isinstance(self.server, RestateCluster):
            raise DrillError(
                f"{self.config.source}: runtime.backend is {self.rt.backend}, not cluster "
                "(use configs/cluster.yaml or configs/docker-cluster.yaml, or a config with "
                "`runtime.backend: cluster` or `docker-cluster`)"
            )
        return self.server

    def handles(self) -> Handles:
        """What a drill acts on, each as its own handle (`drillkit.handles`): the Restate endpoints, the
        writer and the configured target, the model, the cluster's nodes (cluster backend), the config."""
        return Handles(
            config=self.config,
            restate=RestateEndpoints(
                admin=self.admin,
                ingress=self.ingress,
                server=self.server,
                use_http11=self.rt.use_http11,
                cli=self.cli,
                register=self.register,
                deployment_uri=self.deployment_uri,
                point_at=self.point_clients_at,
                remember_invocation=self.state.remember_invocation,
            ),
            writer=self.writer,
            target=self.target,
            model=ModelHandle(self.model, self.config.writer_model.base_url, self.procs, self.state),
            nodes=self.cluster if self.rt.is_cluster else None,
            releases=self.binaries_of,
        )

    def cli(self) -> RestateCli:
        found = self.binaries.find(CLI)
        if found is None:
            raise DrillError("the restate CLI is not installed: run `inv setup`")
        # The admin client's URL: a cluster's drills move it to a surviving node.
        return RestateCli(found[0], self.admin.base_url)

    def binaries_of(self, version: str) -> BinaryStore:
        """The binary cache for one Restate release (`<state>/bin/<version>/`); the pinned one is `binaries`."""
        return self.binaries if version == self.rt.restate_version else BinaryStore(self.state.bin, version)

    def other_versions(self) -> list[str]:
        """The further restate-server releases `setup` fetches (a cluster's `other_versions`)."""
        if self.rt.backend != "cluster":
            return []
        return [v for v in self.rt.cluster.other_versions if v != self.rt.restate_version]

    def binaries_needed(self) -> tuple[Binary, ...]:
        return (SERVER, CLI, CTL) if self.rt.is_cluster else (SERVER, CLI)

    # -- setup ----------------------------------------------------------------------------------------

    def setup(self) -> list[tuple[str, str, str]]:
        """Fetch what is missing (binaries, model); returns (item, path, source) rows. Idempotent."""
        rows = []
        for binary in self.binaries_needed():
            path, source = self.binaries.ensure(binary)
            rows.append((binary.command, str(path), source))
        for version in self.other_versions():
            path, source = self.binaries_of(version).ensure(SERVER)
            rows.append((f"{SERVER.command} {version}", str(path), source))
        if self.model.enabled:
            rows.append(("model", *self.model.setup()))
        return rows

    def needs_setup(self) -> bool:
        missing = [b for b in self.binaries_needed() if self.binaries.find(b) is None]
        return bool(missing) or (self.model.enabled and self.model.model_path() is None)

    # -- registration ---------------------------------------------------------------------------------

    def deployment_uri(self) -> str:
        target = self.target
        if target is not None:
            if target.spec.uri is not None:
                return target.spec.uri
            return self.server.default_deployment_uri(target.spec.port or 0)
        return self.rt.deployment_uri or self.server.default_deployment_uri(self.config.service.port)

    def register(self, use_http11: bool | None = None, force: bool = True) -> str:
        """`restate deployments register <uri> -y [--use-http1.1] [--force]` with the downloaded CLI."""
        default = self.target.spec.use_http11 if self.target else self.rt.use_http11
        http11 = default if use_http11 is None else use_http11
        return self.cli().register(self.deployment_uri(), use_http11=http11, force=force)

    def ensure_registered(self, use_http11: bool | None = None) -> Registration:
        """Register unless Restate already has this deployment unchanged (`drillkit.registration`)."""
        default = self.target.spec.use_http11 if self.target else self.rt.use_http11
        http11 = default if use_http11 is None else use_http11
        uri = self.deployment_uri()
        return registration.ensure(
            self.admin.deployments,
            lambda force: self.cli().register(uri, use_http11=http11, force=force),
            uri,
            self.service_name,
            http11,
        )

    def registered(self) -> bool:
        try:
            return self.service_name in self.admin.services()
        except DrillError:
            return False

    # -- where the recorded processes are ---------------------------------------------------------------

    def elsewhere(self) -> str | None:
        """Why nothing of ours can be reached from here, when our processes live in another network
        namespace (say, a `scripts/loopback-only` shell); None when they are reachable (or none run)."""
        foreign = self.procs.elsewhere()
        if not foreign:
            return None
        names = ", ".join(f"{record.name} (pid {record.pid}, {ns})" for record, ns in foreign)
        here = net_namespace("self")
        return (
            f"this tool's processes run in another namespace than this shell ({here}): {names}. "
            "Nothing they serve on loopback can be reached from here. Run this command in the shell they were "
            "started in (each `scripts/loopback-only` shell has a namespace of its own, shared with no other); "
            "`inv down` stops them from there (from here only when they share this shell's PID namespace)"
        )

    def check_reachable(self) -> None:
        """Fail at once (not after a health-check deadline) when our processes live in another namespace."""
        message = self.elsewhere()
        if message:
            raise ComponentError(message)

    def mismatched(self) -> list[Observed]:
        """Process records whose pid now runs another process: kept, never signalled, reported."""
        return self.procs.mismatched()

    # -- whole stack ----------------------------------------------------------------------------------

    def is_up(self) -> bool:
        """Server, writer and registration all in place (the local model too, when there is one)."""
        model_ok = not self.model.enabled or self.model.live() is not None
        service = self.service
        service_ok = service.live() if service.startable else service.healthy()
        return bool(self.server.running() and service_ok and model_ok and self.registered())

    def up(self, use_http11: bool | None = None, verbose: bool = False) -> Timings:
        """Setup if needed; check every prerequisite before starting anything; start the server, the model
        and the writer side by side (none needs another to start: the writer reaches the model only when a
        step runs); then register unless Restate already has it unchanged."""
        timings = Timings()
        self.check_reachable()
        if self.needs_setup():
            timings.measure("setup", self.setup)
        preflight.check(self)
        self.server.prepare()  # what the writer needs before it can listen (a Docker network's gateway)
        server, service = self.server, self.service  # chosen once, before the threads
        if not self.model.enabled:
            progress.info(f"LLM endpoint is remote: {self.config.writer_model.base_url} (not started here)")
        parts: dict[str, Callable[[], str]] = {
            "restate": lambda: (
                f"restate-server ({server.name}) {server.start()}: {self.rt.ingress_url} / {self.rt.admin_url}"
            ),
        }
        if service.startable:
            parts["service"] = lambda: f"{service.what} pid {service.start().pid}: {service.url}"
        else:
            progress.info(f"{service.what} runs elsewhere: {service.url} (not started here)")
        if self.model.enabled:
            parts["llm"] = lambda: (
                f"local model pid {self.model.start().pid}: {self.model.url}/v1 ({self.config.local_model.alias})"
            )
        failures = []
        config_failed = False
        with progress.activity("starting " + ", ".join(parts)), ThreadPoolExecutor(len(parts)) as pool:
            futures = {name: pool.submit(timings.measure, name, action) for name, action in parts.items()}
            for name, future in futures.items():
                try:
                    progress.ok(future.result())
                except DrillError as exc:
                    failures.append(f"{name}: {exc}")
                    config_failed |= isinstance(exc, ConfigError)
        if failures:
            raise (ConfigError if config_failed else ComponentError)("\n".join(failures))
        done: Registration = timings.measure("register", lambda: self.ensure_registered(use_http11))
        progress.ok(done.summary)
        if verbose:
            progress.raw(done.output)
        if self.rt.is_cluster:
            timings.measure(
                "registered everywhere",
                lambda: self.cluster.wait_registered_everywhere(self.service_name, self.rt.ready_timeout_s),
            )
            progress.ok(f"every node's admin API lists {self.service_name}")
        return timings

    def down(self, purge: bool = False, forget_mismatched: bool = False) -> list[str]:
        """Stop everything this tool started (writer, model, server), in that order. Idempotent.

        Each part is stopped even if an earlier one fails; the failures are raised together at the end.
        A record whose pid now runs another process is never signalled: it is a failure too (with what
        differs), and its record is kept unless `forget_mismatched` (the user has checked it).
        """
        stopped: list[str] = []
        failures: list[str] = []
        parts: list[tuple[str, Callable[[], object]]] = [
            ("writer service", self.writer.stop),
            *([(self.target.what, self.target.stop)] if self.target and self.target.startable else []),
            ("local model", self.model.stop),
            (f"restate-server ({self.server.name})", lambda: self.server.stop(purge=purge)),
        ]
        for label, stop in parts:
            try:
                if stop():
                    stopped.append(label)
            except DrillError as exc:
                failures.append(f"{label}: {exc}")
        for seen in self.mismatched():
            if forget_mismatched:
                self.procs.forget_mismatched(seen)
                progress.warn(f"{seen.describe()}: not signalled; its record is dropped as asked")
            else:
                failures.append(
                    f"{seen.describe()}: not signalled; record kept at {self.procs.path(seen.record.name)} "
                    "(`inv status` shows it; `inv down --forget-mismatched` drops it once you have checked "
                    f"that pid {seen.record.pid} is not ours)"
                )
        if purge:
            shutil.rmtree(self.state.restate_data, ignore_errors=True)
            shutil.rmtree(self.state.root / "restate-cluster", ignore_errors=True)
            self.config.ledger_file().unlink(missing_ok=True)
            self.state.last_invocation_file.unlink(missing_ok=True)
        if failures:
            raise DrillError("could not stop everything:\n  " + "\n  ".join(failures))
        return stopped

    def status(self) -> list[tuple[str, str, str, str]]:
        """(component, process, URL, health) rows."""
        return status_rows(self)


def restate_backend(stack: Stack) -> RestateServer:
    """The configured backend's server; Docker and cluster modules are imported only when chosen
    (docker-py costs every other `inv` a seventh of a second)."""
    rt, choice = stack.rt, stack.rt.backend
    identity = stack.state.request_identity() if rt.request_identity else None  # the key Restate signs with
    if choice in ("auto", "docker"):
        from drillkit.components.docker_engine import docker_available
        from drillkit.components.restate_docker import DockerServer

        if choice == "auto":
            choice = "docker" if docker_available(stack.state.root) else "native"
        if choice == "docker":
            return DockerServer(
                rt, stack.admin, stack.ingress, procs=stack.procs, config_source=stack.config.source, identity=identity
            )
    if choice in ("cluster", "docker-cluster"):
        where = (stack.binaries.path(CTL), stack.state.root / "restate-cluster", stack.state.logs, stack.procs)
        cluster: RestateCluster | DockerCluster
        if choice == "cluster":  # native nodes also need the server binary; the containers bring their own
            from drillkit.components.restate_cluster import RestateCluster as Native

            cluster = Native(
                rt, stack.admin, stack.ingress, stack.binaries.path(SERVER), *where,
                config_source=stack.config.source, identity=identity,
            )  # fmt: skip
        else:
            from drillkit.components.docker_cluster import DockerCluster as Containers

            cluster = Containers(
                rt, stack.admin, stack.ingress, *where, config_source=stack.config.source, identity=identity
            )
        stack.point_clients_at(cluster.entry.admin_url, cluster.entry.ingress_url)
        return cluster
    return NativeServer(
        rt,
        stack.admin,
        stack.ingress,
        stack.binaries.path(SERVER),
        stack.state.restate_data,
        stack.procs,
        stack.state.log_file("restate-server"),
        config_source=stack.config.source,
        identity=identity,
    )


def process_cell(stack: Stack, name: str, digest: str | None = None) -> str:
    """`pid N`, `-`, or what is wrong with the record: not ours any more, or another config."""
    seen = stack.procs.observe(name)
    if seen is None:
        return "-"
    if seen.state == "mismatch":
        return f"pid {seen.record.pid}: NOT OURS NOW (see below)"
    if seen.state == "elsewhere":
        return f"pid {seen.record.pid} in another PID namespace"
    cell = f"pid {seen.record.pid}"
    if digest is not None and seen.record.config_digest != digest:
        cell += f" (started with another config: {seen.record.config_source or 'unrecorded'})"
    return cell


ELSEWHERE = "not reachable from here (another network namespace)"


def status_rows(stack: Stack) -> list[tuple[str, str, str, str]]:
    """(component, process, URL, health): the server (or each node), the model, the writer. A live process
    of ours in another network namespace is not called "down": it cannot be asked from here, and says so
    (a cluster node's row as the model's and the writer's: its pid there, not reachable from here)."""
    foreign = {record.name for record, _ in stack.procs.elsewhere()}
    rows = _status_rows(stack)
    names = {"local model": stack.model.name, "writer service": WRITER_NAME}
    out = []
    for c, p, u, h in rows:
        name = names.get(c, PROCESS_NAME if c.startswith("restate-server") else None)
        if c.startswith("restate node "):
            name = f"{PROCESS_NAME}-{c.removeprefix('restate node ')}"  # the native node's record
            if name in foreign and p == "-":
                p = process_cell(stack, name)
        out.append((c, p, u, ELSEWHERE if name in foreign else h))
    return out


def _status_rows(stack: Stack) -> list[tuple[str, str, str, str]]:
    """(component, process, URL, health): the server (or each node), the model, the writer. When the
    server cannot be asked at all (no Docker engine answers), its rows say `unknown` and why, once."""
    try:
        rows, server_ok = _server_rows(stack)
    except ComponentError as exc:
        progress.warn(f"restate-server ({stack.rt.backend}): {exc}")
        rows, server_ok = _unknown_server_rows(stack), False
    model = stack.model
    if model.enabled:
        gguf = model.model_path()
        digest = model.config_stamp(gguf).digest if gguf else None
        health = "ok" if model.healthy() else "down"
        rows.append(("local model", process_cell(stack, model.name, digest), f"{model.url}/v1", health))
    else:
        rows.append(("LLM endpoint (remote)", "-", stack.config.writer_model.base_url, "not probed"))
    try:
        service = stack.service
    except ComponentError:  # the writer's address is the Docker bridge's, and no engine answers: said above
        rows.append(("writer service", process_cell(stack, WRITER_NAME), "-", "unknown"))
        return rows
    health = "ok" if service.healthy() else "down"
    if health == "ok" and server_ok:
        health += ", registered" if stack.registered() else ", not registered"
    digest = service.config_stamp().digest if isinstance(service, WriterService) else None
    cell = process_cell(stack, service.name, digest) if service.startable else "not ours (target.uri)"
    rows.append((service.what, cell, service.url, health))
    return rows


def _server_rows(stack: Stack) -> tuple[list[tuple[str, str, str, str]], bool]:
    if stack.rt.is_cluster:
        rows = stack.cluster.node_rows()
        return rows, any(row[3] == "ok" for row in rows)
    server = stack.server
    server_ok = server.healthy()
    if isinstance(server, NativeServer):
        server_cell = process_cell(stack, PROCESS_NAME, server.settings_digest())
    else:
        server_cell = server.running() or "-"
    health = "ok" if server_ok else "down"
    if server_ok and isinstance(server, NativeServer) and server_cell == "-":
        # Something answers on the server's ports but no native server of this config runs: another
        # config's (a cluster node, say), or not ours. Its "ok" would be somebody else's.
        health = "answered by a process this config did not start"
    return [
        (f"restate-server ({server.name})", server_cell, f"{stack.rt.ingress_url} {stack.rt.admin_url}", health)
    ], server_ok


def _unknown_server_rows(stack: Stack) -> list[tuple[str, str, str, str]]:
    """The server's rows from the config alone: where it would listen, state unknown."""
    if not stack.rt.is_cluster:
        return [
            (
                f"restate-server ({stack.rt.backend})",
                "unknown",
                f"{stack.rt.ingress_url} {stack.rt.admin_url}",
                "unknown",
            )
        ]
    from drillkit.components.restate_cluster import Node

    home = stack.state.root / "restate-cluster"
    nodes = [Node(n, stack.rt.cluster, home, stack.state.logs) for n in range(1, stack.rt.cluster.nodes + 1)]
    return [
        (
            f"restate node {node.name}",
            "unknown",
            f"ingress {node.ingress_url} admin {node.admin_url} fabric :{node.fabric_port}",
            "unknown",
        )
        for node in nodes
    ]
