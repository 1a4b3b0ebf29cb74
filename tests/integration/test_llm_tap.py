"""A real tap process in front of the stub LLM, both started and stopped as recorded processes."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections import Counter
from pathlib import Path

import httpx
import openai
import pytest

from drillkit.components import llm_tap
from drillkit.components.llm_tap import TapFollower, read_tap, requests_per_step
from drillkit.procs import ProcessTable, proc_start_ticks
from drillkit.waits import poll

pytestmark = pytest.mark.integration


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.RequestError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tap(tmp_path_factory):
    state = tmp_path_factory.mktemp("tap-state")
    procs = ProcessTable(state / "procs")
    stub_port, tap_port = free_port(), free_port()
    record = state / "llm-tap.jsonl"
    stub_argv = [sys.executable, "-m", "drillkit.components.stub_llm", "--port", str(stub_port), "--delay-ms", "200"]
    stub = procs.spawn("stub-llm", stub_argv, state / "logs" / "stub-llm.log")
    poll(lambda: http_ok(f"http://127.0.0.1:{stub_port}/health"), bool, "the stub LLM", 30)
    argv = llm_tap.tap_argv(sys.executable, "127.0.0.1", tap_port, f"http://127.0.0.1:{stub_port}", record)
    tapped = procs.spawn("llm-tap", argv, state / "logs" / "llm-tap.log")
    try:
        llm_tap.wait_healthy(f"http://127.0.0.1:{tap_port}", timeout_s=30)
        yield {"url": f"http://127.0.0.1:{tap_port}", "record": record, "procs": procs, "state": state}
    finally:
        for name, spawned in (("llm-tap", tapped), ("stub-llm", stub)):
            stopped = procs.kill(name, signal.SIGTERM, timeout_s=10)
            assert stopped is not None and stopped.record.pid == spawned.pid, f"{name} was not running at the end"
            assert not stopped.escalated, f"{name} ignored SIGTERM"
            assert proc_start_ticks(spawned.pid) is None
        assert procs.names() == []


def client(url: str, timeout: float = 30.0) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=timeout)


async def ask(llm: openai.AsyncOpenAI, invocation_id: str, step: str) -> str | None:
    completion = await llm.chat.completions.create(
        model="stub",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"X-Restate-Invocation-Id": invocation_id, "X-Writer-Step": step, "X-Writer-Attempt": "1"},
    )
    return completion.choices[0].message.content


def test_fifty_concurrent_completions_all_answered_and_recorded(tap):
    async def fifty() -> list[str | None]:
        llm = client(tap["url"])
        try:
            return await asyncio.gather(*(ask(llm, "inv_fifty", f"section:{i}") for i in range(50)))
        finally:
            await llm.close()

    answers = asyncio.run(fifty())
    assert len(answers) == 50 and all(answers)
    # The end line is written once the answer has been handed to the server, so a caller can hold its
    # answer a moment before the line exists (CI saw 21 of 50 on a busy machine): wait for the lines.
    records = poll(
        lambda: [r for r in read_tap(tap["record"]) if r.invocation_id == "inv_fifty"],
        lambda rs: len(rs) == 50 and all(r.outcome is not None for r in rs),
        "the tap's 50 end lines",
        30,
    )
    lines = [line for line in tap["record"].read_text().splitlines() if line]
    assert Counter(line.split('"event":"', 1)[1].split('"', 1)[0] for line in lines) == {"request": 50, "end": 50}
    assert len(records) == 50
    assert all(r.outcome == "ok" and r.status == 200 and r.model == "stub" and r.attempt == 1 for r in records)
    assert requests_per_step(records, "inv_fifty") == {("inv_fifty", f"section:{i}"): 1 for i in range(50)}


def test_caller_that_gives_up_mid_way_is_recorded_as_client_gone(tap):
    follower = TapFollower(tap["record"])
    follower.update()  # what earlier tests left

    async def impatient() -> None:
        llm = client(tap["url"], timeout=0.05)  # the stub answers after 200 ms: the caller leaves first
        try:
            await ask(llm, "inv_gone", "outline")
        finally:
            await llm.close()

    with pytest.raises(openai.APITimeoutError):
        asyncio.run(impatient())
    seen: dict[str, llm_tap.TapRequest] = {}

    def ended() -> list[llm_tap.TapRequest]:
        seen.update((r.id, r) for r in follower.update())
        return [r for r in seen.values() if r.outcome is not None]

    [gone] = poll(ended, bool, "the tap's end line for the abandoned request", 10, interval_s=0.02)
    assert (gone.invocation_id, gone.step, gone.outcome, gone.status) == ("inv_gone", "outline", "client_gone", None)
    # The tap is still serving, and nothing went wrong inside it.
    llm_tap.wait_healthy(tap["url"], timeout_s=5)
    assert "Traceback" not in Path(tap["state"] / "logs" / "llm-tap.log").read_text()
