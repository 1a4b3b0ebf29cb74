"""The TypeScript reference target (targets/ts_writer: Restate's TypeScript SDK), described only by
configs/ts-writer.yaml and run by drillkit's own components: the real restate-server, the local model,
the service as a node process (started, recorded and stopped by `Stack`), registered, invoked.

The server signs its requests with the state dir's key (runtime.request_identity, on by default) and the
service is given the public half through `target.identity_key_env` (`RESTATE_IDENTITY_KEY`): every
invocation here goes through a signature check, and an unsigned request straight to the service must be
refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from drillkit import config as drill_config
from drillkit.evidence import first_line, journal_steps, transient_errors
from drillkit.stack import Stack
from drillkit.waits import poll
from writer_service.config import read_config_data

from .conftest import ROOT, make_config, our_live_processes

pytestmark = pytest.mark.integration

TS_CONFIG = ROOT / "configs" / "ts-writer.yaml"
DIST = ROOT / "targets" / "ts_writer" / "dist" / "app.js"
COMPLETION_TIMEOUT_S = 300.0  # ~4 s on an idle machine; minutes when five others share the two cores


@pytest.fixture(scope="module")
def ts(tmp_path_factory: pytest.TempPathFactory, project_state: Path) -> Any:
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH: the TypeScript target cannot run (install Node.js >= 20)")
    if not DIST.is_file():
        pytest.skip(f"{DIST.relative_to(ROOT)} is not built: run `bash scripts/bootstrap.sh` (npm ci + tsc)")
    directory = tmp_path_factory.mktemp("ts-writer")
    reports = directory / "reports"
    # make_config copies a file without following `extends`: hand it the merged mapping.
    merged = directory / "merged.yaml"
    merged.write_text(json.dumps(read_config_data(TS_CONFIG)))
    path = make_config(
        directory,
        project_state,
        base=merged,
        **{
            "target.env.ALLOWED_ROOTS": str(directory),
            "target.body.output_dir": str(reports),
        },
    )
    stack = Stack(drill_config.load(path))
    try:
        stack.up()
        # The state dir's key: restate-server signs with its private half, the target gets the public one
        # through `target.identity_key_env` (RESTATE_IDENTITY_KEY), as for any configured target.
        yield stack, stack.state.identity_public_key(), reports
    finally:
        stack.down(purge=True)
        assert our_live_processes(stack) == []
        stack.close()


def run(stack: Stack, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Send one invocation of the target; wait until Restate says it completed (success or not)."""
    target = stack.target
    assert target is not None
    invocation_id = stack.ingress.send(body, service=target.service, handler=target.handler)
    row = poll(
        lambda: stack.admin.invocation(invocation_id) or {},
        lambda r: r.get("status") == "completed",
        f"invocation {invocation_id} to complete (target log {target.log_file})",
        COMPLETION_TIMEOUT_S,
        interval_s=0.1,
    )
    return invocation_id, row


def report_text(topic: str, outline: str, draft: str) -> str:
    return f"# {topic}\n\n## Outline\n\n{outline}\n\n## Report\n\n{draft}\n"


def test_one_invocation_writes_the_report_in_three_journaled_steps(ts):
    stack, _, reports = ts
    body = stack.target.body()
    invocation_id, row = run(stack, body)
    assert row.get("completion_result") == "success", first_line(row.get("completion_failure"), 400)

    output = stack.ingress.output(invocation_id)
    assert output["topic"] == body["topic"] and "drill-" in body["topic"]  # the nonce went through
    assert output["outline"] and output["draft"]  # the 135M model's words are not checked, only their place
    saved = Path(output["path"])
    assert saved == reports / f"report-{invocation_id}.md"
    content = saved.read_bytes()
    assert content.decode() == report_text(body["topic"], output["outline"], output["draft"])
    assert output["bytes"] == len(content)
    assert output["sha256"] == hashlib.sha256(content).hexdigest()
    assert sorted(p.name for p in reports.iterdir() if invocation_id in p.name) == [saved.name]  # no temp left

    steps = journal_steps(stack.admin.journal(invocation_id))
    assert [s.name for s in steps] == ["outline", "draft", "save_report"]
    assert all(s.completed and s.result == "Success" for s in steps), steps


def test_save_report_failures_are_retried_by_restate(ts):
    stack, _, reports = ts
    target = stack.target
    target.restart(tool_failures=2)
    try:
        invocation_id, row = run(stack, target.body())
    finally:
        target.restart()  # the other tests get a target without faults
    assert row.get("completion_result") == "success", first_line(row.get("completion_failure"), 400)

    errors = transient_errors(stack.admin.journal_events(invocation_id))
    on_save = [e for e in errors if e.get("related_command_name") == "save_report"]
    assert len(on_save) == 2, errors
    assert "execution 1 of the first 2" in str(on_save[0].get("error_message")), on_save
    assert "execution 2 of the first 2" in str(on_save[1].get("error_message")), on_save
    steps = journal_steps(stack.admin.journal(invocation_id))
    assert [s.name for s in steps] == ["outline", "draft", "save_report"]  # retries add no step
    assert (reports / f"report-{invocation_id}.md").is_file()


def test_a_directory_outside_the_allowed_root_is_refused_terminally(ts, tmp_path):
    stack, _, reports = ts
    # Lexically outside: refused before any model call (no step at all in the journal).
    invocation_id, row = run(stack, {**stack.target.body(), "output_dir": str(tmp_path / "elsewhere")})
    assert row.get("completion_result") == "failure"
    assert "outside the allowed roots" in str(row.get("completion_failure"))
    assert journal_steps(stack.admin.journal(invocation_id)) == []
    assert not (tmp_path / "elsewhere").exists()

    # Inside by name, outside through a symlink: refused by save_report itself, terminally (no retry).
    escape = reports.parent / "escape"
    escape.symlink_to(tmp_path, target_is_directory=True)
    invocation_id, row = run(stack, {**stack.target.body(), "output_dir": str(escape / "deeper")})
    assert row.get("completion_result") == "failure"
    assert f"resolves to {tmp_path}" in str(row.get("completion_failure"))
    steps = journal_steps(stack.admin.journal(invocation_id))
    assert [s.name for s in steps] == ["outline", "draft", "save_report"]
    assert steps[-1].result == "Failure"
    assert list(tmp_path.iterdir()) == []


def test_unsigned_requests_to_the_service_are_refused(ts):
    stack, public_key, _ = ts
    target = stack.target
    # h2c with prior knowledge, as Restate speaks to it; no x-restate-jwt-v1 header.
    with httpx.Client(http1=False, http2=True, timeout=httpx.Timeout(10.0, connect=2.0)) as client:
        discover = client.get(
            f"{target.url}/discover", headers={"accept": "application/vnd.restate.endpointmanifest.v3+json"}
        )
        invoke = client.post(
            f"{target.url}/invoke/ReportWriter/write",
            headers={"content-type": "application/vnd.restate.invocation.v5"},
            content=b"",
        )
    assert discover.status_code == 401, (discover.status_code, discover.text[:300])
    assert invoke.status_code == 401, (invoke.status_code, invoke.text[:300])
    # The same service, asked by the server that holds the private half, answers: registration is a
    # signed discovery request.
    stack.register(force=True)
    assert "ReportWriter" in stack.admin.services()
    assert public_key in stack.server.log_file.read_text(errors="replace")
