"""A Restate cluster of N native nodes on one host, behind the `RestateServer` interface.

Each node is a `restate-server` process of ours (a `RestateProcess`: recorded, verified before any
signal, frozen and thawed like every other process) with its own TOML file, data dir, log and ports
(fabric `5121+N`, admin `9069+N`, ingress `8079+N` by default). Node 1 provisions the cluster with the
replication set in the config (it must be set before provisioning: Restate's default is 1), the
metadata store and the log are replicated (Restate's own multi-node setup). `start` is the whole
cluster: every node side by side, then every partition with an active leader, then SQL on the node the
stack talks to. Nodes can be stopped, killed (KILL, or STOP to freeze them) and started one by one.

Restate's view of the cluster comes from `restatectl` (the `partition_state`, `partitions` and `nodes`
tables through `restatectl sql --jsonl`), asked only of nodes that are running and not cut off: a node
in the address list that cannot be reached makes the whole query fail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

from drillkit.binaries import reported_version
from drillkit.components.netcut import Cut, NetCut
from drillkit.components.process import ConfigStamp, config_digest
from drillkit.components.restate_server import RestateProcess, RestateServer
from drillkit.config import ClusterSettings, Runtime
from drillkit.errors import ComponentError, DrillError, HttpError
from drillkit.identity import SERVER_KEY_ENVS, SERVER_KEY_TOML_KEY, SERVER_KEY_TOML_SECTION, RequestIdentity
from drillkit.procs import ProcessRecord, ProcessTable, Stopped
from drillkit.restate_api import TRANSIENT_RETRY_S, AdminApi, IngressApi, is_transient_message
from drillkit.state import write_text_atomically
from drillkit.waits import WaitTimeout, poll

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Node:
    """One node's fixed facts: its number (1-based), name, ports and files."""

    number: int
    settings: ClusterSettings
    home: Path  # <state>/restate-cluster
    logs: Path

    @property
    def name(self) -> str:
        return f"n{self.number}"

    @property
    def process(self) -> str:
        return f"restate-server-{self.name}"

    @property
    def fabric_port(self) -> int:
        return self.settings.fabric_base_port + self.number

    @property
    def admin_port(self) -> int:
        return self.settings.admin_base_port + self.number

    @property
    def ingress_port(self) -> int:
        return self.settings.ingress_base_port + self.number

    @property
    def fabric_url(self) -> str:
        return f"http://{HOST}:{self.fabric_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{HOST}:{self.admin_port}"

    @property
    def ingress_url(self) -> str:
        return f"http://{HOST}:{self.ingress_port}"

    @property
    def data_dir(self) -> Path:
        return self.home / self.name

    @property
    def partition_store(self) -> Path:
        """The partition processors' RocksDB (`<base-dir>/<node-name>/db`): what Restate's own verification
        removes (`rm -rf` of a node's db) to make a node rebuild its partitions from the replicated log."""
        return self.data_dir / self.name / "db"

    @property
    def config_file(self) -> Path:
        return self.home / f"{self.name}.toml"

    @property
    def log_file(self) -> Path:
        return self.logs / f"restate-{self.name}.log"

    @property
    def socket_gid(self) -> int:
        return self.settings.socket_gid_base + self.number


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class NodeAddresses:
    """Where node N binds and how its peers reach it. Native nodes share 127.0.0.1 and tell themselves
    apart by port (`<base>_port + N`); containers (`docker_cluster.py`) each have an address of their
    own on a Docker network and use the image's ports."""

    settings: ClusterSettings
    bind_ip: str = HOST

    def fabric_url(self, number: int) -> str:
        return f"http://{HOST}:{self.fabric_port(number)}"

    def fabric_port(self, number: int) -> int:
        return self.settings.fabric_base_port + number

    def admin_port(self, number: int) -> int:
        return self.settings.admin_base_port + number

    def ingress_port(self, number: int) -> int:
        return self.settings.ingress_base_port + number


def node_toml(
    settings: ClusterSettings,
    number: int,
    data_dir: Path | str,
    identity_key_file: Path | str | None = None,
    addresses: NodeAddresses | None = None,
    version: tuple[int, int, int] | None = None,
) -> str:
    """The node's config file. Keys checked against `restate-server --dump-config` of 1.7.12 (the
    request identity key: against the log line "Loaded request identity key" at start). A node run by an
    older binary (`version` below 1.7, a rolling upgrade) gets the key where that version reads it: at
    the top level (1.6.x ignores `[worker.invoker]`'s; 1.7 still reads the top-level one, deprecated)."""
    legacy_key = identity_key_file is not None and version is not None and version < (1, 7, 0)
    at = addresses or NodeAddresses(settings)
    peers = ", ".join(_toml_str(at.fabric_url(n)) for n in range(1, settings.nodes + 1))
    lines = [
        f"# node {number} of {settings.nodes}, written by drillkit (restate_cluster.py); rewritten at every start",
        f"node-name = {_toml_str(f'n{number}')}",
        f"cluster-name = {_toml_str(settings.name)}",
        f"base-dir = {_toml_str(str(data_dir))}",
        # Only node 1 provisions; the others join. Replication is fixed at provisioning.
        f"auto-provision = {'true' if number == 1 else 'false'}",
        f"default-replication = {settings.replication}",
        f"default-num-partitions = {settings.partitions}",
        f"bind-ip = {_toml_str(at.bind_ip)}",
        'listen-mode = "tcp"',
        f"bind-port = {at.fabric_port(number)}",
        f"advertised-address = {_toml_str(at.fabric_url(number))}",
        "log-disable-ansi-codes = true",
        *([f"request-identity-private-key-pem-file = {_toml_str(str(identity_key_file))}"] if legacy_key else []),
        "",
        "[metadata-client]",
        'type = "replicated"',
        f"addresses = [{peers}]",
        "",
        "[bifrost]",
        'default-provider = "replicated"',
        "",
        "[admin]",
        f"bind-port = {at.admin_port(number)}",
        "",
        "[ingress]",
        f"bind-port = {at.ingress_port(number)}",
        "",
    ]
    if identity_key_file is not None and not legacy_key:
        # Every node signs what it sends the services with the state dir's key: whichever node leads a
        # partition invokes the writer, and the writer accepts only that key.
        lines += [f"[{SERVER_KEY_TOML_SECTION}]", f"{SERVER_KEY_TOML_KEY} = {_toml_str(str(identity_key_file))}", ""]
    return "\n".join(lines)


# -- restatectl's view ------------------------------------------------------------------------------


def parse_jsonl(text: str) -> list[dict[str, Any]]:
    """`restatectl sql --jsonl` prints one JSON object per line, then a summary line ("3 rows. Query took ...")."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            value = json.loads(line)
            if isinstance(value, dict):
                rows.append(value)
    return rows


def active_leaders(state_rows: list[dict[str, Any]], names: dict[str, str]) -> dict[int, str]:
    """Partition id -> node name of its active leader, from `partition_state` rows (each node reports
    its own processors) and `nodes` (plain node id -> name). A partition with no active leader is absent;
    with two nodes claiming it (an old leader not yet told), the higher leader epoch wins."""
    best: dict[int, tuple[int, str]] = {}
    for row in state_rows:
        # 1.7 says "Leader", 1.6 "leader": a cluster in a rolling upgrade has both.
        if str(row.get("effective_mode")).lower() != "leader" or row.get("replay_status") != "active":
            continue
        partition = row.get("partition_id")
        if not isinstance(partition, int):
            continue
        epoch = _epoch(row.get("leader_epoch"))
        node = names.get(str(row.get("plain_node_id")), str(row.get("plain_node_id")))
        if partition not in best or epoch > best[partition][0]:
            best[partition] = (epoch, node)
    return {partition: node for partition, (_, node) in sorted(best.items())}


def _epoch(value: object) -> int:
    text = str(value or "").lstrip("e")
    return int(text) if text.isdigit() else -1


def partition_of(key: int, ranges: list[dict[str, Any]]) -> int | None:
    """The partition whose key range holds `key` (`partitions` rows: partition_id, start_key, end_key)."""
    for row in ranges:
        if int(row["start_key"]) <= key <= int(row["end_key"]):
            return int(row["partition_id"])
    return None


@dataclass(frozen=True)
class Restatectl:
    binary: Path
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run

    def argv(self, addresses: list[str], *args: str) -> list[str]:
        return [str(self.binary), "--address", ",".join(addresses), "--connect-timeout", "1000", *args]

    def execute(self, addresses: list[str], *args: str, timeout_s: float = 15.0) -> str:
        if not addresses:
            raise ComponentError("restatectl: no reachable node to ask")
        argv = self.argv(addresses, *args)
        env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "250", "TERM": "dumb"}
        try:
            out = self.run(argv, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
        except subprocess.TimeoutExpired:
            raise ComponentError(f"`{' '.join(argv)}` did not answer within {timeout_s:g} s") from None
        if out.returncode != 0:
            raise ComponentError(f"`{' '.join(argv)}` exited {out.returncode}: {(out.stderr or out.stdout)[-600:]}")
        return str(out.stdout)

    def sql(self, addresses: list[str], query: str) -> list[dict[str, Any]]:
        """Rows of a query; Restate's transient answers (the admin API's list, `TRANSIENT_QUERY_ERRORS`)
        are asked again for a few seconds, as `AdminApi.query` does on the single server."""
        retrying = Retrying(
            stop=stop_after_delay(TRANSIENT_RETRY_S),
            wait=wait_fixed(0.1),
            retry=retry_if_exception(lambda exc: isinstance(exc, ComponentError) and is_transient_message(str(exc))),
            reraise=True,
        )
        return parse_jsonl(retrying(self.execute, addresses, "sql", "--jsonl", query))


# -- cutting a node off --------------------------------------------------------------------------------


class Partitioner(Protocol):
    """How a backend cuts one node off from its peers and the writer, and heals it (drill.partition)."""

    how: str
    """What a cut does, for the drill's event ("nftables drops its fabric traffic ...")."""

    def check_possible(self) -> None:
        """Inconclusive, before any fault, when this host cannot cut a node off."""

    def cut(self, node: Node) -> dict[str, str]:
        """Cut the node off; the evidence to keep (the rules applied, the command run)."""

    def heal(self, node: Node) -> bool:
        """Give the node its network back (idempotent); True if there was a cut to remove."""


@dataclass
class NftPartitioner:
    """Native nodes all listen on 127.0.0.1: an nftables table matched on ports and each node's group id
    (`components/netcut.py`)."""

    cluster: RestateCluster
    writer_port: int
    netcut: NetCut = field(default_factory=NetCut)
    how: str = "nftables drops its fabric traffic and its calls to the writer"

    def check_possible(self) -> None:
        self.netcut.check_possible(self.cluster.uses_socket_groups())

    def cut(self, node: Node) -> dict[str, str]:
        peers = tuple(n.fabric_port for n in self.cluster.nodes if n != node)
        return {
            "nft_rules": self.netcut.apply(Cut(node.name, node.fabric_port, node.socket_gid, peers, self.writer_port))
        }

    def heal(self, node: Node) -> bool:
        return self.netcut.heal()  # the whole table: one cut at a time


# -- the cluster --------------------------------------------------------------------------------------


class RestateCluster(RestateServer):
    name = "cluster"
    freeze_how = "SIGSTOP"
    """How `node_freeze` freezes a node (and `node_thaw` thaws it), for messages."""
    thaw_how = "SIGCONT"

    def __init__(
        self,
        runtime: Runtime,
        admin: AdminApi,
        ingress: IngressApi,
        binary: Path,
        ctl_binary: Path,
        home: Path,
        logs: Path,
        procs: ProcessTable,
        config_source: str = "<config>",
        identity: RequestIdentity | None = None,
    ) -> None:
        super().__init__(runtime, admin, ingress, config_source, identity)
        self.settings = runtime.cluster
        self.binary = binary
        self.ctl = Restatectl(ctl_binary)
        self.home = home
        self.procs = procs
        self.nodes = [Node(n, self.settings, home, logs) for n in range(1, self.settings.nodes + 1)]
        # Each node's process: start, health, signals, freeze/thaw and its log, as for every process of ours.
        self.processes = {
            n.name: RestateProcess(procs, n.process, f"restate node {n.name}", n.log_file, n.admin_url, n.ingress_url)
            for n in self.nodes
        }
        self.node_binaries: dict[int, tuple[Path, tuple[int, int, int]]] = {}
        """Nodes a rolling upgrade runs on another `restate-server`: number -> (binary, its version)."""
        self.cut_off: set[int] = set()
        """Nodes a drill has cut off from the others (alive, but restatectl must not ask them)."""
        # The node to talk to: node 1, or the first node running when it is not (a task run after a node
        # loss). The clients belong to the Stack, which points them here (`Stack.point_clients_at`).
        self.entry: Node = next(iter(self.reachable()), self.nodes[0])

    # -- nodes ------------------------------------------------------------------------------------------

    def node(self, number: int) -> Node:
        if not 1 <= number <= len(self.nodes):
            raise DrillError(f"no node {number}: the cluster has nodes 1..{len(self.nodes)}")
        return self.nodes[number - 1]

    def by_name(self, name: str) -> Node:
        return self.node(int(name.lstrip("n")))

    def process_of(self, node: Node) -> RestateProcess:
        return self.processes[node.name]

    def live(self, node: Node) -> ProcessRecord | None:
        return self.process_of(node).live()

    def node_where(self, node: Node, record: ProcessRecord) -> str:
        """How messages name a running node: its pid (a container adds its name)."""
        return f"pid {record.pid}"

    def partitioner(self, writer_port: int) -> Partitioner:
        """What cuts a node off on this backend (drill.partition)."""
        return NftPartitioner(self, writer_port)

    def live_nodes(self) -> list[Node]:
        return [n for n in self.nodes if self.live(n) is not None]

    def reachable(self) -> list[Node]:
        """Running, not frozen, not cut off: the nodes restatectl and the drills may ask."""
        return [n for n in self.live_nodes() if n.number not in self.cut_off and not self.frozen(n)]

    def frozen(self, node: Node) -> bool:
        return self.process_of(node).frozen()

    def entry_surviving(self, lost: set[int]) -> Node:
        """The node to talk to once the `lost` nodes are gone: the entry node, or the first survivor when
        the entry is among them. The caller points the Stack's clients at it (`Stack.point_clients_at`)."""
        survivors = [n for n in self.nodes if n.number not in lost]
        if not survivors:
            raise DrillError("no node would be left to talk to")
        if self.entry.number in lost:
            self.entry = survivors[0]
        return self.entry

    def uses_socket_groups(self) -> bool:
        """Nodes run under their own group id only when that cannot fail: real root (a user namespace
        that maps only root cannot switch to another group)."""
        if os.geteuid() != 0:
            return False
        try:
            mapping = Path("/proc/self/gid_map").read_text().split()
        except OSError:
            return False
        return mapping[:3] == ["0", "0", "4294967295"]

    def node_binary(self, node: Node) -> Path:
        """The binary the node starts from: the pinned one, or the one a rolling upgrade gave it."""
        chosen = self.node_binaries.get(node.number)
        return chosen[0] if chosen else self.binary

    def run_node_on(self, number: int, binary: Path | None, version: tuple[int, int, int] | None = None) -> None:
        """From its next start the node runs `binary` (of `version`); None: the pinned binary again."""
        node = self.node(number)
        if binary is None or version is None:
            self.node_binaries.pop(node.number, None)
        else:
            self.node_binaries[node.number] = (binary, version)

    def node_argv(self, node: Node) -> list[str]:
        return [str(self.node_binary(node)), "--config-file", str(node.config_file), "--no-logo"]

    def node_env(self) -> dict[str, str]:
        # The key is in each node's TOML; an inherited variable would override it (environment wins).
        inherited = {k: v for k, v in os.environ.items() if k not in SERVER_KEY_ENVS}
        return {**inherited, "RESTATE_LOG_DISABLE_ANSI_CODES": "true", **self.runtime.server_env}

    def settings_digest(self) -> str:
        """The shared settings plus the cluster's shape: each node's TOML is written from both."""
        return config_digest({"server": super().settings_digest(), "cluster": self.settings.model_dump(mode="json")})

    def launch_node(self, node: Node) -> str:
        live = self.live(node)
        if live:
            # Like the single server: a node is reused only on the settings it was started with (one
            # started unsigned must not serve a writer that now requires the key).
            self.refuse_other_settings(f"{node.name} pid {live.pid}", live.config_digest, live.config_source)
            self.refuse_other_release(node, live)
            return f"{node.name} pid {live.pid} (already running)"
        binary = self.node_binary(node)
        if not binary.is_file():
            raise DrillError(f"restate-server is not installed at {binary}: run `inv setup`")
        node.data_dir.mkdir(parents=True, exist_ok=True)
        key_file = self.identity.private_key_file if self.identity else None
        other = self.node_binaries.get(node.number)
        text = node_toml(self.settings, node.number, node.data_dir, key_file, version=other[1] if other else None)
        write_text_atomically(node.config_file, text)
        group = node.socket_gid if self.uses_socket_groups() else None
        stamp = ConfigStamp(self.settings_digest(), self.config_source)
        record = self.process_of(node).launch(self.node_argv(node), env=self.node_env(), stamp=stamp, group=group)
        return f"{node.name} pid {record.pid}"

    def refuse_other_release(self, node: Node, live: ProcessRecord) -> None:
        """A running node is reused only on the release it should run (a rolling upgrade cut short leaves
        nodes on another one): asked of both binaries' `--version` when their paths differ."""
        expected = self.node_binary(node)
        running = Path(live.cmdline[0]) if live.cmdline else expected
        if running == expected:
            return
        want, have = reported_version(expected), reported_version(running)
        if want and have and want != have:
            raise ComponentError(
                f"{node.name} pid {live.pid} runs restate-server {have} ({running}), not {want}: stop it first "
                f"(`inv restate.node-stop --node {node.number}`, or `inv down`)"
            )

    def node_start(self, number: int, timeout_s: float | None = None) -> str:
        """Start one node (its data kept) and wait until it answers and every partition has a leader."""
        node = self.node(number)
        if self.frozen(node):
            self.node_thaw(number)
        where = self.launch_node(node)
        deadline = timeout_s or self.ready_timeout()
        self.wait_node_healthy(node, deadline)
        self.wait_leaders(deadline)
        return where

    def node_stop(self, number: int) -> Stopped | None:
        """SIGTERM and wait until gone; a record that is not ours any more is refused, naming what differs."""
        process = self.process_of(self.node(number))
        process.refuse_mismatch()
        return process.stop()

    def node_kill(self, number: int, sig: signal.Signals) -> Stopped | None:
        """SIGKILL (and wait until gone) or any signal that ends it; see `node_freeze` for SIGSTOP."""
        return self.process_of(self.node(number)).kill(sig)

    def node_freeze(self, number: int) -> ProcessRecord | None:
        """SIGSTOP: the process stays, its sockets stay open, it answers nothing (a long GC pause, a VM freeze)."""
        return self.process_of(self.node(number)).freeze()

    def node_thaw(self, number: int) -> ProcessRecord | None:
        return self.process_of(self.node(number)).thaw()

    def node_healthy(self, node: Node) -> bool:
        """Not frozen, and its admin and its ingress both answer."""
        return self.process_of(node).healthy()

    def wait_node_healthy(self, node: Node, timeout_s: float) -> None:
        self.process_of(node).wait_healthy(timeout_s=timeout_s)

    # -- Restate's view -------------------------------------------------------------------------------

    def ctl_sql(self, query: str) -> list[dict[str, Any]]:
        return self.ctl.sql([n.fabric_url for n in self.reachable()], query)

    def leaders(self) -> dict[int, str]:
        """Partition id -> the node name of its active leader, as the reachable nodes report it."""
        names = {str(r["plain_node_id"]): str(r["name"]) for r in self.ctl_sql("SELECT plain_node_id, name FROM nodes")}
        state = self.ctl_sql(
            "SELECT partition_id, plain_node_id, effective_mode, replay_status, leader_epoch FROM partition_state"
        )
        return active_leaders(state, names)

    def leaders_or_none(self) -> dict[int, str] | None:
        try:
            return self.leaders()
        except (ComponentError, ValueError):
            return None

    def all_led(self, leaders: dict[int, str] | None, excluding: set[str] | None = None) -> bool:
        return (
            leaders is not None
            and len(leaders) == self.settings.partitions
            and not (set(leaders.values()) & (excluding or set()))
        )

    def wait_leaders(self, timeout_s: float, excluding: set[str] | None = None) -> dict[int, str]:
        """Until every partition has an active leader (on none of `excluding`)."""
        shunned = excluding or set()
        led = poll(
            self.leaders_or_none,
            lambda found: self.all_led(found, shunned),
            f"an active leader for each of the {self.settings.partitions} partitions",
            timeout_s,
            interval_s=0.2,
        )
        assert led is not None
        return led

    def plain_ids(self) -> dict[str, str]:
        """Node name -> its plain node id (N1..): ids are given in the order nodes joined, not by name."""
        return {str(r["name"]): str(r["plain_node_id"]) for r in self.ctl_sql("SELECT plain_node_id, name FROM nodes")}

    def restate_nodes(self) -> list[dict[str, Any]]:
        """Restate's `nodes` table: name, plain id, the binary version each node last reported (>= 1.6),
        worker and log-server storage states."""
        return self.ctl_sql(
            "SELECT plain_node_id, name, binary_version, worker_state, storage_state, metadata_server_state FROM nodes"
        )

    def hosted(self, node: Node) -> list[dict[str, Any]]:
        """The partition processors the node runs, as it reports them (`partition_state`)."""
        plain = self.plain_ids().get(node.name)
        if plain is None:
            return []
        return self.ctl_sql(
            "SELECT partition_id, plain_node_id, effective_mode, replay_status, applied_log_lsn "
            f"FROM partition_state WHERE plain_node_id = '{plain}'"
        )

    def set_worker_state(self, number: int, state: str) -> str:
        """`restatectl nodes set-worker-state` (active, draining, ...): a draining worker hands its
        partitions to the others. Returns restatectl's answer."""
        node = self.node(number)
        plain = self.plain_ids().get(node.name)
        if plain is None:
            raise ComponentError(f"{node.name} is not in Restate's nodes table")
        addresses = [n.fabric_url for n in self.reachable()]
        args = ("nodes", "set-worker-state", "--nodes", plain.lstrip("N"), "--worker-state", state)
        out = self.ctl.execute(addresses, *args)
        return " ".join(out.split())

    def pin_leader(self, partition: int, number: int) -> str:
        """`restatectl partitions leadership pin`: a soft preference for the node as the partition's leader
        (the scheduler moves leadership there while it is alive). Returns restatectl's answer."""
        plain = self.plain_ids().get(self.node(number).name)
        if plain is None:
            raise ComponentError(f"n{number} is not in Restate's nodes table")
        args = ("partitions", "leadership", "pin", "--node", plain.lstrip("N"), str(partition))
        out = self.ctl.execute([n.fabric_url for n in self.reachable()], *args)
        return " ".join(out.split())

    def unpin_leader(self, partition: int) -> str:
        args = ("partitions", "leadership", "unpin", str(partition))
        out = self.ctl.execute([n.fabric_url for n in self.reachable()], *args)
        return " ".join(out.split())

    def wipe_partition_store(self, number: int) -> tuple[Path, int, int]:
        """Delete a stopped node's partition store; (path, files, bytes) removed. Refused while it runs."""
        node = self.node(number)
        if self.live(node) is not None:
            raise DrillError(f"{node.name} is running: its data is removed only while it is down")
        store = node.partition_store
        files = [p for p in store.rglob("*") if p.is_file()] if store.is_dir() else []
        size = sum(p.stat().st_size for p in files)
        if store.is_dir():
            shutil.rmtree(store)
        return store, len(files), size

    def partition_ranges(self) -> list[dict[str, Any]]:
        return self.ctl_sql("SELECT partition_id, start_key, end_key FROM partitions")

    def services_on(self, node: Node) -> list[str]:
        with AdminApi(node.admin_url) as admin:
            return admin.services()

    def wait_registered_everywhere(self, service: str, timeout_s: float) -> None:
        """Right after registering on one node another can answer 404 for a moment: wait for each."""
        for node in self.reachable():

            def knows(node: Node = node) -> bool:
                try:
                    return service in self.services_on(node)
                except HttpError:
                    return False

            poll(knows, bool, f"{node.name}'s admin API to list {service}", timeout_s, interval_s=0.1)

    def ready_timeout(self) -> float:
        return self.runtime.ready_timeout_s

    # -- RestateServer ----------------------------------------------------------------------------------

    def launch(self) -> str:
        return ", ".join(self.launch_node(n) for n in self.nodes)

    def start(self) -> str:
        """Every node side by side, then every partition led, then SQL on the entry node."""
        where = self.launch()
        timeout_s = self.ready_timeout()
        failures = []
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            for node, future in [(n, pool.submit(self.wait_node_healthy, n, timeout_s)) for n in self.nodes]:
                try:
                    future.result()
                except DrillError as exc:
                    failures.append(f"{node.name}: {exc}")
        if failures:
            if "already running" in where:
                failures.append("a node started by this tool cannot be reached (another network namespace?)")
            raise ComponentError("\n".join(failures))
        try:
            self.wait_leaders(timeout_s)
            # After a restart the first SQL query can fail ("No such scanner"): ready means one succeeded.
            poll(self.admin.query_ready, bool, f"SQL queries at {self.admin.base_url}/query", timeout_s)
        except WaitTimeout as exc:
            raise ComponentError(f"restate cluster ({where}) is not ready: {exc}") from None
        return where

    def stop(self, purge: bool = False) -> bool:
        """SIGTERM every node at once (a lone node would wait for peers that are already gone); a frozen
        node is thawed first so it can obey."""
        for node in self.nodes:
            if self.frozen(node):
                self.node_thaw(node.number)
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            stopped = list(pool.map(lambda n: self.node_stop(n.number), self.nodes))
        if purge:
            shutil.rmtree(self.home, ignore_errors=True)
        return any(s is not None for s in stopped)

    def kill(self, sig: signal.Signals) -> str | None:
        """The whole cluster at once (server-crash on a cluster); `node_kill` for one node."""
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            results = list(pool.map(lambda n: (n, self.node_kill(n.number, sig)), self.nodes))
        done = [f"{n.name} pid {s.record.pid}" for n, s in results if s is not None]
        return f"{', '.join(done)} (gone after {sig.name})" if done else None

    def running(self) -> str | None:
        """Every node running: their pids; else None (a cluster missing a node is not `up`)."""
        records = [(n, self.live(n)) for n in self.nodes]
        if any(r is None for _, r in records):
            return None
        return ", ".join(f"{n.name} {self.node_where(n, r)}" for n, r in records if r is not None)

    def log_lines(self, tail: int) -> list[str]:
        return [f"{n.name} | {line}" for n in self.nodes for line in self.process_of(n).logs(tail)]

    def follow_logs(self) -> Iterator[str]:
        yield from self.process_of(self.entry).follow_logs()

    def default_deployment_uri(self, service_port: int) -> str:
        return f"http://{HOST}:{service_port}"

    def healthy(self) -> bool:
        return all(self.node_healthy(n) for n in self.nodes)

    # -- status -----------------------------------------------------------------------------------------

    def node_rows(self) -> list[tuple[str, str, str, str]]:
        rows = []
        for node in self.nodes:
            record = self.live(node)
            if record is None:
                health = "down"
            elif self.frozen(node):
                health = f"frozen ({self.freeze_how})"
            else:
                health = "ok" if self.node_healthy(node) else "not answering"
            if node.number in self.cut_off:
                health += ", cut off"
            rows.append(
                (
                    f"restate node {node.name}",
                    self.node_where(node, record) if record else "-",
                    f"ingress {node.ingress_url} admin {node.admin_url} fabric :{node.fabric_port}",
                    health,
                )
            )
        return rows
