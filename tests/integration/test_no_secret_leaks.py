"""No secret ever reaches a log, a report or the console: a crash drill through `inv`, on a remote-style
config whose API key comes from the environment (pointed at the stub LLM), then every file the run left
under the state dir's logs/ and reports/ (and the records, derived configs, the drill's own output)
searched for the API key; and after a tool-error drill, whose fault is the restarted writer's config,
Restate's SQL views (readable by anyone who reaches the admin API) searched for any fault or fault key."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from drillkit import config as drill_config
from drillkit.components.process import http_ok
from drillkit.procs import ProcessTable
from drillkit.stack import Stack
from drillkit.waits import poll

from .conftest import ROOT, make_config, our_live_processes

REMOTE = ROOT / "configs" / "tests" / "config-dgx-remote.yaml"
PORT = 8094
INV = [sys.executable, "-m", "invoke"]


def test_drills_leak_no_api_key_and_leave_no_fault_in_restates_views(tmp_path, project_state, monkeypatch):
    api_key = "sk-drill-" + secrets.token_hex(16)
    monkeypatch.setenv("WRITER_LLM_BASE_URL", f"http://127.0.0.1:{PORT}/v1")
    monkeypatch.setenv("WRITER_LLM_MODEL", "stub-model")
    monkeypatch.setenv("WRITER_LLM_API_KEY", api_key)
    monkeypatch.delenv("RESTATE_WRITER_CONFIG", raising=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    endpoint = ProcessTable(tmp_path / "endpoint-procs")
    argv = [sys.executable, "-m", "drillkit.components.stub_llm", "--port", str(PORT), "--delay-ms", "200"]
    endpoint.spawn("endpoint", argv, tmp_path / "endpoint.log", env=env)
    cfg = make_config(tmp_path, project_state, base=REMOTE, **{"runtime.backend": "native"})
    stack = Stack(drill_config.load(cfg))
    try:
        poll(lambda: http_ok(f"http://127.0.0.1:{PORT}/health"), bool, "the stub endpoint", 30)
        drill = subprocess.run(
            [*INV, "drill.crash", "--config", str(cfg)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert drill.returncode == 0, drill.stdout + drill.stderr
        # The tool-error drill injects its fault out of band (the writer's config): Restate's SQL views,
        # which the admin API serves to anyone without a credential, hold no trace of any fault or key.
        faulted = subprocess.run(
            [*INV, "drill.tool-error", "--keep-up", "--config", str(cfg)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert faulted.returncode == 0, faulted.stdout + faulted.stderr
        derived = stack.state.root / "drill-configs" / "tool-error.yaml"
        assert "fail_first" in derived.read_text()  # the fault travelled in the writer's config
        assert not (stack.state.root / "fault-key").exists()  # and no fault key exists any more
        views = {
            view: json.dumps(stack.admin.query(f"SELECT * FROM {view}"), default=str)
            for view in ("sys_journal", "sys_invocation", "sys_journal_events")
        }
        assert "save_report" in views["sys_journal"]  # the views were read, and hold the drill's invocations
        for view, text in views.items():
            assert "x-drill-fault-key" not in text.lower(), f"a fault key header is kept in {view}"
            assert "fail_first" not in text and "during_step" not in text, f"a request fault is kept in {view}"

        searched = [stack.state.logs, stack.state.reports, stack.state.procs, stack.state.root / "drill-configs"]
        files = [p for folder in searched if folder.exists() for p in folder.rglob("*") if p.is_file()]
        assert any(p.parent.parent == stack.state.reports for p in files), "the drill wrote no report"
        assert any(p.name == "writer.log" for p in files)
        texts = {str(p): p.read_bytes().decode(errors="replace") for p in files}
        texts["drill stdout"], texts["drill stderr"] = drill.stdout, drill.stderr
        leaks = [name for name, text in texts.items() if api_key in text]
        assert leaks == [], f"the API key appears in {leaks}"
    finally:
        subprocess.run([*INV, "down", "--purge", "--config", str(cfg)], cwd=ROOT, env=env, capture_output=True)
        endpoint.kill("endpoint", signal.SIGTERM)
        assert our_live_processes(stack) == []
        stack.close()


def test_the_state_dir_is_closed_to_others(tmp_path, project_state):
    cfg = make_config(tmp_path, project_state)
    stack = Stack(drill_config.load(cfg))
    try:
        assert (Path(stack.state.root).stat().st_mode & 0o777) == 0o700
    finally:
        stack.close()
