"""The writer's LLM client: one `AsyncOpenAI` per process, no client-side retries, bounded concurrency.

Restate owns retries: the client's own (two by default, inside each attempt) would hide failures from
the journal and stretch every attempt, so `max_retries=0`. Whether an error is worth retrying is decided
here, in one place (`is_retryable`).

At most `writer_model.max_concurrency` calls are in flight. A call beyond that waits for a slot inside
its step, before the request is sent: the wait is neither a failure nor part of `timeout_s`. Without
this, requests queue inside the endpoint (llama.cpp serves `--parallel` at once), the queue counts
against the client timeout, and every timeout is a Restate retry that queues again: a retry storm.

The wait is bounded (`writer_model.max_slot_wait_s`). A step says nothing to Restate while it runs
(restate-sdk 1.3.0 sends the Run command when the step starts and its result when it ends, nothing in
between), so Restate's invoker counts the whole step as inactivity: after `inactivity_timeout` it closes
its side of the stream, and `abort_timeout` later it aborts the attempt, discarding an answer that may be
a moment away. A call that gets no slot within the bound raises `NoSlot` before sending anything; the
step's attempt ends as a retryable failure, Restate retries it, and its place in the queue is kept.
"""

from __future__ import annotations

import asyncio
import email.utils
import heapq
import itertools
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import openai

from writer_service.config import WriterModel

log = logging.getLogger("writer_service.llm")
SLOW_SLOT_S = 1.0  # a wait longer than this is logged

# Statuses for which another attempt cannot succeed: bad request, bad credentials, no such model/route.
TERMINAL_STATUSES = frozenset({400, 401, 403, 404, 422})
# Statuses whose Retry-After says when to ask again (RFC 9110 section 10.2.3).
RETRY_AFTER_STATUSES = frozenset({429, 503})


def is_retryable(exc: BaseException) -> bool:
    """Connection errors, timeouts, 408/409/429 and 5xx are transient; other 4xx are not; unknowns retry."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code not in TERMINAL_STATUSES
    return True


def retry_after_s(exc: BaseException, bound_s: float) -> float | None:
    """The wait a 429 or 503 asked for (`retry-after-ms`, else `retry-after` in seconds or as an HTTP
    date), at most `bound_s`; None when the error names none."""
    if not isinstance(exc, openai.APIStatusError) or exc.status_code not in RETRY_AFTER_STATUSES:
        return None
    headers = exc.response.headers
    seconds: float | None = None
    try:
        if "retry-after-ms" in headers:
            seconds = float(headers["retry-after-ms"]) / 1000
        elif "retry-after" in headers:
            value = headers["retry-after"].strip()
            try:
                seconds = float(value)
            except ValueError:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
    except (ValueError, TypeError, OverflowError):
        return None  # a header nobody can read names no wait
    if seconds is None or seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), bound_s)


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, NoSlot):
        return f"LLM not asked: {exc}"
    if isinstance(exc, openai.APITimeoutError):
        return f"LLM timeout: {exc}"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return f"LLM unreachable: {type(cause).__name__}: {cause}"
    if isinstance(exc, openai.APIStatusError):
        return f"LLM answered HTTP {exc.status_code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Answer:
    """The model's message text and why it stopped (`length`: cut off by the token limit)."""

    text: str
    finish_reason: str | None


class NoSlot(RuntimeError):
    """No model slot came free within the bound: nothing was sent, so nothing is wasted; retry later."""


@dataclass(frozen=True)
class StepAttempt:
    """Which execution of which step asks: sent as headers so a proxy in front of the model can
    attribute each request, and used to serve waiting calls oldest invocation first."""

    invocation_id: str
    step: str
    attempt: int

    def headers(self) -> dict[str, str]:
        return {
            "X-Restate-Invocation-Id": self.invocation_id,
            "X-Writer-Step": self.step,
            "X-Writer-Attempt": str(self.attempt),
        }


class SlotGate:
    """A semaphore that hands free slots to the waiter whose invocation this process saw first, first
    attempts before retries.

    Plain FIFO lets N concurrent invocations advance in lockstep, so all of them finish near the end;
    oldest-invocation-first lets the early ones run to completion while later ones wait (simulated, 100
    invocations x 5 calls on 4 slots: p50 -33 %, p99 +8 %). Retries go behind first attempts: on an
    overloaded endpoint the oldest invocations' steps can time out again and again, and ranked by age
    alone their retries would hold every slot. Calls without an invocation (tools, tests) count as new.
    An attempt that gave up waiting (`NoSlot`) sent nothing: its retry keeps the rank of a first attempt.
    """

    _REMEMBERED = 10_000  # invocations whose arrival order is kept; older ones count as new again

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._waiters: list[tuple[tuple[int, float], int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._first_seen: OrderedDict[str, float] = OrderedDict()
        self._gave_up: OrderedDict[tuple[str, str], int] = OrderedDict()  # (invocation, step): attempts

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, granted in self._waiters if not granted.done())

    def _priority(self, invocation_id: str | None, attempt: int, step: str | None) -> tuple[int, float]:
        now = time.monotonic()
        if invocation_id is None:
            return attempt, now
        seen = self._first_seen.setdefault(invocation_id, now)
        if len(self._first_seen) > self._REMEMBERED:
            self._first_seen.popitem(last=False)
        gave_up = self._gave_up.get((invocation_id, step or ""), 0)
        return max(attempt - gave_up, 1), seen

    def _note_gave_up(self, invocation_id: str | None, step: str | None) -> None:
        if invocation_id is None:
            return
        key = (invocation_id, step or "")
        self._gave_up[key] = self._gave_up.get(key, 0) + 1
        if len(self._gave_up) > self._REMEMBERED:
            self._gave_up.popitem(last=False)

    @asynccontextmanager
    async def slot(
        self,
        invocation_id: str | None = None,
        attempt: int = 1,
        step: str | None = None,
        max_wait_s: float | None = None,
    ) -> AsyncIterator[float]:
        """Hold a slot for the block; yields the seconds spent waiting for it. No slot within
        `max_wait_s`: `NoSlot`, and the block does not run."""
        started = time.monotonic()
        priority = self._priority(invocation_id, attempt, step)
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
        else:
            granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiters, (priority, next(self._order), granted))
            try:
                # shield: a timeout must not cancel `granted` behind our back; we settle it below.
                await asyncio.wait_for(asyncio.shield(granted), max_wait_s)
            except (asyncio.CancelledError, TimeoutError) as exc:
                if granted.done() and not granted.cancelled():
                    self._release()  # handed to us as we gave up: pass it on
                else:
                    granted.cancel()  # skipped by `_release`
                if isinstance(exc, TimeoutError):
                    self._note_gave_up(invocation_id, step)
                    raise NoSlot(
                        f"no model slot came free within {max_wait_s:g} s ({self.limit} in use, "
                        f"{self.waiting} waiting); nothing was sent"
                    ) from None
                raise
        if invocation_id is not None:
            self._gave_up.pop((invocation_id, step or ""), None)
        try:
            yield time.monotonic() - started
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiters:
            _, _, granted = heapq.heappop(self._waiters)
            if not granted.done():
                granted.set_result(None)  # the slot passes straight on: in_use stays the same
                return
        self.in_use -= 1


class LlmClient:
    def __init__(self, settings: WriterModel, http_client: Any = None) -> None:
        self.settings = settings
        self.slots = SlotGate(settings.max_concurrency)
        self._client = openai.AsyncOpenAI(
            http_client=http_client,  # tests pass one with a mock transport
            base_url=settings.base_url,
            api_key=settings.api_key(),
            timeout=openai.Timeout(settings.timeout_s, connect=min(5.0, settings.timeout_s)),
            max_retries=0,
        )

    async def close(self) -> None:
        await self._client.close()

    async def text(self, system: str, user: str, call: StepAttempt | None = None) -> str:
        return (await self._chat(system, user, None, call)).text

    async def json(
        self, system: str, user: str, name: str, schema: dict[str, Any], call: StepAttempt | None = None
    ) -> str:
        """Ask for JSON in the configured way; the caller parses leniently (`parse_json_object`)."""
        return (await self.json_answer(system, user, name, schema, call)).text

    async def json_answer(
        self, system: str, user: str, name: str, schema: dict[str, Any], call: StepAttempt | None = None
    ) -> Answer:
        """`json`, with why the model stopped: a cut-off answer is told from a malformed one."""
        mode = self.settings.structured_output
        if mode == "json_schema":
            fmt: dict[str, Any] | None = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": True},
            }
        elif mode == "json_object":
            fmt = {"type": "json_object"}
        else:
            fmt = None
        if mode != "json_schema":
            user = f"{user}\n\nAnswer with one JSON object matching this schema:\n{json.dumps(schema)}"
        return await self._chat(system, user, fmt, call)

    async def _chat(
        self, system: str, user: str, response_format: dict[str, Any] | None, call: StepAttempt | None
    ) -> Answer:
        extra: dict[str, Any] = {}
        if response_format is not None:
            extra["response_format"] = response_format
        async with self.slots.slot(
            call.invocation_id if call else None,
            call.attempt if call else 1,
            call.step if call else None,
            self.settings.max_slot_wait_s,
        ) as waited:
            if waited > SLOW_SLOT_S:
                log.info(
                    "waited %.1f s for one of %d LLM slots step=%s invocation=%s",
                    waited,
                    self.slots.limit,
                    call.step if call else "-",
                    call.invocation_id if call else "-",
                )
            # The client's timeout starts here, when the request is sent, not when the step began.
            completion = await self._client.chat.completions.create(
                model=self.settings.model,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                max_tokens=self.settings.max_tokens,
                temperature=self.settings.temperature,
                extra_headers=call.headers() if call else None,
                **extra,
            )
        if not completion.choices:
            return Answer("", None)
        choice = completion.choices[0]
        return Answer(choice.message.content or "", choice.finish_reason)


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in a model's answer (bare, fenced or embedded in prose), else None."""
    candidates = [text.strip()]
    candidates += [m.strip() for m in _FENCE.findall(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def string_list(value: Any, limit: int) -> list[str]:
    """Non-empty strings from a model-produced list, trimmed, at most `limit`."""
    if not isinstance(value, list):
        return []
    items = [str(v).strip() for v in value if isinstance(v, str | int | float) and str(v).strip()]
    return items[:limit]
