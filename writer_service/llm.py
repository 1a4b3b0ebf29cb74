"""The writer's LLM client: one `AsyncOpenAI` per process, no client-side retries.

Restate owns retries: the client's own (two by default, inside each attempt) would hide failures from
the journal and stretch every attempt, so `max_retries=0`. Whether an error is worth retrying is decided
here, in one place (`is_retryable`).
"""

from __future__ import annotations

import json
import re
from typing import Any

import openai

from writer_service.config import WriterModel

# Statuses for which another attempt cannot succeed: bad request, bad credentials, no such model/route.
TERMINAL_STATUSES = frozenset({400, 401, 403, 404, 422})


def is_retryable(exc: BaseException) -> bool:
    """Connection errors, timeouts, 408/409/429 and 5xx are transient; other 4xx are not; unknowns retry."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code not in TERMINAL_STATUSES
    return True


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return f"LLM timeout: {exc}"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return f"LLM unreachable: {type(cause).__name__}: {cause}"
    if isinstance(exc, openai.APIStatusError):
        return f"LLM answered HTTP {exc.status_code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


class LlmClient:
    def __init__(self, settings: WriterModel, http_client: Any = None) -> None:
        self.settings = settings
        self._client = openai.AsyncOpenAI(
            http_client=http_client,  # tests pass one with a mock transport
            base_url=settings.base_url,
            api_key=settings.api_key(),
            timeout=openai.Timeout(settings.timeout_s, connect=min(5.0, settings.timeout_s)),
            max_retries=0,
        )

    async def close(self) -> None:
        await self._client.close()

    async def text(self, system: str, user: str) -> str:
        return await self._chat(system, user, response_format=None)

    async def json(self, system: str, user: str, name: str, schema: dict[str, Any]) -> str:
        """Ask for JSON in the configured way; the caller parses leniently (`parse_json_object`)."""
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
        return await self._chat(system, user, response_format=fmt)

    async def _chat(self, system: str, user: str, response_format: dict[str, Any] | None) -> str:
        extra: dict[str, Any] = {}
        if response_format is not None:
            extra["response_format"] = response_format
        completion = await self._client.chat.completions.create(
            model=self.settings.model,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            max_tokens=self.settings.max_tokens,
            temperature=self.settings.temperature,
            **extra,
        )
        if not completion.choices:
            return ""
        return completion.choices[0].message.content or ""


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
