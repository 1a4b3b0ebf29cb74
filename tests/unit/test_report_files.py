import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from writer_service.report_files import (
    CannotWrite,
    PathNotAllowed,
    check_writable_dir,
    containing_root,
    protected_overlap,
    report_file_name,
    write_contained,
)


def test_file_name_is_sanitized_and_stable():
    name = report_file_name("Écris: un/rapport ../../etc?", "content")
    assert name.startswith("ecris-un-rapport-etc-") and name.endswith(".md")
    assert "/" not in name and ".." not in name
    assert report_file_name("Écris: un/rapport ../../etc?", "content") == name
    assert report_file_name("Écris: un/rapport ../../etc?", "other") != name
    assert report_file_name("???", "x").startswith("report-")
    assert report_file_name("\x00\ud800/..", "\ud800").startswith("report-")  # no crash on odd text


@pytest.fixture
def root(tmp_path: Path) -> Path:
    made = tmp_path / "root"
    made.mkdir()
    return Path(os.path.realpath(made))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    made = tmp_path / "outside"
    made.mkdir()
    return made


def test_same_content_same_file_and_no_temporary_left(root):
    first = write_contained(root, root / "out", "r.md", "# hello\n")
    second = write_contained(root, root / "out", "r.md", "# hello\n")
    assert first == second == root / "out" / "r.md"
    assert first.read_text() == "# hello\n"
    assert sorted(os.listdir(root / "out")) == ["r.md"]


def test_nested_folders_are_made_and_existing_ones_reused(root):
    (root / "a").mkdir()
    (root / "a" / "keep.txt").write_text("x")
    path = write_contained(root, root / "a" / "b" / "c", "r.md", "deep")
    assert path == root / "a" / "b" / "c" / "r.md" and path.read_text() == "deep"
    assert (root / "a" / "keep.txt").read_text() == "x"
    assert write_contained(root, root, "top.md", "t") == root / "top.md"  # the root itself


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_a_symlink_at_any_level_is_refused_and_nothing_lands_outside(root, outside, depth):
    parts = ["a", "b", "c"]
    real = root.joinpath(*parts[:depth])
    real.mkdir(parents=True, exist_ok=True)
    (real / parts[depth]).symlink_to(outside)
    target = root.joinpath(*parts)
    with pytest.raises(PathNotAllowed) as err:
        write_contained(root, target, "r.md", "x")
    assert str(real / parts[depth]) in str(err.value) and "symlink" in str(err.value)
    assert list(outside.iterdir()) == []


def test_a_symlink_to_a_folder_inside_the_root_is_refused_too(root):
    (root / "real").mkdir()
    (root / "link").symlink_to(root / "real")
    with pytest.raises(PathNotAllowed):
        write_contained(root, root / "link", "r.md", "x")


def test_the_root_swapped_for_a_symlink_is_refused(tmp_path, outside):
    root = tmp_path / "swapped"
    root.symlink_to(outside)
    with pytest.raises(PathNotAllowed):
        write_contained(root, root / "x", "r.md", "x")
    assert list(outside.iterdir()) == []


def test_a_file_where_a_folder_should_be_is_refused(root):
    (root / "a").write_text("not a folder")
    with pytest.raises(PathNotAllowed, match="not a directory"):
        write_contained(root, root / "a" / "b", "r.md", "x")


def test_a_symlinked_report_name_is_replaced_not_followed(root, outside):
    (root / "r.md").symlink_to(outside / "victim.md")
    write_contained(root, root, "r.md", "mine")
    assert not (root / "r.md").is_symlink() and (root / "r.md").read_text() == "mine"
    assert not (outside / "victim.md").exists()


def test_a_folder_where_the_report_goes_is_refused(root):
    (root / "r.md").mkdir()
    with pytest.raises(PathNotAllowed, match="is a directory"):
        write_contained(root, root, "r.md", "x")


def test_a_directory_outside_the_root_is_refused(root, outside):
    with pytest.raises(PathNotAllowed):
        write_contained(root, outside, "r.md", "x")


@pytest.mark.parametrize("bad", ["../x.md", "a/b.md", "", "..", "."])
def test_write_refuses_non_plain_names(root, bad):
    with pytest.raises(PathNotAllowed):
        write_contained(root, root, bad, "x")


def test_lone_surrogates_in_content_do_not_fail_the_write(root):
    path = write_contained(root, root, "r.md", "a\ud800b")
    assert path.read_text() == "a?b"


def test_containing_root_is_the_most_specific(tmp_path):
    outer = Path(os.path.realpath(tmp_path))
    inner = outer / "inner"
    assert containing_root(inner / "x", [outer, inner]) == inner
    assert containing_root(outer / "y", [inner, outer]) == outer
    with pytest.raises(PathNotAllowed):
        containing_root(Path("/elsewhere"), [inner])


def test_an_existing_file_as_output_dir_is_refused_before_anything_runs(root):
    (root / "taken").write_text("x")
    with pytest.raises(CannotWrite, match="is an existing file, not a directory") as err:
        check_writable_dir("output_dir", root / "taken")
    assert err.value.errno == errno.ENOTDIR
    with pytest.raises(CannotWrite, match="an existing file, not a directory"):
        check_writable_dir("output_dir", root / "taken" / "below")


def test_a_missing_output_dir_is_fine_when_its_nearest_ancestor_is_writable(root):
    check_writable_dir("output_dir", root / "a" / "b")
    check_writable_dir("output_dir", root)
    assert list(root.iterdir()) == []  # the check leaves nothing behind


def test_a_directory_the_writer_may_not_write_is_refused_with_the_kernels_reason(root, monkeypatch):
    locked = root / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):
        if Path(path) == locked and flags & os.O_TMPFILE == os.O_TMPFILE:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    with pytest.raises(CannotWrite, match=r"may not create .*locked/new.* under .*locked.* \(EACCES\)") as err:
        check_writable_dir("output_dir", locked / "new")
    assert err.value.errno == errno.EACCES
    with pytest.raises(CannotWrite, match=r"may not write into .*locked"):
        check_writable_dir("output_dir", locked)


@pytest.fixture
def immutable(root: Path):
    """A directory even root may not create folders in (chattr +i), where the filesystem supports it."""
    made = root / "immutable"
    made.mkdir()
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        pytest.skip("needs root and chattr")
    if subprocess.run(["chattr", "+i", str(made)], capture_output=True).returncode != 0:
        pytest.skip(f"chattr +i is not supported on {made}'s filesystem")
    try:
        yield made
    finally:
        subprocess.run(["chattr", "-i", str(made)], check=True)


def test_an_immutable_directory_is_refused_with_eperm(immutable):
    with pytest.raises(CannotWrite, match=r"\(EPERM\)") as err:
        check_writable_dir("output_dir", immutable / "reports")
    assert err.value.errno == errno.EPERM
    with pytest.raises(PermissionError):  # what the write would have met
        os.mkdir(immutable / "reports")


@pytest.mark.parametrize("code", [errno.EPERM, errno.EACCES, errno.ENOSPC, errno.EROFS])
def test_permanent_write_errors_become_cannot_write_naming_the_path(root, monkeypatch, code):
    real_open = os.open

    def failing_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            raise OSError(code, os.strerror(code))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", failing_open)
    with pytest.raises(CannotWrite) as err:
        write_contained(root, root / "out", "r.md", "# x\n")
    assert err.value.errno == code
    assert str(root / "out" / "r.md") in str(err.value) and errno.errorcode[code] in str(err.value)


def test_a_transient_write_error_stays_retryable(root, monkeypatch):
    real_open = os.open

    def failing_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            raise OSError(errno.EIO, "I/O error")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", failing_open)
    with pytest.raises(OSError) as err:
        write_contained(root, root / "out", "r.md", "# x\n")
    assert not isinstance(err.value, CannotWrite)


@pytest.mark.parametrize("where", ["is", "inside", "contains"])
def test_protected_overlap_catches_is_inside_and_contains(tmp_path, where):
    project = tmp_path / "clone" / "project"
    project.mkdir(parents=True)
    candidate = {"is": project, "inside": project / ".drill" / "x", "contains": tmp_path / "clone"}[where]
    assert protected_overlap(Path(os.path.realpath(candidate)), [project]) == Path(os.path.realpath(project))
    assert protected_overlap(Path(os.path.realpath(tmp_path / "elsewhere")), [project]) is None


def test_protected_overlap_resolves_symlinks(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "link").symlink_to(project)
    assert protected_overlap(Path(os.path.realpath(project / "x")), [tmp_path / "link"]) is not None
