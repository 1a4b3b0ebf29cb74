"""The Restate server, two backends behind one interface: a native child process or a Docker container.

Native runs the pinned `restate-server` with `--base-dir` in the state dir. Docker runs the HOW-TO's
container through docker-py (`components/restate_docker.py`). Both are ready only when both health
endpoints and a SQL query answer; both can be stopped, killed with a real signal and restarted with
their data kept, so the journal survives.
"""

from __future__ import annotations

import os
import shutil
import signal
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from drillkit import progress, traces
from drillkit.components.process import ConfigStamp, ManagedProcess, config_digest, http_ok
from drillkit.config import Runtime
from drillkit.errors import ComponentError, ConfigMismatch, DrillError
from drillkit.identity import SERVER_KEY_ENV, SERVER_KEY_ENVS, RequestIdentity
from drillkit.ports import RELEASE_GRACE_S, PortInUse, ensure_free
from drillkit.procs import ProcessTable, Stopped
from drillkit.restate_api import AdminApi, IngressApi
from drillkit.waits import WaitTimeout, poll

PROCESS_NAME = "restate-server"


class RestateServer(ABC):
    """Start (waits until ready), stop, kill(signal), restart, health and logs of one Restate server."""

    name: str
    # How long a taken ingress, admin or fabric port gets to be released before start fails (a server a
    # drill just SIGKILLed may hold it a moment). Per instance, so a unit test need not wait it out.
    port_release_grace_s = RELEASE_GRACE_S

    def __init__(
        self,
        runtime: Runtime,
        admin: AdminApi,
        ingress: IngressApi,
        config_source: str = "<config>",
        identity: RequestIdentity | None = None,
    ) -> None:
        self.configured = runtime
        self.runtime = runtime
        self.admin = admin
        self.ingress = ingress
        self.config_source = config_source
        self.identity = identity
        """The key it signs its requests to the services with (`runtime.request_identity`); None: unsigned."""

    # -- what each backend does -----------------------------------------------------------------------

    @abstractmethod
    def launch(self) -> str:
        """Start the server if it is not running (no wait); a description (pid or container)."""

    @abstractmethod
    def stop(self, purge: bool = False) -> bool:
        """Stop gracefully; True if something was stopped. `purge` also deletes its data."""

    @abstractmethod
    def kill(self, sig: signal.Signals) -> str | None:
        """Send `sig` to the server (verified pid, or the container); what was signalled, None if nothing ran."""

    @abstractmethod
    def running(self) -> str | None:
        """The pid or container when running, else None."""

    @abstractmethod
    def log_lines(self, tail: int) -> list[str]: ...

    @abstractmethod
    def follow_logs(self) -> Iterator[str]: ...

    @abstractmethod
    def default_deployment_uri(self, service_port: int) -> str: ...

    def host_gateway(self) -> str | None:
        """Where the writer must listen for this server to reach it; None: the config's service.host."""
        return None

    def prepare(self) -> None:
        """Before `up` starts anything: what the writer needs to listen at `host_gateway` (nothing here)."""
        return None

    # -- shared -----------------------------------------------------------------------------------------

    def settings_digest(self) -> str:
        """The digest of what the server runs with: version, addresses, its environment (a drill's extra
        `RESTATE_*` variables included), the request identity key it signs with (a server started
        unsigned, or with another key, is not reused once this one is required). Registration settings
        are not the server's."""
        rt = self.runtime
        return config_digest(
            {
                "backend": self.name,
                "restate_version": rt.restate_version,
                "ingress_url": rt.ingress_url,
                "admin_url": rt.admin_url,
                "server_env": rt.server_env,
                "image": rt.image() if self.name == "docker" else None,
                "request_identity": self.identity.public_key if self.identity else None,
            }
        )

    def refuse_other_settings(self, running: str, digest: str | None, source: str | None) -> None:
        """A running server is reused only on the settings it was started with (`settings_digest`): not
        restarted behind the user's back, since invocations in flight and a drill may depend on it."""
        if digest is not None and digest != self.settings_digest():
            was = source or "another config"
            raise ConfigMismatch(
                f"restate-server ({running}) runs with the runtime settings of {was}; {self.config_source} "
                "asks for different ones (version, addresses, server_env or request identity; a drill may "
                "have restarted it with its own, or the file changed). Not mixing them: run "
                f"`inv down --config {was}` first, "
                f"or use --config {was}"
            )
        if digest is None:
            progress.warn(
                f"restate-server ({running}) was not started by this tool with a recorded config: reusing it "
                f"as is; `inv down` then `inv up` to be sure it runs on {self.config_source}"
            )

    def ensure_ports_free(self, procs: ProcessTable) -> None:
        """Before a new server starts: its ingress and admin ports are free (else, whose they are)."""
        for url, field in (
            (self.runtime.ingress_url, "runtime.ingress_url"),
            (self.runtime.admin_url, "runtime.admin_url"),
        ):
            ensure_free(
                host_of(url), port_of(url), f"restate-server ({self.name})", field, procs, self.port_release_grace_s
            )

    def start(self) -> str:
        """Start (reusing a running server) and wait until it is ready for drills."""
        where = self.launch()
        try:
            wait_ready(self.admin, self.ingress, self.runtime.ready_timeout_s, alive=self.alive)
        except ServerExited:
            tail = "\n".join(self.log_lines(20))
            raise ComponentError(f"restate-server ({where}) exited before it became ready; its log:\n{tail}") from None
        except WaitTimeout as exc:
            if "already running" in where:
                raise ComponentError(
                    f"restate-server {where} does not answer at {self.runtime.admin_url}: it was started by this "
                    "tool but cannot be reached from here (another network namespace?). `inv down` stops it."
                ) from None
            tail = "\n".join(self.log_lines(20))
            raise ComponentError(f"restate-server ({where}) did not become ready: {exc}\n{tail}") from None
        return where

    def restart(self, extra_env: dict[str, str] | None = None) -> str:
        """Stop and start again with the data kept (registrations and journals survive), with extra
        `RESTATE_*` variables; without them, with the config's own environment."""
        self.stop()
        self.runtime = self.configured.model_copy(
            update={"server_env": {**self.configured.server_env, **(extra_env or {})}}
        )
        return self.start()

    def healthy(self) -> bool:
        return self.admin.healthy_admin() and self.ingress.healthy_ingress()

    def alive(self) -> bool:
        """Is the server's process still there (a readiness wait ends at once when it is not)?"""
        return True


class ServerExited(DrillError):
    """The server's process ended while the tool waited for it to become ready."""


def port_of(url: str) -> int:
    port = urlsplit(url).port
    if port is None:
        raise DrillError(f"{url}: the URL needs an explicit port")
    return port


FABRIC_PORT = 5122


def host_of(url: str) -> str:
    return urlsplit(url).hostname or "127.0.0.1"


class RestateProcess(ManagedProcess):
    """One `restate-server` process of ours, the native server or one cluster node: healthy when it is
    not frozen and its admin and its ingress both answer (a node back from a kill opens them one after
    the other)."""

    # Restate's own clients give health 2 s (`restate_api`): a node busy rejoining may be slower than 1 s.
    health_timeout_s = 2.0

    def __init__(
        self, procs: ProcessTable, name: str, what: str, log_file: Path, admin_url: str, ingress_url: str
    ) -> None:
        super().__init__(procs, name, what, log_file)
        self.admin_url = admin_url
        self.ingress_url = ingress_url

    def health_url(self) -> str:
        return f"{self.admin_url}/health"

    def health_where(self) -> str:
        return f"{self.admin_url} and {self.ingress_url}"

    def healthy(self) -> bool:
        return (
            not self.frozen()
            and http_ok(self.health_url(), self.health_timeout_s)
            and http_ok(f"{self.ingress_url}/restate/health", self.health_timeout_s)
        )


class NativeServer(RestateServer):
    name = "native"

    def __init__(
        self,
        runtime: Runtime,
        admin: AdminApi,
        ingress: IngressApi,
        binary: Path,
        data_dir: Path,
        procs: ProcessTable,
        log_file: Path,
        config_source: str = "<config>",
        identity: RequestIdentity | None = None,
    ) -> None:
        super().__init__(runtime, admin, ingress, config_source, identity)
        self.binary = binary
        self.data_dir = data_dir
        self.procs = procs
        self.log_file = log_file
        self.process = RestateProcess(
            procs, PROCESS_NAME, f"restate-server ({self.name})", log_file, runtime.admin_url, runtime.ingress_url
        )

    def argv(self) -> list[str]:
        return [str(self.binary), "--base-dir", str(self.data_dir), "--no-logo", "--node-name", "drill"]

    def env(self) -> dict[str, str]:
        ingress, admin = self.runtime.ingress_url, self.runtime.admin_url
        fabric_host = host_of(admin)
        # Without an identity of ours the server signs nothing, whatever the caller's environment says
        # (the digest says unsigned); `server_env` may still set it on purpose.
        inherited = {k: v for k, v in os.environ.items() if k not in SERVER_KEY_ENVS}
        return {
            **inherited,
            "RESTATE_INGRESS__BIND_ADDRESS": f"{host_of(ingress)}:{port_of(ingress)}",
            "RESTATE_ADMIN__BIND_ADDRESS": f"{host_of(admin)}:{port_of(admin)}",
            # The node-to-node fabric (5122) stays on loopback too: nothing of ours listens outside.
            "RESTATE_BIND_ADDRESS": f"{fabric_host}:{FABRIC_PORT}",
            "RESTATE_ADVERTISED_ADDRESS": f"http://{fabric_host}:{FABRIC_PORT}",
            "RESTATE_LOG_DISABLE_ANSI_CODES": "true",  # the log file is read by people and by `restate.logs`
            **traces.server_env(),  # invocation spans to the drill's loopback collector (drillkit/traces.py)
            **self.identity_env(),
            **self.runtime.server_env,
        }

    def identity_env(self) -> dict[str, str]:
        """Sign every request to the services with the state dir's key (the server reads the PEM file)."""
        return {SERVER_KEY_ENV: str(self.identity.private_key_file)} if self.identity else {}

    def launch(self) -> str:
        live = self.process.live()
        if live:
            self.refuse_other_settings(f"pid {live.pid}", live.config_digest, live.config_source)
            return f"pid {live.pid} (already running)"
        if not self.binary.is_file():
            raise DrillError("restate-server is not installed: run `inv setup`")
        self.ensure_ports_free(self.procs)
        # The node-to-node port is fixed (no setting): one native server per network namespace.
        fabric = host_of(self.runtime.admin_url)
        try:  # with ensure_free's grace: a server just SIGKILLed by a drill may hold it a moment
            ensure_free(fabric, FABRIC_PORT, "restate-server (native)", "-", self.procs, self.port_release_grace_s)
        except PortInUse:
            raise PortInUse(
                f"cannot start the restate-server (native): its node-to-node port {FABRIC_PORT} ({fabric}) is "
                "already in use (another restate-server in this network namespace? the port is fixed: one native "
                "server per namespace; `scripts/loopback-only` gives a namespace of its own)"
            ) from None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        record = self.process.launch(
            self.argv(), env=self.env(), stamp=ConfigStamp(self.settings_digest(), self.config_source)
        )
        return f"pid {record.pid}"

    def stop(self, purge: bool = False) -> bool:
        self.process.refuse_mismatch()  # a record that is not ours any more: said, not "nothing ran"
        stopped = self.process.stop() is not None
        if purge:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        return stopped

    def kill(self, sig: signal.Signals) -> str | None:
        stopped: Stopped | None = self.process.kill(sig)
        return None if stopped is None else f"pid {stopped.record.pid} (gone {stopped.seconds:.2f} s after {sig.name})"

    def running(self) -> str | None:
        live = self.process.live()
        return f"pid {live.pid}" if live else None

    def alive(self) -> bool:
        return self.process.live() is not None

    def log_lines(self, tail: int) -> list[str]:
        return self.process.logs(tail)

    def follow_logs(self) -> Iterator[str]:
        yield from self.process.follow_logs()

    def default_deployment_uri(self, service_port: int) -> str:
        return f"http://127.0.0.1:{service_port}"


def wait_ready(
    admin: AdminApi, ingress: IngressApi, timeout_s: float, alive: Callable[[], bool] = lambda: True
) -> None:
    """Both health endpoints answer and the SQL API finds its partitions; ServerExited as soon as the
    process is gone (a port already taken, a bad setting: waiting out the deadline would tell nothing)."""

    def admin_up() -> bool | None:
        return True if admin.healthy_admin() else (None if not alive() else False)

    if poll(admin_up, lambda up: up is not False, f"admin health at {admin.base_url}/health", timeout_s) is None:
        raise ServerExited("restate-server exited")
    poll(ingress.healthy_ingress, bool, f"ingress health at {ingress.base_url}/restate/health", timeout_s)
    poll(admin.query_ready, bool, f"SQL queries at {admin.base_url}/query", timeout_s)
