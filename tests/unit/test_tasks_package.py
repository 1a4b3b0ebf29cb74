"""Invoke puts the `tasks` package's own directory on sys.path when it loads it, so a module there named
like an installed package shadows it for everything the task imports later (seen: `tasks/restate.py` took
the place of restate-sdk, and `inv bench` died importing the writer)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from drillkit.config import PROJECT_ROOT


def test_no_module_of_the_tasks_package_shadows_an_installed_one():
    names = [p.stem for p in (PROJECT_ROOT / "tasks").glob("*.py") if p.stem != "__init__"]
    shadowing = [name for name in names if importlib.util.find_spec(name) is not None]
    assert not shadowing, f"tasks/ modules named like installed packages: {shadowing}"


def test_inv_loads_the_tasks_and_the_writer_still_imports_restate_sdk():
    code = (
        "import sys; from invoke import FilesystemLoader; FilesystemLoader(start='.').load('tasks'); "
        "from restate import TerminalError; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
