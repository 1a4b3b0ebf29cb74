"""Register the writer only when Restate does not already have it as it is now.

`inv up` used to run `restate deployments register --force` every time: a new revision per call, and the
CLI's "Are you sure ... Auto-confirming" text, which reads like a prompt. Now Restate's admin API
(`GET /deployments`) says whether a deployment at this URI serves the service over the same HTTP version;
if so the CLI is asked without `--force`, and Restate itself decides: "already exists ... No changes"
(nothing done) or a refusal (the service changed), then `--force` replaces it. The CLI's text is kept for
a verbose caller; the summary is one line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from drillkit.errors import CommandError

UNCHANGED_MARKER = "No changes will be made"
_DEPLOYMENT_ID = re.compile(r"\b(dp_[0-9A-Za-z]+)")


@dataclass(frozen=True)
class Registration:
    changed: bool
    summary: str
    output: str  # the CLI's own text (every command it ran), for a verbose caller


def same_uri(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def existing(deployments: Sequence[dict[str, Any]], uri: str, service: str) -> dict[str, Any] | None:
    """The deployment at `uri` that serves `service`, if Restate has one."""
    for deployment in deployments:
        names = {s.get("name") for s in deployment.get("services", [])}
        if same_uri(str(deployment.get("uri", "")), uri) and service in names:
            return deployment
    return None


def revision(deployment: dict[str, Any] | None, service: str) -> str:
    for entry in (deployment or {}).get("services", []):
        if entry.get("name") == service:
            return str(entry.get("revision", "?"))
    return "?"


def summarise(output: str, uri: str, service: str) -> str:
    """One line from the CLI's table: the deployment id and the service's revision."""
    found = _DEPLOYMENT_ID.search(output)
    rev = re.search(rf"^\s*{re.escape(service)}\s+(\d+)\s*$", output, re.MULTILINE)
    parts = [f"deployment {found.group(1)}" if found else None, f"{service} revision {rev.group(1)}" if rev else None]
    detail = ", ".join(p for p in parts if p)
    return f"registered {uri}" + (f" ({detail})" if detail else "")


def ensure(
    deployments: Callable[[], list[dict[str, Any]]],
    register: Callable[[bool], str],
    uri: str,
    service: str,
    use_http11: bool,
) -> Registration:
    """Register `uri` unless Restate already has it unchanged. `register(force)` runs the CLI."""
    known = existing(deployments(), uri, service)
    wanted_http = "HTTP/1.1" if use_http11 else "HTTP/2.0"
    if known is not None and known.get("http_version", wanted_http) == wanted_http:
        try:
            output = register(False)
        except CommandError as exc:  # Restate refuses a changed service without --force
            first = exc.stdout + exc.stderr
            output = first + register(True)
            return Registration(True, summarise(output, uri, service) + " (the service had changed)", output)
        if UNCHANGED_MARKER in output:
            rev = revision(known, service)
            line = f"already registered: {uri} (deployment {known.get('id')}, {service} revision {rev})"
            return Registration(False, line, output)
        return Registration(True, summarise(output, uri, service), output)
    # New, or its HTTP version differs (the CLI changes connection parameters only with --force).
    output = register(True)
    return Registration(True, summarise(output, uri, service), output)
