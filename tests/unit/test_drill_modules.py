"""A drill reads like a checklist: no function in drillkit/drills/ longer than 60 lines (issue 20);
what grows past that is kit (actions, probes, checks) or a named phase of its own."""

from __future__ import annotations

import ast

from drillkit.config import PROJECT_ROOT

LIMIT = 60


def test_no_function_in_a_drill_is_longer_than_60_lines():
    long = []
    for path in sorted((PROJECT_ROOT / "drillkit" / "drills").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > LIMIT:
                    long.append(f"{path.name}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long
