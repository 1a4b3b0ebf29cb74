"""The README stays short and every local link in it and in docs/ leads somewhere: a file that exists,
and, for a `#fragment`, a heading of that page (GitHub's anchor for it)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 220

# [text](target) outside code; an image's ![alt](src) too. Targets with a scheme are not local.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)
FENCE = re.compile(r"^(```|~~~)")


def prose(text: str) -> str:
    """The page without fenced code blocks and inline code, where brackets are not links."""
    kept, in_fence = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            in_fence = not in_fence
            continue
        if not in_fence:
            kept.append(re.sub(r"`[^`]*`", "", line))
    return "\n".join(kept)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (hyphens and underscores kept),
    each space a hyphen."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    in_fence = False
    for line in page.read_text().splitlines():
        if FENCE.match(line.strip()):
            in_fence = not in_fence
            continue
        match = None if in_fence else re.match(r"^#{1,6} (.+?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")  # GitHub numbers repeated headings
    return found


def local_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(prose(page.read_text())) if not SCHEME.match(t)]


def test_the_readme_stays_short():
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines < README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/ (limit {README_MAX_LINES})"


def test_every_page_is_checked():
    names = {p.name for p in PAGES}
    assert {"README.md", "drills.md", "architecture.md", "testing.md", "targets.md"} <= names
    assert all(local_links(p) for p in PAGES if p.name == "README.md")  # the README links into docs/


def broken_links(page: Path) -> list[str]:
    """Each local link of `page` that leads nowhere, with why."""
    broken = []
    for target in local_links(page):
        path_part, _, fragment = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file ({dest})")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target}: {dest.name} has no heading with the anchor #{fragment}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_local_link_resolves(page):
    broken = broken_links(page)
    assert not broken, f"{page.relative_to(ROOT)}: broken links:\n" + "\n".join(broken)


def test_the_checker_would_catch_a_broken_link(tmp_path):
    # The link test could pass by finding no link at all: a page with good and bad links must fail on
    # exactly the bad ones (a missing file, a missing heading), never on a web link or one in code.
    (tmp_path / "other.md").write_text("# Other page\n\n## A `code` section: yes\n\n## Twice\n\n## Twice\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[good](other.md#a-code-section-yes) [second](other.md#twice-1) [self](#a-heading) [gone](missing.md) "
        "[bad anchor](other.md#nope) [web](https://example.com) `[inline](nowhere.md)`\n"
        "```\n[in code](nowhere.md)\n```\n\n## A heading\n"
    )
    assert broken_links(page) == [
        f"missing.md: no such file ({tmp_path / 'missing.md'})",
        "other.md#nope: other.md has no heading with the anchor #nope",
    ]
