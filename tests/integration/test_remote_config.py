"""The HOW-TO's remote configuration (configs/tests/config-dgx-remote.yaml) against an OpenAI-compatible
server on loopback standing in for the DGX: base URL, model and key from the environment, no local
model, registration over HTTP/1.1, a body asking for faults refused (faults come only from the config)."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from drillkit import config as drill_config
from drillkit.components.process import http_ok
from drillkit.errors import HttpError
from drillkit.howto import howto_body
from drillkit.procs import ProcessTable
from drillkit.stack import Stack
from drillkit.waits import poll

from .conftest import ROOT, make_config, our_live_processes

REMOTE = ROOT / "configs" / "tests" / "config-dgx-remote.yaml"
PORT = 8093


@pytest.fixture
def remote_stack(tmp_path, project_state, monkeypatch):
    procs = ProcessTable(tmp_path / "endpoint-procs")
    argv = [sys.executable, "-m", "drillkit.components.stub_llm", "--port", str(PORT)]
    procs.spawn("endpoint", argv, tmp_path / "endpoint.log", env={**os.environ, "PYTHONPATH": str(ROOT)})
    poll(lambda: http_ok(f"http://127.0.0.1:{PORT}/health"), bool, "the stand-in endpoint", 30)
    monkeypatch.setenv("WRITER_LLM_BASE_URL", f"http://127.0.0.1:{PORT}/v1")
    monkeypatch.setenv("WRITER_LLM_MODEL", "dgx-model")
    monkeypatch.setenv("WRITER_LLM_API_KEY", "secret-from-env")
    cfg = make_config(tmp_path, project_state, base=REMOTE, **{"runtime.backend": "native"})
    stack = Stack(drill_config.load(cfg))
    try:
        yield stack
    finally:
        stack.down(purge=True)
        procs.kill("endpoint", signal.SIGTERM)
        assert our_live_processes(stack) == []
        stack.close()


def test_remote_config_end_to_end(remote_stack):
    stack = remote_stack
    assert not stack.config.local_model.enabled
    stack.up()  # no local model started; registered over HTTP/1.1 as the HOW-TO does
    assert "llm" not in stack.procs.names()
    [deployment] = stack.admin.request("GET", "/deployments").json()["deployments"]
    assert deployment["http_version"] == "HTTP/1.1"
    assert deployment["protocol_type"] == "RequestResponse"
    report = stack.ingress.call(howto_body())
    assert report["research_topic"] == "Stub report"  # the stand-in endpoint answered
    with pytest.raises(HttpError) as err:
        stack.ingress.call({**howto_body(), "faults": {"tool_error": {"fail_first": 1}}})
    assert err.value.status == 400 and "faults: Extra inputs are not permitted" in err.value.body
    assert "request fault injection was removed" in err.value.body
