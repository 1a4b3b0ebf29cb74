"""Benchmark plumbing: figures with median/min/max, the machine they came from, a stack on the stub LLM."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from drillkit import config as drill_config
from drillkit.binaries import SERVER
from drillkit.components.stub_llm import DEFAULT_PORT, StubLlm
from drillkit.stack import Stack

STUB_PORT = DEFAULT_PORT


@dataclass
class Figure:
    group: str
    name: str
    unit: str
    samples: list[float]
    target: str | None = None
    met: bool | None = None
    note: str = ""
    stats: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.samples:
            self.stats = {
                "median": round(statistics.median(self.samples), 4),
                "min": round(min(self.samples), 4),
                "max": round(max(self.samples), 4),
                "n": len(self.samples),
            }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def machine(stack: Stack) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    found = stack.binaries.find(SERVER)
    server_version = None
    if found:
        out = subprocess.run([str(found[0]), "--version"], capture_output=True, text=True, check=False)
        server_version = out.stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "restate_server": server_version,
        "restate_sdk": version("restate-sdk"),
        "backend": stack.server.name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def timed(action: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = action()
    return result, time.monotonic() - started


@contextmanager
def stub_stack(base: Stack, delay_ms: float = 0.0, **overrides: Any) -> Iterator[Stack]:
    """The base config pointed at the stub LLM (no local model), with the stub running; all stopped after."""
    name = f"bench-stub-{int(delay_ms)}ms"
    path = base.writer.derived_config(
        name,
        {
            "writer_model.base_url": f"http://127.0.0.1:{STUB_PORT}/v1",
            "writer_model.model": "stub",
            "local_model.enabled": False,
            **overrides,
        },
    )
    stack = Stack(drill_config.load(path))
    stub = StubLlm(stack.procs, stack.state.log_file("stub-llm"), STUB_PORT)
    stub.start(delay_ms)
    try:
        yield stack
    finally:
        stack.down()
        stub.stop()
        stack.close()
