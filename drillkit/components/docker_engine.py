"""The Docker engine and the Restate image: a client for the engine in the environment, a private
engine for machines without one, and the image pulled (with progress) or built locally.

The Docker backend is tested against a live engine. Where none answers, `Dockerd.start` runs Debian's
`dockerd` with its own data root, exec root, socket and pidfile under the state dir: a `ManagedProcess`
like any process of ours (recorded, healthy once it answers a ping, stopped by that PID). Where no image
registry is reachable, `build_image` makes the configured Restate image with `docker import` from a
minimal root filesystem holding the native `restate-server` binary and a CA bundle (without CA
certificates the server panics at start).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import shutil
import socket
import struct
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import certifi
import docker
import docker.errors

from drillkit import progress
from drillkit.components.process import ManagedProcess
from drillkit.errors import ComponentError
from drillkit.procs import ProcessRecord, ProcessTable, Stopped, is_alive, proc_cmdline

PROCESS_NAME = "dockerd"
DATA_DIR_IN_IMAGE = "/restate-data"


def engine_dir(state_root: Path) -> Path:
    """Under the state dir, unless that path is long: dockerd and containerd put unix sockets below it,
    and a socket path must fit in 108 bytes, so a deep checkout gets a short folder in the temp dir."""
    base = state_root.resolve() / "docker"
    if len(str(base)) <= 48:
        return base
    digest = hashlib.sha256(str(base).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"drill-docker-{digest}"


def socket_url(state_root: Path) -> str:
    return f"unix://{engine_dir(state_root) / 'docker.sock'}"


def dockerd_argv(state_root: Path) -> list[str]:
    base = engine_dir(state_root)
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise ComponentError("dockerd is not installed (Debian: apt-get install docker.io)")
    return [
        dockerd,
        "--data-root",
        str(base / "data"),
        "--exec-root",
        str(base / "exec"),
        "--pidfile",
        str(base / "dockerd.pid"),
        "--host",
        socket_url(state_root),
        "--log-level",
        "warn",
    ]


def install_engine() -> None:
    """Install Debian's docker.io (root only); a no-op when dockerd is already there."""
    if shutil.which("dockerd"):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ComponentError("no Docker engine: install docker.io (or Docker Engine) and start it")
    with progress.activity("installing Debian's docker.io"):
        for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "docker.io"]):
            out = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            )
            if out.returncode != 0:
                raise ComponentError(f"`{' '.join(argv)}` exited {out.returncode}: {out.stderr.strip()[-500:]}")


class Dockerd(ManagedProcess):
    """The private engine's process: healthy once the engine answers a ping on its own socket."""

    stop_timeout_s = 30.0  # dockerd stops its containers first
    health_interval_s = 0.2  # a ping builds a docker-py client: not twenty times a second

    def __init__(self, state_root: Path, procs: ProcessTable, log_file: Path) -> None:
        super().__init__(procs, PROCESS_NAME, "dockerd", log_file)
        self.state_root = state_root

    def health_url(self) -> str:
        """Its DOCKER_HOST URL."""
        return socket_url(self.state_root)

    def healthy(self) -> bool:
        try:
            client = docker.DockerClient(base_url=self.health_url(), timeout=5)
            client.ping()
            client.close()
        except docker.errors.DockerException:
            return False
        return True

    def start(self, timeout_s: float = 60.0) -> ProcessRecord:
        """Start it (reused when running) and wait until it answers."""
        record = self.live()
        if record is None:
            engine_dir(self.state_root).mkdir(parents=True, exist_ok=True)
            clear_stale_pidfile(self.state_root)
            record = self.launch(dockerd_argv(self.state_root))
        self.wait_healthy(record, timeout_s)
        return record

    def stop(self) -> Stopped | None:
        """SIGTERM and wait until gone; None when none of ours runs. A record whose pid now runs another
        process is refused loudly: `inv engine.stop` would otherwise say no engine of ours was running."""
        self.refuse_mismatch()
        return super().stop()


def clear_stale_pidfile(state_root: Path) -> None:
    """dockerd refuses to start over a pidfile; one left by a dockerd that is gone (killed with its
    namespace, say) is removed. One whose process still runs is not ours to touch: say so."""
    pidfile = engine_dir(state_root) / "dockerd.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        pidfile.unlink(missing_ok=True)
        return
    cmdline = proc_cmdline(pid) if is_alive(pid) else None
    if cmdline and str(pidfile) in cmdline:
        raise ComponentError(
            f"a dockerd not recorded by this tool (pid {pid}) runs with {pidfile}; stop it, or use it with "
            f"DOCKER_HOST={socket_url(state_root)}"
        )
    pidfile.unlink()


def rootfs_tar(restate_server: Path) -> bytes:
    """A minimal root filesystem: the static restate-server, a CA bundle, /tmp and the data dir."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in (
            "usr",
            "usr/local",
            "usr/local/bin",
            "etc",
            "etc/ssl",
            "etc/ssl/certs",
            "tmp",
            DATA_DIR_IN_IMAGE.lstrip("/"),
        ):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        _add_file(tar, "usr/local/bin/restate-server", restate_server.read_bytes(), 0o755)
        _add_file(tar, "etc/ssl/certs/ca-certificates.crt", Path(certifi.where()).read_bytes(), 0o644)
    return buffer.getvalue()


DEFAULT_SOCKET = "unix:///var/run/docker.sock"
ENGINE_FIX = "start this tool's own engine with `inv engine.start --config FILE`, or export DOCKER_HOST"


def engine_candidates(state_root: Path | None) -> list[tuple[str, str]]:
    """(what, URL) of each engine to try, in order. DOCKER_HOST, when set, is the user's choice and the only
    one. Otherwise this tool's private engine (`inv engine.start`: its socket under the state dir), then
    the default socket: both Docker backends find the engine the same way."""
    if os.environ.get("DOCKER_HOST"):
        return [("DOCKER_HOST", os.environ["DOCKER_HOST"])]
    found = []
    if state_root is not None:
        found.append(("this tool's engine (`inv engine.start`)", socket_url(state_root)))
    found.append(("the default socket", DEFAULT_SOCKET))
    return found


def docker_client(state_root: Path | None = None) -> Any:
    """A docker-py client for the first engine that answers (see `engine_candidates`); none answering is
    one line naming each URL tried, why it failed, and the fix."""
    tried = []
    for what, url in engine_candidates(state_root):
        path = url.removeprefix("unix://")
        if url.startswith("unix://") and not Path(path).exists():
            tried.append(f"{what} {url}: no such socket")
            continue
        try:
            # DOCKER_HOST through from_env: it honours DOCKER_TLS_VERIFY and DOCKER_CERT_PATH too
            client = (
                docker.from_env(timeout=30) if what == "DOCKER_HOST" else docker.DockerClient(base_url=url, timeout=30)
            )
            client.ping()
        except docker.errors.DockerException as exc:
            tried.append(f"{what} {url}: {_reason(exc)}")
            continue
        return client
    raise ComponentError(f"no Docker engine answers ({'; '.join(tried)}): {ENGINE_FIX}")


def _reason(exc: BaseException) -> str:
    """The last line of docker-py's nested connection error: what actually failed."""
    text = str(exc)
    for marker in ("FileNotFoundError", "ConnectionRefusedError", "PermissionError"):
        if marker in text:
            return {"FileNotFoundError": "no such socket", "ConnectionRefusedError": "refused"}.get(
                marker, "permission denied"
            )
    return text[-200:]


def state_root_of(procs: ProcessTable | None) -> Path | None:
    """The state dir a process table lives in (`<state>/procs`): where this tool's engine keeps its socket."""
    return procs.directory.parent if procs is not None else None


def log_lines(container: Any, tail: int) -> list[str]:
    """The container's last `tail` log lines (stdout and stderr), decoded."""
    return list(container.logs(tail=tail).decode(errors="replace").splitlines())


def follow_logs(container: Any) -> Iterator[str]:
    """The container's log, line by line, until it stops."""
    for chunk in container.logs(stream=True, follow=True):
        yield chunk.decode(errors="replace").rstrip("\n")


def docker_available(state_root: Path | None = None) -> bool:
    try:
        docker_client(state_root).close()
    except ComponentError:
        return False
    return True


def interface_ipv4(name: str) -> str | None:
    """The IPv4 address of a network interface in this namespace (SIOCGIFADDR), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            packed = fcntl.ioctl(probe.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def ensure_image(client: Any, image: str, build_from: Path | None = None) -> str:
    """The image present: already there, else built from the native restate-server `build_from` (the
    private engine's way, for machines without a registry), else pulled with per-layer progress.
    Returns which; raises naming the image."""
    try:
        client.images.get(image)
        return "present"
    except docker.errors.ImageNotFound:
        pass
    if build_from is not None:
        build_image(client, build_from, image)
        return "built"
    repository, _, tag = image.rpartition(":")
    try:
        with progress.activity(f"pulling {image}"):
            pull_progress(client.api.pull(repository, tag=tag, stream=True, decode=True), image)
    except docker.errors.APIError as exc:
        raise ComponentError(
            f"the image {image} is not present and cannot be pulled: {exc.explanation or exc}. "
            "Pull it, build it with `inv engine.image`, or set runtime.docker.image in the config."
        ) from None
    return "pulled"


def pull_progress(events: Iterator[dict[str, Any]], image: str) -> None:
    """Follow `docker pull` events: one line per layer state change, errors raised with the image name."""
    seen: dict[str, str] = {}
    for event in events:
        if "error" in event:
            raise ComponentError(f"docker pull {image}: {event['error']}")
        layer, status = event.get("id"), event.get("status", "")
        if layer and status and not status.startswith(("Downloading", "Extracting")) and seen.get(layer) != status:
            seen[layer] = status
            progress.info(f"  {image} {layer}: {status}")
        elif not layer and status:
            progress.info(f"  {image}: {status}")


def build_image(client: Any, restate_server: Path, image: str) -> str:
    """`docker import` the root filesystem as `image`, with the official image's command and ports."""
    repository, _, tag = image.rpartition(":")
    changes = [
        'ENTRYPOINT ["/usr/local/bin/restate-server"]',
        "WORKDIR /",
        "EXPOSE 8080 9070 5122",
        "ENV RESTATE_LOG_DISABLE_ANSI_CODES=true",
    ]
    with progress.activity(f"building {image} from {restate_server} (docker import)"):
        result = client.api.import_image_from_data(
            rootfs_tar(restate_server), repository=repository, tag=tag, changes=changes
        )
    return str(result)


def _add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))
