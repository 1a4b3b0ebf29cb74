"""Structured (JSON) answers from the model: used whole, asked again, repaired, or set aside, never pasted.

A model's JSON answer can be cut off by the token limit (`finish_reason: "length"`) or come malformed
(single quotes, prose around it). Pasting such text into a report puts raw JSON in front of a reader
(seen: a summary that read `{"short_summary": "...", "follow_up_questions":`). Within one step attempt:

1. the answer is parsed; a usable object is used (`outcome: ok`);
2. otherwise the model is asked again, up to `pipeline.json_retries` more times (`retried` when a later
   answer is usable). This is not a retry of a failure, which Restate owns: the request succeeded and
   its content is what falls short, so asking again belongs inside the step, within a stated budget.
   An answer cut off by the token limit (`finish_reason: "length"`) is not asked again: the same limit
   would cut the next one too (measured on the local model at max_tokens 96: both cut), so it costs a
   request for nothing;
3. the budget spent, the last answer is repaired: a cut-off object closed where its last whole value
   ended, a Python literal read as one (`repaired`);
4. still nothing usable: the step goes on without it (`fallback`; the caller's defaults, no raw text).

The step's result carries what happened (`AnswerCheck.journal()`), so Restate's journal keeps it.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from writer_service.llm import Answer, parse_json_object

Outcome = Literal["ok", "retried", "repaired", "fallback"]
_VALUE_ENDS = frozenset('"]}0123456789el')  # the last character of a whole JSON value (true, false, null)


@dataclass
class AnswerCheck:
    """A structured answer as the step ends up using it, and how it got there."""

    data: dict[str, Any] | None
    outcome: Outcome
    requests: int
    problems: list[str] = field(default_factory=list)

    def journal(self) -> dict[str, Any]:
        """What the step's journaled result says about its answer."""
        return {"outcome": self.outcome, "requests": self.requests, "problems": self.problems}


async def ask_structured(
    ask: Callable[[], Awaitable[Answer]], usable: Callable[[dict[str, Any]], bool], retries: int
) -> AnswerCheck:
    """Ask, and ask again up to `retries` times, until an answer parses into a usable object."""
    problems: list[str] = []
    last = Answer("", None)
    for number in range(retries + 1):
        last = await ask()
        data = parse_json_object(last.text)
        if data is not None and usable(data):
            return AnswerCheck(data, "ok" if number == 0 else "retried", number + 1, problems)
        problems.append(describe_problem(last, data))
        if last.finish_reason == "length":
            break
    asked = len(problems)
    repaired = repair_object(last.text, usable)
    if repaired is not None and usable(repaired):
        return AnswerCheck(repaired, "repaired", asked, problems)
    return AnswerCheck(None, "fallback", asked, problems)


def describe_problem(answer: Answer, data: dict[str, Any] | None) -> str:
    cut = " (cut off at the token limit: finish_reason=length)" if answer.finish_reason == "length" else ""
    if data is not None:
        return f"answer {len(answer.text)} characters: JSON without the fields needed{cut}"
    return f"answer {len(answer.text)} characters: not a JSON object{cut}"


def repair_object(text: str, usable: Callable[[dict[str, Any]], bool] = bool) -> dict[str, Any] | None:
    """The object a cut-off or Python-literal answer meant, as far as it is whole; None if none."""
    start = text.find("{")
    if start < 0:
        return None
    candidate = text[start:]
    closed = close_truncated(candidate, usable)
    if closed is not None:
        return closed
    end = candidate.rfind("}")
    try:
        value = ast.literal_eval(candidate[: end + 1]) if end > 0 else None
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def close_truncated(text: str, usable: Callable[[dict[str, Any]], bool] = bool) -> dict[str, Any] | None:
    """A JSON object cut off mid-way, closed: cut back to the end of each whole value, latest first, and
    the open arrays and objects closed; only when no whole value will do is an unfinished string closed
    where it was cut (a half-written question is worse than none, a half summary better than none).
    The first candidate that parses into a usable object is it."""
    ends = [i + 1 for i in range(len(text) - 1, 0, -1) if text[i] in _VALUE_ENDS]
    tries = [(text[:end], False) for end in ends] + [(text, True)]
    for candidate, may_close_string in tries:
        prefix = candidate.rstrip().rstrip(",")
        closers = _closers(prefix)
        if closers is None or (closers.startswith('"') and not may_close_string):
            continue
        try:
            value = json.loads(prefix + closers)
        except ValueError:
            continue
        if isinstance(value, dict) and usable(value):
            return value
    return None


def _closers(prefix: str) -> str | None:
    """What closes every open string, array and object of `prefix`; None when a closer is unmatched."""
    stack: list[str] = []
    in_string = escaped = False
    for char in prefix:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]" and (not stack or stack.pop() != char):
            return None
    if escaped:
        return None
    return ('"' if in_string else "") + "".join(reversed(stack))


def looks_like_json(text: str) -> bool:
    """Text a reader would see as a JSON fragment: an object or array opened, or a quoted key."""
    stripped = text.strip()
    return stripped.startswith(("{", "[")) or '":' in stripped or "':" in stripped
