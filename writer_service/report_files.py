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


class CannotWrite(OSError):
    """The report cannot be written there and no retry will change that; the message names the path."""

    def __str__(self) -> str:
        return str(self.strerror)


# At write time these will not go away by themselves: a retry would fail the same way (ENOSPC included:
# Restate would retry until it pauses, long after the model calls were spent).
PERMANENT_WRITE_ERRNOS = frozenset({errno.EPERM, errno.EACCES, errno.ENOSPC, errno.EROFS, errno.EDQUOT})


def protected_overlap(resolved: Path, protected: Iterable[Path]) -> Path | None:
    """The protected directory (resolved) that `resolved` is, is inside, or contains; else None."""
    for item in protected:
        real = Path(os.path.realpath(item))
        if resolved == real or resolved.is_relative_to(real) or real.is_relative_to(resolved):
            return real
    return None


def check_writable_dir(field: str, resolved: Path) -> None:
    """Refuse, before anything is spent, an output directory the writer can never write: an existing
    path that is not a directory (or a file on the way to it), or a directory it may not write or create
    folders in (EACCES, EPERM: `access(2)` also says no for an immutable directory, even to root).
    What exists is checked; the rest is made at write time, from the nearest existing ancestor."""
    here = resolved
    while not os.path.lexists(here):
        here = here.parent
    if not os.path.isdir(here):
        what = "an existing file" if here == resolved else f"under {shown(str(here))}, an existing file"
        raise CannotWrite(errno.ENOTDIR, f"research_info.{field}: {shown(str(resolved))} is {what}, not a directory")
    if not os.access(here, os.W_OK | os.X_OK):
        err = errno.EACCES
        try:  # the kernel's own reason (EPERM for an immutable directory); an unnamed file leaves no trace
            os.close(os.open(here, os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC, 0o600))
            return  # access(2) was more cautious than the kernel (ACLs, capabilities): it can be written
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):  # no O_TMPFILE support here
                err = exc.errno or err
        verb = "write into" if here == resolved else f"create {shown(str(resolved))} under"
        raise CannotWrite(
            err,
            f"research_info.{field}: the writer may not {verb} {shown(str(here))} ({errno.errorcode.get(err, err)})",
        )


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
    except OSError as exc:
        if isinstance(exc, PathNotAllowed | CannotWrite) or exc.errno not in PERMANENT_WRITE_ERRNOS:
            raise
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        raise CannotWrite(exc.errno, f"cannot write {directory / file_name}: {name}: {exc.strerror}") from None
    finally:
        os.close(fd)
    return directory / file_name
