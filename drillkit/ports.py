"""Is a component's port free before it starts, and if not, whose is it?

A connect probe says whether something listens (cheap: loopback refuses at once). Only then is the
owner looked for, and only among our own recorded processes: the listening socket's inode from
`/proc/net/tcp{,6}` (this network namespace's view), matched against the open files of each recorded
PID. Anything else is "another program": nothing outside our records is inspected, let alone signalled.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from drillkit.errors import ComponentError
from drillkit.procs import ProcessRecord, ProcessTable
from drillkit.waits import WaitTimeout, poll

LISTEN = "0A"


class PortInUse(ComponentError):
    """A component's port is taken by something that is not that component's recorded process."""


def listening(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Something accepts connections at host:port (a wildcard host is probed on loopback)."""
    target = "127.0.0.1" if host in ("0.0.0.0", "", "*") else "::1" if host == "::" else host
    try:
        with socket.create_connection((target, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on `port` (any address) in this network namespace."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def holds_socket(pid: int, inodes: set[str]) -> bool:
    wanted = {f"socket:[{inode}]" for inode in inodes}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                return True
        except OSError:
            continue
    return False


def recorded_owner(port: int, procs: ProcessTable) -> ProcessRecord | None:
    """The recorded, live process of ours listening on `port`, if any."""
    inodes = listening_inodes(port)
    if not inodes:
        return None
    for name in procs.names():
        record = procs.live(name)
        if record is not None and holds_socket(record.pid, inodes):
            return record
    return None


RELEASE_GRACE_S = 5.0


def ensure_free(
    host: str, port: int, what: str, field: str, procs: ProcessTable, grace_s: float = RELEASE_GRACE_S
) -> None:
    """Raise PortInUse, naming the port and its owner, when something already listens at host:port.

    Called only when the component itself is not running (its own live process is reused, not probed).
    A process that was just killed can hold its listening socket for a moment while its threads exit (a
    drill restarts the server right after a SIGKILL): the port gets `grace_s` to be released first."""
    try:
        poll(lambda: listening(host, port), lambda busy: not busy, f"port {port} to be free", grace_s, 0.05)
        return
    except WaitTimeout:
        pass
    owner = recorded_owner(port, procs)
    who = (
        f"our {owner.name} (pid {owner.pid}, recorded in {procs.path(owner.name)})"
        if owner is not None
        else "another program (not one this tool started; nothing is killed by name)"
    )
    raise PortInUse(
        f"cannot start the {what}: port {port} ({host}:{port}) is already in use by {who}. "
        f"Stop it, or give the {what} another port ({field} in the config)"
    )
