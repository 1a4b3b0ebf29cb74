"""The state dir (default `.drill/`): binaries, model cache, Restate data, process records, logs, reports."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drillkit.errors import ConfigError, DrillError
from drillkit.identity import RequestIdentity, ensure_identity


@dataclass(frozen=True)
class StateDir:
    root: Path
    backend: str | None = None
    """The runtime backend using it (native, docker, cluster, auto): configs sharing a state dir keep their
    last invocation apart, since an id from one backend's Restate means nothing to another's."""

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def restate_data(self) -> Path:
        return self.root / "restate-data"

    @property
    def procs(self) -> Path:
        return self.root / "procs"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def last_invocation_file(self) -> Path:
        return self.root / ("last_invocation_id" + (f".{self.backend}" if self.backend else ""))

    @property
    def drill_lock_file(self) -> Path:
        return self.root / "drill.lock"

    def prepare(self) -> None:
        """Make the state dir, closed to everyone but its owner (0700) from its first use: process
        records, logs, reports and the fault key live here."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        mode = self.root.stat().st_mode
        if mode & stat.S_ISVTX:
            # A shared sticky directory such as /tmp: closing it would break everyone else.
            raise ConfigError(f"runtime.state_dir: {self.root} is a shared directory; give the tool one of its own")
        if stat.S_IMODE(mode) != 0o700:
            os.chmod(self.root, 0o700)

    def fault_key_file(self) -> Path:
        """The file holding the stack's key for request fault injection, made on first use: a random
        token, readable by its owner only, in a state dir closed to everyone else. The writer is started
        with its name; drills send the key in a header. Never print it."""
        path = self.root / "fault-key"
        self.prepare()
        if path.exists():
            os.chmod(path, 0o600)
            return path
        tmp = self.root / f".fault-key.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(secrets.token_urlsafe(32) + "\n")
            try:
                os.link(tmp, path)  # publish whole, and never over a key someone else just made
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def fault_key(self) -> str:
        return self.fault_key_file().read_text(encoding="utf-8").strip()

    def request_identity(self) -> RequestIdentity:
        """The key pair Restate signs its requests to the services with (drillkit/identity.py), made on
        first use under `<state>/request-identity/`: the private PEM for the server, the public key for
        the writer and every target (`identity_public_key`)."""
        self.prepare()
        return ensure_identity(self.root / "request-identity")

    def identity_public_key(self) -> str:
        """`publickeyv1_...`: what a service must be given to accept only this state dir's Restate."""
        return self.request_identity().public_key

    def log_file(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def remember_invocation(self, invocation_id: str) -> None:
        write_text_atomically(self.last_invocation_file, invocation_id + "\n")

    def last_invocation(self) -> str | None:
        try:
            return self.last_invocation_file.read_text().strip() or None
        except FileNotFoundError:
            return None


def write_text_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    write_text_atomically(path, json.dumps(data, indent=2, default=str) + "\n")


_held: dict[Path, int] = {}  # lock file -> depth: drill.all holds the lock across the drills it runs


@contextmanager
def drill_lock(state: StateDir, what: str) -> Iterator[None]:
    """One drill at a time per state dir: a second is refused at once, naming the first one's pid.

    An exclusive `flock` on `<state>/drill.lock`; the kernel drops it when its holder dies, so a killed
    drill never leaves a stale lock. Re-entrant within one process (drill.all runs drills under it).
    """
    path = state.drill_lock_file
    if path in _held:
        _held[path] += 1
        try:
            yield
        finally:
            _held[path] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown"
            raise DrillError(f"another drill is running with this state dir ({state.root}): {holder}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, {what}, since {time.strftime('%H:%M:%S')}\n".encode(), 0)
        _held[path] = 1
        try:
            yield
        finally:
            del _held[path]
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)
