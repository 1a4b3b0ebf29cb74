"""What every component that is a local process of ours shares: a record, a health URL, a log.

Start is idempotent (a live, verified process is reused) and waits for the component's own health
check with a deadline; kill signals the recorded PID after verifying it and reports exactly the process
it signalled; nothing is ever found or killed by name.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from drillkit.errors import ComponentError
from drillkit.procs import ProcessRecord, ProcessTable, Stopped
from drillkit.waits import WaitTimeout, poll

HEALTH_TIMEOUT_S = 60.0


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.RequestError:
        return False


def log_tail(path: Path | str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log yet)"


class ManagedProcess:
    """One recorded process: `name` in the process table, `what` in messages, `health_url` to wait on."""

    def __init__(self, procs: ProcessTable, name: str, what: str, log_file: Path) -> None:
        self.procs = procs
        self.name = name
        self.what = what
        self.log_file = log_file

    def health_url(self) -> str:
        raise NotImplementedError

    def live(self) -> ProcessRecord | None:
        return self.procs.live(self.name)

    def healthy(self) -> bool:
        return http_ok(self.health_url())

    def logs(self, tail: int) -> list[str]:
        return log_tail(self.log_file, tail).splitlines()

    def spawn_or_reuse(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> ProcessRecord:
        """The live process, or a new one; then wait until it answers its health check."""
        record = self.live() or self.procs.spawn(self.name, argv, self.log_file, env=env, cwd=cwd)
        self.wait_healthy(record)
        return record

    def wait_healthy(self, record: ProcessRecord, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
        url = self.health_url()

        def probe() -> str:
            if self.procs.live(record.name) is None:
                return "exited"
            return "healthy" if http_ok(url) else "starting"

        try:
            state = poll(probe, lambda s: s != "starting", f"{self.what} health at {url}", timeout_s)
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
        return self.kill(signal.SIGTERM)
