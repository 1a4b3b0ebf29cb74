"""The writer's configuration: one YAML file, validated into typed models.

`RESTATE_WRITER_CONFIG` names the file (the HOW-TO's convention). The same file also holds the drill
runtime's sections (`runtime`, `local_model`); those are validated by `drillkit.config`, which extends
`WriterConfig`, so a single file describes one environment.

Strings may reference environment variables as `${NAME}` or `${NAME:-default}`: a remote endpoint's
URL and secrets stay out of the repository.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CONFIG_ENV = "RESTATE_WRITER_CONFIG"
# Overrides service.host: the drill runtime sets it when Restate runs in a container and must reach the
# writer through the Docker bridge rather than loopback.
HOST_OVERRIDE_ENV = "RESTATE_WRITER_HOST"
# Request identity: the file this variable names holds the Restate server's public key(s)
# (`publickeyv1_...`, one a line); the writer then answers 401 to any request not signed by that server.
# Set: the file must hold valid keys or the writer refuses to start (it never falls back to open).
IDENTITY_KEY_FILE_ENV = "RESTATE_WRITER_IDENTITY_KEY_FILE"
DEFAULT_CONFIG = Path("configs/local.yaml")
STEP_NAMES = ("outline", "section", "summary", "save_report")
# Sections of the shared file that belong to the drill runtime, not to the writer.
RUNTIME_SECTIONS = ("runtime", "local_model", "target")
# LLM calls in flight per writer process when the config does not say: a remote endpoint's share for one
# writer; the local model serves `local_model.parallel` at once (see `default_max_concurrency`).
REMOTE_MAX_CONCURRENCY = 8
LOCAL_PARALLEL_DEFAULT = 4  # drillkit.config.LocalModel.parallel's default
LOCAL_CTX_PER_SLOT_DEFAULT = 2048  # drillkit.config.LocalModel.ctx_per_slot's default
# Restate's own defaults for the invoker's timeouts (restate-server 1.7): the writer declares them per
# service, so the server's settings cannot undercut what the slot gate was sized for.
RESTATE_INACTIVITY_DEFAULT_S = 60.0
RESTATE_ABORT_DEFAULT_S = 600.0
# Between a step's last message to Restate and the end of its model call: journaling, scheduling on a
# busy machine. The slot wait plus the model's timeout must leave this much before Restate aborts.
STEP_SLACK_S = 1.0


class ConfigError(Exception):
    """A configuration file is missing, unreadable or invalid. The message names the file and field."""


class StrictModel(BaseModel):
    """Unknown fields are errors (a typo in a config must not pass silently); values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class WriterModel(StrictModel):
    """The OpenAI-compatible endpoint the writer calls."""

    base_url: str
    model: str
    api_key_env: str | None = None
    """Name of the environment variable holding the API key; none for a local server."""
    timeout_s: float = Field(default=60.0, gt=0)
    max_tokens: int = Field(default=256, gt=0)
    temperature: float = Field(default=0.2, ge=0, le=2)
    structured_output: Literal["json_schema", "json_object", "text"] = "json_schema"
    """How the outline and summary ask for JSON; servers without json_schema use json_object or text."""
    max_concurrency: int = Field(default=REMOTE_MAX_CONCURRENCY, ge=1)
    """LLM calls in flight per writer process; more wait for a slot inside their step, outside `timeout_s`.
    Unset: what the endpoint serves at once (`default_max_concurrency`)."""
    max_slot_wait_s: float | None = Field(default=None, gt=0)
    """How long a step may wait for a slot before it gives up its attempt without sending anything (Restate
    retries it later, its place in the queue kept). Unset: all the silence Restate allows a step
    (`service.inactivity_timeout_s + abort_timeout_s`) minus `timeout_s` and a slack of 1 s."""
    context_tokens: int | None = Field(default=None, ge=64)
    """The model's context per request, in tokens: a request whose prompt cannot fit is refused before any
    model call. Unset: `local_model.ctx_per_slot` when the file's local model is enabled, else unknown
    (no check)."""

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    def api_key(self) -> str:
        if self.api_key_env is None:
            return "not-needed"  # local servers ignore it, but the client insists on one
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError(f"writer_model.api_key_env: environment variable {self.api_key_env} is not set")
        return key


class StepRetry(StrictModel):
    """Per-step retry options (`RunOptions`). All unset: the server's invocation retry policy applies."""

    max_attempts: int | None = Field(default=None, ge=1)
    initial_interval_ms: int | None = Field(default=None, gt=0)
    max_interval_ms: int | None = Field(default=None, gt=0)
    factor: float | None = Field(default=None, ge=1)


class Pipeline(StrictModel):
    sections: int = Field(default=3, ge=1, le=12)
    llm_retry: StepRetry = StepRetry()
    tool_retry: StepRetry = StepRetry()
    json_retries: int = Field(default=1, ge=0, le=5)
    """How many more times a JSON step (outline, summary) asks the model, within one attempt, when an
    answer is cut off or malformed; then the last answer is repaired, or the step's defaults are used.
    Never raw JSON in the report (`writer_service.structured`)."""


class Paths(StrictModel):
    allowed_roots: tuple[Path, ...] = (Path("/tmp"),)
    """`output_dir` and `temp_dir` of a request must resolve inside one of these."""
    protected: tuple[Path, ...] = ()
    """Directories an `output_dir` may never be, be inside, or contain, even inside an allowed root. The
    writer adds its own: the project it runs from, its working directory, the ledger's directory and the
    file's `runtime.state_dir` (a project cloned under /tmp is inside the default root)."""


class Ledger(StrictModel):
    path: Path = Path(".drill/ledger.jsonl")


class ToolErrorFault(StrictModel):
    fail_first: int = Field(default=0, ge=0)


class CrashFault(StrictModel):
    during_step: str | None = None

    @field_validator("during_step")
    @classmethod
    def _known_step(cls, value: str | None) -> str | None:
        if value is not None and not _is_step_name(value):
            raise ValueError(f"unknown step {value!r}; steps are outline, section:N, summary, save_report")
        return value


class Faults(StrictModel):
    """Fault injection, off by default, and only ever from this config: a request cannot ask for faults
    (Restate journals every request's body and headers where anyone with the admin API can read them).
    Drills hand a restarted writer a derived config with the faults they need."""

    tool_error: ToolErrorFault = ToolErrorFault()
    crash: CrashFault = CrashFault()

    @model_validator(mode="before")
    @classmethod
    def _no_request_faults(cls, data: Any) -> Any:
        if isinstance(data, dict) and "allow_request_faults" in data:
            raise ValueError(REQUEST_FAULTS_REMOVED)
        return data


REQUEST_FAULTS_REMOVED = (
    "allow_request_faults: no longer supported, request fault injection was removed (Restate's journal kept "
    "each request's faults and fault key readable). Delete the line: faults come only from this config's own "
    "`faults` section (tool_error.fail_first, crash.during_step), which the drills set on a restarted writer"
)


class Revision(StrictModel):
    """Which revision of the writer's code this process serves: a drill deploys a second one beside the
    first (`drill.upgrade`) as a redeploy with invocations in flight would. Unset: revision 1, the writer
    exactly as shipped."""

    number: int = Field(default=1, ge=1)
    """1: the shipped pipeline. 2 or more, a compatible change: the same steps journaled in the same
    order, the summary step's prompt changed and the output carrying `revision`: an invocation started on
    revision 1 can replay on it."""
    journal: Literal["compatible", "incompatible"] = "compatible"
    """`incompatible`: the first step is journaled as `plan` instead of `outline`, as code that renamed a
    step would: an invocation started on another revision and moved onto this one meets Restate's journal
    mismatch (error 570) at replay. Only for a revision after 1."""

    @model_validator(mode="after")
    def _incompatible_needs_a_later_revision(self) -> Self:
        if self.journal == "incompatible" and self.number == 1:
            raise ValueError(
                "journal: incompatible needs number >= 2 (got number 1): revision 1 is the shipped writer, "
                "an incompatible journal is a later revision's"
            )
        return self

    @property
    def first_step(self) -> str:
        """The name the outline step is journaled under in this revision."""
        return INCOMPATIBLE_FIRST_STEP if self.journal == "incompatible" else "outline"


INCOMPATIBLE_FIRST_STEP = "plan"


class Service(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(default=9080, ge=1, le=65535)
    grace_period_s: float = Field(default=10.0, ge=0)
    inactivity_timeout_s: float = Field(default=RESTATE_INACTIVITY_DEFAULT_S, gt=0)
    """Sent to Restate per service (`restate.Service(inactivity_timeout=...)`): silence after which Restate
    asks an attempt to suspend. A step is silent from its start to its end, slot wait included."""
    abort_timeout_s: float = Field(default=RESTATE_ABORT_DEFAULT_S, gt=0)
    """Sent per service too: further silence after which Restate aborts the attempt, discarding whatever
    the step was about to return."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class WriterConfig(StrictModel):
    writer_model: WriterModel
    pipeline: Pipeline = Pipeline()
    paths: Paths = Paths()
    ledger: Ledger = Ledger()
    faults: Faults = Faults()
    service: Service = Service()
    revision: Revision = Revision()

    @model_validator(mode="after")
    def _steps_fit_restates_timeouts(self) -> Self:
        """A step that waits for a slot and then for the model must end before Restate aborts it: an
        abort throws away an answer that was about to arrive (measured: 100 concurrent invocations on
        the real model, answers discarded and asked again at inactivity + abort = 660 s)."""
        silence = self.service.inactivity_timeout_s + self.service.abort_timeout_s
        model = self.writer_model
        wait = model.max_slot_wait_s
        if wait is None:
            wait = silence - model.timeout_s - STEP_SLACK_S
            if wait <= 0:
                raise ValueError(
                    f"writer_model.timeout_s ({model.timeout_s:g} s) leaves no time to wait for a model slot "
                    f"within service.inactivity_timeout_s + abort_timeout_s ({silence:g} s) less "
                    f"{STEP_SLACK_S:g} s of slack; raise the Restate timeouts or lower timeout_s"
                )
            object.__setattr__(self, "writer_model", model.model_copy(update={"max_slot_wait_s": wait}))
        elif wait + model.timeout_s + STEP_SLACK_S > silence:
            raise ValueError(
                f"writer_model.max_slot_wait_s ({wait:g} s) + timeout_s ({model.timeout_s:g} s) + "
                f"{STEP_SLACK_S:g} s of slack is more than service.inactivity_timeout_s + abort_timeout_s "
                f"({silence:g} s): Restate would abort steps whose model answer was about to arrive"
            )
        return self

    @property
    def slot_wait_s(self) -> float:
        """The bound on a step's wait for a model slot (always set once validated)."""
        return self.writer_model.max_slot_wait_s or 0.0

    @model_validator(mode="before")
    @classmethod
    def _drop_runtime_sections(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        model = data.get("writer_model")
        if isinstance(model, dict) and model.get("max_concurrency") is None:
            model = {**model, "max_concurrency": default_max_concurrency(data)}
            data = {**data, "writer_model": model}
        if isinstance(model, dict) and model.get("context_tokens") is None:
            data = {**data, "writer_model": {**model, "context_tokens": default_context_tokens(data)}}
        runtime = data.get("runtime")
        state_dir = runtime.get("state_dir") if isinstance(runtime, dict) else getattr(runtime, "state_dir", None)
        paths = data.get("paths")
        if state_dir and (paths is None or isinstance(paths, dict)):
            paths = dict(paths or {})
            paths["protected"] = [*(paths.get("protected") or ()), state_dir]
            data = {**data, "paths": paths}
        # The writer alone ignores the drill runtime's sections; drillkit's subclass validates them.
        if cls is WriterConfig:
            return {k: v for k, v in data.items() if k not in RUNTIME_SECTIONS}
        return data

    @classmethod
    def load(cls, path: Path | str | None = None) -> Self:
        """Read and validate a config file (default: `$RESTATE_WRITER_CONFIG`, else configs/local.yaml)."""
        file = Path(path) if path else Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
        return cls.from_mapping(read_config_data(file), source=str(file))

    @classmethod
    def from_mapping(cls, data: Any, source: str = "<config>") -> Self:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
        try:
            return cls.model_validate(expand_env(data, source, ()))
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(source, exc)) from None


def default_max_concurrency(data: dict[str, Any]) -> int:
    """LLM calls a writer sends at once when `writer_model.max_concurrency` is unset: the local model's
    slot count (`local_model.parallel`) when the file's local model is enabled (the default), else
    `REMOTE_MAX_CONCURRENCY`. More would only queue inside the endpoint, where the wait counts against
    the client timeout."""
    local = _local_model_section(data)
    if local is None:
        return REMOTE_MAX_CONCURRENCY
    try:
        parallel = int(local.get("parallel") or LOCAL_PARALLEL_DEFAULT)
    except (TypeError, ValueError):  # drillkit's validation of local_model names the field
        parallel = LOCAL_PARALLEL_DEFAULT
    return max(parallel, 1)


def _local_model_section(data: dict[str, Any]) -> dict[str, Any] | None:
    """The file's `local_model` as a mapping when it is enabled (the default), else None."""
    local = data.get("local_model")
    if local is None:
        local = {}
    elif not isinstance(local, dict):  # a validated LocalModel passed to the drill config directly
        local = {
            "enabled": getattr(local, "enabled", True),
            "parallel": getattr(local, "parallel", None),
            "ctx_per_slot": getattr(local, "ctx_per_slot", None),
        }
    return None if local.get("enabled", True) is False else local


def default_context_tokens(data: dict[str, Any]) -> int | None:
    """The model's context per request when `writer_model.context_tokens` is unset: the local model's
    `ctx_per_slot` (llama.cpp gives every slot that much), else unknown."""
    local = _local_model_section(data)
    if local is None:
        return None
    try:
        return max(int(local.get("ctx_per_slot") or LOCAL_CTX_PER_SLOT_DEFAULT), 64)
    except (TypeError, ValueError):  # drillkit's validation of local_model names the field
        return LOCAL_CTX_PER_SLOT_DEFAULT


def step_order(sections: int) -> list[str]:
    """The pipeline's step names, in order, for `sections` sections."""
    return ["outline", *(f"section:{i}" for i in range(1, sections + 1)), "summary", "save_report"]


def _is_step_name(value: str) -> bool:
    if value in STEP_NAMES:
        return value != "section"  # sections are numbered: section:1, section:2, ...
    return re.fullmatch(r"section:[1-9]\d*", value) is not None


def read_yaml(file: Path) -> Any:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file not found (set {CONFIG_ENV} or pass --config)") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config file: {exc.strerror}") from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: invalid YAML: {exc}") from None


def read_config_data(file: Path, _seen: tuple[Path, ...] = ()) -> Any:
    """The file's mapping; `extends: other.yaml` (relative to the file) is read first and deep-merged under it."""
    data = read_yaml(file)
    if not isinstance(data, dict) or "extends" not in data:
        return data
    base_name = data.pop("extends")
    if not isinstance(base_name, str):
        raise ConfigError(f"{file}: field extends: must be a file name (got {base_name!r})")
    base_file = (file.parent / base_name).resolve()
    if base_file in _seen:
        raise ConfigError(f"{file}: field extends: {base_name} extends itself in a loop")
    base = read_config_data(base_file, (*_seen, base_file))
    if not isinstance(base, dict):
        raise ConfigError(f"{base_file}: the top level must be a mapping")
    return deep_merge(base, data)


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys (`writer_model.base_url`) in a config mapping, creating sections as needed."""
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, source: str, where: tuple[str | int, ...]) -> Any:
    """Replace `${NAME}` / `${NAME:-default}` in every string; an unset variable without default is an error."""
    if isinstance(value, dict):
        return {k: expand_env(v, source, (*where, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, source, (*where, i)) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name)
        if found:
            return found
        if default is not None:
            return default
        field = ".".join(str(p) for p in where)
        raise ConfigError(f"{source}: field {field}: environment variable {name} is not set")

    return _ENV_REF.sub(substitute, value)


def describe_validation_error(source: str, exc: ValidationError) -> str:
    """One line per problem: file, dotted field, message and the offending value."""
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        value = err.get("input")
        shown = "" if err["type"] == "missing" else f" (got {value!r})"
        lines.append(f"{source}: field {field}: {message}{shown}")
    return "\n".join(lines)
