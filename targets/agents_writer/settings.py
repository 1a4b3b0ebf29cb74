"""Everything the service reads from its environment, checked once at start.

It is "someone else's service": no config file of this repository, only variables, each error naming
the variable and its value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DUMMY_API_KEY = "sk-local-no-key"
"""Local OpenAI-compatible servers want no key, but the openai client refuses to start without one."""


class SettingsError(ValueError):
    """A variable of the service's environment that cannot be used."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 9081
    base_url: str = "http://127.0.0.1:8091/v1"
    api_key: str = DUMMY_API_KEY
    model: str = "smollm2"
    timeout_s: float = 60.0
    """Each model request, from sent to answered (the openai client's timeout); Restate retries after it."""
    max_tokens: int = 640
    temperature: float = 0.2
    allowed_roots: tuple[Path, ...] = (Path("/tmp"),)
    tool_fail_first: int = 0
    identity_keys: tuple[str, ...] = ()
    tool_call_tag: str = ""
    """llama.cpp compatibility (`llamacpp.py`): the chat template's tool-call tag (`tool_call`); empty:
    requests go out as the Agents SDK builds them."""
    grace_period_s: float = 5.0
    max_concurrency: int = 0
    """Model requests in flight at once from this process (0: no limit); more wait before being sent."""
    inactivity_timeout_s: float | None = None
    """Restate's inactivity timeout for this service (None: the server's, 1 min): a step waiting for a
    busy model is inactivity, and an attempt cut by it loses the answer it was waiting for."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: not an integer") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r}: must be at least {minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: not a number") from None
    if not value >= minimum or value == float("inf"):
        raise SettingsError(f"{name}={raw!r}: must be a finite number of at least {minimum:g}")
    return value


def _roots(env: Mapping[str, str], name: str) -> tuple[Path, ...]:
    raw = env.get(name, "").strip()
    if not raw:
        return Settings.allowed_roots
    roots = tuple(Path(part) for part in raw.split(os.pathsep) if part.strip())
    relative = [str(r) for r in roots if not r.is_absolute()]
    if not roots or relative:
        raise SettingsError(f"{name}={raw!r}: a {os.pathsep!r}-separated list of absolute directories")
    return roots


def _tag(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name, "").strip()
    if raw and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", raw):
        raise SettingsError(f"{name}={raw!r}: a tag name such as tool_call (no brackets)")
    return raw


def load(env: Mapping[str, str] | None = None) -> Settings:
    """The service's settings from `env` (default: the process environment)."""
    env = os.environ if env is None else env
    base_url = env.get("OPENAI_BASE_URL", "").strip() or Settings.base_url
    if not base_url.startswith(("http://", "https://")):
        raise SettingsError(f"OPENAI_BASE_URL={base_url!r}: must be an http:// or https:// URL")
    keys = tuple(k.strip() for k in env.get("RESTATE_IDENTITY_KEY", "").split(",") if k.strip())
    bad = [k for k in keys if not k.startswith("publickeyv1_")]
    if bad:
        raise SettingsError(f"RESTATE_IDENTITY_KEY={bad[0]!r}: a Restate request-identity key starts with publickeyv1_")
    return Settings(
        host=env.get("HOST", "").strip() or Settings.host,
        port=_int(env, "PORT", Settings.port, 1),
        base_url=base_url,
        api_key=env.get("OPENAI_API_KEY", "").strip() or DUMMY_API_KEY,
        model=env.get("WRITER_MODEL", "").strip() or Settings.model,
        timeout_s=_float(env, "OPENAI_TIMEOUT_S", Settings.timeout_s, 0.1),
        max_tokens=_int(env, "WRITER_MAX_TOKENS", Settings.max_tokens, 16),
        temperature=_float(env, "WRITER_TEMPERATURE", Settings.temperature, 0.0),
        allowed_roots=_roots(env, "AGENTS_WRITER_ALLOWED_ROOTS"),
        tool_fail_first=_int(env, "AGENTS_WRITER_TOOL_FAIL_FIRST", 0, 0),
        identity_keys=keys,
        tool_call_tag=_tag(env, "AGENTS_WRITER_FORCE_TOOL_TAG"),
        grace_period_s=_float(env, "AGENTS_WRITER_GRACE_S", Settings.grace_period_s, 0.0),
        max_concurrency=_int(env, "OPENAI_MAX_CONCURRENCY", 0, 0),
        inactivity_timeout_s=_float(env, "AGENTS_WRITER_INACTIVITY_TIMEOUT_S", 0.0, 0.0) or None,
    )
