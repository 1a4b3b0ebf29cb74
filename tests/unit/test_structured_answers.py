"""Broken structured answers (cut off, malformed) and model errors that say when to retry, in the writer."""

import asyncio
import json
from datetime import timedelta

import httpx2
import openai
import pytest
from restate import TerminalError
from restate.exceptions import RetryableError

from writer_service.agent import StepFailed, summary_from_answer
from writer_service.config import WriterConfig
from writer_service.ledger import executions
from writer_service.llm import Answer, retry_after_s
from writer_service.structured import ask_structured, close_truncated, looks_like_json, repair_object

from .test_step_runner import make

WHOLE = {"short_summary": "Rivers carry water.", "follow_up_questions": ["Which rivers?"]}
CUT = '{"short_summary": "Rivers carry water to the sea", "follow_up_questions": ["Which'
REQUEST = httpx2.Request("POST", "http://llm/v1/chat/completions")


def usable(data):
    return isinstance(data.get("short_summary"), str) and bool(data["short_summary"])


def asking(*answers: Answer):
    """An `ask` that gives these answers in turn, and the list of how many times it was asked."""
    asked = []

    async def ask():
        asked.append(1)
        return answers[len(asked) - 1]

    return ask, asked


def check(answers, retries=1):
    ask, asked = asking(*answers)
    return asyncio.run(ask_structured(ask, usable, retries)), len(asked)


def test_a_whole_answer_is_used_as_it_came():
    checked, asked = check([Answer(json.dumps(WHOLE), "stop")])
    assert (checked.data, checked.outcome, checked.requests, asked) == (WHOLE, "ok", 1, 1)
    assert checked.journal() == {"outcome": "ok", "requests": 1, "problems": []}


def test_a_malformed_answer_is_asked_again_within_the_budget():
    checked, asked = check([Answer(repr(WHOLE), "stop"), Answer(json.dumps(WHOLE), "stop")])
    assert (checked.data, checked.outcome, checked.requests, asked) == (WHOLE, "retried", 2, 2)
    assert checked.problems == [f"answer {len(repr(WHOLE))} characters: not a JSON object"]


def test_a_cut_off_answer_is_repaired_without_asking_again():
    checked, asked = check([Answer(CUT, "length")], retries=3)
    assert (checked.outcome, checked.requests, asked) == ("repaired", 1, 1)
    assert checked.data == {"short_summary": "Rivers carry water to the sea"}  # the half question dropped
    assert "cut off at the token limit" in checked.problems[0]


def test_when_the_budget_is_spent_the_last_answer_is_repaired_or_set_aside():
    checked, asked = check([Answer(repr(WHOLE), "stop")] * 3, retries=2)
    assert (checked.data, checked.outcome, checked.requests, asked) == (WHOLE, "repaired", 3, 3)
    checked, asked = check([Answer('{"short_summary": ', "stop")] * 2, retries=1)
    assert (checked.data, checked.outcome, checked.requests, asked) == (None, "fallback", 2, 2)
    checked, asked = check([Answer("{}", "stop")], retries=0)  # JSON, but not what the step needs
    assert (checked.outcome, asked) == ("fallback", 1) and "without the fields needed" in checked.problems[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": "b", "c": [1, 2', {"a": "b", "c": [1, 2]}),
        ('{"a": "b", "c": "unfinish', {"a": "b"}),
        ('{"a": "unfinish', {"a": "unfinish"}),
        ('{"a": "b", "c"', {"a": "b"}),
        ('{"a": "b", "c": ', {"a": "b"}),
        ('{"a": "say \\"hi', {"a": 'say "hi'}),
        ('{"a": {"b": true, "c": nul', {"a": {"b": True}}),
        ('{"a": 1} and then prose', {"a": 1}),
    ],
)
def test_a_cut_off_object_is_closed_where_its_last_whole_value_ended(text, expected):
    assert close_truncated(text) == expected


def test_repair_reads_a_python_literal_and_gives_up_on_nothing():
    assert repair_object("Here: " + repr(WHOLE)) == WHOLE
    assert repair_object("no object at all") is None
    assert repair_object("{]") is None


def test_what_looks_like_json_to_a_reader():
    assert looks_like_json(CUT) and looks_like_json("[1, 2") and looks_like_json('x "key": 1')
    assert not looks_like_json("Rivers carry water: a summary.")


def test_a_broken_json_summary_never_becomes_the_report_text():
    assert summary_from_answer(CUT) == {"short_summary": "", "follow_up_questions": []}
    assert summary_from_answer("just prose") == {"short_summary": "just prose", "follow_up_questions": []}


def error(status: int, headers: dict[str, str] | None = None) -> openai.APIStatusError:
    response = httpx2.Response(status, headers=headers, request=REQUEST)
    return openai.APIStatusError("no", response=response, body=None)


def test_retry_after_is_read_from_seconds_milliseconds_or_a_date_and_bounded():
    assert retry_after_s(error(429, {"retry-after": "2"}), 60) == 2
    assert retry_after_s(error(429, {"retry-after-ms": "1500", "retry-after": "9"}), 60) == 1.5
    assert retry_after_s(error(503, {"retry-after": "120"}), 60) == 60  # bounded by the step's timeout
    assert retry_after_s(error(429, {"retry-after": "Thu, 01 Jan 1970 00:00:00 GMT"}), 60) == 0
    assert retry_after_s(error(429, {"retry-after": "soon"}), 60) is None
    assert retry_after_s(error(429), 60) is None
    assert retry_after_s(error(500, {"retry-after": "2"}), 60) is None  # only 429 and 503 say when


def test_a_429_with_retry_after_asks_restate_to_retry_no_sooner(tmp_path):
    runner, ledger, _ = make(tmp_path)

    async def limited(attempt):
        raise error(429, {"retry-after": "3"})

    with pytest.raises(RetryableError) as raised:
        asyncio.run(runner.step("outline", limited, WriterConfig.model_fields["pipeline"].default.llm_retry))
    assert raised.value.retry_after == timedelta(seconds=3)
    assert "outline attempt 1" in raised.value.message and "Retry-After" in raised.value.message
    [run] = executions(ledger.entries())
    assert run.outcome == "error" and "429" in (run.error or "")


def test_a_429_without_retry_after_and_a_5xx_are_plain_restate_retries(tmp_path):
    runner, _, _ = make(tmp_path)
    for status in (429, 500, 503):

        async def failing(attempt, status=status):
            raise error(status)

        with pytest.raises(StepFailed, match=f"HTTP {status}"):
            asyncio.run(runner.step("outline", failing, WriterConfig.model_fields["pipeline"].default.llm_retry))


def test_a_400_ends_the_invocation_at_once(tmp_path):
    runner, ledger, _ = make(tmp_path)

    async def invalid(attempt):
        raise error(400)

    with pytest.raises(TerminalError, match="outline: LLM answered HTTP 400"):
        asyncio.run(runner.step("outline", invalid, WriterConfig.model_fields["pipeline"].default.llm_retry))
    assert len(executions(ledger.entries())) == 1


def test_a_model_http_body_cut_mid_json_is_a_retryable_failure(tmp_path):
    """The transport's own truncation (not the answer's): the client cannot parse the body, Restate retries."""
    from writer_service.llm import LlmClient

    cfg = WriterConfig.from_mapping({"writer_model": {"base_url": "http://llm/v1", "model": "m"}})

    def handler(request):
        body = b'{"id": "c1", "choices": [{"index": 0, "mess'
        return httpx2.Response(200, headers={"content-type": "application/json"}, content=body)

    client = LlmClient(cfg.writer_model, http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))
    runner, _, _ = make(tmp_path)

    async def ask(attempt):
        return await client.text("system", "user", attempt)

    with pytest.raises(StepFailed, match="JSONDecodeError"):
        asyncio.run(runner.step("section:1", ask, WriterConfig.model_fields["pipeline"].default.llm_retry))
