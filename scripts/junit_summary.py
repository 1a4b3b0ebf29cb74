#!/usr/bin/env python3
"""Render JUnit XML files as a Markdown table (for a CI job summary): one row per test case.

    python scripts/junit_summary.py drill-reports >> "$GITHUB_STEP_SUMMARY"

Takes files or directories (searched for *.xml). Exits 0 whatever the results: the job's own steps
decide pass or fail; this only shows them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from xml.etree import ElementTree as ET


def files(args: list[str]) -> list[Path]:
    found: list[Path] = []
    for arg in args:
        path = Path(arg)
        found += sorted(path.rglob("*.xml")) if path.is_dir() else [path] if path.is_file() else []
    return found


def rows(path: Path) -> list[tuple[str, str, str, str]]:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    out = []
    for suite in suites:
        for case in suite.iter("testcase"):
            problem = case.find("failure")
            if problem is None:
                problem = case.find("error")
            skipped = case.find("skipped") is not None
            status = "❌" if problem is not None else "⏭️" if skipped else "✅"
            detail = (problem.get("message") or "") if problem is not None else ""
            out.append((status, suite.get("name", ""), case.get("name", ""), detail.replace("|", "\\|")[:200]))
    return out


def main(args: list[str]) -> int:
    paths = files(args)
    if not paths:
        print(f"No JUnit files found in {' '.join(args) or '(nothing given)'}.")
        return 0
    table = [row for path in paths for row in rows(path)]
    failed = sum(1 for row in table if row[0] == "❌")
    print(f"### {len(table) - failed} passed, {failed} failed\n")
    print("| | suite | test | failure |\n|---|---|---|---|")
    for row in table:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
