"""The HOW-TO's request bodies, sent by `inv invoke`, `inv send` and the drills."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drillkit.errors import DrillError

NOMINAL_PROMPT = "Ecris un court rapport de test."
RESTART_PROMPT = "Ecris un rapport plus long pour tester un redemarrage."


def howto_body(prompt: str = NOMINAL_PROMPT) -> dict[str, Any]:
    """The HOW-TO's body. It never carries faults: the writer refuses them (they come from its config)."""
    return {
        "prompt": prompt,
        "research_info": {
            "temp_dir": "/tmp",
            "output_dir": "/tmp/restate-output",
            "max_search_plan": "1",
            "vector_store_name": None,
            "vector_store_id": None,
            "search_results": [],
        },
    }


def read_body(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DrillError(f"{path}: request body file not found") from None
    except ValueError as exc:
        raise DrillError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DrillError(f"{path}: the request body must be a JSON object")
    return data
