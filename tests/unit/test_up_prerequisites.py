"""`inv up` checks before it starts, and registers only what Restate does not already have (issue 21)."""

import socket

import pytest
import yaml

from drillkit import preflight, registration
from drillkit.config import PROJECT_ROOT, load
from drillkit.errors import CommandError, ConfigMismatch
from drillkit.stack import Stack

# The CLI's text, as restate 1.7.12 printed it here (loopback namespace, 2026-12-03).
FORCED = """
❯ SERVICES THAT WILL BE UPDATED:
  - WriterAgentRestate
    Type: Service
    Revision: 1 -> 2

Are you sure you want to apply those changes? Auto-confirming --yes is set.
[OK]: DEPLOYMENT:
Deployment ID:  dp_12LiGlTi8eeulVghd4jZBN7
 SERVICE             REV
 WriterAgentRestate  2
"""
UNCHANGED = """❯ Deployment already exists with id dp_12LiGlTi8eeulVghd4jZBN7
       No changes will be made.
"""
URI = "http://127.0.0.1:9080"
KNOWN = {
    "id": "dp_12LiGlTi8eeulVghd4jZBN7",
    "uri": URI + "/",
    "http_version": "HTTP/2.0",
    "services": [{"name": "WriterAgentRestate", "revision": 2}],
}


class FakeCli:
    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, force):
        self.calls.append(force)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_a_new_deployment_is_registered_and_summarised_in_one_line():
    cli = FakeCli(FORCED)
    done = registration.ensure(lambda: [], cli, URI, "WriterAgentRestate", False)
    assert done.changed and cli.calls == [True]
    assert done.summary == f"registered {URI} (deployment dp_12LiGlTi8eeulVghd4jZBN7, WriterAgentRestate revision 2)"
    assert "\n" not in done.summary and "Are you sure" in done.output


def test_an_unchanged_deployment_is_left_alone_and_said_so():
    cli = FakeCli(UNCHANGED)
    done = registration.ensure(lambda: [KNOWN], cli, URI, "WriterAgentRestate", False)
    assert not done.changed and cli.calls == [False]  # never --force: no new revision
    assert done.summary.startswith(f"already registered: {URI} (deployment dp_12LiGlTi8eeulVghd4jZBN7")
    assert "revision 2" in done.summary


def test_a_changed_service_is_replaced_with_force():
    refused = CommandError(["restate"], 1, "", "conflict: the deployment already exists")
    cli = FakeCli(refused, FORCED)
    done = registration.ensure(lambda: [KNOWN], cli, URI, "WriterAgentRestate", False)
    assert done.changed and cli.calls == [False, True] and "changed" in done.summary


def test_another_http_version_is_a_change():
    cli = FakeCli(FORCED)
    done = registration.ensure(lambda: [KNOWN], cli, URI, "WriterAgentRestate", True)
    assert done.changed and cli.calls == [True]


def _stack(tmp_path, name="local.yaml", **runtime):
    data = yaml.safe_load((PROJECT_ROOT / "configs" / name).read_text())
    data.setdefault("runtime", {}).update({"state_dir": str(tmp_path / "state"), **runtime})
    if "extends" in data:
        data["extends"] = str(PROJECT_ROOT / "configs" / data["extends"])
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return Stack(load(path))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_up_names_every_missing_prerequisite_and_starts_nothing(tmp_path, monkeypatch):
    stack = _stack(tmp_path, ingress_url=f"http://127.0.0.1:{free_port()}", admin_url=f"http://127.0.0.1:{free_port()}")
    monkeypatch.setattr(preflight, "server_installed", lambda: False)
    monkeypatch.setattr(stack, "needs_setup", lambda: False)
    monkeypatch.setattr(stack.binaries, "find", lambda binary: None)
    monkeypatch.setattr(stack.model, "model_path", lambda: None)
    with pytest.raises(preflight.Problems) as err:
        stack.up()
    text = str(err.value)
    assert text.startswith("nothing was started; first:")
    assert preflight.install_hint() in text and "[local-llm]" in text
    assert "restate-server is not installed" in text and "restate is not installed" in text
    assert "the local model is not downloaded" in text
    assert not stack.procs.names(), "a process was recorded: something started"


def test_up_refuses_a_port_another_program_holds_before_starting_anything(tmp_path, monkeypatch):
    port = free_port()
    stack = _stack(tmp_path, ingress_url=f"http://127.0.0.1:{port}", admin_url=f"http://127.0.0.1:{free_port()}")
    monkeypatch.setattr(stack, "needs_setup", lambda: False)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with pytest.raises(preflight.Problems) as err:
            preflight.check(stack)
    assert f"port {port} (127.0.0.1:{port}, restate-server (native)) is in use by another program" in str(err.value)
    assert "runtime.ingress_url" in str(err.value)
    assert not stack.procs.names()


def test_a_port_held_by_our_process_of_another_config_is_a_config_error_naming_both(tmp_path, monkeypatch):
    port = free_port()
    stack = _stack(tmp_path, ingress_url=f"http://127.0.0.1:{port}", admin_url=f"http://127.0.0.1:{free_port()}")
    owner = type("R", (), {"name": "restate-server-n1", "pid": 4242, "config_source": "/x/configs/cluster.yaml"})()
    monkeypatch.setattr(preflight, "recorded_owner", lambda p, procs: owner if p == port else None)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with pytest.raises(ConfigMismatch) as err:
            preflight.check(stack)
    text = str(err.value)
    assert "/x/configs/cluster.yaml" in text and str(stack.config.source) in text
    assert "inv down --config /x/configs/cluster.yaml" in text


def test_the_last_invocation_is_kept_per_backend(tmp_path):
    from drillkit.state import StateDir

    native, cluster = StateDir(tmp_path, backend="native"), StateDir(tmp_path, backend="cluster")
    native.remember_invocation("inv_native")
    assert cluster.last_invocation() is None
    cluster.remember_invocation("inv_cluster")
    assert native.last_invocation() == "inv_native" and cluster.last_invocation() == "inv_cluster"


def test_list_with_nothing_says_so(tmp_path, monkeypatch, progress_lines):
    from drillkit import operations

    stack = _stack(tmp_path)
    cli = type("Cli", (), {"list": lambda self, include_completed=False: ""})()
    monkeypatch.setattr(stack, "cli", lambda: cli)
    monkeypatch.setattr(type(stack.server), "healthy", lambda self: True)
    operations.list_invocations(stack)
    operations.list_invocations(stack, include_completed=True)
    assert progress_lines == [
        "info: no invocations in flight (`inv list --all` adds completed ones)",
        "info: no invocations",
    ]


def test_a_howto_step_with_restate_down_names_the_config_and_inv_up(tmp_path, monkeypatch):
    """Not the CLI's "Unable to connect" nor an httpx ConnectError: one line naming what is missing and the fix."""
    from drillkit import operations
    from drillkit.errors import ComponentError

    stack = _stack(tmp_path)
    monkeypatch.setattr(type(stack.server), "healthy", lambda self: False)
    for step in (operations.list_invocations, operations.describe, operations.resume, operations.send):
        with pytest.raises(ComponentError) as caught:
            step(stack)
        text = str(caught.value)
        assert stack.config.runtime.admin_url in text and f"inv up --config {stack.config.source}" in text, text


def test_status_and_errors_name_what_runs_on_another_config(tmp_path, monkeypatch):
    import os

    from drillkit.procs import ProcessRecord

    stack = _stack(tmp_path)
    record = ProcessRecord("restate-server-n1", os.getpid(), 0, [], 0.0, "", "d", "/x/configs/cluster.yaml")
    monkeypatch.setattr(stack.procs, "names", lambda: ["restate-server-n1"])
    monkeypatch.setattr(stack.procs, "live", lambda name: record)
    text = preflight.other_configs_text(stack)
    assert text == (
        f"this is {stack.config.source}, but restate-server-n1 (pid {os.getpid()}) started with "
        "/x/configs/cluster.yaml: `inv status --config /x/configs/cluster.yaml` shows it"
    )
