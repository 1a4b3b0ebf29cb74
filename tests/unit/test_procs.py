"""Process records on real short-lived processes: verified before signalling, never by name."""

import dataclasses
import signal
import sys

import pytest

from drillkit.errors import ProcessMismatch
from drillkit.procs import ProcessTable, is_alive, proc_start_ticks, wait_gone
from drillkit.waits import poll

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def table(tmp_path):
    t = ProcessTable(tmp_path / "procs")
    yield t
    for name in t.names():  # never leave a sleeper behind, even when a test fails
        try:
            t.kill(name, signal.SIGKILL)
        except ProcessMismatch:
            t.forget(name)


def test_spawn_records_pid_start_time_and_command_line(table, tmp_path):
    record = table.spawn("sleeper", SLEEPER, tmp_path / "log" / "sleeper.log")
    assert record.cmdline == SLEEPER
    assert record.start_ticks == proc_start_ticks(record.pid)
    assert table.load("sleeper") == record
    assert table.live("sleeper") == record


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_kill_waits_until_gone_and_forgets(table, tmp_path, sig):
    record = table.spawn("sleeper", SLEEPER, tmp_path / "sleeper.log")
    stopped = table.kill("sleeper", sig)
    assert stopped.record == record and stopped.signal == sig.name and not stopped.escalated
    assert proc_start_ticks(record.pid) is None
    assert table.load("sleeper") is None
    assert table.kill("sleeper") is None  # idempotent


def test_stale_record_of_an_exited_process_is_dropped(table, tmp_path):
    record = table.spawn("quick", [sys.executable, "-c", "pass"], tmp_path / "quick.log")
    assert wait_gone(record.pid, 10)
    assert table.live("quick") is None
    assert table.load("quick") is None
    assert table.kill("quick") is None


def test_reused_pid_is_never_signalled(table, tmp_path):
    record = table.spawn("sleeper", SLEEPER, tmp_path / "sleeper.log")
    # Pretend the recorded process died and the kernel gave its PID to another one: the record's
    # start time no longer matches the live process.
    table.save(dataclasses.replace(record, start_ticks=record.start_ticks - 1))
    with pytest.raises(ProcessMismatch, match="not signalling"):
        table.kill("sleeper", signal.SIGKILL)
    assert proc_start_ticks(record.pid) == record.start_ticks  # still alive: nothing was sent
    assert table.live("sleeper") is None  # and the mismatching record is not trusted
    table.save(record)


def test_other_command_line_is_never_signalled(table, tmp_path):
    record = table.spawn("sleeper", SLEEPER, tmp_path / "sleeper.log")
    table.save(dataclasses.replace(record, cmdline=["restate-server"]))
    with pytest.raises(ProcessMismatch):
        table.kill("sleeper")
    assert proc_start_ticks(record.pid) == record.start_ticks
    table.save(record)


def test_spawn_of_missing_program_is_a_clear_error(table, tmp_path):
    from drillkit.errors import ComponentError

    with pytest.raises(ComponentError, match="cannot start"):
        table.spawn("ghost", ["/nonexistent/binary"], tmp_path / "ghost.log")


def test_sigterm_ignored_past_the_timeout_escalates_to_sigkill(table, tmp_path):
    stubborn = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)",
    ]
    log = tmp_path / "stubborn.log"
    record = table.spawn("stubborn", stubborn, log)
    poll(
        lambda: log.read_text().splitlines(), lambda lines: "ready" in lines, "the SIGTERM handler to be installed", 10
    )
    stopped = table.kill("stubborn", signal.SIGTERM, timeout_s=0.5)
    assert stopped.escalated and stopped.seconds >= 0.5
    assert not is_alive(record.pid)
