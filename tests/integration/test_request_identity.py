"""Request identity for real: restate-server signs with the state dir's key, the writer takes only that.

A direct request to the writer's port (unsigned, or signed by another key) is refused with 401 and runs
nothing, while Restate's own invocations complete; a writer that was started open is restarted, not
reused, once the key is required.
"""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drillkit import config as drill_config
from drillkit.howto import howto_body
from drillkit.stack import Stack
from writer_service.ledger import read_ledger

INVOKE_PATH = "/invoke/WriterAgentRestate/run"
PROTOCOL = "application/vnd.restate.invocation.v5"


def _jwt(key: Ed25519PrivateKey, kid: str, audience: str) -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    header = part(json.dumps({"typ": "JWT", "alg": "EdDSA", "kid": kid}).encode())
    claims = part(json.dumps({"aud": audience, "nbf": now - 60, "iat": now, "exp": now + 60}).encode())
    return f"{header}.{claims}.{part(key.sign(f'{header}.{claims}'.encode()))}"


def _post(stack: Stack, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client(base_url=stack.writer.url, timeout=httpx.Timeout(5.0, connect=2.0)) as client:
        return client.post(path, content=b"", headers={"content-type": PROTOCOL, **(headers or {})})


def _discover(stack: Stack) -> httpx.Response:
    with httpx.Client(base_url=stack.writer.url, timeout=httpx.Timeout(5.0, connect=2.0)) as client:
        return client.get("/discover", headers={"accept": "application/vnd.restate.endpointmanifest.v3+json"})


def test_the_server_loaded_the_state_dirs_key(stack):
    key = stack.state.identity_public_key()
    log = stack.state.log_file("restate-server").read_text(errors="replace")
    assert "Loaded request identity key" in log
    assert f'kid: "{key}"' in log or key in log


def test_unsigned_and_forged_requests_to_the_writer_are_refused_and_run_nothing(stack):
    before = len(read_ledger(stack.config.ledger.path))
    assert _post(stack, INVOKE_PATH).status_code == 401
    # Signed, with this state dir's key id, but by another key: the signature does not verify.
    kid = stack.state.identity_public_key()
    forged = {
        "x-restate-signature-scheme": "v1",
        "x-restate-jwt-v1": _jwt(Ed25519PrivateKey.generate(), kid, INVOKE_PATH),
    }
    assert _post(stack, INVOKE_PATH, forged).status_code == 401
    assert _discover(stack).status_code == 401  # not even the service list
    with httpx.Client(timeout=5.0) as client:
        assert client.get(f"{stack.writer.url}/health").status_code == 200  # health stays open (probes)
    assert len(read_ledger(stack.config.ledger.path)) == before  # no step began


def test_restates_invocations_still_succeed(stack):
    report = stack.ingress.call(howto_body())
    assert report["markdown_report"]


def test_a_writer_started_open_is_restarted_once_the_key_is_required(stack):
    """The control for the tests above (an open writer answers the same unsigned request), and the stamp:
    the writer the open config started is not reused by the config that requires the key."""
    open_config = drill_config.load(stack.config.source).model_copy(
        update={"runtime": stack.config.runtime.model_copy(update={"request_identity": False})}
    )
    open_stack = Stack(open_config)
    try:
        open_record = open_stack.writer.start()  # returns once its health check answers
        discovered = _discover(stack)
        assert discovered.status_code == 200 and "WriterAgentRestate" in discovered.text  # open: anyone is served
        signed_record = stack.writer.start()
        assert signed_record.pid != open_record.pid  # restarted on the stamp, not reused
        assert _discover(stack).status_code == 401
        report = stack.ingress.call(howto_body())
        assert report["markdown_report"]
    finally:
        open_stack.close()


@pytest.fixture(autouse=True)
def _writer_requires_the_key(stack):
    """Every test starts (and leaves) the stack's writer requiring the key."""
    yield
    stack.writer.start()


def test_the_private_key_stays_in_its_file(stack):
    """Only the PEM file holds the private half: no log, report or ledger line carries its body."""
    pem = stack.state.request_identity().private_key_file.read_text()
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    assert len(body) > 40
    searched = 0
    for folder in (stack.state.logs, stack.state.reports, stack.state.root / "drill-configs"):
        for path in folder.rglob("*") if folder.exists() else []:
            if path.is_file():
                searched += 1
                assert body not in path.read_text(errors="replace"), path
    assert searched > 0  # the logs of the server, the model and the writer at least
    assert body not in stack.config.ledger_file().read_text(errors="replace")
