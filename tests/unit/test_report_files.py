import os
from pathlib import Path

import pytest

from writer_service.report_files import PathNotAllowed, report_file_name, write_atomically


def test_file_name_is_sanitized_and_stable():
    name = report_file_name("Écris: un/rapport ../../etc?", "content")
    assert name.startswith("ecris-un-rapport-etc-") and name.endswith(".md")
    assert "/" not in name and ".." not in name
    assert report_file_name("Écris: un/rapport ../../etc?", "content") == name
    assert report_file_name("Écris: un/rapport ../../etc?", "other") != name
    assert report_file_name("???", "x").startswith("report-")


def test_write_atomically_same_content_same_file(tmp_path):
    first = write_atomically(tmp_path / "out", "r.md", "# hello\n")
    second = write_atomically(tmp_path / "out", "r.md", "# hello\n")
    assert first == second and first.read_text() == "# hello\n"
    assert sorted(os.listdir(tmp_path / "out")) == ["r.md"]  # no temporary file left behind


@pytest.mark.parametrize("bad", ["../x.md", "a/b.md", "", ".."])
def test_write_refuses_non_plain_names(tmp_path, bad):
    with pytest.raises(PathNotAllowed):
        write_atomically(Path(tmp_path), bad, "x")
