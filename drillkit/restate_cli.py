"""The downloaded `restate` CLI, run exactly as the HOW-TO types it (with `RESTATE_ADMIN_URL` set)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drillkit.errors import CommandError


@dataclass(frozen=True)
class RestateCli:
    binary: Path
    admin_url: str
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run

    def register_argv(self, uri: str, use_http11: bool = False, force: bool = False) -> list[str]:
        argv = [str(self.binary), "deployments", "register", uri, "-y"]
        if use_http11:
            argv.append("--use-http1.1")
        if force:
            argv.append("--force")
        return argv

    def describe_argv(self, invocation_id: str) -> list[str]:
        return [str(self.binary), "invocations", "describe", invocation_id]

    def list_argv(self, include_completed: bool = False) -> list[str]:
        argv = [str(self.binary), "invocations", "list"]
        if include_completed:
            argv.append("--all")
        return argv

    def env(self) -> dict[str, str]:
        # NO_COLOR and a wide terminal keep the text parseable and the ids unbroken.
        return {
            **os.environ,
            "RESTATE_ADMIN_URL": self.admin_url,
            "NO_COLOR": "1",
            "COLUMNS": "200",
            "TERM": "dumb",
        }

    def execute(self, argv: list[str], timeout_s: float = 60.0) -> str:
        """Run a CLI command; its stdout, or CommandError with the command line, exit code and output."""
        out = self.run(argv, capture_output=True, text=True, timeout=timeout_s, env=self.env(), check=False)
        if out.returncode != 0:
            raise CommandError(argv, out.returncode, out.stdout, out.stderr)
        return str(out.stdout)

    def register(self, uri: str, use_http11: bool = False, force: bool = False) -> str:
        return self.execute(self.register_argv(uri, use_http11, force))

    def describe(self, invocation_id: str) -> str:
        return self.execute(self.describe_argv(invocation_id))

    def list(self, include_completed: bool = False) -> str:
        return self.execute(self.list_argv(include_completed))
