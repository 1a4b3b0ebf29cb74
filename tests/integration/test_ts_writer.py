"""The TypeScript reference target (targets/ts_writer: Restate's TypeScript SDK), described only by
configs/ts-writer.yaml and run by drillkit's own components: the real restate-server, the local model,
the service as a node process (started, recorded and stopped by `Stack`), registered, invoked.

Request identity: a ts_writer process given a key in `RESTATE_IDENTITY_KEY` must refuse unsigned
requests (and the same process without one must not). Where the tool itself makes the server sign and
hands the target its public key (`target.identity_key_env`, `runtime.request_identity`), every
invocation here is a signed one, and the stack's target must refuse unsigned requests too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from drillkit import config as drill_config
from drillkit.blackhole import closed_port
from drillkit.components.target import port_accepts
from drillkit.evidence import first_line, journal_steps, transient_errors
from drillkit.stack import Stack
from drillkit.waits import poll
from writer_service.config import read_config_data

from .conftest import ROOT, make_config, our_live_processes

pytestmark = pytest.mark.integration

TS_CONFIG = ROOT / "configs" / "ts-writer.yaml"
DIST = ROOT / "targets" / "ts_writer" / "dist" / "app.js"
COMPLETION_TIMEOUT_S = 300.0  # ~4 s on an idle machine; minutes when five others share the two cores
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58(raw: bytes) -> str:
    number, text = int.from_bytes(raw, "big"), ""
    while number:
        number, digit = divmod(number, 58)
        text = BASE58[digit] + text
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + text


def fresh_public_key() -> str:
    """`publickeyv1_<base58 of the raw 32 bytes>` of a fresh ed25519 key (the format restate-server logs
    at start and the SDK checks signatures against)."""
    script = (
        "const { publicKey } = require('crypto').generateKeyPairSync('ed25519');"
        "process.stdout.write(publicKey.export({ format: 'jwk' }).x);"
    )
    x = subprocess.run(["node", "-e", script], check=True, capture_output=True, text=True, timeout=60).stdout
    raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))  # JWK: unpadded base64url
    assert len(raw) == 32, f"an ed25519 public key has 32 bytes, got {len(raw)}"
    return "publickeyv1_" + base58(raw)


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
        **{"target.env.ALLOWED_ROOTS": str(directory), "target.body.output_dir": str(reports)},
    )
    stack = Stack(drill_config.load(path))
    try:
        stack.up()
        yield stack, reports
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
    stack, reports = ts
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
    stack, reports = ts
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
    stack, reports = ts
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


def unsigned(url: str) -> tuple[int, int]:
    """Status of an unsigned discovery and an unsigned invocation (h2c with prior knowledge, as Restate
    speaks to the service; no x-restate-jwt-v1 header)."""
    with httpx.Client(http1=False, http2=True, timeout=httpx.Timeout(10.0, connect=2.0)) as client:
        discover = client.get(f"{url}/discover", headers={"accept": "application/vnd.restate.endpointmanifest.v3+json"})
        invoke = client.post(
            f"{url}/invoke/ReportWriter/write",
            headers={"content-type": "application/vnd.restate.invocation.v5"},
            content=b"",
        )
    return discover.status_code, invoke.status_code


def test_a_key_in_restate_identity_key_refuses_unsigned_requests(tmp_path):
    if shutil.which("node") is None or not DIST.is_file():
        pytest.skip("node or targets/ts_writer/dist is missing (bash scripts/bootstrap.sh)")

    def statuses(extra: dict[str, str]) -> tuple[int, int]:
        port = closed_port()
        env = {**os.environ, "PORT": str(port), "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", **extra}
        with (tmp_path / f"ts-writer-{port}.log").open("w") as log:
            process = subprocess.Popen(["node", str(DIST)], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:  # our own child: stopped through its handle, never looked up by name
            poll(
                lambda: process.poll() is None and port_accepts("127.0.0.1", port),
                bool,
                f"ts_writer on 127.0.0.1:{port} (log {log.name})",
                60.0,
            )
            return unsigned(f"http://127.0.0.1:{port}")
        finally:
            process.terminate()
            process.wait(timeout=10)

    assert statuses({"RESTATE_IDENTITY_KEY": fresh_public_key()}) == (401, 401)
    discover, _ = statuses({})  # the same service without a key: the 401 came from the key
    assert discover == 200


def test_the_stack_target_refuses_unsigned_requests_when_the_tool_gives_it_a_key(ts):
    stack, _ = ts
    target = stack.target
    spec = target.spec
    if not spec.identity_key_env or not target.environment().get(spec.identity_key_env):
        pytest.skip(f"this drillkit does not give the target a key in {spec.identity_key_env} (no request identity)")
    assert unsigned(target.url) == (401, 401)
    # ... while Restate, which signs, registered it and ran the invocations of the tests above.
    assert "ReportWriter" in stack.admin.services()
