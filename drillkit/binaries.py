"""The `restate-server`, `restate` CLI and `restatectl` binaries, pinned to one version.

Where they come from, in order: PATH (when it reports the pinned version), the state dir's cache, the
GitHub release archive (verified against the release's .sha256), the npm registry's platform packages
(fetched with the `npm` client, so its configured registry and proxy apply; verified against the
registry's `dist.integrity`). The first that works wins; every failure is kept for the error message.
Where GitHub cannot be reached within a few seconds, npm is asked first, and `inv setup` says so.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass
from pathlib import Path

import httpx

from drillkit import progress
from drillkit.errors import DrillError

GITHUB_RELEASE = "https://github.com/restatedev/restate/releases/download/v{version}/{archive}"


@dataclass(frozen=True)
class Binary:
    """One of the programs: its name on disk and its names in each distribution channel."""

    command: str  # restate-server | restate
    archive_stem: str  # restate-server | restate-cli (GitHub archive prefix)
    npm_stem: str  # restate-server | restate (npm package @restatedev/<stem>-<platform>)


SERVER = Binary("restate-server", "restate-server", "restate-server")
CLI = Binary("restate", "restate-cli", "restate")
CTL = Binary("restatectl", "restatectl", "restatectl")
"""The cluster tool (`status`, `partitions list`, `config get`): only the cluster backend needs it."""


VERSION = re.compile(r"\d+\.\d+\.\d+")
Version = tuple[int, int, int]


def parse_version(text: str, what: str = "version") -> Version:
    """`1.6.2` -> (1, 6, 2); a DrillError naming `what` for anything else (no ranges, no `v` prefix)."""
    if not VERSION.fullmatch(text.strip()):
        raise DrillError(f"{what} {text!r}: give a Restate release as x.y.z, e.g. 1.6.2")
    major, minor, patch = (int(part) for part in text.strip().split("."))
    return major, minor, patch


def roll_refusal(old: str, new: str) -> str | None:
    """Why a rolling upgrade from `old` to `new` (and back) is not one Restate supports, or None. Restate's
    upgrade rule: one minor version at a time, never skipping one (1.6.x -> 1.7.x, not 1.5.x -> 1.7.x)."""
    a, b = parse_version(old, "--from"), parse_version(new, "--to")
    if a == b:
        return f"--from and --to are both {old}: nothing would change"
    if a > b:
        return f"--from {old} is newer than --to {new}: the drill upgrades first, then rolls back"
    if a[0] != b[0]:
        return (
            f"{old} -> {new} changes the major version; Restate supports upgrading one minor version at a time "
            f"(--to {a[0]}.{a[1] + 1}.x)"
        )
    if b[1] - a[1] > 1:
        return f"{old} -> {new} skips a minor version; Restate supports upgrading one minor version at a time"
    return None


class NoSuchRelease(DrillError):
    """The registry answers that the version was never published: no other source is asked, one line."""


class IntegrityError(DrillError):
    """A download does not match its published checksum; it is discarded."""


@dataclass(frozen=True)
class Platform:
    rust_target: str  # x86_64-unknown-linux-musl
    npm_suffix: str  # linux-x64


def current_platform() -> Platform:
    machine = platform.machine().lower()
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(machine)
    system = platform.system().lower()
    if arch is None or system not in ("linux", "darwin"):
        raise DrillError(f"no prebuilt Restate binaries for {system}/{machine}")
    if system == "linux":
        return Platform(f"{arch}-unknown-linux-musl", f"linux-{'x64' if arch == 'x86_64' else 'arm64'}")
    return Platform(f"{arch}-apple-darwin", f"darwin-{'x64' if arch == 'x86_64' else 'arm64'}")


def reported_version(path: Path) -> str | None:
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = out.stdout.split()
    return words[-1].lstrip("v") if words else None


class BinaryStore:
    """Finds or fetches pinned binaries into `<state>/bin/<version>/`."""

    def __init__(
        self,
        bin_dir: Path,
        version: str,
        http: httpx.Client | None = None,
        run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
        plat: Platform | None = None,
        use_path: bool = True,
        reach: Callable[[], str | None] | None = None,
    ) -> None:
        self.cache = bin_dir / version
        self.version = version
        self._http = http
        self._run = run
        self.platform = plat or current_platform()
        self.use_path = use_path
        # Whether GitHub answers, decided once and quickly: where only the package registries can be reached
        # (these machines), asking GitHub first meant a name-resolution error before every npm fetch. An
        # injected http client (the tests' MockTransport) is its own answer.
        self._reach = reach or ((lambda: None) if http is not None else github_unreachable)
        self._asked_github = False
        self._github_unreachable: str | None = None

    def cached(self, binary: Binary) -> Path:
        return self.cache / binary.command

    def path(self, binary: Binary) -> Path:
        """Where the binary is (PATH or cache), or where the cache would hold it once set up."""
        found = self.find(binary)
        return found[0] if found else self.cached(binary)

    def find(self, binary: Binary) -> tuple[Path, str] | None:
        """An existing binary of the pinned version, and where it was found; no download."""
        if self.use_path:
            on_path = shutil.which(binary.command)
            if on_path and reported_version(Path(on_path)) == self.version:
                return Path(on_path), "PATH"
        cached = self.cached(binary)
        if cached.is_file() and os.access(cached, os.X_OK):
            return cached, "cache"
        return None

    def ensure(self, binary: Binary) -> tuple[Path, str]:
        """The binary's path and its source; downloads (GitHub, then npm) only when missing."""
        found = self.find(binary)
        if found:
            return found
        failures: list[str] = []
        sources = [("GitHub release", self._from_github), ("npm registry", self._from_npm)]
        if not self._asked_github:
            self._asked_github = True
            self._github_unreachable = self._reach()
            if self._github_unreachable:
                progress.info(f"GitHub cannot be reached ({self._github_unreachable}): asking the npm registry first")
        if self._github_unreachable:
            sources.reverse()
        for source, fetch in sources:
            try:
                data = fetch(binary)
            except NoSuchRelease:
                raise
            except (DrillError, httpx.HTTPError, OSError, subprocess.SubprocessError) as exc:
                failures.append(f"{source}: {failure_reason(exc)}")
                progress.warn(f"{binary.command} {self.version} from the {source}: {failure_reason(exc)}")
                continue
            self._install(binary, data)
            return self.cached(binary), source
        raise DrillError(
            f"cannot get {binary.command} {self.version}:\n  "
            + "\n  ".join(failures)
            + f"\nPut a {binary.command} {self.version} binary on PATH or at {self.cached(binary)}."
        )

    def _install(self, binary: Binary, data: bytes) -> None:
        self.cache.mkdir(parents=True, exist_ok=True)
        target = self.cached(binary)
        fd, tmp = tempfile.mkstemp(dir=self.cache, prefix=f".{binary.command}.")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)

    # -- sources ------------------------------------------------------------------------------------

    def _from_github(self, binary: Binary) -> bytes:
        archive = f"{binary.archive_stem}-{self.platform.rust_target}.tar.xz"
        url = GITHUB_RELEASE.format(version=self.version, archive=archive)
        http = self._http or httpx.Client(follow_redirects=True, timeout=httpx.Timeout(30.0, connect=5.0))
        try:
            checksum_text = http.get(url + ".sha256").raise_for_status().text
            expected = checksum_text.split()[0].lower()
            blob = _download(http, url, f"{binary.command} {self.version} (GitHub)")
        finally:
            if self._http is None:
                http.close()
        actual = hashlib.sha256(blob).hexdigest()
        if actual != expected:
            raise IntegrityError(f"{archive}: sha256 {actual} does not match the release's {expected}")
        return _member(blob, "r:xz", binary.command, archive)

    def _from_npm(self, binary: Binary) -> bytes:
        package = f"@restatedev/{binary.npm_stem}-{self.platform.npm_suffix}@{self.version}"
        if shutil.which("npm") is None and self._run is subprocess.run:
            raise DrillError("the npm client is not installed")
        try:
            view = self._npm(["view", package, "dist.integrity", "--json"])
        except DrillError as exc:
            if "No match found for version" in str(exc):  # npm's words for a version never published
                raise NoSuchRelease(self._unpublished(binary)) from None
            raise
        expected = json.loads(view)
        with tempfile.TemporaryDirectory() as tmp, progress.activity(f"fetching {package} with npm"):
            packed = json.loads(self._npm(["pack", package, "--json", "--pack-destination", tmp]))
            tarball = Path(tmp) / packed[0]["filename"]
            blob = tarball.read_bytes()
        verify_integrity(blob, expected, package)
        return _member(blob, "r:gz", binary.command, package)

    def _unpublished(self, binary: Binary) -> str:
        """One line: the version is not a release, and (one more npm call) those of its minor that are."""
        package = f"@restatedev/{binary.npm_stem}-{self.platform.npm_suffix}"
        text = (
            f"{binary.command} {self.version} is not a published Restate release (npm has no {package}@{self.version})"
        )
        try:
            published = [str(v) for v in json.loads(self._npm(["view", package, "versions", "--json"]))]
        except (DrillError, ValueError, TypeError, OSError, subprocess.SubprocessError):
            return text
        minor = ".".join(self.version.split(".")[:2]) + "."
        near = [v for v in published if v.startswith(minor)] or published[-8:]
        return f"{text}; published: {', '.join(near)}" if near else text

    def _npm(self, args: Sequence[str]) -> str:
        argv = ["npm", *args]
        out = self._run(argv, capture_output=True, text=True, timeout=600, check=False)
        if out.returncode != 0:
            # npm's own lines, without the pointer to its debug log: one readable line in our error.
            lines = [line.strip() for line in out.stderr.splitlines() if line.strip()]
            detail = "; ".join(line for line in lines if "complete log of this run" not in line)[-500:]
            raise DrillError(f"`{' '.join(argv)}` exited {out.returncode}: {detail or 'no message'}")
        return out.stdout


GITHUB_HOST = "github.com"
REACH_TIMEOUT_S = 2.0


def github_unreachable(host: str = GITHUB_HOST, port: int = 443, timeout_s: float = REACH_TIMEOUT_S) -> str | None:
    """Why GitHub cannot be reached, decided within about 2 * timeout_s; None when a TCP connection opens.
    Name resolution runs in a thread so that a resolver that never answers costs timeout_s, not its own
    (much longer) retry schedule."""
    pool = ThreadPoolExecutor(1)
    try:
        lookup = pool.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        try:
            addresses = lookup.result(timeout=timeout_s)
        except FuturesTimeout:
            return f"no answer for {host} from the name resolver within {timeout_s:g} s"
        except OSError as exc:
            return f"{host}: {exc.strerror or exc}"
        family, kind, proto, _, address = addresses[0]
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(timeout_s)
                sock.connect(address)
        except OSError as exc:
            return f"{host}:{port}: {exc.strerror or exc or 'no connection'}"
        return None
    finally:
        pool.shutdown(wait=False)  # a resolver still stuck in its thread is left to finish on its own


def failure_reason(exc: BaseException) -> str:
    """Why one source failed, in one line: what was asked (an HTTP URL) and the error, never an empty string."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, httpx.RequestError):
        try:
            text = f"{exc.request.url}: {text}"
        except RuntimeError:  # no request attached
            pass
    elif isinstance(exc, httpx.HTTPStatusError):
        text = f"{exc.request.url}: HTTP {exc.response.status_code}"
    return text


def verify_integrity(blob: bytes, integrity: str, what: str) -> None:
    """Check an npm/SRI integrity string (`sha512-<base64>`)."""
    algorithm, _, digest = integrity.partition("-")
    if algorithm not in ("sha512", "sha384", "sha256") or not digest:
        raise IntegrityError(f"{what}: unsupported integrity value {integrity!r}")
    actual = base64.b64encode(hashlib.new(algorithm, blob).digest()).decode()
    if actual != digest:
        raise IntegrityError(f"{what}: {algorithm} {actual} does not match the registry's {digest}")


def _member(blob: bytes, mode: str, command: str, what: str) -> bytes:
    """The executable named `command` inside a tar archive (any directory)."""
    with tarfile.open(fileobj=io.BytesIO(blob), mode=mode) as archive:  # type: ignore[call-overload]
        for member in archive.getmembers():
            if member.isfile() and Path(member.name).name == command:
                extracted = archive.extractfile(member)
                if extracted is not None:
                    return bytes(extracted.read())
    raise DrillError(f"{what}: no {command} inside the archive")


def _download(http: httpx.Client, url: str, description: str) -> bytes:
    chunks = []
    with http.stream("GET", url) as response:
        response.raise_for_status()
        total = int(response.headers.get("content-length", 0)) or None
        with progress.transfer(description, total) as advance:
            for chunk in response.iter_bytes(1 << 20):
                chunks.append(chunk)
                advance(len(chunk))
    return b"".join(chunks)
