"""The HOW-TO replayed through the `inv` command line: up, invoke, send, kill -9, restart, describe, down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from drillkit import config as drill_config
from drillkit.evidence import completed_step_names, in_flight_step, journaled_completions, reexecuted_after_journaled
from drillkit.kit.pace import FIRST_STEP_S
from drillkit.procs import is_alive
from drillkit.stack import Stack
from drillkit.waits import poll

from .conftest import ROOT, make_config, our_live_processes

INV = [sys.executable, "-m", "invoke"]
COMPLETION_S = 300  # five LLM steps from a cold model on a busy 2-core machine, with room


@pytest.fixture(scope="module")
def cfg(tmp_path_factory, project_state):
    path = make_config(tmp_path_factory.mktemp("howto"), project_state)
    yield path
    subprocess.run([*INV, "down", "--purge", "--config", str(path)], cwd=ROOT, check=False)


def inv(cfg: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [*INV, *args, "--config", str(cfg)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    if check and out.returncode != 0:
        raise AssertionError(f"inv {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return out


def test_the_howto_end_to_end(cfg):
    stack = Stack(drill_config.load(cfg))
    up = inv(cfg, "up")
    assert "registered http://127.0.0.1:9080" in up.stdout

    status = inv(cfg, "status").stdout
    assert "ok, registered" in status

    report = inv(cfg, "invoke").stdout
    payload = json.loads(report[report.index("{") :])
    assert Path(payload["output_path"]).is_file()

    sent = inv(cfg, "send").stdout
    invocation_id = stack.state.last_invocation()
    assert invocation_id and invocation_id in sent

    # kill -9 once the first step has finished, so there is something to replay
    poll(lambda: stack.admin.journal(invocation_id), lambda rows: len(rows) >= 3, "the first step", FIRST_STEP_S)
    writer = stack.procs.live("writer")
    killed = inv(cfg, "kill", "--signal", "KILL").stdout
    assert f"pid {writer.pid} verified, sent SIGKILL" in killed
    assert not is_alive(writer.pid)
    row = poll(
        lambda: stack.admin.invocation(invocation_id) or {},
        lambda r: r.get("status") == "backing-off",
        "Restate to back off",
        30,
    )
    assert row["last_failure_error_code"] == "RT0010"

    inv(cfg, "service.start")
    describe = poll(
        lambda: inv(cfg, "describe").stdout,
        lambda text: "completed with success" in text,
        "`restate invocations describe` to say completed with success",
        COMPLETION_S,
        interval_s=1.0,
    )
    assert invocation_id in describe or "WriterAgentRestate/run" in describe
    listing = inv(cfg, "list", "--all").stdout
    assert invocation_id in listing

    down = inv(cfg, "down").stdout
    assert "writer service" in down and "restate-server" in down
    assert our_live_processes(stack) == []
    assert "nothing of ours was running" in inv(cfg, "down").stdout  # idempotent

    inv(cfg, "up")
    assert sorted(our_live_processes(stack)) == ["llm", "restate-server", "writer"]
    inv(cfg, "down")
    assert our_live_processes(stack) == []
    stack.close()


def test_bad_config_is_a_clean_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("writer_model: {base_url: 'http://x', model: m, timeout_s: -1}\n")
    out = inv(bad, "status", check=False)
    assert out.returncode == 2
    assert f"{bad}: field writer_model.timeout_s" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_howto_by_hand_against_inv_up(cfg):
    """The HOW-TO's own commands (curl, the downloaded CLI, kill, the writer script) against `inv up`."""
    stack = Stack(drill_config.load(cfg))
    inv(cfg, "up")
    cli = str(stack.cli().binary)
    env = {**os.environ, "RESTATE_ADMIN_URL": stack.rt.admin_url}
    # The HOW-TO's curl body, written out here on purpose rather than taken from drillkit.howto: this
    # test checks the tool against the HOW-TO, so it must not share the tool's own request builder.
    body = json.dumps(
        {
            "prompt": "Ecris un rapport plus long pour tester un redemarrage.",
            "research_info": {
                "temp_dir": "/tmp",
                "output_dir": "/tmp/restate-output",
                "max_search_plan": "1",
                "vector_store_name": None,
                "vector_store_id": None,
                "search_results": [],
            },
        }
    )
    sent = subprocess.run(
        [
            "curl",
            "-s",
            "-X",
            "POST",
            f"{stack.rt.ingress_url}/WriterAgentRestate/run/send",
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    invocation_id = json.loads(sent.stdout)["invocationId"]
    poll(lambda: stack.admin.journal(invocation_id), lambda rows: len(rows) >= 3, "the first step", FIRST_STEP_S)

    writer_pid = json.loads((stack.state.procs / "writer.json").read_text())["pid"]
    subprocess.run(["kill", "-9", str(writer_pid)], check=True)  # `kill <PID_WRITER>`, by hand
    poll(lambda: is_alive(writer_pid), lambda alive: not alive, "the writer to die", 10)

    manual = subprocess.Popen(  # the HOW-TO's restart, not the tool's
        [sys.executable, "scripts/restate_writer_service.py"],
        cwd=ROOT,
        env={**os.environ, "RESTATE_WRITER_CONFIG": str(cfg)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        listing = subprocess.run([cli, "invocations", "list"], env=env, capture_output=True, text=True, check=True)
        assert "WriterAgentRestate" in listing.stdout or invocation_id in listing.stdout
        described = poll(
            lambda: (
                subprocess.run(
                    [cli, "invocations", "describe", invocation_id], env=env, capture_output=True, text=True
                ).stdout
            ),
            lambda text: "completed with success" in text,
            "`restate invocations describe` to say completed with success (Attendu)",
            120,
            interval_s=1.0,
        )
        assert "completed with success" in described
    finally:
        manual.terminate()
        manual.wait(timeout=30)
        inv(cfg, "down")
        stack.close()


def test_a_restate_server_killed_by_hand_and_restarted_with_inv_loses_nothing(cfg):
    """`kill -9` of restate-server mid-invocation (its recorded pid, by hand), then `inv restate.start`."""
    stack = Stack(drill_config.load(cfg))
    inv(cfg, "up")
    inv(cfg, "send")
    invocation_id = stack.state.last_invocation()
    assert invocation_id
    rows = poll(
        lambda: stack.admin.journal(invocation_id),
        lambda r: len(completed_step_names(r)) >= 1 and in_flight_step(r) is not None,
        "a finished step and one in flight",
        120,
        interval_s=0.05,
    )
    done_before = completed_step_names(rows)
    server_pid = json.loads((stack.state.procs / "restate-server.json").read_text())["pid"]
    subprocess.run(["kill", "-9", str(server_pid)], check=True)
    poll(lambda: is_alive(server_pid), lambda alive: not alive, "restate-server to die", 10)

    assert "restate-server pid" in inv(cfg, "restate.start").stdout
    inv(cfg, "resume", check=False)  # Restate may already have resumed it by itself
    poll(
        lambda: inv(cfg, "describe").stdout,
        lambda text: "completed with success" in text,
        "the invocation to complete with success after the server restart",
        300,
        interval_s=1.0,
    )
    journaled = journaled_completions(stack.admin.journal(invocation_id))
    assert set(done_before) <= set(journaled)  # the journal kept every step finished before the crash
    kept = {step: at for step, at in journaled.items() if step in done_before}
    assert reexecuted_after_journaled(stack.writer.executions(invocation_id), kept) == []
    inv(cfg, "down")
    stack.close()
