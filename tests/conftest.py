"""Opt-in long runs: a test marked `long` (the 3-minute soak, the full evaluation, the protocol matrix,
drill.all with its real-model storm) runs only when asked for, with `--long` or `DRILL_LONG=1`:

    scripts/loopback-only --contained .venv/bin/python -m pytest --long -m long tests/integration

The default suite (`bash scripts/test.sh`, CI) runs one quick representative of each drill and target
instead; docs/testing.md lists the long ones and when they were last run."""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", default=False, help="also run the tests marked long (opt-in)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--long") or os.environ.get("DRILL_LONG") == "1":
        return
    skip = pytest.mark.skip(reason="long run, opt-in: pass --long (or DRILL_LONG=1); see docs/testing.md")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)
