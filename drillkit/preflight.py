"""What `inv up` checks before it starts anything: the model server's package, the binaries, the ports.

A plain `pip install .` used to start Restate and the writer, then fail on the model and leave them
running; a cluster left up made `inv up` on another config print three ✓ and then fail. Every check here
only reads (imports, files, a connect probe, our own process records); all problems are reported at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from drillkit.binaries import Binary, BinaryStore
from drillkit.components.local_model import SERVER_MODULE, LocalModel, install_hint, server_installed
from drillkit.components.restate_server import RestateServer, host_of, port_of
from drillkit.components.target import TargetService
from drillkit.components.writer import WriterService
from drillkit.config import DrillConfig, Runtime
from drillkit.errors import ComponentError, ConfigMismatch
from drillkit.ports import listening, recorded_owner
from drillkit.procs import ProcessTable
from drillkit.waits import WaitTimeout, poll

if TYPE_CHECKING:  # the Stack, too, imports the cluster only when the cluster backend is chosen
    from drillkit.components.restate_cluster import RestateCluster


class Stack(Protocol):
    """What the checks read of `drillkit.stack.Stack`, which runs them from `up`: stated here so that this
    module needs no import of the Stack (that import made a circle)."""

    config: DrillConfig
    rt: Runtime
    procs: ProcessTable
    binaries: BinaryStore
    model: LocalModel

    @property
    def server(self) -> RestateServer: ...
    @property
    def service(self) -> WriterService | TargetService: ...
    @property
    def cluster(self) -> RestateCluster: ...
    def binaries_needed(self) -> tuple[Binary, ...]: ...


RELEASE_GRACE_S = 1.0  # a process killed a moment ago may hold its socket while its threads exit


@dataclass(frozen=True)
class Port:
    host: str
    port: int
    what: str
    field: str


class Problems(ComponentError):
    """Prerequisites `inv up` found missing, all of them, before starting anything."""


def ports_to_bind(stack: Stack) -> list[Port]:
    """The ports of every part that is not running now (a running part is reused, its port is its own)."""
    ports: list[Port] = []
    rt = stack.rt
    if rt.is_cluster:
        cluster = stack.cluster
        for node in cluster.nodes:
            if cluster.live(node) is None:
                what = f"restate node {node.name}"
                ports += [
                    Port(host_of(node.fabric_url), node.fabric_port, what, "runtime.cluster.fabric_base_port"),
                    Port(host_of(node.admin_url), node.admin_port, what, "runtime.cluster.admin_base_port"),
                    Port(host_of(node.admin_url), node.ingress_port, what, "runtime.cluster.ingress_base_port"),
                ]
    elif stack.server.running() is None:
        what = f"restate-server ({stack.server.name})"
        ports += [
            Port(host_of(rt.ingress_url), port_of(rt.ingress_url), what, "runtime.ingress_url"),
            Port(host_of(rt.admin_url), port_of(rt.admin_url), what, "runtime.admin_url"),
        ]
    if stack.model.enabled and stack.model.live() is None:
        ports += [Port(w.host, w.port, stack.model.what, w.field) for w in stack.model.listens()]
    service = stack.service  # the shipped writer, or the configured target (not checked when at a uri)
    if service.startable and service.live() is None:
        ports += [Port(w.host, w.port, service.what, w.field) for w in service.listens()]
    return ports


def other_configs(stack: Stack) -> dict[str, list[str]]:
    """Config file -> our live processes started with it, for every config but this one (a cluster left
    running while `inv status` or `inv up` reads the default config, say)."""
    found: dict[str, list[str]] = {}
    here = str(stack.config.source)
    for name in stack.procs.names():
        record = stack.procs.live(name)
        if record is not None and record.config_source and record.config_source != here:
            found.setdefault(record.config_source, []).append(f"{record.name} (pid {record.pid})")
    return found


def other_configs_text(stack: Stack) -> str | None:
    """One sentence naming what runs on another config and how to see it; None when nothing does."""
    found = other_configs(stack)
    if not found:
        return None
    runs = "; ".join(f"{', '.join(names)} started with {source}" for source, names in sorted(found.items()))
    first = sorted(found)[0]
    return f"this is {stack.config.source}, but {runs}: `inv status --config {first}` shows it"


def busy(host: str, port: int) -> bool:
    try:
        poll(lambda: listening(host, port), lambda taken: not taken, f"port {port} to be free", RELEASE_GRACE_S, 0.05)
        return False
    except WaitTimeout:
        return True


def check(stack: Stack) -> None:
    """Raise (ConfigMismatch: exit 2; Problems: exit 1) naming every missing prerequisite."""
    problems: list[str] = []
    other_configs_seen: set[str] = set()
    if stack.model.enabled and stack.model.live() is None and not server_installed():
        problems.append(
            f"the local model's server ({SERVER_MODULE}, the `local-llm` extra) is not installed for this "
            f"Python: run {install_hint()}"
        )
    for binary in stack.binaries_needed():
        if stack.rt.backend == "docker" and binary.command == "restate-server":
            continue  # the container brings its own
        if stack.binaries.find(binary) is None:
            problems.append(f"{binary.command} is not installed: run `inv setup`")
    if stack.model.enabled and stack.model.model_path() is None:
        problems.append("the local model is not downloaded: run `inv setup`")
    elsewhere = other_configs(stack)
    for port in ports_to_bind(stack):
        if not busy(port.host, port.port):
            continue
        owner = recorded_owner(port.port, stack.procs)
        # Ours, but not this config's: named by its own record, or (a cluster node records no config) by the
        # configs the other parts running beside it were started with.
        sources = (
            {owner.config_source}
            if owner is not None and owner.config_source
            else set(elsewhere)
            if owner is not None
            else set()
        )
        sources.discard(str(stack.config.source))
        if owner is not None and sources:
            other_configs_seen.update(sources)
            problems.append(
                f"port {port.port} ({port.what}) is held by our {owner.name} (pid {owner.pid}), started with "
                f"{', '.join(sorted(sources))}"
            )
        elif owner is not None:
            problems.append(f"port {port.port} ({port.what}) is held by our {owner.name} (pid {owner.pid})")
        else:
            problems.append(
                f"port {port.port} ({port.host}:{port.port}, {port.what}) is in use by another program (not one "
                f"this tool started; nothing is killed by name): stop it or change {port.field}"
            )
    if not problems:
        return
    text = "nothing was started; first:\n  " + "\n  ".join(problems)
    if other_configs_seen:
        others = sorted(other_configs_seen)
        raise ConfigMismatch(
            f"{text}\n  this is {stack.config.source}; what runs was started with {', '.join(others)}: "
            f"`inv down --config {others[0]}` first, or pass --config {others[0]}"
        )
    raise Problems(text)
