"""Where reports go: output paths contained in allowed roots (when checked and when written), sanitized
names, atomic writes."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from writer_service.models import shown


class PathNotAllowed(ValueError):
    """A requested directory resolves outside every allowed root."""


def contained_dir(field: str, requested: str, allowed_roots: Iterable[Path]) -> Path:
    """Resolve `requested` (after `..` and symlinks) and require it inside one of `allowed_roots`."""
    resolved = Path(os.path.realpath(requested))
    roots = [Path(os.path.realpath(root)) for root in allowed_roots]
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(r) for r in roots)
        raise PathNotAllowed(
            f"research_info.{field}: {shown(requested)} resolves to {shown(str(resolved))}, "
            f"outside the allowed roots ({allowed})"
        )
    return resolved


def report_file_name(topic: str, content: str) -> str:
    """A safe, stable file name: a slug of the topic plus a hash of the content (same content, same file)."""
    ascii_topic = unicodedata.normalize("NFKD", topic).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_topic.lower()).strip("-")[:60].strip("-") or "report"
    digest = hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{slug}-{digest}.md"


def containing_root(directory: Path, allowed_roots: Iterable[Path]) -> Path:
    """The most specific allowed root (resolved) that holds the resolved `directory`."""
    roots = sorted((Path(os.path.realpath(root)) for root in allowed_roots), key=lambda r: len(r.parts), reverse=True)
    for root in roots:
        if directory == root or directory.is_relative_to(root):
            return root
    raise PathNotAllowed(f"{directory} is outside the allowed roots ({', '.join(str(r) for r in roots)})")


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_dir(name: str, dir_fd: int | None, shown_path: Path) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            what = "a symlink" if os.path.islink(shown_path) else "not a directory"
            raise PathNotAllowed(
                f"{shown_path} is {what} at write time; refusing to follow it out of the allowed root"
            ) from None
        raise


def write_contained(root: Path, directory: Path, file_name: str, content: str) -> Path:
    """Write `directory/file_name` without leaving `root`, whatever changed since the request was checked.

    The request's `output_dir` was resolved and found inside `root` before the LLM steps ran; by the time
    the report is saved, any folder on the way may have been swapped for a symlink. So the walk starts from
    a descriptor of `root` and opens each component relative to the previous one with O_NOFOLLOW (a symlink
    anywhere is refused, not followed), creating missing folders the same way; the temporary file and the
    rename happen inside the last descriptor. Same content, same file; readers never see half a report.
    """
    if Path(file_name).name != file_name or file_name in {"", ".", ".."}:
        raise PathNotAllowed(f"report file name {file_name!r} is not a plain file name")
    if not directory.is_absolute() or not (directory == root or directory.is_relative_to(root)):
        raise PathNotAllowed(f"{directory} is not inside the allowed root {root}")
    fd = _open_dir(str(root), None, root)
    try:
        here = root
        for part in directory.relative_to(root).parts:
            here = here / part
            try:
                next_fd = _open_dir(part, fd, here)
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):  # another writer made it first: fine
                    os.mkdir(part, dir_fd=fd)
                next_fd = _open_dir(part, fd, here)
            os.close(fd)
            fd = next_fd
        tmp = f".{file_name}.{secrets.token_hex(6)}.tmp"
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=fd)
        try:
            # A model answer can hold lone surrogates: write them as "?" rather than fail forever.
            with os.fdopen(out, "w", encoding="utf-8", errors="replace") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.replace(tmp, file_name, src_dir_fd=fd, dst_dir_fd=fd)
            except IsADirectoryError:
                raise PathNotAllowed(f"{directory / file_name} is a directory; refusing to replace it") from None
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=fd)
            raise
        os.fsync(fd)  # the rename itself survives a crash
    finally:
        os.close(fd)
    return directory / file_name
