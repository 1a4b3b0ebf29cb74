"""The seed's own writer shape as a target: targets/agents_writer (an OpenAI Agents SDK agent run by
Restate's DurableRunner, a durable save_report tool) on the local model, described only by the `target`
section of configs/agents-writer.yaml. Its journal's shape, a crash and a tool error, judged from
Restate's journal and the LLM tap.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from drillkit import catalog, target_check
from drillkit import config as drill_config
from drillkit.stack import Stack

from .conftest import ROOT, make_config, our_live_processes

pytestmark = pytest.mark.integration

AGENTS_CONFIG = ROOT / "configs" / "agents-writer.yaml"
SHAPE = ["timestamp", "call LLM", "save_report", "call LLM"]


@pytest.fixture(scope="module")
def agents(tmp_path_factory, project_state):
    pytest.importorskip("agents", reason="the agents extra is not installed (pip install -e '.[agents]')")
    shipped = yaml.safe_load(AGENTS_CONFIG.read_text())
    path = make_config(
        tmp_path_factory.mktemp("agents"),
        project_state,
        target=shipped["target"],
        **{"local_model.chat_template": shipped["local_model"]["chat_template"]},
    )
    stack = Stack(drill_config.load(path))
    try:
        stack.up()
        yield stack
    finally:
        stack.down(purge=True)
        assert our_live_processes(stack) == []
        stack.close()


def expectations(directory: Path) -> dict[str, bool]:
    record = json.loads((directory / "journal.json").read_text())
    return {e["name"]: e["passed"] for e in record["expectations"]}


def test_the_template_renders_what_the_ggufs_own_does_without_tools(agents):
    """The shipped writer's prompts must not change when the model serves the template with tools."""
    url = agents.model.url + "/apply-template"
    default_system = (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    )
    plain = [{"role": "user", "content": "hi"}]
    with_system = [{"role": "system", "content": "S"}, *plain]
    got = [httpx.post(url, json={"messages": m}, timeout=30).json()["prompt"] for m in (plain, with_system)]
    assert got == [
        default_system + "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    ]
    tools = [{"type": "function", "function": {"name": "save_report", "parameters": {"type": "object"}}}]
    rendered = httpx.post(url, json={"messages": plain, "tools": tools}, timeout=30).json()["prompt"]
    assert '"name": "save_report"' in rendered and "<tool_call>" in rendered  # tools reach the model


def test_target_check_shows_durable_runner_model_calls_and_the_tool(agents):
    result = target_check.check(agents)
    assert [s["name"] for s in result.shape] == SHAPE
    assert [s["model_requests"] for s in result.shape] == [0, 1, 0, 1]  # counted at the tap
    assert result.model_requests == 2
    points = dict(result.kill_points)
    assert points["crash"].startswith("run:2: call LLM cut in flight")
    assert "AGENTS_WRITER_TOOL_FAIL_FIRST" in points["tool-error"]
    report, saved = result.output["report"], Path(result.output["path"])
    assert set(report) == {"short_summary", "markdown_report", "follow_up_questions"}
    assert isinstance(report["follow_up_questions"], list) and len(report["follow_up_questions"]) <= 2
    assert saved.is_file() and saved.parent == Path("/tmp/restate-output/agents-writer")
    assert "written" in saved.read_text().splitlines()[0]  # the header with the journaled timestamp


def test_crash_during_a_model_call_of_the_agent(agents, tmp_path):
    record, directory = catalog.run(agents, catalog.crash(), tmp_path / "crash", keep_up=True)
    assert record.verdict == "PASS", record.reasons()
    assert record.parameters["at"] == "run:2"
    met = expectations(directory)
    assert met["no Run that had finished before the kill ran again (model requests at the tap)"]
    assert record.evidence["completed_at_kill"] == ["1:timestamp"]
    tap = record.evidence["tap_requests"]
    assert len({r["fingerprint"] for r in tap}) == 2  # write-and-save, then answer; the cut one may repeat
    assert len(tap) in (2, 3)


def test_tool_error_is_retried_by_restate_and_the_model_asked_once(agents, tmp_path):
    record, directory = catalog.run(agents, catalog.tool_error(2), tmp_path / "tool", keep_up=True)
    assert record.verdict == "PASS", record.reasons()
    met = expectations(directory)
    assert met["Restate retried it at least 2 times"]
    assert met["save_report journaled once, as a success"]
    assert met["every model step asked the model exactly once (replayed, not re-run, on each retry)"]


def test_requests_not_signed_by_this_restate_server_are_refused(agents):
    """RESTATE_IDENTITY_KEY reaches the SDK's identity keys: only the server holding the private half
    is served (the drills above ran with it set, so signed requests were)."""
    if not agents.config.runtime.request_identity:
        pytest.skip("runtime.request_identity is off: the target gets no key")
    spec = agents.target.spec
    unsigned = httpx.post(
        f"http://{spec.host}:{spec.port}/invoke/{spec.service}/{spec.handler}",
        headers={"content-type": "application/vnd.restate.invocation.v5"},
        content=b"",
        timeout=10,
    )
    assert unsigned.status_code == 401, unsigned.text[:200]
