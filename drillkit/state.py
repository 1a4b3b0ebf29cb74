"""The state dir (default `.drill/`): binaries, model cache, Restate data, process records, logs, reports."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StateDir:
    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def restate_data(self) -> Path:
        return self.root / "restate-data"

    @property
    def procs(self) -> Path:
        return self.root / "procs"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def last_invocation_file(self) -> Path:
        return self.root / "last_invocation_id"

    def log_file(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def remember_invocation(self, invocation_id: str) -> None:
        write_text_atomically(self.last_invocation_file, invocation_id + "\n")

    def last_invocation(self) -> str | None:
        try:
            return self.last_invocation_file.read_text().strip() or None
        except FileNotFoundError:
            return None


def write_text_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    write_text_atomically(path, json.dumps(data, indent=2, default=str) + "\n")
