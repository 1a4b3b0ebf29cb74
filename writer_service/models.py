"""Request and result shapes of `WriterAgentRestate.run`, exactly as the HOW-TO sends and expects them.

A request body comes from anyone who can reach Restate's ingress, so everything here is checked before
any step runs, and every way a body can be wrong ends in the same `InvalidRequest` (a terminal 400).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from restate import TerminalError

from writer_service.config import Faults

# Limits on what a request may carry (documented in the README, "The writer").
MAX_BODY_BYTES = 1_000_000
MAX_PROMPT_CHARS = 20_000
MAX_SEARCH_RESULTS = 50
MAX_SEARCH_RESULT_CHARS = 10_000
MAX_SEARCH_PLAN = 20
MAX_PATH_CHARS = 1024
MAX_PATH_COMPONENT_BYTES = 255  # NAME_MAX
MAX_NAME_CHARS = 256  # vector_store_name, vector_store_id
MAX_SHOWN_CHARS = 80  # how much of a bad value an error message repeats
# The context rule: a prompt of C characters counts as ceil(C / CHARS_PER_TOKEN) tokens. SmolLM2's
# tokenizer (GPT-2 style BPE) averages about 4 characters of English per token; 3 leaves room for code,
# numbers and other languages. It is an estimate, not a bound: a prompt it lets through can still
# overflow, and the endpoint's 400 for that is terminal too (one model call spent, not a retry loop).
CHARS_PER_TOKEN = 3
# What the pipeline wraps around the client's text, in tokens: the chat template, the instructions, and
# the report topic and section title the section prompt repeats (each at most max_tokens, see below).
TEMPLATE_TOKENS = 64


class InvalidRequest(TerminalError, ValueError):
    """The body cannot be a WriterRequest; the message lists every problem by field. A terminal 400:
    Restate fails the invocation at once instead of retrying it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status_code=400)


def shown(value: object) -> str:
    """An attacker-chosen value as an error message may repeat it: escaped (repr escapes control
    characters and lone surrogates, which would not even encode) and cut short."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


def _bad_characters(value: str, allowed_controls: str) -> str | None:
    for char in value:
        code = ord(char)
        if 0xD800 <= code <= 0xDFFF:
            return f"contains a lone surrogate ({char!r})"
        if (code < 0x20 or 0x7F <= code < 0xA0) and char not in allowed_controls:
            return "contains a NUL byte" if code == 0 else f"contains a control character ({char!r})"
    return None


def _text(value: str) -> str:
    """Free text (prompt, search results): tabs and newlines are fine; NUL, other controls and lone
    surrogates are not (they break the report's UTF-8, the logs, and C strings downstream)."""
    problem = _bad_characters(value, "\t\n\r")
    if problem:
        raise ValueError(problem)
    return value


def _path(value: str) -> str:
    """A directory path: absolute, printable, within PATH_MAX/NAME_MAX. A relative or empty path would
    resolve against the writer's working directory, which no client should choose."""
    problem = _bad_characters(value, "")
    if problem is None and any(ch in value for ch in "\u2028\u2029\u200e\u200f\u202a\u202b\u202c\u202d\u202e"):
        problem = "contains a line separator or a bidirectional control character"
    if problem:
        raise ValueError(problem)
    if not value.startswith("/"):
        raise ValueError(f"must be an absolute path (got {shown(value)})")
    for part in value.split("/"):
        if len(part.encode("utf-8")) > MAX_PATH_COMPONENT_BYTES:
            raise ValueError(f"has a path component longer than {MAX_PATH_COMPONENT_BYTES} bytes")
    return value


Text = Annotated[str, AfterValidator(_text)]
DirPath = Annotated[str, Field(max_length=MAX_PATH_CHARS), AfterValidator(_path)]
Name = Annotated[str, Field(max_length=MAX_NAME_CHARS), AfterValidator(_text)]


class ResearchInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temp_dir: DirPath
    output_dir: DirPath
    max_search_plan: int = Field(ge=0, le=MAX_SEARCH_PLAN)
    vector_store_name: Name | None = None
    vector_store_id: Name | None = None
    search_results: list[Annotated[Text, Field(max_length=MAX_SEARCH_RESULT_CHARS)]] = Field(
        default=[], max_length=MAX_SEARCH_RESULTS
    )

    @field_validator("max_search_plan", mode="before")
    @classmethod
    def _numeric_string(cls, value: Any) -> Any:
        # The HOW-TO sends "1": accept an int or a short string of ASCII digits, nothing looser.
        if isinstance(value, bool):
            raise ValueError("must be an integer or a numeric string")
        if isinstance(value, str):
            if not re.fullmatch(r"\s*[0-9]{1,6}\s*", value, flags=re.ASCII):
                raise ValueError("must be an integer or a numeric string")
            return int(value)
        return value


class WriterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: Annotated[Text, Field(min_length=1, max_length=MAX_PROMPT_CHARS)]
    research_info: ResearchInfo

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is blank (only whitespace): there is nothing to write about")
        return value

    faults: Faults | None = None
    """Per-request fault injection; refused unless the config sets `faults.allow_request_faults` and the
    request carries the stack's fault key."""


class ReportData(BaseModel):
    """The writer's result: the HOW-TO's ReportData plus where the file was written."""

    file_name: str
    research_topic: str
    short_summary: str
    markdown_report: str
    follow_up_questions: list[str]
    output_path: str


def estimated_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def check_fits_context(request: WriterRequest, fixed_text: str, context_tokens: int | None, max_tokens: int) -> None:
    """Refuse a request whose largest prompt cannot fit the model's context, before any model call.

    The largest prompt is a section's: `fixed_text` (the system prompt), the client's prompt, every
    search result, the template, and the topic and title from the outline answer (at most `max_tokens`).
    The answer needs `max_tokens` more. `context_tokens` None (unknown endpoint): no check."""
    if context_tokens is None:
        return
    results = request.research_info.search_results
    client_chars = len(request.prompt) + sum(len(r) for r in results)
    needed = estimated_tokens(fixed_text + request.prompt + "".join(results)) + TEMPLATE_TOKENS + 2 * max_tokens
    if needed > context_tokens:
        room = max((context_tokens - TEMPLATE_TOKENS - 2 * max_tokens) * CHARS_PER_TOKEN - len(fixed_text), 0)
        raise InvalidRequest(
            f"invalid request: prompt and research_info.search_results: {client_chars} characters, about "
            f"{needed} tokens with the pipeline's own text and the answer ({CHARS_PER_TOKEN} characters a "
            f"token), more than the model's context of {context_tokens} tokens; at most about {room} "
            "characters fit"
        )


def _field_name(loc: tuple[int | str, ...]) -> str:
    parts = []
    for part in loc:
        text = str(part)
        # Unknown keys are the client's own text: show them escaped and short.
        parts.append(text if re.fullmatch(r"[A-Za-z0-9_\[\]-]{1,40}", text) else shown(text))
    return ".".join(parts) or "body"


def parse_request(body: Any) -> WriterRequest:
    """A decoded JSON body as a WriterRequest, or `InvalidRequest` naming every bad field."""
    if not isinstance(body, dict):
        raise InvalidRequest(f"invalid request: body: must be a JSON object, got {_json_type(body)}")
    try:
        return WriterRequest.model_validate(body)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_input=False, include_url=False):
            problems.append(f"{_field_name(err['loc'])}: {err['msg']}")
        raise InvalidRequest("invalid request: " + "; ".join(problems)) from None


def parse_body(raw: bytes) -> WriterRequest:
    """The raw request bytes (the handler takes them as they came) as a WriterRequest: too large,
    not UTF-8 or not JSON are the same terminal 400 as a bad field."""
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidRequest(f"invalid request: body: {len(raw)} bytes, more than the {MAX_BODY_BYTES} allowed")
    if not raw.strip():
        raise InvalidRequest("invalid request: body: empty; expected a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"invalid request: body: not valid UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"invalid request: body: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except (ValueError, RecursionError) as exc:  # too deeply nested, numbers too long to convert
        raise InvalidRequest(f"invalid request: body: not acceptable JSON: {type(exc).__name__}") from None
    return parse_request(data)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )
