import asyncio
import json

import httpx2
import openai
import pytest

from writer_service.agent import outline_from_answer, summary_from_answer
from writer_service.config import WriterModel
from writer_service.llm import LlmClient, describe_error, is_retryable, parse_json_object

REQUEST = httpx2.Request("POST", "http://llm/v1/chat/completions")


def status_error(code: int) -> openai.APIStatusError:
    return openai.APIStatusError("nope", response=httpx2.Response(code, request=REQUEST), body=None)


@pytest.mark.parametrize("code", [400, 401, 403, 404, 422])
def test_client_errors_are_terminal(code):
    assert not is_retryable(status_error(code))


@pytest.mark.parametrize("code", [408, 409, 429, 500, 502, 503])
def test_transient_statuses_are_retried(code):
    assert is_retryable(status_error(code))


def test_connection_errors_and_timeouts_are_retried():
    assert is_retryable(openai.APIConnectionError(request=REQUEST))
    assert is_retryable(openai.APITimeoutError(request=REQUEST))
    assert "LLM timeout" in describe_error(openai.APITimeoutError(request=REQUEST))
    assert "unreachable" in describe_error(openai.APIConnectionError(request=REQUEST))
    assert "HTTP 401" in describe_error(status_error(401))


@pytest.mark.parametrize(
    "text",
    ['{"a": 1}', 'Sure! ```json\n{"a": 1}\n``` done', 'prefix {"a": 1} suffix', '```\n{"a": 1}\n```'],
)
def test_parse_json_object_finds_the_object(text):
    assert parse_json_object(text) == {"a": 1}


@pytest.mark.parametrize("text", ["", "no json here", "[1, 2]", "{broken"])
def test_parse_json_object_gives_none_for_junk(text):
    assert parse_json_object(text) is None


def test_malformed_outline_falls_back_to_numbered_sections():
    assert outline_from_answer("garbage", "Write about X", 3) == {
        "research_topic": "Write about X",
        "sections": ["Part 1", "Part 2", "Part 3"],
    }
    partial = outline_from_answer('{"research_topic": "T", "sections": ["A", "", 7]}', "p", 3)
    assert partial == {"research_topic": "T", "sections": ["A", "7", "Part 3"]}
    too_many = outline_from_answer('{"research_topic": "T", "sections": ["A","B","C","D"]}', "p", 3)
    assert too_many["sections"] == ["A", "B", "C"]


def test_malformed_summary_keeps_the_text():
    assert summary_from_answer("just prose") == {"short_summary": "just prose", "follow_up_questions": []}
    assert summary_from_answer('{"short_summary": 5, "follow_up_questions": "x"}') == {
        "short_summary": "",
        "follow_up_questions": [],
    }


def _client(handler, mode="json_schema"):
    settings = WriterModel(base_url="http://llm/v1", model="smollm2", structured_output=mode, timeout_s=7)
    return LlmClient(settings, http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))


def _completion(content: str) -> httpx2.Response:
    return httpx2.Response(
        200,
        json={
            "id": "c1",
            "object": "chat.completion",
            "created": 0,
            "model": "smollm2",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        },
    )


@pytest.mark.parametrize("mode", ["json_schema", "json_object", "text"])
def test_structured_output_modes(mode):
    seen = []

    def handler(request):
        seen.append(json.loads(request.content))
        return _completion('{"a": 1}')

    answer = asyncio.run(_client(handler, mode).json("sys", "user", "outline", {"type": "object"}))
    assert answer == '{"a": 1}'
    sent = seen[0]
    assert sent["model"] == "smollm2"
    if mode == "json_schema":
        assert sent["response_format"]["type"] == "json_schema"
        assert sent["response_format"]["json_schema"]["name"] == "outline"
    elif mode == "json_object":
        assert sent["response_format"] == {"type": "json_object"}
        assert "matching this schema" in sent["messages"][1]["content"]
    else:
        assert "response_format" not in sent


def test_no_client_side_retries():
    calls = []

    def handler(request):
        calls.append(request)
        return httpx2.Response(503, json={"error": {"message": "busy"}})

    with pytest.raises(openai.APIStatusError):
        asyncio.run(_client(handler).text("sys", "user"))
    assert len(calls) == 1  # Restate retries, not the client
