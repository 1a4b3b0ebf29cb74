"""One process lifecycle: start, health, signal, freeze, thaw, stop and the log's tail of every process
this tool starts go through `ManagedProcess`. Real short-lived processes (`sleep`, a tiny HTTP server
standing in for restate-server), the same classes the native server, the cluster nodes and dockerd use."""

from __future__ import annotations

import dataclasses
import signal
import socket
import sys
import textwrap
from itertools import islice
from pathlib import Path

import pytest

from drillkit.components.docker_engine import Dockerd
from drillkit.components.restate_cluster import RestateCluster
from drillkit.components.restate_server import NativeServer, RestateProcess
from drillkit.config import Runtime
from drillkit.errors import ComponentError, ProcessMismatch
from drillkit.procs import ProcessTable, proc_start_ticks, proc_state
from drillkit.restate_api import AdminApi, IngressApi
from drillkit.waits import poll

SLEEP = ["sleep", "60"]


def node_process(table: ProcessTable, tmp_path: Path) -> RestateProcess:
    """The class each cluster node and the native server own, on unused loopback ports."""
    return RestateProcess(
        table, "restate-server-n1", "restate node n1", tmp_path / "n1.log", "http://127.0.0.1:1", "http://127.0.0.1:1"
    )


def test_a_process_is_frozen_thawed_and_killed_by_its_verified_pid(table, tmp_path):
    proc = node_process(table, tmp_path)
    record = proc.launch(SLEEP)
    assert table.load("restate-server-n1") == record and proc.live() == record

    assert proc.freeze() == record
    assert proc_state(record.pid) == "T" and proc.frozen()
    assert not proc.healthy()  # frozen: not asked at all
    assert proc.thaw() == record
    assert proc_state(record.pid) != "T" and not proc.frozen()

    stopped = proc.kill(signal.SIGKILL)
    assert stopped is not None and stopped.record == record and stopped.signal == "SIGKILL"
    assert proc_start_ticks(record.pid) is None and table.load("restate-server-n1") is None
    assert proc.freeze() is None and proc.thaw() is None and proc.kill() is None and not proc.frozen()


def test_a_frozen_process_is_stopped_once_thawed(table, tmp_path):
    proc = node_process(table, tmp_path)
    record = proc.launch(SLEEP)
    proc.freeze()
    proc.thaw()
    stopped = proc.stop()
    assert stopped is not None and stopped.signal == "SIGTERM" and not stopped.escalated
    assert proc_start_ticks(record.pid) is None


def test_a_record_that_no_longer_matches_is_never_frozen_nor_killed(table, tmp_path):
    proc = node_process(table, tmp_path)
    record = proc.launch(SLEEP)
    table.save(dataclasses.replace(record, cmdline=["not", "ours"]))
    assert proc.freeze() is None and proc.kill(signal.SIGKILL) is None and proc.stop() is None
    assert proc_state(record.pid) in ("S", "R") and proc_start_ticks(record.pid) == record.start_ticks
    seen = proc.observe()
    assert seen is not None and seen.state == "mismatch"


def test_a_process_that_exits_while_starting_fails_at_once_with_its_log(table, tmp_path):
    proc = node_process(table, tmp_path)
    record = proc.launch([sys.executable, "-c", "import time; print('bad setting x', flush=True); time.sleep(0.3)"])
    with pytest.raises(
        ComponentError, match=r"(?s)restate node n1 \(pid \d+\) is not healthy \(exited\).*bad setting x"
    ):
        proc.wait_healthy(record, timeout_s=30)
    assert "bad setting x" in proc.log_tail() and proc.logs(50)[-1] == "bad setting x"


def test_the_log_is_followed_from_its_start_tail_f_style(table, tmp_path):
    proc = node_process(table, tmp_path)
    proc.launch([sys.executable, "-c", "import time; print('one'); print('two', flush=True); time.sleep(60)"])
    poll(lambda: proc.logs(2), lambda lines: lines == ["one", "two"], "the two lines in the log", 30)
    header = proc.logs(10)[:-2]  # the start line the table writes before the process's own output
    assert header[-1].startswith("=== ") and list(islice(proc.follow_logs(), len(header) + 2))[-2:] == ["one", "two"]


def test_waiting_on_a_process_that_is_not_running_names_it(table, tmp_path):
    with pytest.raises(ComponentError, match=r"restate node n1 is not running; log .*n1\.log"):
        node_process(table, tmp_path).wait_healthy(timeout_s=1)


def native_server(table: ProcessTable, tmp_path: Path) -> NativeServer:
    rt = Runtime()
    args = (tmp_path / "restate-server", tmp_path / "data", table, tmp_path / "restate.log")
    return NativeServer(rt, AdminApi(rt.admin_url), IngressApi(rt.ingress_url), *args)


STOPS = {
    "dockerd": lambda table, tmp_path: Dockerd(tmp_path, table, tmp_path / "dockerd.log").stop(),
    "restate-server": lambda table, tmp_path: native_server(table, tmp_path).stop(),
    "restate-server-n1": lambda table, tmp_path: one_node_cluster(table, tmp_path).node_stop(1),
}


@pytest.mark.parametrize("name", list(STOPS))
def test_a_stop_asked_by_name_refuses_a_record_that_no_longer_matches(table, tmp_path, name):
    """`inv engine.stop`, `inv restate.stop`, `inv restate.node-stop` say what differs, not "not running"."""
    record = table.spawn(name, SLEEP, tmp_path / f"{name}.log")
    table.save(dataclasses.replace(record, cmdline=["someone", "else"]))
    with pytest.raises(ProcessMismatch, match=rf"{name}: pid {record.pid} is no longer.*not signalling it"):
        STOPS[name](table, tmp_path)
    assert proc_start_ticks(record.pid) == record.start_ticks


# -- a cluster node: the same lifecycle behind node_* ----------------------------------------------------

# Stands in for restate-server: reads its --config-file and answers 200 on the node's admin and ingress
# ports, as the real one does on /health and /restate/health.
FAKE_SERVER = """\
    #!{python}
    import http.server, sys, threading, tomllib
    config = tomllib.load(open(sys.argv[sys.argv.index("--config-file") + 1], "rb"))

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    for port in (config["admin"]["bind-port"], config["ingress"]["bind-port"]):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Ok)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("serving", flush=True)
    threading.Event().wait()
"""


def free_base() -> int:
    """A base port whose +1 (node 1's port) is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1]) - 1


def one_node_cluster(table: ProcessTable, tmp_path: Path) -> RestateCluster:
    binary = tmp_path / "restate-server"
    binary.write_text(textwrap.dedent(FAKE_SERVER).format(python=sys.executable))
    binary.chmod(0o755)
    settings = {"nodes": 1, "replication": 1, "admin_base_port": free_base(), "ingress_base_port": free_base()}
    runtime = Runtime.model_validate({"backend": "cluster", "cluster": settings})
    return RestateCluster(
        runtime,
        AdminApi(runtime.admin_url),
        IngressApi(runtime.ingress_url),
        binary,
        tmp_path / "restatectl",
        tmp_path / "cluster",
        tmp_path / "logs",
        table,
    )


def test_a_cluster_node_lives_through_its_managed_process(table, tmp_path):
    cluster = one_node_cluster(table, tmp_path)
    node = cluster.node(1)
    assert cluster.process_of(node).name == node.process == "restate-server-n1"  # records as before
    assert cluster.launch_node(node).startswith("n1 pid ")
    cluster.wait_node_healthy(node, 30)
    record = cluster.live(node)
    assert record is not None and cluster.node_healthy(node)
    assert cluster.log_lines(5)[-1] == "n1 | serving"

    assert cluster.node_freeze(1) == record
    assert cluster.frozen(node) and proc_state(record.pid) == "T"
    assert not cluster.node_healthy(node) and cluster.reachable() == []
    assert cluster.node_thaw(1) == record
    assert not cluster.frozen(node) and cluster.node_healthy(node)

    stopped = cluster.node_kill(1, signal.SIGKILL)
    assert stopped is not None and stopped.record == record
    assert cluster.live(node) is None and cluster.node_kill(1, signal.SIGKILL) is None


def test_a_cluster_stop_thaws_a_frozen_node_first(table, tmp_path):
    cluster = one_node_cluster(table, tmp_path)
    node = cluster.node(1)
    cluster.launch_node(node)
    record = cluster.node_freeze(1)
    assert record is not None
    assert cluster.stop()
    assert proc_start_ticks(record.pid) is None and cluster.live(node) is None
