"""What a request needs to make llama.cpp serving SmolLM2-135M call the tool: applied on the wire, so the
agent stays as the team writes it.

Measured with xllamacpp 2026.10 (llama.cpp's differential autoparser) and a chat template that has tools
(`smollm2-tools.jinja`; SmolLM2's own has none, so tools were not even rendered into the prompt):

- `tool_choice: "required"` builds a grammar that still allows free text before the first `<tool_call>`,
  and the 135M model writes prose or code until `max_tokens` (4 prompts tried, 0 tool calls).
- An answer that continues a final assistant message holding `<tool_call>\\n` is held by that grammar from
  its first token: a valid `save_report` call every time (llama.cpp continues a trailing assistant
  message, and feeds it to the grammar before sampling).
- That grammar allows one call after another even with `parallel_tool_calls: false` (one_or_more in
  llama.cpp's chat-auto-parser-generator.cpp): the model starts a second call, `max_tokens` cuts its
  arguments, and the next request's history holds JSON llama.cpp refuses (500 on every retry). Stopping
  at `</tool_call>` ends the answer after the first call (finish_reason tool_calls, 40-60 tokens).
- A request with `response_format` gets llama.cpp's JSON-schema grammar and no tool grammar, and the Agents
  SDK sends the output type's schema on every call. So the call that must use a tool goes without it; the
  next call (tool_choice reset by the SDK after a tool ran) keeps it and answers the ReportData JSON.

Only requests with `tool_choice: "required"` are touched, and always the same way (the LLM tap sees the
rewritten request; a retry sends the same bytes). With a model that honours both, leave
AGENTS_WRITER_FORCE_TOOL_TAG unset and nothing is rewritten.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2


def rewrite_for_forced_tool_call(body: dict[str, Any], tag: str) -> dict[str, Any] | None:
    """The chat-completions body to send instead of `body`, or None to send it as it is. `tag` is the
    chat template's tool-call tag (`tool_call` for `<tool_call>...</tool_call>`)."""
    if not tag or body.get("tool_choice") != "required" or not isinstance(body.get("messages"), list):
        return None
    rewritten = {k: v for k, v in body.items() if k != "response_format"}
    rewritten["messages"] = [*body["messages"], {"role": "assistant", "content": f"<{tag}>\n"}]
    rewritten["stop"] = [f"</{tag}>"]
    return rewritten


class ModelTransport(httpx2.AsyncBaseTransport):
    """The openai client's transport (httpx2, what openai 3 is built on): at most `max_concurrency`
    requests in flight (0: no limit), and the llama.cpp rewrite of the requests that must call a tool
    when `tag` is set. Everything else passes through.

    The limit: llama.cpp serves `--parallel` requests at once and queues the rest, and a queued request's
    wait counts against the client's timeout; under load every timeout is a Restate retry that queues
    again (the storm drill stalled: 20 invocations, APITimeoutError, no progress for 120 s). Waiting here,
    before the request is sent, is outside the timeout (httpx2 times each network operation)."""

    def __init__(self, tag: str = "", max_concurrency: int = 0, inner: httpx2.AsyncBaseTransport | None = None) -> None:
        self.tag = tag
        self.slots = asyncio.Semaphore(max_concurrency) if max_concurrency > 0 else None
        self.inner = inner or httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.tag and request.method == "POST" and request.url.path.endswith("/chat/completions"):
            request = await self._rewritten(request)
        if self.slots is None:
            return await self.inner.handle_async_request(request)
        async with self.slots:
            response = await self.inner.handle_async_request(request)
            await response.aread()  # the slot is the model's: held until its answer has arrived
            return response

    async def _rewritten(self, request: httpx2.Request) -> httpx2.Request:
        try:
            body = json.loads(await request.aread())
        except ValueError:
            return request
        rewritten = rewrite_for_forced_tool_call(body, self.tag) if isinstance(body, dict) else None
        if rewritten is None:
            return request
        headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"content-length"]
        return httpx2.Request(
            request.method,
            request.url,
            headers=headers,
            content=json.dumps(rewritten).encode(),
            extensions=request.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()
