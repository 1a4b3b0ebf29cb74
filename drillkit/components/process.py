"""What every process this tool starts shares: a record, a health check, signals, a log.

The writer (or a target), the local model, the LLM tap, the stub model, the native Restate server, each
cluster node and the private dockerd are each one `ManagedProcess`: start, health, kill with any
signal, freeze and thaw (SIGSTOP/SIGCONT), stop and the log's tail are written here once.

`spawn_or_reuse` is idempotent (a live, verified process started with the same config is reused; one
started with another config is restarted, and says so) and waits for the component's own health check
with a deadline; `launch` only starts (a caller that waits on more than health, or on several processes
side by side). Before a new process is spawned its ports must be free. Kill signals the recorded PID
after verifying it and reports exactly the process it signalled; a record whose PID now runs another
process is never signalled (status and down report it); nothing is ever found or killed by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from drillkit import progress
from drillkit.errors import ComponentError, ProcessMismatch
from drillkit.ports import RELEASE_GRACE_S, ensure_free
from drillkit.procs import Observed, ProcessRecord, ProcessTable, Stopped, proc_state, verify
from drillkit.waits import WaitTimeout, poll

HEALTH_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ConfigStamp:
    """Which config a process runs with: the digest of the resolved settings it depends on, and the file."""

    digest: str
    source: str


def config_digest(settings: Any) -> str:
    """sha256 of a resolved, validated config mapping (keys sorted: the same settings, the same digest)."""
    text = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Listen:
    """Where a component listens, and the config field that sets it (named when the port is taken)."""

    host: str
    port: int
    field: str


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout_s).status_code == 200
    except httpx.RequestError:
        return False


def log_lines(path: Path | str, lines: int) -> list[str]:
    """The last `lines` lines of a process's log; none while the process has not written one."""
    try:
        return Path(path).read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        return []


def log_tail(path: Path | str, lines: int = 15) -> str:
    """The log's last lines as text for an error message, which says so when there is no log yet."""
    return "\n".join(log_lines(path, lines)) or "(no log yet)"


def follow_file(path: Path) -> Iterator[str]:
    """Lines of a growing file, `tail -f` style (waits on the file, not on a timer of ours)."""
    with open(path, errors="replace") as handle:
        while True:
            line = handle.readline()
            if line:
                yield line.rstrip("\n")
            else:
                time.sleep(0.2)


class ManagedProcess:
    """One recorded process: `name` in the process table, `what` in messages, `health_url` to wait on."""

    def __init__(self, procs: ProcessTable, name: str, what: str, log_file: Path) -> None:
        self.procs = procs
        self.name = name
        self.what = what
        self.log_file = log_file

    stop_timeout_s = 15.0
    # How long a taken port gets to be released before start fails: a process killed a moment ago may hold
    # its socket while its threads exit. Per instance, so a unit test need not wait the real grace out.
    port_release_grace_s = RELEASE_GRACE_S
    # How often a start asks for health: a cheap HTTP GET by default; a costlier probe asks less often.
    health_interval_s = 0.05

    def health_url(self) -> str:
        raise NotImplementedError

    def health_where(self) -> str:
        """Where health is asked, for messages (a process with two endpoints names both)."""
        return self.health_url()

    def listens(self) -> list[Listen]:
        """The ports that must be free before a new process starts (none: not checked)."""
        return []

    def live(self) -> ProcessRecord | None:
        return self.procs.live(self.name)

    def observe(self) -> Observed | None:
        """The record next to what its pid is now (None: no record); a mismatch is never signalled."""
        return self.procs.observe(self.name)

    def refuse_mismatch(self) -> None:
        """ProcessMismatch, naming what differs, when the record's pid now runs another process: a stop
        asked for by name (`inv restate.stop`, `inv engine.stop`) must not answer "not running" then."""
        seen = self.observe()
        if seen is not None and seen.state == "mismatch":
            raise ProcessMismatch(seen.describe() + "; not signalling it")

    def healthy(self) -> bool:
        return http_ok(self.health_url())

    def logs(self, tail: int) -> list[str]:
        return log_lines(self.log_file, tail)

    def log_tail(self, lines: int = 15) -> str:
        return log_tail(self.log_file, lines)

    def follow_logs(self) -> Iterator[str]:
        yield from follow_file(self.log_file)

    def launch(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stamp: ConfigStamp | None = None,
        group: int | None = None,
    ) -> ProcessRecord:
        """Start a new process (no wait): its ports free first, then spawned and recorded, with the
        config it runs on; `group` runs it under that group id (see `ProcessTable.spawn`)."""
        for where in self.listens():
            ensure_free(where.host, where.port, self.what, where.field, self.procs, self.port_release_grace_s)
        return self.procs.spawn(
            self.name,
            argv,
            self.log_file,
            env=env,
            cwd=cwd,
            config_digest=stamp.digest if stamp else None,
            config_source=stamp.source if stamp else None,
            group=group,
        )

    def spawn_or_reuse(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stamp: ConfigStamp | None = None,
    ) -> ProcessRecord:
        """The live process, or a new one; then wait until it answers its health check.

        With a `stamp`, a live process started with another config (or before configs were recorded) is
        stopped and started again on this one, and progress says so: two configs are never mixed."""
        record = self.live()
        if record is not None and stamp is not None and record.config_digest != stamp.digest:
            was = record.config_source or "a config this tool did not record"
            same_file = record.config_source == stamp.source
            progress.info(
                f"{self.what} (pid {record.pid}) runs on {was}"
                + (" as it was when started (it has changed since)" if same_file else "")
                + f": restarting it on {stamp.source}"
            )
            self.procs.kill_record(record, signal.SIGTERM, self.stop_timeout_s)
            record = None
        if record is None:
            record = self.launch(argv, env=env, cwd=cwd, stamp=stamp)
        self.wait_healthy(record)
        return record

    def wait_healthy(self, record: ProcessRecord | None = None, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
        """Until it answers its health check; ComponentError with the log's tail as soon as it has exited
        (or was not running: `record` None means the live one), or at the deadline."""
        record = record or self.live()
        url = self.health_where()
        if record is None:
            raise ComponentError(f"{self.what} is not running; log {self.log_file}:\n" + self.log_tail())

        def probe() -> str:
            if self.live() is None:
                return "exited"
            return "healthy" if self.healthy() else "starting"

        try:
            what = f"{self.what} health at {url}"
            state = poll(probe, lambda s: s != "starting", what, timeout_s, interval_s=self.health_interval_s)
        except WaitTimeout:
            state = "starting"
        if state != "healthy":
            where = "" if state == "exited" else f" at {url} after {timeout_s:g} s"
            raise ComponentError(
                f"{self.what} (pid {record.pid}) is not healthy ({state}){where}; log {record.log_file}:\n"
                + log_tail(record.log_file)
            )

    def kill(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 15.0) -> Stopped | None:
        """Signal the recorded process (verified first) and wait until it is gone; None if not running."""
        record = self.live()
        return None if record is None else self.procs.kill_record(record, sig, timeout_s)

    def stop(self) -> Stopped | None:
        return self.kill(signal.SIGTERM, self.stop_timeout_s)

    # -- alive and silent: a long GC pause, a VM freeze --------------------------------------------

    def freeze(self) -> ProcessRecord | None:
        """SIGSTOP to the recorded process (verified first): it keeps its sockets and answers nothing.
        Returns once the kernel shows it stopped, so `frozen()` right after agrees (a cleanup that thaws
        only what is frozen must not miss it)."""
        # A process that died meanwhile is not waited for: gone (None) or a zombie ("Z") will not stop.
        return self._stop_or_continue(signal.SIGSTOP, lambda state: state not in ("T", "Z", None), "stopped")

    def thaw(self) -> ProcessRecord | None:
        """SIGCONT to the recorded process (verified first), once it runs again; None when it is not running."""
        return self._stop_or_continue(signal.SIGCONT, lambda state: state == "T", "running again")

    def _stop_or_continue(
        self, sig: signal.Signals, pending: Callable[[str | None], bool], what: str
    ) -> ProcessRecord | None:
        record = self.live()
        if record is None:
            return None
        verify(record)
        os.kill(record.pid, sig)
        try:
            poll(lambda: proc_state(record.pid), lambda state: not pending(state), f"{self.what} {what}", 5.0, 0.005)
        except WaitTimeout:
            raise ComponentError(
                f"{self.what} (pid {record.pid}) is not {what} 5 s after {sig.name} (state {proc_state(record.pid)})"
            ) from None
        return record

    def frozen(self) -> bool:
        record = self.live()
        return record is not None and proc_state(record.pid) == "T"
