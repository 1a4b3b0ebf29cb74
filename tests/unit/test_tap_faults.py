"""The LLM tap's fault plan: which requests get a fault, what each fault answers, what the record says."""

import asyncio
import json
import time

import httpx
import pytest

from drillkit.components import llm_tap
from drillkit.components.llm_tap import read_tap
from drillkit.components.tap_faults import (
    FAULTS,
    FaultPlan,
    FaultSchedule,
    malform_answer,
    trickle,
    truncate_answer,
)
from drillkit.errors import ConfigError

UPSTREAM = "http://upstream.test:8091"
SUMMARY = {"short_summary": "Rivers carry water.", "follow_up_questions": ["Which rivers?"]}


def completion(content: str = json.dumps(SUMMARY), finish_reason: str = "stop") -> dict:
    return {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "finish_reason": finish_reason, "message": {"role": "assistant", "content": content}}],
    }


def chat(step: str = "outline") -> dict:
    return {
        "method": "POST",
        "url": "/v1/chat/completions",
        "json": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        "headers": {"X-Restate-Invocation-Id": "inv_1", "X-Writer-Step": step, "X-Writer-Attempt": "1"},
    }


def through(tmp_path, plan: FaultPlan, requests: list[dict], content: str | None = None):
    """Send `requests` one after the other through a tap with `plan`; returns the responses (or the
    exception a broken one raised) and how many reached the upstream."""
    reached = []

    def upstream(request):
        reached.append(request)
        body = json.dumps(completion(content) if content is not None else completion()).encode()
        # A body still to be read, as from a real connection (`json=` would be read already).
        return httpx.Response(200, headers={"content-type": "application/json"}, stream=httpx.ByteStream(body))

    async def scenario():
        app = llm_tap.build_app(UPSTREAM, tmp_path / "tap.jsonl", transport=httpx.MockTransport(upstream), faults=plan)
        results = []
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tap") as client:
                for request in requests:
                    try:
                        results.append(await client.request(**request))
                    except Exception as exc:  # the reset fault breaks the response on purpose
                        results.append(exc)
        finally:
            await app.close()
        return results

    return asyncio.run(scenario()), reached


def test_a_plan_refuses_what_it_cannot_do_naming_the_field():
    with pytest.raises(ConfigError, match="fault: unknown '418'"):
        FaultPlan("418")
    with pytest.raises(ConfigError, match="burst: must be at least 1"):
        FaultPlan("500", burst=0)
    with pytest.raises(ConfigError, match="slow_s"):
        FaultPlan("slow", slow_s=0)


def test_a_plan_file_round_trips_and_a_bad_one_names_the_file_and_field(tmp_path):
    plan = FaultPlan("429", burst=3, skip=1, steps=("outline",), retry_after_s=4)
    assert FaultPlan.read(plan.write(tmp_path / "plan.json")) == plan
    (tmp_path / "bad.json").write_text('{"fault": "500", "bursts": 2}')
    with pytest.raises(ConfigError, match=r"bad.json: field bursts: unknown field"):
        FaultPlan.read(tmp_path / "bad.json")
    (tmp_path / "steps.json").write_text('{"fault": "500", "steps": "outline"}')
    with pytest.raises(ConfigError, match=r"steps.json: steps: must be a list"):
        FaultPlan.read(tmp_path / "steps.json")


def test_the_schedule_skips_then_bursts_on_matching_model_requests_only():
    schedule = FaultSchedule(FaultPlan("500", burst=2, skip=1, steps=("outline",)))
    path = "/v1/chat/completions"
    assert schedule.take("GET", "/v1/models", "outline") is None  # not a model answer: not counted
    assert schedule.take("POST", path, "summary") is None  # another step: not counted
    taken = [schedule.take("POST", path, "outline") for _ in range(4)]
    assert taken == [None, "500", "500", None]


@pytest.mark.parametrize("status", ["400", "429", "500", "503"])
def test_a_status_fault_answers_instead_of_the_model_and_is_recorded(tmp_path, status):
    [response], reached = through(tmp_path, FaultPlan(status, retry_after_s=7), [chat()])
    assert response.status_code == int(status) and reached == []  # the model never saw it
    assert response.json()["error"]["code"] == f"llm_tap_{status}"
    assert response.headers.get("retry-after") == ("7" if status == "429" else None)
    [tapped] = read_tap(tmp_path / "tap.jsonl")
    assert (tapped.fault, tapped.outcome, tapped.status, tapped.step) == (status, "fault", int(status), "outline")
    assert tapped.retry_after_s == (7 if status == "429" else None)


def test_a_burst_ends_and_the_next_request_reaches_the_model(tmp_path):
    responses, reached = through(tmp_path, FaultPlan("503", burst=2), [chat(), chat(), chat()])
    assert [r.status_code for r in responses] == [503, 503, 200] and len(reached) == 1
    assert [t.fault for t in read_tap(tmp_path / "tap.jsonl")] == ["503", "503", None]
    assert read_tap(tmp_path / "tap.jsonl")[-1].outcome == "ok"


def test_a_reset_breaks_the_answer_mid_body_and_the_caller_sees_no_whole_response(tmp_path):
    [result], reached = through(tmp_path, FaultPlan("reset"), [chat()])
    assert isinstance(result, Exception) and len(reached) == 1  # asked the model, then dropped the line
    [tapped] = read_tap(tmp_path / "tap.jsonl")
    assert (tapped.fault, tapped.outcome, tapped.status) == ("reset", "fault", 200)
    assert "connection dropped after" in tapped.error


def test_a_hang_answers_nothing_and_never_asks_the_model(tmp_path):
    [result], reached = through(tmp_path, FaultPlan("hang", hang_s=0.2), [chat()])
    assert isinstance(result, Exception) and reached == []  # no status, no body: the line is dropped
    [tapped] = read_tap(tmp_path / "tap.jsonl")
    assert (tapped.fault, tapped.outcome, tapped.status) == ("hang", "fault", None)
    assert "no answer in 0.2 s" in tapped.error


def test_truncated_cuts_the_structured_answer_inside_a_valid_body(tmp_path):
    [response], _ = through(tmp_path, FaultPlan("truncated", steps=("summary",)), [chat("summary")])
    choice = response.json()["choices"][0]  # the HTTP body itself parses
    assert choice["finish_reason"] == "length"
    assert json.dumps(SUMMARY).startswith(choice["message"]["content"])
    with pytest.raises(ValueError):
        json.loads(choice["message"]["content"])


def test_malformed_makes_the_answer_no_json_but_whole(tmp_path):
    [response], _ = through(tmp_path, FaultPlan("malformed"), [chat("summary")])
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == repr(SUMMARY)
    with pytest.raises(ValueError):
        json.loads(choice["message"]["content"])


def test_malformed_and_truncated_on_answers_that_are_not_json_objects():
    cut = json.dumps(completion('{"short_summary": "abc', "length")).encode()
    assert json.loads(malform_answer(cut))["choices"][0]["message"]["content"] == "{'short_summary': 'abc"
    prose = json.dumps(completion("plain words")).encode()
    assert json.loads(malform_answer(prose))["choices"][0]["message"]["content"] == "{plain words"
    assert truncate_answer(b"not a completion") == b"not a co"
    assert malform_answer(b"[]") == b"{[]"


def test_slow_passes_the_whole_answer_on_over_the_stated_time(tmp_path):
    started = time.monotonic()
    [response], _ = through(tmp_path, FaultPlan("slow", slow_s=0.3), [chat()])
    assert time.monotonic() - started >= 0.3
    assert response.json() == completion()
    [tapped] = read_tap(tmp_path / "tap.jsonl")
    assert (tapped.fault, tapped.outcome, tapped.status) == ("slow", "fault", 200) and tapped.duration_ms >= 300


def test_trickle_splits_a_body_into_paced_parts():
    parts, pause = trickle(b"x" * 100, 2.0, pieces=10)
    assert b"".join(parts) == b"x" * 100 and len(parts) == 10 and pause == pytest.approx(0.2)
    assert trickle(b"", 1.0) == ([b""], 1.0)


def test_no_plan_changes_nothing_and_the_argv_passes_the_plan_file(tmp_path):
    assert "--faults" not in llm_tap.tap_argv("py", "127.0.0.1", 8093, UPSTREAM, tmp_path / "r.jsonl")
    argv = llm_tap.tap_argv("py", "127.0.0.1", 8093, UPSTREAM, tmp_path / "r.jsonl", tmp_path / "plan.json")
    assert argv[-2:] == ["--faults", str(tmp_path / "plan.json")]
    assert set(FAULTS) == {"429", "500", "503", "400", "hang", "reset", "slow", "truncated", "malformed"}
