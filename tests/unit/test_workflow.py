"""The GitHub Actions workflow: valid against the (vendored, offline) workflow schema, and it runs the
tasks and scripts that docs/testing.md (its GitHub Actions section, once the README's) documents."""

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


def test_workflow_runs_the_tasks_the_docs_document():
    page = (ROOT / "docs" / "testing.md").read_text()
    section = page[page.index("## GitHub Actions") :]  # the section that describes the workflow
    names = set(tasks.ns.task_names)
    invoked = [m.group(1) for line in run_lines() for m in re.finditer(r"\binv ([a-z][\w.-]*)", line)]
    assert "drill.all" in invoked
    for task in invoked:
        assert task in names, f"the workflow runs `inv {task}`, which is not a task"
        assert f"inv {task}" in section, f"the workflow runs `inv {task}`, which docs/testing.md does not document"
    scripts = [m.group(1) for line in run_lines() for m in re.finditer(r"(scripts/[\w.-]+)", line)]
    for script in scripts:
        assert (ROOT / script).is_file()
        assert script in section, f"the workflow runs {script}, which docs/testing.md does not mention"


def test_drill_job_uses_the_docker_backend_and_keeps_reports():
    data = yaml.safe_load(WORKFLOW.read_text())
    steps = data["jobs"]["drills"]["steps"]
    run = " ".join(step.get("run", "") for step in steps)
    assert "--config configs/docker.yaml" in run
    upload = next(step for step in steps if step.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    cache = next(step for step in steps if step.get("uses", "").startswith("actions/cache"))
    assert ".drill/bin" in cache["with"]["path"] and ".drill/models" in cache["with"]["path"]


# -- the security audit (issue 22) -------------------------------------------------------------------

# The commit each pinned action points at, as read from the action's own repository (its tag): a pin is
# checked against this table, so a SHA cannot be changed (or invented) without the version beside it.
PINNED = {
    "actions/checkout": ("11d5960a326750d5838078e36cf38b85af677262", "v4.4.0"),
    "actions/setup-python": ("a26af69be951a213d495a4c3e4e4022e16d87065", "v5.6.0"),
    "actions/cache": ("0057852bfaa89a56745cba8c7296529d2fc39830", "v4.3.0"),
    "actions/upload-artifact": ("ea165f8d65b6e75b540449e92b4886f43607fa02", "v4.6.2"),
}
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<action>[\w.-]+/[\w.-]+)@(?P<ref>\S+)(?:\s+#\s*(?P<comment>\S+))?\s*$")


def zizmor(*paths: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("zizmor", path=str(Path(sys.executable).parent)) or "zizmor"
    return subprocess.run(
        [exe, "--offline", "--no-progress", *map(str, paths)], capture_output=True, text=True, check=False
    )


def test_zizmor_finds_nothing_in_the_workflows():
    out = zizmor(WORKFLOW.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No findings" in out.stdout + out.stderr


def test_zizmor_would_catch_an_unpinned_action_and_persisted_credentials(tmp_path):
    # The audit above could pass by auditing nothing: the same file with a moving tag and the default
    # checkout must be flagged (high and medium), or the check proves nothing.
    text = WORKFLOW.read_text()
    sha, version = PINNED["actions/checkout"]
    loose = text.replace(f"actions/checkout@{sha} # {version}", "actions/checkout@v4")
    # The checkout's default (no `persist-credentials`): the token is written into .git/config.
    loose = re.sub(r"\n\s+with:\n\s+persist-credentials: false[^\n]*", "", loose)
    assert loose != text
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    copy = tmp_path / ".github" / "workflows" / "ci.yml"
    copy.write_text(loose)
    out = zizmor(copy)
    assert out.returncode != 0
    assert "unpinned-uses" in out.stdout and "artipacked" in out.stdout, out.stdout + out.stderr


def test_every_action_is_pinned_to_its_tags_commit_with_the_version_beside_it():
    lines = [line for line in WORKFLOW.read_text().splitlines() if re.search(r"^\s*(-\s+)?uses:", line)]
    assert len(lines) >= 8  # checkout and setup-python in each of three jobs, then caches and uploads
    for line in lines:
        match = USES_LINE.match(line)
        assert match, f"not `uses: owner/name@<sha> # <version>`: {line.strip()}"
        action, ref, comment = match["action"], match["ref"], match["comment"]
        assert action in PINNED, f"{action} has no known pin (add its tag's commit to PINNED)"
        assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{action}@{ref}: not a full commit SHA"
        assert (ref, comment) == PINNED[action], f"{action}@{ref} # {comment}: expected {PINNED[action]}"


def test_checkouts_keep_no_credentials_and_jobs_ask_for_least_permissions():
    data = yaml.safe_load(WORKFLOW.read_text())
    assert data["permissions"] == {}, "the workflow grants nothing by default; jobs ask for their own"
    for name, job in data["jobs"].items():
        assert job.get("permissions") == {"contents": "read"}, f"job {name}: permissions {job.get('permissions')}"
        checkouts = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
        assert checkouts, f"job {name} has no checkout"
        for step in checkouts:
            assert step.get("with", {}).get("persist-credentials") is False, f"job {name}: checkout keeps the token"


def test_ci_and_the_test_script_run_the_audit():
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["checks"]["steps"]
    assert any("zizmor --offline .github/workflows/" in s.get("run", "") for s in steps)
    assert ".venv/bin/zizmor --offline .github/workflows/" in (ROOT / "scripts" / "test.sh").read_text()
