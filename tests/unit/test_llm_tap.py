"""The LLM tap in-process: the ASGI app through httpx.ASGITransport, the upstream an httpx.MockTransport."""

import asyncio
import json
import sys
import threading

import httpx
import pytest

from drillkit.components import llm_tap
from drillkit.components.llm_tap import TapFollower, read_tap, requests_per_step

UPSTREAM = "http://upstream.test:8091"
COMPLETION = {"id": "x", "object": "chat.completion", "choices": []}
WRITER_HEADERS = {"X-Restate-Invocation-Id": "inv_1abc", "X-Writer-Step": "section:2", "X-Writer-Attempt": "3"}


class Chunks(httpx.AsyncByteStream):
    def __init__(self, chunks, then_fail=False):
        self.chunks = chunks
        self.then_fail = then_fail

    async def __aiter__(self):
        for chunk in self.chunks:
            yield chunk
        if self.then_fail:
            raise httpx.ReadError("upstream reset")


def reply(status, body, headers=None):
    """A response whose body is still a stream, as from a real connection (`content=` would be read already)."""
    return httpx.Response(status, headers=headers, stream=Chunks([body]))


def completion():
    return reply(200, json.dumps(COMPLETION).encode(), {"content-type": "application/json"})


def run(coro):
    return asyncio.run(coro)


async def through_tap(record, handler, requests, upstream=UPSTREAM):
    """Send `requests` (kwargs for AsyncClient.request) through a tap whose upstream is `handler`."""
    app = llm_tap.build_app(upstream, record, transport=httpx.MockTransport(handler))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tap") as client:
            return await asyncio.gather(*(client.request(**r) for r in requests))
    finally:
        await app.close()


def chat(headers=WRITER_HEADERS, model="smollm2"):
    return {
        "method": "POST",
        "url": "/v1/chat/completions",
        "json": {"model": model, "messages": [{"role": "user", "content": "hi"}]},
        "headers": headers,
    }


def test_request_line_is_written_before_the_upstream_is_called(tmp_path):
    record = tmp_path / "tap.jsonl"
    seen_by_upstream = []

    def upstream(request):
        seen_by_upstream.append(read_tap(record))
        return completion()

    [response] = run(through_tap(record, upstream, [chat()]))
    assert response.status_code == 200 and response.json() == COMPLETION
    [[before]] = seen_by_upstream
    assert before.method == "POST" and before.path == "/v1/chat/completions"
    assert (before.invocation_id, before.step, before.attempt, before.model) == ("inv_1abc", "section:2", 3, "smollm2")
    assert before.outcome is None and before.end_time is None
    [after] = read_tap(record)
    assert after.id == before.id
    assert (after.status, after.outcome, after.error) == (200, "ok", None)
    assert after.end_time >= after.time and after.duration_ms >= 0
    events = [json.loads(line) for line in record.read_text().splitlines()]
    assert [e["event"] for e in events] == ["request", "end"]
    assert set(events[0]) == {
        "event",
        "id",
        "time",
        "method",
        "path",
        "invocation_id",
        "step",
        "attempt",
        "model",
        "fingerprint",
        "nonces",
    }
    assert set(events[1]) == {"event", "id", "time", "status", "duration_ms", "error", "outcome"}
    assert len(events[0]["id"]) == 32


def test_forwards_method_path_query_body_and_end_to_end_headers_only(tmp_path):
    forwarded = []

    def upstream(request):
        forwarded.append(request)
        return reply(418, b"teapot", {"x-upstream": "yes", "content-type": "text/plain", "keep-alive": "timeout=5"})

    headers = {"Authorization": "Bearer k", "X-Extra": "1", "Proxy-Authorization": "p", "TE": "trailers"}
    request = {"method": "PUT", "url": "/v1/things?a=1&b=%2F", "content": b"raw body", "headers": headers}
    [response] = run(through_tap(tmp_path / "tap.jsonl", upstream, [request], upstream=UPSTREAM + "/prefix/"))
    [sent] = forwarded
    assert sent.method == "PUT"
    assert sent.url.raw_path == b"/prefix/v1/things?a=1&b=%2F"
    assert sent.content == b"raw body"
    assert sent.headers["authorization"] == "Bearer k" and sent.headers["x-extra"] == "1"
    assert sent.headers["host"] == "upstream.test:8091"
    assert "proxy-authorization" not in sent.headers and "te" not in sent.headers
    assert response.status_code == 418 and response.content == b"teapot"
    assert response.headers["x-upstream"] == "yes" and "keep-alive" not in response.headers
    [tapped] = read_tap(tmp_path / "tap.jsonl")
    assert (tapped.path, tapped.status, tapped.outcome, tapped.model) == ("/v1/things", 418, "ok", None)
    assert (tapped.invocation_id, tapped.step, tapped.attempt) == (None, None, None)


def test_unreachable_upstream_is_a_502_with_an_openai_error_and_recorded(tmp_path):
    def refused(request):
        raise httpx.ConnectError("Connection refused", request=request)

    [response] = run(through_tap(tmp_path / "tap.jsonl", refused, [chat()]))
    assert response.status_code == 502
    error = response.json()["error"]
    assert "Connection refused" in error["message"] and error["type"] == "upstream_error"
    [tapped] = read_tap(tmp_path / "tap.jsonl")
    assert (tapped.status, tapped.outcome) == (502, "upstream_error")
    assert tapped.error == "ConnectError: Connection refused"


def test_upstream_timeout_is_a_504(tmp_path):
    def slow(request):
        raise httpx.ReadTimeout("timed out", request=request)

    [response] = run(through_tap(tmp_path / "tap.jsonl", slow, [chat()]))
    assert response.status_code == 504
    [tapped] = read_tap(tmp_path / "tap.jsonl")
    assert (tapped.status, tapped.outcome) == (504, "upstream_error")


def test_health_is_answered_by_the_tap_and_not_recorded(tmp_path):
    def must_not_be_called(request):
        raise AssertionError(f"forwarded {request.url}")

    [response] = run(through_tap(tmp_path / "tap.jsonl", must_not_be_called, [{"method": "GET", "url": "/tap/health"}]))
    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert read_tap(tmp_path / "tap.jsonl") == []


def test_concurrent_requests_give_whole_lines(tmp_path):
    record = tmp_path / "tap.jsonl"

    async def upstream(request):
        await asyncio.sleep(0.001)
        return completion()

    n = 300
    requests = [chat(headers={**WRITER_HEADERS, "X-Writer-Step": f"step-{i}"}) for i in range(n)]
    responses = run(through_tap(record, upstream, requests))
    assert [r.status_code for r in responses] == [200] * n
    events = [json.loads(line) for line in record.read_bytes().splitlines()]  # every line parses
    assert sorted(e["event"] for e in events).count("request") == n
    assert sum(e["event"] == "end" for e in events) == n
    tapped = read_tap(record)
    assert {t.step for t in tapped} == {f"step-{i}" for i in range(n)}
    assert all(t.outcome == "ok" for t in tapped)


async def drive(app, body: bytes, disconnect: asyncio.Event):
    """Call the ASGI app as a server would; the caller disconnects when `disconnect` is set."""
    sent = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if messages:
            return messages.pop(0)
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "headers": [(b"x-writer-step", b"outline"), (b"content-type", b"application/json")],
    }
    await app(scope, receive, send)
    return sent


def test_caller_gone_before_the_answer_is_client_gone_and_the_upstream_request_abandoned(tmp_path):
    record = tmp_path / "tap.jsonl"
    upstream_cancelled = asyncio.Event()

    async def hangs(request):
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            upstream_cancelled.set()
            raise

    async def scenario():
        app = llm_tap.build_app(UPSTREAM, record, transport=httpx.MockTransport(hangs))
        disconnect = asyncio.Event()
        try:
            task = asyncio.ensure_future(drive(app, b'{"model": "m"}', disconnect))
            await asyncio.sleep(0.05)
            [pending] = read_tap(record)
            assert pending.outcome is None
            disconnect.set()
            return await asyncio.wait_for(task, 5)
        finally:
            await app.close()

    sent = run(scenario())
    assert sent == []  # nothing was answered, nothing crashed
    assert upstream_cancelled.is_set()
    [tapped] = read_tap(record)
    assert (tapped.step, tapped.model, tapped.outcome, tapped.status) == ("outline", "m", "client_gone", None)


def test_streamed_answer_passes_through_chunk_by_chunk(tmp_path):
    events = [b'data: {"n": 1}\n\n', b'data: {"n": 2}\n\n', b"data: [DONE]\n\n"]

    forwarded = []

    def streams(request):
        forwarded.append(request)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Chunks(events))

    async def scenario():
        app = llm_tap.build_app(UPSTREAM, tmp_path / "tap.jsonl", transport=httpx.MockTransport(streams))
        try:
            return await drive(app, b'{"model": "m", "stream": true}', asyncio.Event())
        finally:
            await app.close()

    sent = run(scenario())
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert [m["body"] for m in sent[1:] if m["body"]] == events
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    # the caller sent no Accept-Encoding or User-Agent: the tap's client must not add its own
    assert "accept-encoding" not in forwarded[0].headers and "user-agent" not in forwarded[0].headers
    [tapped] = read_tap(tmp_path / "tap.jsonl")
    assert tapped.outcome == "ok"


def test_upstream_breaking_off_mid_body_is_recorded_and_not_passed_on_as_whole(tmp_path):
    def breaks(request):
        return httpx.Response(200, stream=Chunks([b'{"partial": '], then_fail=True))

    async def scenario():
        app = llm_tap.build_app(UPSTREAM, tmp_path / "tap.jsonl", transport=httpx.MockTransport(breaks))
        try:
            return await drive(app, b"{}", asyncio.Event())
        finally:
            await app.close()

    with pytest.raises(Exception, match="mid-body"):
        run(scenario())
    [tapped] = read_tap(tmp_path / "tap.jsonl")
    assert (tapped.status, tapped.outcome) == (200, "upstream_error")
    assert "ReadError" in tapped.error


def _line(**event):
    return json.dumps(event) + "\n"


def test_reader_pairs_events_and_survives_a_torn_line(tmp_path):
    record = tmp_path / "tap.jsonl"
    base = {"method": "POST", "path": "/v1/chat/completions", "invocation_id": "inv_1", "model": None}
    record.write_text(
        _line(event="request", id="a", time=1.0, step="outline", attempt=1, **base)
        + _line(event="request", id="b", time=2.0, step="outline", attempt=2, **base)
        + _line(event="end", id="a", time=1.5, status=200, duration_ms=500.0, error=None, outcome="ok")
        + _line(event="end", id="ghost", time=3.0, status=200, duration_ms=1.0, error=None, outcome="ok")
        + "not json\n"
        + _line(event="request", id="c", time=4.0, step="summary", attempt=1, **{**base, "invocation_id": "inv_2"})
        + '{"event": "end", "id": "b", "ti'
    )
    a, b, c = read_tap(record)
    assert (a.id, a.end_time, a.status, a.duration_ms, a.outcome) == ("a", 1.5, 200, 500.0, "ok")
    assert (b.id, b.end_time, b.status, b.outcome, b.error) == ("b", None, None, None, None)
    assert c.invocation_id == "inv_2"
    assert requests_per_step([a, b, c]) == {("inv_1", "outline"): 2, ("inv_2", "summary"): 1}
    assert requests_per_step([a, b, c], "inv_2") == {("inv_2", "summary"): 1}
    assert read_tap(tmp_path / "missing.jsonl") == []


def test_follower_reads_only_what_was_appended_and_waits_for_a_whole_line(tmp_path):
    record = tmp_path / "tap.jsonl"
    follower = TapFollower(record)
    assert follower.update() == []
    request = _line(
        event="request", id="a", time=1.0, method="POST", path="/v1", invocation_id=None, step=None, attempt=None
    )
    end = _line(event="end", id="a", time=2.0, status=502, duration_ms=3.0, error="refused", outcome="upstream_error")
    record.write_text(request + end[:10])
    [arrived] = follower.update()
    assert arrived.outcome is None
    with open(record, "a") as handle:
        handle.write(end[10:])
    [ended] = follower.update()
    assert (ended.id, ended.status, ended.outcome) == ("a", 502, "upstream_error")
    assert follower.update() == []
    assert follower.requests() == [ended] == read_tap(record)


def test_tap_argv_runs_the_module_from_one_process(tmp_path):
    argv = llm_tap.tap_argv(sys.executable, "127.0.0.1", 8093, "http://127.0.0.1:8091", tmp_path / "t.jsonl")
    assert argv == [
        sys.executable,
        "-m",
        "drillkit.components.llm_tap",
        "--host",
        "127.0.0.1",
        "--port",
        "8093",
        "--upstream",
        "http://127.0.0.1:8091",
        "--record",
        str(tmp_path / "t.jsonl"),
    ]


def test_settled_requests_wait_for_end_lines_written_after_the_caller_had_its_answer(tmp_path):
    from drillkit.procs import ProcessTable

    record = tmp_path / "tap.jsonl"
    tap = llm_tap.LlmTap(ProcessTable(tmp_path / "procs"), tmp_path / "tap.log", record)
    base = {"method": "POST", "path": "/v1/chat/completions", "step": "outline", "attempt": 1, "model": None}
    record.write_text(
        _line(event="request", id="a", time=1.0, invocation_id="inv_1", **base)
        + _line(event="request", id="x", time=1.0, invocation_id="inv_other", **base)  # not ours: never ends
    )
    end = _line(event="end", id="a", time=2.0, status=200, duration_ms=1.0, error=None, outcome="ok")

    def tap_writes_the_end_line() -> None:  # the tap, a moment after the caller had its answer
        with record.open("a") as handle:
            handle.write(end)

    late = threading.Timer(0.2, tap_writes_the_end_line)
    late.start()
    try:
        [settled] = tap.settled_requests(["inv_1"], timeout_s=10)
    finally:
        late.join()
    assert (settled.id, settled.status, settled.outcome) == ("a", 200, "ok")
    # A request that never ends is handed over as it is once the wait is over: the checks name it.
    [still_open] = tap.settled_requests(["inv_other"], timeout_s=0.1)
    assert (still_open.id, still_open.outcome) == ("x", None)
