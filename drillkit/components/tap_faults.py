"""Model errors the LLM tap answers instead of (or on top of) the model, as a drill planned them.

A drill hands the tap a `FaultPlan` when it starts it (`--faults FILE`, a JSON object); nothing in a
request can ask for a fault (Restate journals every request where anyone with its admin API reads it).
The plan picks which model requests get the fault: the chat completions (`POST .../chat/completions`)
whose `X-Writer-Step` is one of `steps` (any step when empty); the first `skip` of them pass through,
the next `burst` get the fault, the rest pass through again. One request is `burst: 1`.

The faults, as a model endpoint really shows them:

- `429`: status 429 with `Retry-After: <retry_after_s>` and an OpenAI error body (rate limited);
- `500`, `503`: the status and an OpenAI error body (the server broke, or is overloaded);
- `400`: an OpenAI `invalid_request_error` (the request can never succeed; nothing should retry it);
- `hang`: nothing at all: the tap holds the request without asking the model until the caller gives up
  (its own timeout), or drops the connection after `hang_s`;
- `reset`: the model's real answer, its headers and the first half of its body, then the connection
  is dropped (the caller sees a broken response, not a short one that looks whole);
- `slow`: the model's real answer, whole, trickled out over `slow_s` seconds;
- `truncated`: the model's real answer with its message content cut in half and `finish_reason:
  "length"`, what a server returns when the answer ran into the token limit (the HTTP body itself is
  valid JSON: the structured answer inside it is not);
- `malformed`: the model's real answer with its content's double quotes made single (a JSON object
  becomes a Python literal, as small models write it; content without quotes gets an opening brace it
  never closes) and `finish_reason: "stop"`: the answer is whole, only not JSON.

The first five never reach the model (`ALONE_FAULTS`); the last four ask it and change what comes back.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from drillkit.errors import ConfigError

Fault = Literal["429", "500", "503", "400", "hang", "reset", "slow", "truncated", "malformed"]
FAULTS: tuple[str, ...] = get_args(Fault)
STATUS_FAULTS = {"429": 429, "500": 500, "503": 503, "400": 400}
"""Faults answered by the tap alone, with this status."""
ALONE_FAULTS = frozenset({*STATUS_FAULTS, "hang"})
"""Faults the model never saw: a request that got one cost the model nothing."""
COMPLETIONS_SUFFIX = "/chat/completions"

_ERROR_TYPES = {
    400: ("invalid_request_error", "LLM tap: injected invalid request (the drill's 400)"),
    429: ("rate_limit_exceeded", "LLM tap: injected rate limit (the drill's 429)"),
    500: ("server_error", "LLM tap: injected internal server error (the drill's 500)"),
    503: ("service_unavailable", "LLM tap: injected overload (the drill's 503)"),
}


@dataclass(frozen=True)
class FaultPlan:
    """Which model requests get which fault. Validated on construction; errors name the field."""

    fault: str
    burst: int = 1
    """How many matching requests in a row get the fault."""
    skip: int = 0
    """Matching requests passed through before the burst."""
    steps: tuple[str, ...] = ()
    """Only requests whose X-Writer-Step is one of these; empty: every model request."""
    retry_after_s: int = 2
    """The 429's Retry-After, in whole seconds (the header's own unit)."""
    slow_s: float = 3.0
    """How long a `slow` answer takes to trickle out."""
    hang_s: float = 600.0
    """How long a `hang` holds a request before dropping it (the caller's own timeout should end it first)."""

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ConfigError(f"fault: unknown {self.fault!r} (known: {', '.join(FAULTS)})")
        if self.burst < 1:
            raise ConfigError(f"burst: must be at least 1 (got {self.burst})")
        if self.skip < 0:
            raise ConfigError(f"skip: cannot be negative (got {self.skip})")
        if self.retry_after_s < 0:
            raise ConfigError(f"retry_after_s: cannot be negative (got {self.retry_after_s})")
        if not 0 < self.slow_s <= 600:
            raise ConfigError(f"slow_s: must be in (0, 600] seconds (got {self.slow_s})")
        if not 0 < self.hang_s <= 3600:
            raise ConfigError(f"hang_s: must be in (0, 3600] seconds (got {self.hang_s})")

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "steps": list(self.steps)})

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: Path) -> FaultPlan:
        """The plan in `path`; a ConfigError naming the file and the field otherwise."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read the fault plan: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the fault plan must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{path}: field {unknown[0]}: unknown field (known: {', '.join(sorted(known))})")
        try:
            steps = data.pop("steps", ())
            if not isinstance(steps, list | tuple) or not all(isinstance(s, str) for s in steps):
                raise ConfigError(f"steps: must be a list of step names (got {steps!r})")
            return cls(**data, steps=tuple(steps))
        except (ConfigError, TypeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None


class FaultSchedule:
    """Counts matching requests as they arrive and says which get the fault (one tap, one event loop:
    no lock needed, `take` runs to completion between awaits)."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.seen = 0

    def take(self, method: str, path: str, step: str | None) -> str | None:
        """The fault for this request, or None to forward it as it is."""
        if method != "POST" or not path.endswith(COMPLETIONS_SUFFIX):
            return None
        if self.plan.steps and step not in self.plan.steps:
            return None
        index = self.seen
        self.seen += 1
        return self.plan.fault if self.plan.skip <= index < self.plan.skip + self.plan.burst else None


def error_body(status: int) -> dict[str, Any]:
    kind, message = _ERROR_TYPES[status]
    return {"error": {"message": message, "type": kind, "param": None, "code": f"llm_tap_{status}"}}


def status_headers(plan: FaultPlan, status: int) -> list[tuple[bytes, bytes]]:
    return [(b"retry-after", str(plan.retry_after_s).encode())] if status == 429 else []


def truncate_answer(body: bytes) -> bytes:
    """The completion with its first choice's content cut in half and finish_reason "length"; a body
    that is no chat completion is cut in half itself."""
    return _rewrite_content(body, lambda text: text[: len(text) // 2], "length") or body[: len(body) // 2]


def malform_answer(body: bytes) -> bytes:
    """The completion with its content no longer JSON (see `_malformed`) and finish_reason "stop"; a
    body that is no chat completion gets an opening brace it never closes."""
    return _rewrite_content(body, _malformed, "stop") or b"{" + body


def _malformed(text: str) -> str:
    """A JSON object or array as a Python literal (single quotes, True, None); other text (a model's
    answer already cut off) with its double quotes made single; text without quotes opened with a brace."""
    try:
        value = json.loads(text)
    except ValueError:
        return text.replace('"', "'") if '"' in text else "{" + text
    return repr(value) if isinstance(value, dict | list) else "{" + text


def _rewrite_content(body: bytes, change: Any, finish_reason: str | None) -> bytes | None:
    try:
        data = json.loads(body)
        choice = data["choices"][0]
        text = choice["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    if not isinstance(text, str):
        return None
    choice["message"]["content"] = change(text)
    if finish_reason is not None:
        choice["finish_reason"] = finish_reason
    return json.dumps(data).encode()


def trickle(body: bytes, slow_s: float, pieces: int = 20) -> tuple[list[bytes], float]:
    """The body in up to `pieces` parts and the pause before each, so the whole takes `slow_s`."""
    size = max(1, math.ceil(len(body) / pieces))
    parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    return parts, slow_s / len(parts)
