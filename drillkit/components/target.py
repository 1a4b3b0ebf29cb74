"""A Restate service described by configuration alone (`target:` in the config): the drills' target when
it is not the shipped writer.

Nothing of the service is imported or asked to cooperate. The tool starts its `command` (recorded and
killed by verified pid, like every process of ours), hands it what a drill needs through the
environment only (the model's base URL, pointed at the LLM tap or a broken endpoint; the tool-fault
count the target declares it reads), and reads the evidence elsewhere: Restate's journal and the
model's side of the wire.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sys
from typing import Any
from urllib.parse import urlsplit

from drillkit.components.process import ConfigStamp, Listen, ManagedProcess, config_digest
from drillkit.config import DrillConfig, Target, from_project_root
from drillkit.errors import ConfigError, DrillError
from drillkit.procs import ProcessRecord, ProcessTable, Stopped
from drillkit.state import StateDir

NAME = "target"
NONCE_PLACEHOLDER = "{{nonce}}"
NONCE_PREFIX = "drill-"
"""Every nonce is `drill-` and 12 hex digits: the LLM tap finds them in request bodies by that shape, and
so tells which invocation a model request serves without any header from the target."""


def new_nonce() -> str:
    return NONCE_PREFIX + secrets.token_hex(6)


def with_nonce(value: Any, nonce: str) -> Any:
    """`value` with every `{{nonce}}` in its strings replaced (mappings and lists walked)."""
    if isinstance(value, str):
        return value.replace(NONCE_PLACEHOLDER, nonce)
    if isinstance(value, dict):
        return {k: with_nonce(v, nonce) for k, v in value.items()}
    if isinstance(value, list):
        return [with_nonce(v, nonce) for v in value]
    return value


def holds_placeholder(value: Any) -> bool:
    if isinstance(value, str):
        return NONCE_PLACEHOLDER in value
    if isinstance(value, dict):
        return any(holds_placeholder(v) for v in value.values())
    if isinstance(value, list):
        return any(holds_placeholder(v) for v in value)
    return False


def port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


class TargetService(ManagedProcess):
    """The configured target: started by `command` (a `uri` target is never started or killed here)."""

    def __init__(self, config: DrillConfig, state: StateDir, procs: ProcessTable) -> None:
        if config.target is None:
            raise DrillError(f"{config.source}: no `target` section")
        super().__init__(procs, NAME, f"target {config.target.service}", state.log_file(NAME))
        self.config = config
        self.spec: Target = config.target
        self.state = state
        self.stop_timeout_s = self.spec.grace_period_s + 5.0

    # -- what it is -----------------------------------------------------------------------------------

    @property
    def service(self) -> str:
        return self.spec.service

    @property
    def handler(self) -> str:
        return self.spec.handler

    @property
    def startable(self) -> bool:
        return self.spec.startable

    @property
    def url(self) -> str:
        if self.spec.uri is not None:
            return self.spec.uri.rstrip("/")
        return f"http://{self.spec.host}:{self.spec.port}"

    def health_url(self) -> str:
        if self.spec.health_path:
            return self.url + "/" + self.spec.health_path.lstrip("/")
        return f"tcp://{self.spec.host}:{self.spec.port} (accepts a connection)"

    def healthy(self) -> bool:
        if self.spec.health_path:
            return super().healthy()
        parts = urlsplit(self.url)
        return port_accepts(parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80))

    def listens(self) -> list[Listen]:
        return [Listen(self.spec.host, self.spec.port, "target.port")] if self.spec.port else []

    def body(self, nonce: str | None = None) -> dict[str, Any]:
        """The request body the drills send, with `{{nonce}}` replaced by `nonce` (a fresh one if None)."""
        raw = self.raw_body()
        body: dict[str, Any] = with_nonce(raw, nonce or new_nonce())
        return body

    def raw_body(self) -> dict[str, Any]:
        body = self.spec.body
        if isinstance(body, dict):
            return dict(body)
        path = from_project_root(body)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{self.config.source}: field target.body: no file {path}") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.config.source}: field target.body: {path} is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{self.config.source}: field target.body: {path} must hold a JSON object")
        return data

    def tells_invocations_apart(self) -> bool:
        """Does each invocation's body carry its own nonce (so the tap can attribute model requests)?"""
        return holds_placeholder(self.raw_body())

    # -- actions --------------------------------------------------------------------------------------

    def environment(self, llm_base_url: str | None = None, tool_failures: int = 0) -> dict[str, str]:
        """What the command gets on top of the tool's own environment: the config's `env`, the model's
        base URL (the configured model unless a drill gives the tap's or a broken one), the tool-fault
        count when the drill asks for one, the server's request-identity public key when it signs."""
        env = dict(self.spec.env)
        if self.spec.identity_key_env and self.config.runtime.request_identity:
            # Restate signs its requests with this state dir's key: a target that checks them serves only it.
            env[self.spec.identity_key_env] = self.state.identity_public_key()
        if self.spec.llm_base_url_env:
            env[self.spec.llm_base_url_env] = llm_base_url or self.config.writer_model.base_url
        if tool_failures:
            if self.spec.tool_fault is None:
                raise DrillError(f"{self.config.source}: target.tool_fault is not set: this target has no fault hook")
            env[self.spec.tool_fault.env] = str(tool_failures)
        return env

    def argv(self) -> list[str]:
        command = list(self.spec.command or [])
        if command and command[0] in ("python", "python3"):
            command[0] = sys.executable  # the interpreter (and venv) the tool runs in
        return command

    def start(self, llm_base_url: str | None = None, tool_failures: int = 0) -> ProcessRecord:
        """Start the command (or reuse it when it already runs with the same settings) and wait until it
        accepts connections; a `uri` target cannot be started."""
        self.require_startable("start it")
        extra = self.environment(llm_base_url, tool_failures)
        shown = {self.spec.identity_key_env, *self.spec.env}  # the key is long and the same every time
        settings = [f"{k}={v}" for k, v in extra.items() if k not in shown]
        stamp = ConfigStamp(
            config_digest({"target": self.spec.model_dump(mode="json"), "env": extra}),
            self.config.source + (f" ({', '.join(settings)})" if settings else ""),
        )
        cwd = from_project_root(self.spec.cwd)
        if not cwd.is_dir():
            raise ConfigError(f"{self.config.source}: field target.cwd: {cwd} is not a directory")
        return self.spawn_or_reuse(self.argv(), env={**os.environ, **extra}, cwd=cwd, stamp=stamp)

    def kill(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float | None = None) -> Stopped | None:
        if not self.startable:
            return None
        return super().kill(sig, self.stop_timeout_s if timeout_s is None else timeout_s)

    def kill_record(self, record: ProcessRecord, sig: signal.Signals) -> Stopped | None:
        return self.procs.kill_record(record, sig, self.stop_timeout_s)

    def restart(self, llm_base_url: str | None = None, tool_failures: int = 0) -> ProcessRecord:
        self.kill(signal.SIGTERM)
        return self.start(llm_base_url, tool_failures)

    def require_startable(self, what: str) -> None:
        if not self.startable:
            raise ConfigError(
                f"{self.config.source}: target.uri {self.spec.uri} is a deployment this tool did not start: "
                f"it cannot {what} (give target.command instead of target.uri to let the tool run it)"
            )
