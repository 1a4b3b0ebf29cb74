"""Hostile requests through the real Restate: each bad body ends at once in a terminal error (the HTTP
status of the synchronous call, `sys_invocation`'s completion_failure for the asynchronous one), nothing
retried, the writer alive, nothing written outside the allowed roots; and the symlink race on output_dir,
planted while `outline` runs, refused when the report is written."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drillkit.components.stub_llm import StubLlm
from drillkit.evidence import in_flight_step, journal_steps
from drillkit.howto import fault_headers, howto_body
from drillkit.stack import Stack
from drillkit.waits import poll
from writer_service.config import FAULT_KEY_HEADER

RUN = "/WriterAgentRestate/run"
ANSWER_WITHIN_S = 5.0
STUB_PORT = 8092


def body_bytes(**changes: Any) -> bytes:
    body = howto_body()
    info = changes.pop("research_info", {})
    body.update(changes)
    body["research_info"].update(info)
    return json.dumps(body).encode()


def faults_body() -> bytes:
    return json.dumps(howto_body(faults={"crash": {"during_step": "outline"}})).encode()


# (id, raw body, headers, expected status, text the failure must contain)
CASES: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("nul-output-dir", body_bytes(research_info={"output_dir": "/tmp/a\x00b"}), {}, 400, "NUL"),
    ("nul-temp-dir", body_bytes(research_info={"temp_dir": "/tmp\x00"}), {}, 400, "NUL"),
    ("relative-output-dir", body_bytes(research_info={"output_dir": "reports"}), {}, 400, "absolute"),
    ("empty-output-dir", body_bytes(research_info={"output_dir": ""}), {}, 400, "absolute"),
    ("outside-roots", body_bytes(research_info={"output_dir": "/etc/x"}), {}, 400, "outside"),
    ("missing-prompt", json.dumps({"research_info": howto_body()["research_info"]}).encode(), {}, 400, "prompt"),
    ("typed-prompt", body_bytes(prompt=42), {}, 400, "prompt"),
    ("typed-plan", body_bytes(research_info={"max_search_plan": [1]}), {}, 400, "max_search_plan"),
    ("huge-prompt", body_bytes(prompt="x" * 20_001), {}, 400, "prompt"),
    ("blank-prompt", body_bytes(prompt=" \n\t "), {}, 400, "blank"),
    # 15,000 characters of search results cannot fit SmolLM2's 2,048-token slot (limits allow 500,000).
    ("over-context", body_bytes(research_info={"search_results": ["word " * 1000] * 3}), {}, 400, "context"),
    ("too-many-results", body_bytes(research_info={"search_results": ["r"] * 51}), {}, 400, "search_results"),
    ("array", b"[1, 2]", {}, 400, "array"),
    ("null", b"null", {}, 400, "null"),
    ("empty", b"", {}, 400, "Empty body"),  # Restate's ingress refuses it: no invocation at all
    ("deep-nesting", b"[" * 50_000 + b"]" * 50_000, {}, 400, "JSON"),
    ("surrogate", b'{"prompt": "a\\ud800b", "research_info": {}}', {}, 400, "prompt"),
    ("surrogate-path", body_bytes(research_info={"output_dir": "/tmp/\udc80"}), {}, 400, "output_dir"),
    ("malformed-json", b'{"prompt": "x", ', {}, 400, "not valid JSON"),
    ("invalid-utf8", b'{"prompt": "\xff\xfe"}', {}, 400, "UTF-8"),
    ("faults-without-key", faults_body(), {}, 403, FAULT_KEY_HEADER),
    ("faults-wrong-key", faults_body(), {FAULT_KEY_HEADER: "not-the-key"}, 403, FAULT_KEY_HEADER),
]

REFUSED_BY_INGRESS = {"empty"}


def post(stack: Stack, suffix: str, content: bytes, headers: dict[str, str]) -> Any:
    return stack.ingress.http.post(
        RUN + suffix, content=content, headers={"content-type": "application/json", **headers}, timeout=30.0
    )


def writer_pid(stack: Stack) -> int:
    record = stack.procs.live("writer")
    assert record is not None, "the writer is not running"
    return record.pid


def cwd_listing(pid: int) -> set[str]:
    return set(os.listdir(f"/proc/{pid}/cwd"))


@pytest.mark.parametrize(("name", "raw", "headers", "status", "needle"), CASES, ids=[c[0] for c in CASES])
def test_bad_body_is_refused_at_once_and_never_retried(stack, name, raw, headers, status, needle):
    pid = writer_pid(stack)
    before = cwd_listing(pid)
    hdrs = headers

    started = time.monotonic()
    response = post(stack, "", raw, hdrs)
    assert time.monotonic() - started < ANSWER_WITHIN_S
    assert response.status_code == status, response.text
    assert needle in response.text

    response = post(stack, "/send", raw, hdrs)
    if name in REFUSED_BY_INGRESS:
        assert response.status_code == status and needle in response.text
        assert writer_pid(stack) == pid
        return
    assert response.status_code == 202, response.text
    invocation_id = response.json()["invocationId"]
    started = time.monotonic()
    row = poll(
        lambda: stack.admin.invocation(invocation_id) or {},
        lambda r: r.get("status") == "completed",
        f"invocation {invocation_id} to end",
        ANSWER_WITHIN_S,
        interval_s=0.05,
    )
    assert time.monotonic() - started < ANSWER_WITHIN_S
    assert row["completion_result"] == "failure"
    assert needle in row["completion_failure"], row["completion_failure"]
    assert str(status) in row["completion_failure"]
    assert row.get("retry_count", 0) == 0, row
    assert not [e for e in stack.admin.journal_events(invocation_id) if e.get("event_type") == "TransientError"]
    assert stack.writer.ledger(invocation_id) == []  # no step ran

    assert writer_pid(stack) == pid  # alive, not restarted
    assert cwd_listing(pid) == before  # nothing landed in the writer's working directory
    if FAULT_KEY_HEADER in hdrs:
        assert hdrs[FAULT_KEY_HEADER] not in row["completion_failure"] + response.text


@pytest.fixture
def slow_writer(stack: Stack) -> Iterator[Stack]:
    """The writer pointed at the stub LLM answering each call after 1 s: `outline` is in flight long
    enough to plant a link deterministically, and every step after it too."""
    config = stack.writer.derived_config(
        "hostile-stub",
        {"writer_model.base_url": f"http://127.0.0.1:{STUB_PORT}/v1", "writer_model.model": "stub"},
    )
    stub = StubLlm(stack.procs, stack.state.log_file("stub-llm"), STUB_PORT)
    try:
        stub.start(delay_ms=1000)
        stack.writer.restart(config)
        yield stack
    finally:
        stack.writer.restart()
        stub.stop()


@pytest.fixture
def outside() -> Iterator[Path]:
    made = Path(tempfile.mkdtemp(prefix="hostile-outside-", dir="/var/tmp"))
    assert not Path(os.path.realpath(made)).is_relative_to(Path(os.path.realpath("/tmp")))
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


def test_request_faults_with_the_key_are_honoured(slow_writer):
    # On the stub LLM: the local model, on a loaded machine, can time out and blur what this checks.
    stack = slow_writer
    body = howto_body(faults={"tool_error": {"fail_first": 1}})
    invocation_id = stack.ingress.send(body, headers=fault_headers(stack.state, body))
    row = poll(
        lambda: stack.admin.invocation(invocation_id) or {},
        lambda r: r.get("status") == "completed",
        f"invocation {invocation_id} to end",
        60,
        interval_s=0.1,
    )
    assert row["completion_result"] == "success", row
    entries = stack.writer.executions(invocation_id)
    assert [e.outcome for e in entries if e.step == "save_report"] == ["error", "ok"]


def test_symlink_planted_during_outline_is_refused_at_write_time(slow_writer, outside, tmp_path):
    stack = slow_writer
    base = Path(tempfile.mkdtemp(prefix="hostile-race-", dir="/tmp"))
    parent = base / "x"  # does not exist yet: validation finds /tmp/.../x/reports inside /tmp
    try:
        body = howto_body()
        body["research_info"]["output_dir"] = str(parent / "reports")
        invocation_id = stack.ingress.send(body)
        poll(
            lambda: stack.admin.journal(invocation_id),
            lambda rows: in_flight_step(rows) == "outline",
            "outline to be running",
            30,
            interval_s=0.05,
        )
        parent.symlink_to(outside)
        planted_before = [s.name for s in journal_steps(stack.admin.journal(invocation_id))]
        assert "save_report" not in planted_before  # the link was there before the write began

        row = poll(
            lambda: stack.admin.invocation(invocation_id) or {},
            lambda r: r.get("status") == "completed",
            f"invocation {invocation_id} to end",
            60,
            interval_s=0.1,
        )
        assert row["completion_result"] == "failure"
        assert str(parent) in row["completion_failure"] and "symlink" in row["completion_failure"]
        assert "400" in row["completion_failure"]
        assert row.get("retry_count", 0) == 0
        entries = stack.writer.executions(invocation_id)
        assert [(e.step, e.outcome) for e in entries if e.step == "save_report"] == [("save_report", "error")]
        assert list(outside.iterdir()) == []  # nothing followed the link out
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_fault_key_appears_in_no_log(stack):
    key = stack.state.fault_key()
    for log in stack.state.logs.iterdir():
        assert key not in log.read_text(errors="replace"), log
