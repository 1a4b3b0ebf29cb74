"""Where reports go: output paths contained in allowed roots, sanitized names, atomic writes."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable
from pathlib import Path


class PathNotAllowed(ValueError):
    """A requested directory resolves outside every allowed root."""


def contained_dir(field: str, requested: str, allowed_roots: Iterable[Path]) -> Path:
    """Resolve `requested` (after `..` and symlinks) and require it inside one of `allowed_roots`."""
    resolved = Path(os.path.realpath(requested))
    roots = [Path(os.path.realpath(root)) for root in allowed_roots]
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(r) for r in roots)
        raise PathNotAllowed(
            f"research_info.{field}: {requested!r} resolves to {resolved}, outside the allowed roots ({allowed})"
        )
    return resolved


def report_file_name(topic: str, content: str) -> str:
    """A safe, stable file name: a slug of the topic plus a hash of the content (same content, same file)."""
    ascii_topic = unicodedata.normalize("NFKD", topic).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_topic.lower()).strip("-")[:60].strip("-") or "report"
    digest = hashlib.sha256(content.encode()).hexdigest()[:12]
    return f"{slug}-{digest}.md"


def write_atomically(directory: Path, file_name: str, content: str) -> Path:
    """Write via a temporary file in the same directory and rename: readers never see half a report."""
    if Path(file_name).name != file_name or file_name in {"", ".", ".."}:
        raise PathNotAllowed(f"report file name {file_name!r} is not a plain file name")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / file_name
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{file_name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
