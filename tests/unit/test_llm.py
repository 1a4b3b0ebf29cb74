import asyncio
import json
from unittest.mock import patch

import httpx2
import openai
import pytest

from writer_service.agent import outline_from_answer, summary_from_answer
from writer_service.config import WriterModel
from writer_service.llm import (
    LlmClient,
    NoSlot,
    SlotGate,
    StepAttempt,
    describe_error,
    is_retryable,
    parse_json_object,
)

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


class OneSlotServer:
    """A mock transport shaped like llama.cpp: `slots` requests served at once, the rest queue, and the
    client's read timeout (started when the request reaches the transport, as on a socket) counts the queue."""

    def __init__(self, slots: int, answer_s: float) -> None:
        self.slots = asyncio.Semaphore(slots)
        self.answer_s = answer_s
        self.in_flight = 0
        self.most_in_flight = 0
        self.headers: list[dict[str, str]] = []

    async def __call__(self, request):
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.headers.append(dict(request.headers))
        try:
            return await asyncio.wait_for(self._serve(), request.extensions["timeout"]["read"])
        except TimeoutError:
            raise httpx2.ReadTimeout("timed out", request=request) from None
        finally:
            self.in_flight -= 1

    async def _serve(self):
        async with self.slots:
            await asyncio.sleep(self.answer_s)
            return _completion("text")


def _limited_client(server, max_concurrency, timeout_s=5.0):
    settings = WriterModel(
        base_url="http://llm/v1", model="smollm2", timeout_s=timeout_s, max_concurrency=max_concurrency
    )
    return LlmClient(settings, http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(server)))


async def _calls(client, n):
    return await asyncio.gather(
        *(client.text("sys", "user", StepAttempt(f"inv_{i}", "outline", 1)) for i in range(n)), return_exceptions=True
    )


def test_at_most_max_concurrency_calls_are_in_flight():
    server = OneSlotServer(slots=10, answer_s=0.02)
    answers = asyncio.run(_calls(_limited_client(server, 3), 10))
    assert answers == ["text"] * 10
    assert server.most_in_flight == 3


def test_the_timeout_does_not_count_the_wait_for_a_slot():
    # The endpoint answers one request at a time in 0.1 s; the last of 5 calls waits about 0.4 s, more
    # than the 0.25 s timeout. Waiting in the writer, outside the timeout, every call succeeds ...
    answers = asyncio.run(_calls(_limited_client(OneSlotServer(slots=1, answer_s=0.1), 1, timeout_s=0.25), 5))
    assert answers == ["text"] * 5
    # ... while sent at once, the endpoint's queue counts against the timeout: the retry storm's cause.
    answers = asyncio.run(_calls(_limited_client(OneSlotServer(slots=1, answer_s=0.1), 5, timeout_s=0.25), 5))
    assert any(isinstance(a, openai.APITimeoutError) for a in answers)


def test_a_long_wait_for_a_slot_is_logged(caplog):
    caplog.set_level("INFO", logger="writer_service.llm")
    with patch("writer_service.llm.SLOW_SLOT_S", 0.05):
        asyncio.run(_calls(_limited_client(OneSlotServer(slots=1, answer_s=0.1), 1), 2))
    assert "for one of 1 LLM slots step=outline invocation=inv_1" in caplog.text


def test_requests_name_invocation_step_and_attempt():
    server = OneSlotServer(slots=1, answer_s=0)
    client = _limited_client(server, 1)
    asyncio.run(client.json("sys", "user", "summary", {"type": "object"}, StepAttempt("inv_x", "summary", 3)))
    asyncio.run(client.text("sys", "user"))  # outside a step: no headers, no failure
    first, second = server.headers
    assert first["x-restate-invocation-id"] == "inv_x"
    assert first["x-writer-step"] == "summary"
    assert first["x-writer-attempt"] == "3"
    assert "x-writer-step" not in second


def test_waiting_calls_are_served_oldest_invocation_first():
    async def scenario():
        gate, order = SlotGate(1), []

        async def call(invocation, label):
            async with gate.slot(invocation):
                order.append(label)
                await asyncio.sleep(0.01)

        holder = asyncio.create_task(call("inv_old", "old: outline"))
        await asyncio.sleep(0)
        newcomers = [asyncio.create_task(call(f"inv_new{i}", f"new{i}: outline")) for i in range(2)]
        await asyncio.sleep(0)
        follow_up = asyncio.create_task(call("inv_old", "old: section:1"))  # arrives last, seen first
        await asyncio.gather(holder, *newcomers, follow_up)
        return order, gate.in_use

    order, in_use = asyncio.run(scenario())
    assert order == ["old: outline", "old: section:1", "new0: outline", "new1: outline"]
    assert in_use == 0


def test_a_cancelled_waiter_does_not_keep_a_slot():
    async def scenario():
        gate = SlotGate(1)
        release = asyncio.Event()

        async def hold():
            async with gate.slot("a"):
                await release.wait()

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0)
        waiter = asyncio.create_task(hold())
        await asyncio.sleep(0)
        waiter.cancel()  # e.g. Restate aborted the attempt while it waited
        release.set()
        await holder
        with pytest.raises(asyncio.CancelledError):
            await waiter
        async with gate.slot("b") as waited:
            return waited, gate.in_use

    waited, in_use = asyncio.run(scenario())
    assert waited < 0.05 and in_use == 1


def test_retries_wait_behind_first_attempts():
    async def scenario():
        gate, order = SlotGate(1), []

        async def call(invocation, attempt, label):
            async with gate.slot(invocation, attempt):
                order.append(label)
                await asyncio.sleep(0.01)

        holder = asyncio.create_task(call("inv_old", 1, "old: outline #1"))
        await asyncio.sleep(0)
        retry = asyncio.create_task(call("inv_old", 2, "old: outline #2"))  # oldest, but a retry
        await asyncio.sleep(0)
        fresh = asyncio.create_task(call("inv_new", 1, "new: outline #1"))
        await asyncio.gather(holder, retry, fresh)
        return order

    assert asyncio.run(scenario()) == ["old: outline #1", "new: outline #1", "old: outline #2"]


def test_no_slot_within_the_bound_gives_up_without_running_the_block():
    async def scenario():
        gate = SlotGate(1)
        release = asyncio.Event()
        ran = []

        async def hold():
            async with gate.slot("inv_a", 1, "outline"):
                await release.wait()

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0)
        with pytest.raises(NoSlot, match=r"within 0.05 s .*nothing was sent"):
            async with gate.slot("inv_b", 1, "outline", max_wait_s=0.05):
                ran.append("b")
        release.set()
        await holder
        return ran, gate.in_use, gate.waiting

    ran, in_use, waiting = asyncio.run(scenario())
    assert ran == [] and in_use == 0 and waiting == 0  # nothing held, nobody left queued


def test_a_slot_handed_over_as_the_wait_expires_is_passed_on():
    async def scenario():
        gate = SlotGate(1)
        async with gate.slot("inv_a"):
            pass
        # Two waiters behind a holder that releases exactly as the first one's wait expires.
        release = asyncio.Event()

        async def hold():
            async with gate.slot("inv_h"):
                await release.wait()

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0)
        short = asyncio.create_task(_enter(gate, "inv_s", 0.02))
        long = asyncio.create_task(_enter(gate, "inv_l", 5.0))
        await asyncio.sleep(0.02)
        release.set()
        await holder
        results = await asyncio.gather(short, long, return_exceptions=True)
        return results, gate.in_use

    results, in_use = asyncio.run(scenario())
    assert results[1] == "entered"  # whatever happened to the short waiter, the slot was not lost
    assert in_use == 0


async def _enter(gate, invocation, max_wait_s):
    async with gate.slot(invocation, max_wait_s=max_wait_s):
        return "entered"


def test_an_attempt_that_gave_up_waiting_keeps_the_rank_of_a_first_attempt():
    async def scenario():
        gate, order = SlotGate(1), []
        release = asyncio.Event()

        async def hold():
            async with gate.slot("inv_old", 1, "outline"):
                await release.wait()

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0)
        with pytest.raises(NoSlot):  # inv_early's outline, attempt 1: no slot in time, nothing sent
            async with gate.slot("inv_early", 1, "outline", max_wait_s=0.01):
                pass

        async def call(invocation, attempt, label):
            async with gate.slot(invocation, attempt, "outline"):
                order.append(label)

        late = asyncio.create_task(call("inv_late", 1, "late #1"))
        await asyncio.sleep(0)
        retry = asyncio.create_task(call("inv_early", 2, "early #2"))  # Restate's retry of it
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(holder, late, retry)
        return order

    # Seen first and never sent: it goes before the later invocation's first attempt.
    assert asyncio.run(scenario()) == ["early #2", "late #1"]


def test_no_slot_is_retryable_and_says_nothing_was_sent():
    exc = NoSlot("no model slot came free within 2 s (1 in use, 3 waiting); nothing was sent")
    assert is_retryable(exc)
    assert describe_error(exc).startswith("LLM not asked: no model slot")


def test_the_client_gives_up_waiting_after_max_slot_wait_s_and_sends_nothing():
    sent = []

    async def handler(request):
        sent.append(request)
        await asyncio.sleep(0.3)
        return _completion("ok")

    settings = WriterModel(base_url="http://llm/v1", model="m", timeout_s=5.0, max_concurrency=1, max_slot_wait_s=0.05)
    client = LlmClient(settings, http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))

    async def scenario():
        first = asyncio.create_task(client.text("s", "u", StepAttempt("inv_a", "outline", 1)))
        await asyncio.sleep(0.01)
        with pytest.raises(NoSlot):
            await client.text("s", "u", StepAttempt("inv_b", "outline", 1))
        return await first

    assert asyncio.run(scenario()) == "ok"
    assert len(sent) == 1
