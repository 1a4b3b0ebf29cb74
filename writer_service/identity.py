"""Which Restate server may call the writer: its request identity public keys, read at start.

Restate signs each request it sends a service with its ed25519 key (a JWT in `x-restate-jwt-v1`); the
SDK given the matching `publickeyv1_<base58>` keys answers 401 to every request but `/health` that is not
signed by one of them. The keys come from the file named by `RESTATE_WRITER_IDENTITY_KEY_FILE` (the drill
runtime sets it). Without the variable the writer accepts any caller, as the HOW-TO's bare setup does,
and says so; with it, a missing, empty or malformed file stops the writer from starting: it never falls
back to answering everyone.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

from writer_service.config import IDENTITY_KEY_FILE_ENV, ConfigError

log = logging.getLogger("writer_service.identity")

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"  # base58, Bitcoin's (Restate's bs58)
KEY_PATTERN = re.compile(rf"publickeyv1_([{ALPHABET}]+)")


def key_length(key: str) -> int | None:
    """Bytes behind `publickeyv1_<base58>` (an ed25519 public key has 32), None when not that form."""
    match = KEY_PATTERN.fullmatch(key)
    if match is None:
        return None
    digits = match[1]
    number = 0
    for char in digits:
        number = number * 58 + ALPHABET.index(char)
    zeros = len(digits) - len(digits.lstrip("1"))
    return zeros + (number.bit_length() + 7) // 8


def load_identity_keys(environ: Mapping[str, str] | None = None) -> list[str]:
    """The keys to require, or [] (no variable: unsigned requests accepted, with a warning)."""
    env = os.environ if environ is None else environ
    name = env.get(IDENTITY_KEY_FILE_ENV)
    if not name:
        log.warning("no %s: requests are accepted without checking that Restate sent them", IDENTITY_KEY_FILE_ENV)
        return []
    try:
        text = Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{IDENTITY_KEY_FILE_ENV}={name}: cannot be read: {exc}") from None
    keys = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise ConfigError(f"{IDENTITY_KEY_FILE_ENV}={name}: holds no request identity key")
    for key in keys:
        length = key_length(key)
        if length != 32:  # checked here to name the file; the SDK would only stop with a bare traceback
            why = "is not a `publickeyv1_<base58>` key" if length is None else f"holds {length} bytes, not 32"
            raise ConfigError(f"{IDENTITY_KEY_FILE_ENV}={name}: {key[:60]!r} {why}")
    return keys
