"""A Restate service this repository did not write (`notes_service.py`), and its `target` section."""

from __future__ import annotations

from pathlib import Path

SERVICE = Path(__file__).parent / "notes_service.py"
PORT = 9085


def stranger(port: int = PORT, **target: object) -> dict[str, object]:
    return {
        "command": ["python", str(SERVICE)],
        "env": {"NOTES_PORT": str(port)},
        "port": port,
        "service": "Notes",
        "handler": "summarize",
        "body": {"topic": "rivers {{nonce}}", "dir": "/tmp/notes-out"},
        "llm_base_url_env": "LLM_URL",
        "tool_fault": {"env": "NOTES_FAIL_STORE", "step": "store"},
        **target,
    }
