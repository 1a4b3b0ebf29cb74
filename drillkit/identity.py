"""Request identity: the Restate server signs every request it sends a service, the service checks it.

Restate's scheme (restate-server 1.7, restate-sdk 1.3.0): the server holds an ed25519 private key as a
PKCS#8 PEM file (`worker.invoker.request-identity-private-key-pem-file`, or its environment form) and
sends each request with `x-restate-signature-scheme: v1` and a JWT (`x-restate-jwt-v1`, audience: the
request path) signed with it. A service given the matching public key, written
`publickeyv1_<base58 of the raw 32 bytes>` (the JWT's `kid`), answers 401 to anything not signed by it.

One key pair per state dir, made on first use (`StateDir.request_identity`): the private half stays in
the state dir (0600, in a 0700 dir) and reaches only the server (a path in its environment, a read-only
mount in its container, a line of each node's TOML); the public half is not a secret.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drillkit.errors import ConfigError

PUBLIC_KEY_PREFIX = "publickeyv1_"
# Where restate-server 1.7.12 reads the key: `[worker.invoker]` in its TOML, this variable in its
# environment (the top-level `request-identity-private-key-pem-file` still works but logs a deprecation).
SERVER_KEY_ENV = "RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE"
# Every variable that makes the server sign: not inherited from the caller's environment, so a server's
# digest (signing or not, with which key) is what it really does.
SERVER_KEY_ENVS = (SERVER_KEY_ENV, "RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE")
SERVER_KEY_TOML_SECTION = "worker.invoker"
SERVER_KEY_TOML_KEY = "request-identity-private-key-pem-file"
PRIVATE_KEY_NAME = "private-key.pem"
PUBLIC_KEY_NAME = "public-key"

# Bitcoin's base58 alphabet: the `bs58` crate's default, which Restate and its SDKs use.
_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
PUBLIC_KEY_PATTERN = re.compile(rf"{PUBLIC_KEY_PREFIX}[{_ALPHABET}]+")


@dataclass(frozen=True)
class RequestIdentity:
    """The state dir's key pair: the PEM file the server reads, and the key the services check with."""

    private_key_file: Path
    public_key_file: Path
    public_key: str


def base58(data: bytes) -> str:
    """Base58 (Bitcoin alphabet), leading zero bytes kept as leading '1's, as `bs58::encode` does."""
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, rest = divmod(number, 58)
        digits.append(_ALPHABET[rest])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(digits))


def base58_decode(text: str) -> bytes:
    number = 0
    for char in text:
        index = _ALPHABET.find(char)
        if index < 0:
            raise ValueError(f"{char!r} is not a base58 digit")
        number = number * 58 + index
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def public_key_of(pem: bytes, source: str = "<pem>") -> str:
    """`publickeyv1_...` of a PKCS#8 PEM ed25519 private key (what the server logs as the JWT's kid)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{source}: a {type(key).__name__}, but Restate signs with an ed25519 key")
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_KEY_PREFIX + base58(raw)


def raw_public_key(public_key: str) -> bytes:
    """The 32 bytes behind `publickeyv1_...`; ConfigError naming the value when it is not one."""
    if not PUBLIC_KEY_PATTERN.fullmatch(public_key):
        raise ConfigError(f"{public_key!r}: not a request identity key (`{PUBLIC_KEY_PREFIX}` then base58)")
    raw = base58_decode(public_key.removeprefix(PUBLIC_KEY_PREFIX))
    if len(raw) != 32:
        raise ConfigError(f"{public_key!r}: decodes to {len(raw)} bytes; an ed25519 public key has 32")
    return raw


def new_private_key_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def ensure_identity(directory: Path) -> RequestIdentity:
    """The key pair under `directory` (0700), made once: the PEM is published whole (a link of a private
    temporary file, never over a key another process just made) and is the truth; the public key file is
    derived from it at every call, so the two can never disagree."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    private = directory / PRIVATE_KEY_NAME
    if not private.exists():
        tmp = directory / f".{PRIVATE_KEY_NAME}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(new_private_key_pem())
            try:
                os.link(tmp, private)
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    os.chmod(private, 0o600)
    public_key = public_key_of(private.read_bytes(), str(private))
    public = directory / PUBLIC_KEY_NAME
    try:
        current = public.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        current = None
    if current != public_key:
        tmp_public = directory / f".{PUBLIC_KEY_NAME}.{os.getpid()}.tmp"
        tmp_public.write_text(public_key + "\n", encoding="utf-8")
        os.replace(tmp_public, public)
    return RequestIdentity(private, public, public_key)
