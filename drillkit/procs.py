"""Processes the tool starts: recorded on disk, verified before any signal, never killed by name.

A record holds the PID, the command line and the kernel's start time (field 22 of /proc/PID/stat, in
clock ticks since boot), and the digest of the config the process was started with. A PID that the
kernel has reused for another process has another start time or command line, so it is never
signalled: `ProcessMismatch` is raised instead. Such a record is kept and reported (status, down) until
the user drops it; only a record whose PID no longer exists at all is cleared by itself.
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
from typing import Literal

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
    config_digest: str | None = None
    """sha256 of the config the process runs with (see the component); None in records made before."""
    config_source: str | None = None
    """The config file it was started with, named in messages."""
    pid_namespace: str | None = None
    """`pid:[inode]` of the PID namespace `pid` means something in (a `scripts/loopback-only --contained`
    shell has one of its own); None in records made before. Seen from another one, the pid names nothing
    of ours: the record is neither trusted, signalled nor cleared there."""


def proc_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


_boot_time: float | None = None


def ticks_to_time(ticks: int | None) -> str:
    """A start time in clock ticks since boot, as local wall-clock time (for people reading a difference)."""
    global _boot_time
    if ticks is None:
        return "-"
    if _boot_time is None:
        btime = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
        _boot_time = float(btime.split()[1])
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(_boot_time + ticks / os.sysconf("SC_CLK_TCK")))


def pid_namespace(pid: int | str = "self") -> str | None:
    """`pid:[inode]` of the process's PID namespace; None when it cannot be read."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def net_namespace(pid: int | str) -> str | None:
    """`net:[inode]` of the process's network namespace; None when it cannot be read (gone, not ours)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


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
class Observed:
    """A record next to what its PID is now: `running` (still the recorded process), `mismatch` (the PID
    now belongs to another process, or the process changed its command line), or `elsewhere` (recorded in
    another PID namespace: its pid cannot be looked up from here)."""

    record: ProcessRecord
    state: Literal["running", "mismatch", "elsewhere"]
    now_ticks: int | None
    now_cmdline: list[str] | None

    def differences(self) -> list[tuple[str, str, str]]:
        """(what, recorded, now) for each field that differs."""
        rows = []
        if self.now_ticks != self.record.start_ticks:
            rows.append(("start time", ticks_to_time(self.record.start_ticks), ticks_to_time(self.now_ticks)))
        if self.now_cmdline != self.record.cmdline:
            rows.append(("command line", " ".join(self.record.cmdline), " ".join(self.now_cmdline or [])))
        return rows

    def describe(self) -> str:
        """One paragraph for an error or a warning: what the record says, what the PID is now."""
        changes = "; ".join(f"{what}: recorded {was!r}, now {now!r}" for what, was, now in self.differences())
        return f"{self.record.name}: pid {self.record.pid} is no longer the process this tool started ({changes})"


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

    def observe(self, name: str) -> Observed | None:
        """The record compared with its PID now; None when there is no record. A record whose PID no
        longer exists (or is a zombie) is cleared here: nothing can be mistaken for it. A record whose
        PID now runs something else is kept, to be reported: it is never deleted silently."""
        record = self.load(name)
        if record is None:
            return None
        if record.pid_namespace is not None and record.pid_namespace != pid_namespace():
            return Observed(record, "elsewhere", None, None)
        ticks, cmdline = proc_start_ticks(record.pid), proc_cmdline(record.pid)
        if ticks is None or is_zombie(record.pid):
            reap(record.pid)
            self._forget_if(record)
            return None
        state: Literal["running", "mismatch"] = (
            "running" if ticks == record.start_ticks and cmdline == record.cmdline else "mismatch"
        )
        return Observed(record, state, ticks, cmdline)

    def live(self, name: str) -> ProcessRecord | None:
        """The record if its process is alive and still the one recorded (a mismatching record is kept)."""
        seen = self.observe(name)
        return seen.record if seen is not None and seen.state == "running" else None

    def mismatched(self) -> list[Observed]:
        """Every record whose PID now belongs to another process: reported by status and down."""
        return [seen for name in self.names() if (seen := self.observe(name)) and seen.state == "mismatch"]

    def forget_mismatched(self, seen: Observed) -> None:
        """Drop a mismatching record on the user's word (`inv down --forget-mismatched`), never signalling."""
        self._forget_if(seen.record)

    def elsewhere(self) -> list[tuple[ProcessRecord, str]]:
        """Recorded, running processes in another network namespace than this one (with that namespace):
        nothing they serve on loopback can be reached from here."""
        here = net_namespace("self")
        found = []
        for name in self.names():
            seen = self.observe(name)
            if seen is not None and seen.state == "elsewhere":
                found.append((seen.record, f"PID namespace {seen.record.pid_namespace}"))
                continue
            record = seen.record if seen is not None and seen.state == "running" else None
            theirs = net_namespace(record.pid) if record else None
            if record is not None and theirs is not None and here is not None and theirs != here:
                found.append((record, theirs))
        return found

    # -- actions ------------------------------------------------------------------------------------

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        log_file: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        config_digest: str | None = None,
        config_source: str | None = None,
        group: int | None = None,
    ) -> ProcessRecord:
        """Start `argv` in its own session (Ctrl-C of the task does not reach it), output to `log_file`;
        with `group`, under that group id (root only: lets a firewall rule match its sockets).

        Refuses (ProcessMismatch) while a record of that name names a PID that now runs another process:
        writing the new record would delete that one without anyone having looked at it."""
        seen = self.observe(name)
        if seen is not None and seen.state == "mismatch":
            raise ProcessMismatch(
                seen.describe()
                + f"; nothing was signalled. Its record {self.path(name)} is kept; once you have checked that pid "
                f"{seen.record.pid} is not ours, `inv down --forget-mismatched` drops it"
            )
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
        record = ProcessRecord(
            name, proc.pid, ticks, cmdline, time.time(), str(log_file), config_digest, config_source, pid_namespace()
        )
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
        raise ProcessMismatch(Observed(record, "mismatch", ticks, cmdline).describe() + "; not signalling it")


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
