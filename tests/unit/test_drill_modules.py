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


def test_no_drill_module_reaches_through_the_stack():
    """Drills receive typed handles (drillkit.handles: the Restate endpoints, the writer and the target,
    the model, the cluster's nodes, the config), never the Stack (issue 20)."""
    offenders = []
    for path in sorted((PROJECT_ROOT / "drillkit" / "drills").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "stack":
                offenders.append(f"{path.name}:{node.lineno} .stack")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("drillkit.stack"):
                offenders.append(f"{path.name}:{node.lineno} from {node.module} import ...")
            elif isinstance(node, ast.Import):
                offenders += [
                    f"{path.name}:{node.lineno} import {a.name}" for a in node.names if a.name == "drillkit.stack"
                ]
            elif isinstance(node, ast.Name) and node.id == "Stack":
                offenders.append(f"{path.name}:{node.lineno} Stack")
    assert not offenders, offenders
