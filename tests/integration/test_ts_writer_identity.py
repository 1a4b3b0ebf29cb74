"""Request identity in the TypeScript reference target (targets/ts_writer), on a process of the test's
own: given a key in `RESTATE_IDENTITY_KEY` it must answer 401 to unsigned requests, and without one it
must not (so the 401 comes from the key, not from a broken request). No Restate server is needed: an
unsigned request is what anything but Restate would send. The signed side is covered where the tool
hands the stack's target the server's key (test_ts_writer.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from drillkit.blackhole import closed_port
from drillkit.components.target import port_accepts
from drillkit.identity import new_private_key_pem, public_key_of
from drillkit.waits import poll

from .conftest import ROOT

pytestmark = pytest.mark.integration

DIST = ROOT / "targets" / "ts_writer" / "dist" / "app.js"


def fresh_public_key() -> str:
    """`publickeyv1_...` of a fresh ed25519 key, made the way the tool makes the state dir's."""
    return public_key_of(new_private_key_pem())


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


def statuses(log_dir: Path, extra: dict[str, str]) -> tuple[int, int]:
    """Start ts_writer with `extra` in its environment, ask it unsigned, stop it."""
    port = closed_port()
    inherited = {k: v for k, v in os.environ.items() if k != "RESTATE_IDENTITY_KEY"}  # only `extra` decides
    env = {**inherited, "PORT": str(port), "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", **extra}
    log = log_dir / f"ts-writer-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(["node", str(DIST)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:  # our own child: stopped through its handle, never looked up by name
        poll(
            lambda: process.poll() is None and port_accepts("127.0.0.1", port),
            bool,
            f"ts_writer on 127.0.0.1:{port} (log {log})",
            60.0,
        )
        return unsigned(f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_key_in_restate_identity_key_refuses_unsigned_requests(tmp_path):
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH: the TypeScript target cannot run (install Node.js >= 20)")
    if not DIST.is_file():
        pytest.skip(f"{DIST.relative_to(ROOT)} is not built: run `bash scripts/bootstrap.sh` (npm ci + tsc)")
    assert statuses(tmp_path, {"RESTATE_IDENTITY_KEY": fresh_public_key()}) == (401, 401)
    discover, _ = statuses(tmp_path, {})  # the same service without a key
    assert discover == 200
