"""The watchdog every drill runs under: nothing moved for the pace's limit, and a person is told what was stuck.

The frame (`drillkit.kit.frame`) runs it beside every scenario. Progress is what a person watching would
call progress, seen from outside the scenario's own waits:

- a new event in the drill's timeline (an action landed, a step finished, a wait ended);
- a change in Restate's rows for the drill's invocations (status, retry count, journal length, the last
  failure) or in their journals (entries, which of them are completed);
- anything the drill's own waits observed (the pace's last progress: `Pace.moved`).

The limit is the pace's budget (`drillkit.kit.pace`): the one every wait stalls on, so the watchdog is
never stricter than the waits. When nothing moved for longer than the limit, or when a wait of the
scenario gave up first (the two race by a poll at most), the watchdog dumps what a person needs into the
report dir (`watchdog.json`: `sys_invocation`, `sys_journal` and `sys_journal_events` rows for the drill's
invocations, and the service's stacks, also in `watchdog-stacks.txt`), halts the pace (every wait under
it ends at once), and, if the scenario is blocked somewhere no wait watches, ends it with `Stalled` after
`INTERRUPT_GRACE_S`. The frame then ends the drill INCONCLUSIVE (before the fault landed) or FAIL (after),
with a reason naming the dump file.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drillkit import progress
from drillkit.errors import DrillError
from drillkit.procs import proc_state
from drillkit.restate_api import sql_list

if TYPE_CHECKING:
    from drillkit.kit.pace import Pace
    from drillkit.reports.record import DrillRecord
    from drillkit.stack import Stack

CHECK_EVERY_S = 1.0
"""How often the watchdog looks: one SQL query for the rows, one for the journals."""
INTERRUPT_GRACE_S = 10.0
"""After tripping, how long the scenario gets to notice the halted pace before it is ended with `Stalled`."""
PY_SPY_TIMEOUT_S = 30.0
DUMP_FILE = "watchdog.json"
STACKS_FILE = "watchdog-stacks.txt"
ROW_COLUMNS = "id, status, retry_count, journal_size, last_failure, last_failure_error_code"


class Stalled(DrillError):
    """Raised into a scenario that the watchdog found stuck where no wait of its own was watching."""


@dataclass
class Progress:
    """The watchdog's decision, without a stack: when did anything last move, and is that too long ago.

    `clock` is injectable (monotonic seconds) so the decision is tested without waiting."""

    limit: Callable[[], float]
    clock: Callable[[], float] = time.monotonic
    last: float = field(init=False)
    last_what: str = "the scenario started"
    _seen: dict[str, Any] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.last = self.clock()

    def observe(self, source: str, state: Any, what: str) -> bool:
        """`state` differs from the last one `source` showed: progress now (said as `what`)."""
        if source in self._seen and self._seen[source] == state:
            return False
        self._seen[source] = state
        self.last, self.last_what = self.clock(), what
        return True

    def moved_at(self, at: float, what: str) -> None:
        """Progress seen elsewhere at `at` (same clock): counts if it is newer."""
        if at > self.last:
            self.last, self.last_what = at, what

    def idle_s(self) -> float:
        return max(0.0, self.clock() - self.last)

    def due(self) -> bool:
        """Nothing moved for longer than the limit."""
        return self.idle_s() > self.limit()

    def describe(self) -> str:
        return f"no progress for {self.idle_s():.1f} s (the pace's limit is {self.limit():g} s); last: {self.last_what}"


@dataclass
class Trip:
    """What the watchdog found: why, and where the dump is."""

    reason: str
    dump: Path

    def detail(self) -> str:
        return f"{self.reason}; what was stuck: {self.dump}"


def observed_state(stack: Stack, ids: list[str]) -> tuple[Any, str]:
    """The rows and journals of `ids` as one comparable value, and a word on what they are now."""
    if not ids:
        return None, "no invocation yet"
    rows = stack.admin.query(f"SELECT {ROW_COLUMNS} FROM sys_invocation WHERE id IN ({sql_list(ids)}) ORDER BY id")
    journals = stack.admin.query(
        f"SELECT id, count(*) AS entries FROM sys_journal WHERE id IN ({sql_list(ids)}) GROUP BY id ORDER BY id"
    )
    state = (
        tuple(tuple(sorted((k, str(v)) for k, v in r.items())) for r in rows),
        tuple((j.get("id"), j.get("entries")) for j in journals),
    )
    statuses = sorted({str(r.get("status")) for r in rows})
    return state, f"Restate's rows changed (status {', '.join(statuses) or 'none'})"


class Watchdog:
    """Watches one drill from a thread of its own while its scenario runs (`watching`)."""

    def __init__(
        self,
        stack: Stack,
        record: DrillRecord,
        pace: Pace,
        directory: Path,
        fault_injected: Callable[[], bool],
        ids: Callable[[], list[str]],
        check_every_s: float = CHECK_EVERY_S,
    ) -> None:
        self.stack, self.record, self.pace, self.directory = stack, record, pace, directory
        self.fault_injected = fault_injected
        self.ids = ids
        self.check_every_s = check_every_s
        self.progress = Progress(lambda: pace.budget_s)
        self.trip: Trip | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._done = True
        self._interrupted = False
        self._scenario_thread = 0

    @contextmanager
    def watching(self) -> Iterator[Watchdog]:
        """Watch while the body (the scenario) runs in this thread."""
        self._scenario_thread = threading.get_ident()
        self._done = False
        self._stop.clear()
        thread = threading.Thread(target=self._run, name="drill-watchdog", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            with self._lock:
                self._done = True
                _clear_async_exc(self._scenario_thread)
            self._stop.set()
            thread.join(timeout=PY_SPY_TIMEOUT_S + 10)

    def _run(self) -> None:
        while not self._stop.wait(self.check_every_s):
            try:
                if self.check() and self._wait_scenario(INTERRUPT_GRACE_S):
                    return
            except Exception as exc:  # the watchdog must never break the drill it watches
                self.record.note(f"watchdog: {type(exc).__name__}: {exc}")
            if self.trip is not None:
                self._interrupt()
                return

    def check(self) -> bool:
        """One look: progress, or (nothing moved for the limit) trip. True when it tripped."""
        if self.trip is not None:
            return True
        self.progress.observe("timeline", len(self.record.timeline), self._last_event())
        try:
            state, what = observed_state(self.stack, self.ids())
            self.progress.observe("rows", state, what)
        except (DrillError, OSError):  # the server may be down on purpose: no news is not progress
            pass
        self.progress.moved_at(self.pace.last_progress, "the drill's own wait saw progress")
        if not self.progress.due():
            return False
        self.trip_now(self.progress.describe())
        return True

    def trip_now(self, reason: str) -> Trip:
        """Dump, then halt the pace: every wait under it ends at once. Once per drill."""
        with self._lock:
            if self.trip is None:
                progress.warn(f"watchdog: {reason}: dumping Restate's rows and the service's stacks")
                dump = write_dump(self.stack, self.ids(), self.directory, reason, self.fault_injected())
                self.trip = Trip(f"watchdog: {reason}", dump)
                self.record.evidence["watchdog"] = {
                    "reason": reason,
                    "dump": str(dump),
                    "stacks": str(dump.parent / STACKS_FILE),
                }
                self.record.event("watchdog", f"{reason}; dump: {dump}")
                self.pace.halt(self.trip.reason)
            return self.trip

    def _wait_scenario(self, grace_s: float) -> bool:
        """Give the scenario `grace_s` to end on its own (its waits halted); True when it did."""
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if self._done or self._stop.wait(0.1):
                return True
        return self._done

    def _interrupt(self) -> None:
        with self._lock:
            if self._done or self._interrupted:
                return
            self._interrupted = True
            self.record.note(f"watchdog: the scenario was still blocked {INTERRUPT_GRACE_S:g} s after the dump: ended")
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._scenario_thread), ctypes.py_object(Stalled))

    def _last_event(self) -> str:
        last = self.record.timeline[-1] if self.record.timeline else None
        return f"event '{last.event}' at {last.offset_s:.1f} s" if last else "no event yet"


def _clear_async_exc(thread_id: int) -> None:
    """Withdraw a `Stalled` not yet delivered (the scenario ended just as the watchdog ended it)."""
    if thread_id:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)


def write_dump(stack: Stack, ids: list[str], directory: Path, reason: str, after_fault: bool) -> Path:
    """`watchdog.json` (Restate's rows for `ids`, the service's stacks) and `watchdog-stacks.txt`."""
    directory.mkdir(parents=True, exist_ok=True)
    stacks = service_stacks(stack)
    dump: dict[str, Any] = {
        "reason": reason,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "after_fault": after_fault,
        "invocations": ids,
    }
    where = f"WHERE id IN ({sql_list(ids)})" if ids else ""
    queries = {
        "sys_invocation": f"SELECT * FROM sys_invocation {where}",
        "sys_journal": f"SELECT * FROM sys_journal {where} ORDER BY id, index",
        "sys_journal_events": f"SELECT * FROM sys_journal_events {where} ORDER BY id, appended_at",
    }
    for table, sql in queries.items():
        if not ids:
            dump[table] = "no invocation sent yet"
            continue
        try:
            dump[table] = stack.admin.query(sql)
        except (DrillError, OSError) as exc:
            dump[table] = f"could not query {table}: {exc}"
    dump["stacks"] = stacks
    path = directory / DUMP_FILE
    path.write_text(json.dumps(dump, indent=2, default=str) + "\n", encoding="utf-8")
    (directory / STACKS_FILE).write_text(stacks + "\n", encoding="utf-8")
    return path


def service_stacks(stack: Stack) -> str:
    """The service's stacks (py-spy, for a Python process), or why there are none."""
    service = stack.service
    record = service.live()
    if record is None:
        return f"no stack dump: {service.what} is not running (no live recorded process)"
    pid = record.pid
    state = proc_state(pid)
    head = f"{service.what}, pid {pid}, process state {state}" + (" (stopped: SIGSTOP)" if state == "T" else "")
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError as exc:
        return f"{head}\nno stack dump: cannot read /proc/{pid}/exe: {exc}"
    if "python" not in Path(exe).name:
        return f"{head}\nno stack dump for this target: it runs {exe}, not Python"
    return f"{head}\n{py_spy_dump(pid)}"


def py_spy() -> str | None:
    """py-spy from the project's environment (the dev extra), else PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def py_spy_dump(pid: int) -> str:
    tool = py_spy()
    if tool is None:
        return "no stack dump: py-spy is not installed (it comes with the project's dev extra: pip install py-spy)"
    argv = [tool, "dump", "--pid", str(pid), "--nonblocking"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=PY_SPY_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no stack dump: {' '.join(argv)} failed: {exc}"
    out = (done.stdout + done.stderr).strip()
    return f"$ {' '.join(argv)} (exit {done.returncode})\n{out}"
