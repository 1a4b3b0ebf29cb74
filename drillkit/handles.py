"""What a drill acts on, as explicit typed handles: composed by the Stack, handed to the drill.

A drill (and the kit it is built from) never holds the Stack: it holds these. Each handle names one
thing the drill touches and nothing more:

- `RestateEndpoints`: Restate's admin API and ingress clients, the downloaded CLI, the server (kill,
  start, restart), registering the service's deployment, and moving the clients to another node;
- the service under test: `writer` (the shipped writer: its steps, ledger, executions, process record,
  kill/restart/freeze/thaw, derived configs) and `target` (a configured target, or None);
- `ModelHandle`: the local model (stop/start), the URL the writer calls, and the stub model and LLM tap a
  drill puts in front of it (each a fresh component on this state dir's process table);
- `cluster`: the cluster backend's nodes (kill/freeze/thaw/start, leaders, partitions), a DrillError on
  any other backend;
- `config`: the loaded config, for the fields a drill's checks read (ports, timeouts, its source).

The Stack builds them (`Stack.handles()`); how they are wired (which backend, which deployment URI) stays
in the Stack. Nothing here starts anything on its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from drillkit.binaries import BinaryStore
from drillkit.components.llm_tap import LlmTap
from drillkit.components.local_model import LocalModel
from drillkit.components.restate_server import RestateServer
from drillkit.components.stub_llm import StubLlm
from drillkit.components.target import TargetService
from drillkit.components.writer import WriterService
from drillkit.config import DrillConfig
from drillkit.errors import DrillError
from drillkit.procs import ProcessTable
from drillkit.restate_api import AdminApi, IngressApi
from drillkit.restate_cli import RestateCli
from drillkit.state import StateDir

if TYPE_CHECKING:
    from drillkit.components.restate_cluster import RestateCluster


@dataclass(frozen=True)
class RestateEndpoints:
    """Restate as a drill reaches it."""

    admin: AdminApi
    ingress: IngressApi
    server: RestateServer
    """The configured backend's server: kill, start, restart (a cluster's too, as a whole)."""
    use_http11: bool
    """`runtime.use_http11`: how a deployment a drill registers itself is reached."""
    cli: Callable[[], RestateCli]
    """The downloaded `restate` CLI, on the admin client's current URL."""
    register: Callable[..., str]
    """`restate deployments register` of the service under test (`force=True` to replace it)."""
    deployment_uri: Callable[[], str]
    """The URI Restate registers for the service under test."""
    point_at: Callable[[str, str], None]
    """Move the admin and ingress clients (and so the CLI and the server's checks) to (admin, ingress)."""
    remember_invocation: Callable[[str], None]
    """Note an invocation id as the last one sent (what `inv describe` shows without an id)."""


@dataclass(frozen=True)
class ModelHandle:
    """The model the writer calls, and the stand-ins a drill puts in front of it."""

    local: LocalModel
    """The local model server (`local_model.enabled`): stop and start it, its URL."""
    base_url: str
    """`writer_model.base_url`: where the writer (or the target) sends its completions."""
    procs: ProcessTable
    state: StateDir

    def stub(self) -> StubLlm:
        """The stub model (instant, deterministic answers; held and released at will)."""
        return StubLlm(self.procs, self.state.log_file("stub-llm"))

    def tap(self, prefix: str = "") -> LlmTap:
        """A recording proxy for one run, its record a fresh JSON Lines file (fault plans at start)."""
        record = self.state.root / "llm-tap" / f"{prefix}{uuid.uuid4().hex}.jsonl"
        return LlmTap(self.procs, self.state.log_file("llm-tap"), record)


@dataclass(frozen=True)
class Handles:
    """Everything a drill acts on, each as its own handle."""

    config: DrillConfig
    restate: RestateEndpoints
    writer: WriterService
    target: TargetService | None
    model: ModelHandle
    nodes: RestateCluster | None = None
    """The cluster backend's server; None on any other backend (`cluster` says why)."""
    releases: Callable[[str], BinaryStore] | None = None
    """The binary cache of one Restate release (`Stack.binaries_of`): the releases a rolling upgrade
    moves the nodes between."""

    @property
    def service(self) -> WriterService | TargetService:
        """The service the drills act on: the configured target, else the shipped writer."""
        return self.target or self.writer

    @property
    def cluster(self) -> RestateCluster:
        """The cluster's nodes (kill, freeze, thaw, start, partition, leaders); DrillError otherwise."""
        if self.nodes is None:
            raise DrillError(
                f"{self.config.source}: runtime.backend is {self.config.runtime.backend}, not cluster "
                "(use configs/cluster.yaml or configs/docker-cluster.yaml, or a config with "
                "`runtime.backend: cluster` or `docker-cluster`)"
            )
        return self.nodes
