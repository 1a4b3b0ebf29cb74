"""A `uri` target: a deployment the tool did not start. What needs a kill refuses (exit 2); the rest runs,
with Restate's journal as its evidence, and the service is never signalled."""

from __future__ import annotations

import os
import subprocess
import sys

from drillkit import config as drill_config
from drillkit.stack import Stack

from .conftest import ROOT, make_config, our_live_processes
from .stranger import PORT, SERVICE, stranger

INV = [sys.executable, "-m", "invoke"]


def test_a_uri_target_runs_what_needs_no_kill(tmp_path, project_state):
    """A deployment the tool did not start: crash refuses with exit 2, server-crash runs on the journal."""
    port = PORT + 1
    cfg = make_config(
        tmp_path,
        project_state,
        target={**stranger(port), "command": None, "uri": f"http://127.0.0.1:{port}"},
    )
    stack = Stack(drill_config.load(cfg))
    env = {**os.environ, "NOTES_PORT": str(port), "LLM_URL": stack.config.writer_model.base_url}
    theirs = subprocess.Popen([sys.executable, str(SERVICE)], env=env, cwd=ROOT)
    try:
        refused = subprocess.run([*INV, "drill.crash", "--config", str(cfg)], cwd=ROOT, capture_output=True, text=True)
        assert refused.returncode == 2
        assert "cannot kill and restart it" in refused.stderr
        ran = subprocess.run(
            [*INV, "drill.server-crash", "--config", str(cfg), "--report-dir", str(tmp_path / "sc")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
        assert "no LLM tap (target.uri" in (tmp_path / "sc" / "report.md").read_text()
        assert theirs.poll() is None  # never signalled: not ours
    finally:
        theirs.terminate()
        theirs.wait(timeout=30)
        stack.down()
        assert our_live_processes(stack) == []
        stack.close()
