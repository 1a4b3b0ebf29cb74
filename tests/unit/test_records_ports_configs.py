"""Records that stop matching their pid are kept and reported; config digests; ports; namespaces; the
state dir's mode; the local model's server checked before spawning. Real short-lived processes."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import socket
import stat
import sys
from pathlib import Path

import pytest

from drillkit import ports
from drillkit.components import local_model
from drillkit.components.process import ConfigStamp, Listen, ManagedProcess
from drillkit.errors import ComponentError, ConfigError, ProcessMismatch
from drillkit.procs import ProcessTable, proc_start_ticks
from drillkit.state import StateDir

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


# -- records that no longer match ---------------------------------------------------------------------


def test_a_mismatching_record_is_kept_reported_and_never_signalled(table, tmp_path):
    record = table.spawn("writer", SLEEPER, tmp_path / "w.log")
    table.save(dataclasses.replace(record, start_ticks=record.start_ticks - 100, cmdline=["old", "writer"]))
    assert table.live("writer") is None
    assert table.load("writer") is not None  # kept: not silently deleted
    [seen] = table.mismatched()
    what = {row[0]: row for row in seen.differences()}
    assert set(what) == {"start time", "command line"}
    assert what["command line"][1] == "old writer" and what["command line"][2] == " ".join(SLEEPER)
    assert "no longer the process" in seen.describe()
    with pytest.raises(ProcessMismatch, match="not signalling"):
        table.kill("writer", signal.SIGKILL)
    assert proc_start_ticks(record.pid) == record.start_ticks  # nothing was sent


def test_spawn_refuses_to_overwrite_a_mismatching_record(table, tmp_path):
    record = table.spawn("writer", SLEEPER, tmp_path / "w.log")
    table.save(dataclasses.replace(record, cmdline=["something", "else"]))
    with pytest.raises(ProcessMismatch, match="forget-mismatched"):
        table.spawn("writer", SLEEPER, tmp_path / "w.log")
    assert table.load("writer").cmdline == ["something", "else"]
    [seen] = table.mismatched()
    table.forget_mismatched(seen)
    assert table.load("writer") is None and table.mismatched() == []


def test_a_record_whose_pid_is_gone_is_cleared(table, tmp_path):
    record = table.spawn("quick", [sys.executable, "-c", "pass"], tmp_path / "q.log")
    table.kill_record(record, signal.SIGKILL)  # or it exits by itself: either way the pid is gone
    table.save(record)
    assert table.observe("quick") is None
    assert table.load("quick") is None


def test_records_carry_the_config_digest_and_old_records_still_load(table, tmp_path):
    record = table.spawn("w", SLEEPER, tmp_path / "w.log", config_digest="abc", config_source="a.yaml")
    assert table.load("w").config_digest == "abc" and table.load("w").config_source == "a.yaml"
    old = {k: v for k, v in dataclasses.asdict(record).items() if not k.startswith("config_")}
    table.path("w").write_text(__import__("json").dumps(old))
    assert table.live("w").config_digest is None


def test_processes_in_this_namespace_are_not_elsewhere(table, tmp_path):
    table.spawn("w", SLEEPER, tmp_path / "w.log")
    assert table.elsewhere() == []


def test_a_process_in_another_network_namespace_is_named(table, tmp_path, monkeypatch):
    record = table.spawn("w", SLEEPER, tmp_path / "w.log")
    monkeypatch.setattr("drillkit.procs.net_namespace", lambda pid: "net:[1]" if pid == "self" else "net:[2]")
    assert table.elsewhere() == [(record, "net:[2]")]


# -- a component started with another config ----------------------------------------------------------


class Sleeper(ManagedProcess):
    def __init__(self, procs, log, port):
        super().__init__(procs, "sleeper", "sleeper", log)
        self.port = port
        self.stop_timeout_s = 5.0

    def health_url(self):
        return "http://127.0.0.1:1/"

    def listens(self):
        return [Listen("127.0.0.1", self.port, "sleeper.port")]

    def wait_healthy(self, record, timeout_s=0):
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_same_config_is_reused_another_is_restarted_and_said(table, tmp_path, progress_lines):
    sleeper = Sleeper(table, tmp_path / "s.log", free_port())
    first = sleeper.spawn_or_reuse(SLEEPER, stamp=ConfigStamp("a" * 64, "a.yaml"))
    assert sleeper.spawn_or_reuse(SLEEPER, stamp=ConfigStamp("a" * 64, "a.yaml")) == first
    second = sleeper.spawn_or_reuse(SLEEPER, stamp=ConfigStamp("b" * 64, "b.yaml"))
    assert second.pid != first.pid and second.config_source == "b.yaml"
    assert proc_start_ticks(first.pid) is None
    assert any("runs on a.yaml: restarting it on b.yaml" in line for line in progress_lines)


def test_port_taken_by_another_program_fails_at_once(table, tmp_path):
    with listener() as sock:
        port = sock.getsockname()[1]
        sleeper = Sleeper(table, tmp_path / "s.log", port)
        sleeper.port_release_grace_s = 0.2  # the real grace (5 s) is for a process just killed; none here
        with pytest.raises(ports.PortInUse, match=rf"port {port} .* another program.*sleeper\.port"):
            sleeper.spawn_or_reuse(SLEEPER)
    assert table.load("sleeper") is None


def test_port_taken_by_one_of_ours_names_it(table, tmp_path):
    port = free_port()
    server = [sys.executable, "-c", f"import socket,time; s=socket.create_server(('127.0.0.1',{port})); time.sleep(60)"]
    other = table.spawn("llm", server, tmp_path / "llm.log")
    from drillkit.waits import poll

    poll(lambda: ports.listening("127.0.0.1", port), bool, "the listener", 10)
    sleeper = Sleeper(table, tmp_path / "s.log", port)
    sleeper.port_release_grace_s = 0.2  # the llm keeps its port: waiting the real 5 s grace would prove nothing more
    with pytest.raises(ports.PortInUse, match=rf"our llm \(pid {other.pid}"):
        sleeper.spawn_or_reuse(SLEEPER)


def test_a_free_port_is_free():
    assert not ports.listening("127.0.0.1", free_port())
    ports.ensure_free("127.0.0.1", free_port(), "x", "x.port", ProcessTable(Path("/nonexistent")))


# -- the state dir, the local model's server ----------------------------------------------------------


def test_state_dir_is_0700_from_first_use(tmp_path):
    state = StateDir(tmp_path / "fresh" / ".drill")
    state.prepare()
    assert stat.S_IMODE(state.root.stat().st_mode) == 0o700
    opened = tmp_path / "open"
    opened.mkdir(mode=0o755)
    os.chmod(opened, 0o755)
    StateDir(opened).prepare()
    assert stat.S_IMODE(opened.stat().st_mode) == 0o700


def test_a_shared_sticky_dir_is_refused_as_state_dir(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    with pytest.raises(ConfigError, match="shared directory"):
        StateDir(shared).prepare()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777


def test_local_model_without_xllamacpp_fails_at_once_with_the_fix(tmp_path, monkeypatch):
    from drillkit import config as drill_config
    from drillkit.config import PROJECT_ROOT

    config = drill_config.load(PROJECT_ROOT / "configs" / "local.yaml")
    config = config.model_copy(update={"local_model": config.local_model.model_copy(update={"gguf": tmp_path / "m"})})
    (tmp_path / "m").write_bytes(b"")
    state = StateDir(tmp_path / "state")
    model = local_model.LocalModel(config, state, ProcessTable(state.procs))
    monkeypatch.setattr(local_model.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ComponentError, match=re.escape(local_model.install_hint()) + r".*bootstrap\.sh"):
        model.start()
    assert model.live() is None and not state.log_file("llm").exists()  # nothing was spawned


# -- digests per component ----------------------------------------------------------------------------


def _stack_on(tmp_path, **overrides):
    import yaml

    from drillkit import config as drill_config
    from drillkit.config import PROJECT_ROOT
    from drillkit.stack import Stack
    from writer_service.config import apply_overrides

    data = yaml.safe_load((PROJECT_ROOT / "configs" / "local.yaml").read_text())
    data["runtime"]["state_dir"] = str(tmp_path / "state")
    apply_overrides(data, overrides)
    path = tmp_path / f"config-{len(list(tmp_path.glob('config-*')))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return Stack(drill_config.load(path))


def test_writer_digest_follows_its_sections_not_the_runtime(tmp_path):
    a = _stack_on(tmp_path)
    same_writer = _stack_on(tmp_path, **{"runtime.server_env": {"X": "1"}})
    other_writer = _stack_on(tmp_path, **{"pipeline.sections": 2})
    digest = a.writer.config_stamp().digest
    assert same_writer.writer.config_stamp().digest == digest
    assert other_writer.writer.config_stamp().digest != digest
    derived = a.writer.derived_config("d", {"writer_model.timeout_s": 1.5})
    assert a.writer.config_stamp(derived).digest != digest
    assert a.writer.config_stamp(derived).source == derived
    assert a.writer.config_stamp(a.config.source).digest == digest
    assert a.server.settings_digest() != same_writer.server.settings_digest()
    assert a.server.settings_digest() == other_writer.server.settings_digest()


def test_the_tool_error_drills_derived_config_carries_the_fault(tmp_path):
    # drill.tool-error and the chaos action restart the writer on this file: the fault travels in the
    # writer's config, never in a request, and the restarted writer is a different one (its digest).
    from writer_service.config import WriterConfig

    a = _stack_on(tmp_path)
    derived = a.writer.derived_config("tool-error", {"faults.tool_error.fail_first": 2})
    assert WriterConfig.load(derived).faults.tool_error.fail_first == 2
    assert a.config.faults.tool_error.fail_first == 0
    assert a.writer.config_stamp(derived).digest != a.writer.config_stamp().digest


def test_restate_on_another_runtime_is_refused_naming_both_configs(table, tmp_path):
    from drillkit.errors import ConfigMismatch

    a = _stack_on(tmp_path)
    b = _stack_on(tmp_path, **{"runtime.server_env": {"RESTATE_X": "1"}})
    record = a.procs.spawn(
        "restate-server", SLEEPER, tmp_path / "r.log", config_digest=a.server.settings_digest(), config_source="A"
    )
    try:
        assert a.server.launch() == f"pid {record.pid} (already running)"
        with pytest.raises(ConfigMismatch, match=rf"pid {record.pid}.*of A; .*{b.config.source}.*inv down --config A"):
            b.server.launch()
    finally:
        a.procs.kill_record(record, signal.SIGKILL)


def test_down_reports_a_mismatching_record_and_fails_but_keeps_it(table, tmp_path):
    from drillkit.errors import DrillError

    stack = _stack_on(tmp_path)
    record = stack.procs.spawn("writer", SLEEPER, tmp_path / "w.log")
    try:
        stack.procs.save(dataclasses.replace(record, cmdline=["not", "ours"]))
        with pytest.raises(DrillError, match=rf"writer: pid {record.pid} is no longer.*not signalled; record kept"):
            stack.down()
        assert proc_start_ticks(record.pid) == record.start_ticks
        rows = {row[0]: row for row in stack.status()}
        assert "NOT OURS NOW" in rows["writer service"][1]
        stack.down(forget_mismatched=True)
        assert stack.procs.load("writer") is None
        assert proc_start_ticks(record.pid) == record.start_ticks  # still never signalled
    finally:
        stack.procs.kill_record(record, signal.SIGKILL)


def test_a_record_from_another_pid_namespace_is_never_trusted_signalled_or_cleared(tmp_path):
    """A `scripts/loopback-only --contained` shell has a PID namespace of its own: its pid 8 is not the
    host's pid 8. Seen from here its record is kept as it is (that shell's `inv down` needs it), said to be
    elsewhere, and never looked up."""
    from dataclasses import replace

    from drillkit.procs import ProcessRecord, ProcessTable, pid_namespace

    table = ProcessTable(tmp_path / "procs")
    mine = ProcessRecord(
        "writer", os.getpid(), 1, ["python"], 0.0, str(tmp_path / "w.log"), pid_namespace=pid_namespace()
    )
    theirs = replace(mine, name="llm", pid=999_999, pid_namespace="pid:[1]")  # gone here: would be cleared
    table.save(theirs)
    seen = table.observe("llm")
    assert seen is not None and seen.state == "elsewhere"
    assert table.live("llm") is None and table.load("llm") == theirs  # not running here, still recorded
    assert [r.name for r, where in table.elsewhere()] == ["llm"] and "pid:[1]" in table.elsewhere()[0][1]
    assert table.mismatched() == []


def test_an_install_without_its_checkout_is_refused_at_once_naming_the_fix(tmp_path):
    from drillkit.config import require_checkout

    require_checkout()  # this checkout
    with pytest.raises(ConfigError) as caught:
        require_checkout(tmp_path)  # what PROJECT_ROOT is after a plain `pip install .`: site-packages
    assert str(tmp_path) in str(caught.value) and "pip install -e '.[local-llm]'" in str(caught.value)
