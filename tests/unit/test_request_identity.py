"""Request identity: the key formats against Restate's own, and what each backend and the writer get."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
import tomllib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from restate._internal import IdentityVerificationException, PyIdentityVerifier

from drillkit.components.restate_cluster import node_toml
from drillkit.components.restate_docker import IDENTITY_KEY_IN_CONTAINER, DockerServer
from drillkit.components.restate_server import NativeServer
from drillkit.config import ClusterSettings, Runtime
from drillkit.errors import ConfigError, ConfigMismatch
from drillkit.identity import (
    SERVER_KEY_ENV,
    SERVER_KEY_ENVS,
    base58,
    base58_decode,
    ensure_identity,
    public_key_of,
    raw_public_key,
)
from drillkit.procs import ProcessTable
from drillkit.restate_api import AdminApi, IngressApi
from drillkit.state import StateDir
from tests.unit.test_cluster import cluster
from writer_service import identity as writer_identity
from writer_service.config import IDENTITY_KEY_FILE_ENV
from writer_service.config import ConfigError as WriterConfigError

# Restate's own test vector (crates/service-client/src/request_identity/v1.rs): this PKCS#8 PEM key has
# the kid below, which the server logs at start and puts in every JWT it signs.
RESTATE_PEM = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIPe++4ZTPQDF81otpoU/mOGHC2vOAVp9WbiCblvn3nXO
-----END PRIVATE KEY-----"""
RESTATE_KID = "publickeyv1_AfQwmwfgEZhrWpvv8N52SHpRtZqGGaFr4AZN6qtYWSiY"


def test_the_public_key_of_restates_test_vector_is_its_kid():
    assert public_key_of(RESTATE_PEM) == RESTATE_KID
    assert len(raw_public_key(RESTATE_KID)) == 32


@pytest.mark.parametrize(
    ("data", "text"),
    [(b"", ""), (b"\0", "1"), (b"\0\0\x01", "112"), (b"hello world", "StV1DL6CwTryKyV"), (b"\xff" * 4, "7YXq9G")],
)
def test_base58_is_bitcoins_with_leading_zeros_kept(data, text):
    assert base58(data) == text
    assert base58_decode(text) == data


def test_malformed_public_keys_are_refused_naming_the_value():
    with pytest.raises(ConfigError, match="publickeyv2_"):
        raw_public_key("publickeyv2_" + base58(b"\1" * 32))
    with pytest.raises(ConfigError, match="31 bytes"):
        raw_public_key("publickeyv1_" + base58(b"\1" * 31))
    with pytest.raises(ConfigError, match="0OIl"):
        raw_public_key("publickeyv1_0OIl")  # not base58 digits


def test_a_key_that_is_not_ed25519_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        public_key_of(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "k.pem")


def test_the_state_dirs_key_pair_is_made_once_private_and_consistent(tmp_path):
    state = StateDir(tmp_path / "state")
    first = state.request_identity()
    assert first.private_key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, as Restate reads
    assert stat.S_IMODE(first.private_key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.private_key_file.parent.stat().st_mode) == 0o700
    assert (
        first.public_key_file.read_text().strip()
        == first.public_key
        == public_key_of(first.private_key_file.read_bytes())
    )
    again = state.request_identity()
    assert again == first and state.identity_public_key() == first.public_key
    # A stale or edited public key file is rewritten from the PEM, the one truth.
    first.public_key_file.write_text("publickeyv1_stale\n")
    assert state.request_identity().public_key_file.read_text().strip() == first.public_key
    other = ensure_identity(tmp_path / "elsewhere")
    assert other.public_key != first.public_key


def _jwt(key: Ed25519PrivateKey, kid: str, audience: str) -> str:
    """A JWT as restate-server signs one (header typ/kid/alg EdDSA; aud, nbf, iat, exp)."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    header = part(json.dumps({"typ": "JWT", "alg": "EdDSA", "kid": kid}).encode())
    claims = part(json.dumps({"aud": audience, "nbf": now - 60, "iat": now, "exp": now + 60}).encode())
    signature = part(key.sign(f"{header}.{claims}".encode()))
    return f"{header}.{claims}.{signature}"


def test_the_sdk_accepts_our_public_key_and_checks_signatures_with_it(tmp_path):
    """The format the writer is given is the one restate-sdk 1.3.0's verifier takes, and with it only a
    request signed by the matching private key passes."""
    from cryptography.hazmat.primitives import serialization

    identity = StateDir(tmp_path / "state").request_identity()
    key = serialization.load_pem_private_key(identity.private_key_file.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    verifier = PyIdentityVerifier([identity.public_key])
    path = "/invoke/WriterAgentRestate/run"
    signed = [("x-restate-signature-scheme", "v1"), ("x-restate-jwt-v1", _jwt(key, identity.public_key, path))]
    verifier.verify(signed, path)
    with pytest.raises(IdentityVerificationException):
        verifier.verify([], path)  # unsigned
    stranger = Ed25519PrivateKey.generate()
    forged = [("x-restate-signature-scheme", "v1"), ("x-restate-jwt-v1", _jwt(stranger, identity.public_key, path))]
    with pytest.raises(IdentityVerificationException):
        verifier.verify(forged, path)


# -- the writer's side ----------------------------------------------------------------------------------


def test_the_writer_without_the_variable_accepts_anyone():
    assert writer_identity.load_identity_keys({}) == []


def test_the_writer_reads_the_key_file(tmp_path):
    identity = StateDir(tmp_path / "state").request_identity()
    env = {IDENTITY_KEY_FILE_ENV: str(identity.public_key_file)}
    assert writer_identity.load_identity_keys(env) == [identity.public_key]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot be read"),
        ("", "holds no request identity key"),
        ("# only a comment\n", "holds no request identity key"),
        ("publickeyv1_0OIl\n", "is not a `publickeyv1_<base58>` key"),
        ("publickeyv1_" + base58(b"\1" * 31) + "\n", "holds 31 bytes, not 32"),
    ],
)
def test_the_writer_refuses_to_start_on_a_bad_key_file(tmp_path, content, message):
    """Fail closed: a variable naming a missing or broken file never means "accept everyone"."""
    file = tmp_path / "public-key"
    if content is not None:
        file.write_text(content)
    with pytest.raises(WriterConfigError, match=rf"{IDENTITY_KEY_FILE_ENV}={file}: .*{message}"):
        writer_identity.load_identity_keys({IDENTITY_KEY_FILE_ENV: str(file)})


def test_the_writers_length_check_agrees_with_drillkits(tmp_path):
    key = StateDir(tmp_path / "state").identity_public_key()
    assert writer_identity.key_length(key) == len(raw_public_key(key)) == 32
    assert writer_identity.key_length(RESTATE_KID) == 32


# -- what each backend is given -------------------------------------------------------------------------


def _native(tmp_path: Path, identity: bool) -> NativeServer:
    rt = Runtime()
    state = StateDir(tmp_path / "state")
    return NativeServer(
        rt,
        AdminApi(rt.admin_url),
        IngressApi(rt.ingress_url),
        tmp_path / "restate-server",
        tmp_path / "data",
        ProcessTable(tmp_path / "procs"),
        tmp_path / "restate.log",
        identity=state.request_identity() if identity else None,
    )


def test_the_native_server_gets_the_pem_file_in_its_environment(tmp_path, monkeypatch):
    for name in SERVER_KEY_ENVS:  # the current variable and the deprecated top-level one
        monkeypatch.setenv(name, "/somewhere/else.pem")
    signed, unsigned = _native(tmp_path, True), _native(tmp_path, False)
    assert signed.identity is not None
    assert signed.env()[SERVER_KEY_ENV] == str(signed.identity.private_key_file)
    assert not set(SERVER_KEY_ENVS) & set(unsigned.env())  # never inherited: its digest says unsigned
    assert not set(SERVER_KEY_ENVS) & set(cluster(tmp_path).node_env())  # nodes read it from their TOML


def test_a_server_started_unsigned_is_not_reused_once_the_key_is_required(tmp_path):
    signed, unsigned = _native(tmp_path, True), _native(tmp_path, False)
    assert signed.settings_digest() != unsigned.settings_digest()
    with pytest.raises(ConfigMismatch, match="request identity"):
        signed.refuse_other_settings("pid 1", unsigned.settings_digest(), "old.yaml")
    signed.refuse_other_settings("pid 1", signed.settings_digest(), "same.yaml")  # same settings: reused


def test_the_container_gets_the_pem_file_mounted_read_only(tmp_path):
    rt = Runtime.model_validate({"backend": "docker"})
    identity = StateDir(tmp_path / "state").request_identity()
    server = DockerServer(rt, AdminApi(rt.admin_url), IngressApi(rt.ingress_url), identity=identity)
    kwargs = server.run_kwargs()
    assert kwargs["environment"][SERVER_KEY_ENV] == IDENTITY_KEY_IN_CONTAINER
    assert kwargs["volumes"][str(identity.private_key_file)] == {"bind": IDENTITY_KEY_IN_CONTAINER, "mode": "ro"}
    assert kwargs["volumes"][rt.docker.volume]["mode"] == "rw"  # Restate's data volume is still there
    bare = DockerServer(rt, AdminApi(rt.admin_url), IngressApi(rt.ingress_url)).run_kwargs()
    assert SERVER_KEY_ENV not in bare["environment"] and list(bare["volumes"]) == [rt.docker.volume]
    assert bare["labels"]["drillkit.config-digest"] != kwargs["labels"]["drillkit.config-digest"]


def test_each_cluster_node_signs_with_the_key_in_its_toml(tmp_path):
    settings = ClusterSettings()
    key = tmp_path / "state" / "request-identity" / "private-key.pem"
    for number in range(1, settings.nodes + 1):
        parsed = tomllib.loads(node_toml(settings, number, tmp_path / f"n{number}", key))
        assert parsed["worker"]["invoker"]["request-identity-private-key-pem-file"] == str(key)
        assert parsed["admin"]["bind-port"] == settings.admin_base_port + number  # the rest unchanged
    assert "worker" not in tomllib.loads(node_toml(settings, 1, tmp_path / "n1"))


def test_a_cluster_node_started_unsigned_is_refused_not_reused(tmp_path):
    """Cluster nodes now keep the settings digest they started with, like the single server."""
    import signal
    import sys

    unsigned, signed = cluster(tmp_path), cluster(tmp_path, identity=True)
    assert unsigned.settings_digest() != signed.settings_digest()
    node = unsigned.node(1)
    record = unsigned.procs.spawn(
        node.process,
        [sys.executable, "-c", "import time; time.sleep(60)"],
        tmp_path / "n1.log",
        config_digest=unsigned.settings_digest(),
        config_source="unsigned.yaml",
    )
    try:
        assert unsigned.launch_node(node).endswith("(already running)")
        with pytest.raises(ConfigMismatch, match="n1 pid"):
            signed.launch_node(signed.node(1))
    finally:
        unsigned.procs.kill_record(record, signal.SIGKILL)


def test_the_shipped_configs_turn_request_identity_on():
    from drillkit.config import PROJECT_ROOT, load

    for name in ("local.yaml", "docker.yaml", "cluster.yaml"):
        assert load(PROJECT_ROOT / "configs" / name).runtime.request_identity, name


def test_the_writer_is_started_with_the_key_file_and_stamped_with_the_key(tmp_path, monkeypatch):
    from tests.unit.test_records_ports_configs import _stack_on

    on = _stack_on(tmp_path)
    off = _stack_on(tmp_path, **{"runtime.request_identity": False})
    assert on.writer.identity_key() == on.state.identity_public_key()
    assert off.writer.identity_key() is None
    assert on.writer.config_stamp().digest != off.writer.config_stamp().digest
    seen: dict[str, dict[str, str]] = {}

    def spawn_or_reuse(argv, env, cwd, stamp):
        seen["env"] = dict(env)
        return None

    monkeypatch.setenv(IDENTITY_KEY_FILE_ENV, "/inherited/key")
    for stack in (on, off):
        monkeypatch.setattr(stack.writer, "spawn_or_reuse", spawn_or_reuse)
        stack.writer.start()
        if stack is on:
            path = seen["env"][IDENTITY_KEY_FILE_ENV]
            assert Path(path).read_text().strip() == on.state.identity_public_key()
        else:
            assert IDENTITY_KEY_FILE_ENV not in seen["env"]
    assert os.environ[IDENTITY_KEY_FILE_ENV] == "/inherited/key"  # the caller's environment is untouched
