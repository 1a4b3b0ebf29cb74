"""The GitHub Actions workflow: valid against the (vendored, offline) workflow schema, and it runs the
tasks and scripts the README documents."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

import tasks

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def run_lines() -> list[str]:
    data = yaml.safe_load(WORKFLOW.read_text())
    lines = []
    for job in data["jobs"].values():
        for step in job["steps"]:
            lines += [line.strip() for line in step.get("run", "").splitlines() if line.strip()]
    return lines


def test_workflow_passes_the_github_workflow_schema():
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or "check-jsonschema"
    out = subprocess.run(
        [checker, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_workflow_uses_only_well_known_actions():
    data = yaml.safe_load(WORKFLOW.read_text())
    uses = {step["uses"].split("@")[0] for job in data["jobs"].values() for step in job["steps"] if "uses" in step}
    assert uses <= {"actions/checkout", "actions/setup-python", "actions/cache", "actions/upload-artifact"}


def test_workflow_runs_the_tasks_the_readme_documents():
    readme = (ROOT / "README.md").read_text()
    names = set(tasks.ns.task_names)
    invoked = [m.group(1) for line in run_lines() for m in re.finditer(r"\binv ([a-z][\w.-]*)", line)]
    assert "drill.all" in invoked
    for task in invoked:
        assert task in names, f"the workflow runs `inv {task}`, which is not a task"
        assert f"inv {task}" in readme, f"the workflow runs `inv {task}`, which the README does not document"
    scripts = [m.group(1) for line in run_lines() for m in re.finditer(r"(scripts/[\w.-]+)", line)]
    for script in scripts:
        assert (ROOT / script).is_file()
        assert script in readme, f"the workflow runs {script}, which the README does not mention"


def test_drill_job_uses_the_docker_backend_and_keeps_reports():
    data = yaml.safe_load(WORKFLOW.read_text())
    steps = data["jobs"]["drills"]["steps"]
    run = " ".join(step.get("run", "") for step in steps)
    assert "--config configs/docker.yaml" in run
    upload = next(step for step in steps if step.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    cache = next(step for step in steps if step.get("uses", "").startswith("actions/cache"))
    assert ".drill/bin" in cache["with"]["path"] and ".drill/models" in cache["with"]["path"]
