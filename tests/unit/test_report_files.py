import os
from pathlib import Path

import pytest

from writer_service.report_files import PathNotAllowed, containing_root, report_file_name, write_contained


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
