"""Processes the tool starts: recorded on disk, verified before any signal, never killed by name.

A record holds the PID, the command line and the kernel's start time (field 22 of /proc/PID/stat, in
clock ticks since boot). A PID that the kernel has reused for another process has another start time
or command line, so it is never signalled: `ProcessMismatch` is raised instead and the stale record is
reported.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tenacity import RetryError, retry, retry_if_result, stop_after_delay, wait_fixed

from drillkit.errors import ComponentError, ProcessMismatch
from drillkit.state import write_text_atomically
from drillkit.waits import WaitTimeout, poll


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    start_ticks: int
    cmdline: list[str]
    started_at: float
    log_file: str


def proc_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rindex(")") + 2 :].split()[0]


def proc_cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


@dataclass(frozen=True)
class Stopped:
    """How a recorded process ended: after which signal, whether SIGTERM had to be escalated, how long."""

    record: ProcessRecord
    signal: str
    escalated: bool
    seconds: float


class ProcessTable:
    """Records under `<state>/procs/<name>.json`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def save(self, record: ProcessRecord) -> None:
        write_text_atomically(self.path(record.name), json.dumps(asdict(record), indent=2) + "\n")

    def load(self, name: str) -> ProcessRecord | None:
        try:
            data = json.loads(self.path(name).read_text())
        except FileNotFoundError:
            return None
        return ProcessRecord(**data)

    def forget(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def _forget_if(self, record: ProcessRecord) -> None:
        """Drop the record only if it is still this one (a restart may have written a newer one)."""
        if self.load(record.name) == record:
            self.forget(record.name)

    def names(self) -> list[str]:
        if not self.directory.exists():
            return []
        return sorted(p.stem for p in self.directory.glob("*.json"))

    # -- probes -------------------------------------------------------------------------------------

    def live(self, name: str) -> ProcessRecord | None:
        """The record if its process is alive and still the one recorded; a stale record is dropped."""
        record = self.load(name)
        if record is None:
            return None
        if matches(record):
            return record
        self.forget(name)
        return None

    # -- actions ------------------------------------------------------------------------------------

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        log_file: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        group: int | None = None,
    ) -> ProcessRecord:
        """Start `argv` in its own session (Ctrl-C of the task does not reach it), output to `log_file`;
        with `group`, under that group id (root only: lets a firewall rule match its sockets)."""
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(argv)}\n".encode())
            out.flush()
            try:
                proc = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=dict(env) if env is not None else None,
                    cwd=cwd,
                    start_new_session=True,
                    group=group,
                )
            except OSError as exc:
                raise ComponentError(f"{name}: cannot start {argv[0]}: {exc.strerror}") from None
        ticks = proc_start_ticks(proc.pid)
        cmdline = _settled_cmdline(proc.pid)
        if ticks is None or cmdline is None:
            code = proc.wait()
            raise ComponentError(f"{name}: exited at once with code {code}; see {log_file}")
        record = ProcessRecord(name, proc.pid, ticks, cmdline, time.time(), str(log_file))
        self.save(record)
        return record

    def kill(self, name: str, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 15.0) -> Stopped | None:
        """Signal the recorded process after verifying it, wait until it is gone, drop the record.

        Returns how it stopped, or None if nothing was running. SIGTERM that is not obeyed within
        `timeout_s` escalates to SIGKILL (a graceful stop that never ends is not a stop).
        """
        record = self.load(name)
        if record is None:
            return None
        return self.kill_record(record, sig, timeout_s)

    def kill_record(self, record: ProcessRecord, sig: signal.Signals, timeout_s: float = 15.0) -> Stopped | None:
        """`kill` of a record read earlier: the process signalled is exactly the one the caller saw (and
        will report), verified again right before the signal; never whatever the record file says now."""
        name = record.name
        if proc_start_ticks(record.pid) is None or is_zombie(record.pid):
            reap(record.pid)
            self._forget_if(record)
            return None
        verify(record)
        started = time.monotonic()
        os.kill(record.pid, sig)
        escalated = False
        if not wait_gone(record.pid, timeout_s):
            if sig == signal.SIGKILL:
                raise ComponentError(f"{name}: pid {record.pid} still alive {timeout_s:.0f} s after SIGKILL")
            verify(record)
            os.kill(record.pid, signal.SIGKILL)
            escalated = True
            if not wait_gone(record.pid, 10.0):
                raise ComponentError(f"{name}: pid {record.pid} survived SIGKILL")
        self._forget_if(record)
        return Stopped(record, sig.name, escalated, round(time.monotonic() - started, 3))


def _settled_cmdline(pid: int) -> list[str] | None:
    """The command line once the kernel shows it: for a moment around exec, /proc reads it as empty."""
    try:
        return poll(
            lambda: proc_cmdline(pid),
            lambda c: c is None or bool(c),
            f"pid {pid}'s command line",
            5.0,
            interval_s=0.005,
        )
    except WaitTimeout:
        return None


def matches(record: ProcessRecord) -> bool:
    return (
        proc_start_ticks(record.pid) == record.start_ticks
        and proc_cmdline(record.pid) == record.cmdline
        and not is_zombie(record.pid)
    )


def verify(record: ProcessRecord) -> None:
    ticks, cmdline = proc_start_ticks(record.pid), proc_cmdline(record.pid)
    if ticks != record.start_ticks or cmdline != record.cmdline:
        raise ProcessMismatch(
            f"{record.name}: pid {record.pid} is no longer the process this tool started "
            f"(recorded start {record.start_ticks}, command {' '.join(record.cmdline)!r}; "
            f"now start {ticks}, command {' '.join(cmdline or [])!r}); not signalling it"
        )


def is_alive(pid: int) -> bool:
    """Running (a zombie has exited and only waits for its parent to collect it)."""
    return proc_state(pid) not in (None, "Z")


def is_zombie(pid: int) -> bool:
    return proc_state(pid) == "Z"


def reap(pid: int) -> None:
    """Collect the exit status if the process is our child (else init does it); never blocks."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_gone(pid: int, timeout_s: float) -> bool:
    """True once the process no longer exists (a zombie counts as gone, and is reaped if ours)."""

    @retry(
        stop=stop_after_delay(timeout_s),
        wait=wait_fixed(0.02),
        retry=retry_if_result(lambda alive: alive),
    )
    def alive() -> bool:
        reap(pid)
        return is_alive(pid)

    try:
        alive()
    except RetryError:
        return False
    reap(pid)
    return True
