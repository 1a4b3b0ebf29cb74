"""A request that can never succeed ends as a terminal error before the first model call: here an
output_dir the writer may not create (an immutable directory as root: EPERM; a read-only one otherwise:
EACCES), through the real Restate and the real writer, with nginx (not part of this project) in front of
the real model counting what it is asked. The same proxy counts a good request's five calls, so a count
of zero means something."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drillkit import config as drill_config
from drillkit.bench.gate import NginxProxy, model_upstream
from drillkit.howto import howto_body
from drillkit.stack import Stack
from drillkit.waits import poll
from tests.integration.conftest import make_config, our_live_processes

PROXY_PORT = 8098
TERMINAL_WITHIN_S = 5.0

pytestmark = pytest.mark.skipif(
    shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
    reason="nginx (the independent proxy) is not installed: apt-get install -y nginx (scripts/bootstrap.sh does)",
)


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory, project_state: Path) -> Iterator[tuple[Stack, NginxProxy]]:
    directory = tmp_path_factory.mktemp("refused")
    plain = Stack(drill_config.load(make_config(directory, project_state)))
    proxy = NginxProxy(model_upstream(plain), PROXY_PORT)
    plain.close()
    path = make_config(directory, project_state, **{"writer_model.base_url": proxy.base_url})
    stack = Stack(drill_config.load(path))
    try:
        proxy.start()
        stack.up()
        yield stack, proxy
    finally:
        stack.down(purge=True)
        assert our_live_processes(stack) == []
        stack.close()
        proxy.cleanup()


@pytest.fixture
def uncreatable() -> Iterator[tuple[Path, str]]:
    """A directory under /tmp in which the writer may not create the output dir, and the errno expected."""
    parent = Path(tempfile.mkdtemp(prefix="refused-", dir="/tmp"))
    locked = parent / "locked"
    locked.mkdir()
    undo: list[str] = []
    if os.geteuid() == 0:
        # Root ignores mode bits; an immutable directory refuses even root (EPERM).
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(locked)]).returncode != 0:
            shutil.rmtree(parent)
            pytest.skip("running as root and chattr +i is not available on /tmp's filesystem")
        undo = ["chattr", "-i", str(locked)]
        expected = "EPERM"
    else:
        locked.chmod(0o500)
        expected = "EACCES"
    try:
        yield locked / "reports", expected
    finally:
        if undo:
            subprocess.run(undo, check=True)
        locked.chmod(0o700)
        shutil.rmtree(parent, ignore_errors=True)


def test_an_output_dir_the_writer_may_not_create_fails_at_once_with_no_model_request(proxied, uncreatable):
    stack, proxy = proxied
    output_dir, expected = uncreatable
    body = howto_body()
    body["research_info"]["output_dir"] = str(output_dir)

    started = time.monotonic()
    invocation_id = stack.ingress.send(body)
    row = poll(
        lambda: stack.admin.invocation(invocation_id) or {},
        lambda r: r.get("status") == "completed",
        f"invocation {invocation_id} to end",
        TERMINAL_WITHIN_S,
        interval_s=0.05,
    )
    elapsed = time.monotonic() - started
    assert elapsed < TERMINAL_WITHIN_S
    assert row["completion_result"] == "failure", row
    failure = row["completion_failure"]
    assert "400" in failure and expected in failure and str(output_dir.parent) in failure, failure
    assert row.get("retry_count", 0) == 0, row
    assert stack.writer.ledger(invocation_id) == []  # no step ran
    assert not output_dir.exists()

    # The witness works: a good request through the same proxy is counted, five calls; ours, none.
    good = stack.ingress.call(howto_body())
    assert good["output_path"]
    poll(proxy.requests_in_flight, lambda n: n == 0, "nginx to finish every model request", 30, interval_s=0.1)
    requests = proxy.requests()
    assert len(requests) == 5, requests
    assert [r for r in requests if r["invocation"] == invocation_id] == []
