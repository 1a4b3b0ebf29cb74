"""The request the service takes (the seed's body), the report it returns, and its tool-fault hook."""

from __future__ import annotations

import threading
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

# The bounds keep the small local model's JSON short enough to close within WRITER_MAX_TOKENS: a report
# cut off mid-string is a ModelBehaviorError on every replay of the journaled answer. llama.cpp turns
# maxLength/maxItems into its grammar; a large model never reaches them. Measured: a degenerate answer
# ("1.1.1.1...") costs a token per character, so 80+200+2x50 characters overran 384 tokens (2 of 12
# storm invocations); 60+160+2x40 characters, JSON and the grammar's whitespace fit in 640.
SUMMARY_MAX = 60
REPORT_MAX = 160
QUESTION_MAX = 40
QUESTIONS_MAX = 2


class ReportData(BaseModel):
    """The research-bot writer's structured output."""

    short_summary: Annotated[str, StringConstraints(max_length=SUMMARY_MAX)] = Field(
        description="A short 2-3 sentence summary of the findings."
    )
    markdown_report: Annotated[str, StringConstraints(max_length=REPORT_MAX)] = Field(
        description="The final report, in markdown."
    )
    follow_up_questions: list[Annotated[str, StringConstraints(max_length=QUESTION_MAX)]] = Field(
        description="Suggested topics to research further.", max_length=QUESTIONS_MAX
    )


class ResearchInfo(BaseModel):
    # The seed sends temp_dir, max_search_plan, vector_store_*, search_results too: kept, not needed here.
    model_config = ConfigDict(extra="allow")

    output_dir: str = Field(min_length=1)
    search_results: list[Any] = []


class WriterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1)
    research_info: ResearchInfo


class BadRequest(ValueError):
    """A body the handler refuses for good (a TerminalError: retrying cannot fix it)."""


def parse_request(body: object) -> WriterRequest:
    """The seed's body, `{"prompt", "research_info": {"output_dir", ...}}`, or one message naming the field."""
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object, not {type(body).__name__}")
    try:
        return WriterRequest.model_validate(body)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5]]
        raise BadRequest("invalid request: " + "; ".join(problems)) from None


class ToolFault:
    """AGENTS_WRITER_TOOL_FAIL_FIRST=N: the first N executions of save_report in this process fail with an
    error Restate retries. The count lives in the process, not in the request, so nothing about the fault
    reaches Restate's journal but the failures themselves; a restarted process starts over."""

    def __init__(self, fail_first: int) -> None:
        if fail_first < 0:
            raise ValueError(f"fail_first must be >= 0, not {fail_first}")
        self.left = fail_first
        self.failed = 0
        self._lock = threading.Lock()  # concurrent invocations share the count

    def check(self) -> None:
        """Raise SaveReportFault while failures are left (called at the start of each execution)."""
        with self._lock:
            if self.left <= 0:
                return
            self.left -= 1
            self.failed += 1
            number = self.failed
        raise SaveReportFault(f"save_report failed on purpose ({number} of AGENTS_WRITER_TOOL_FAIL_FIRST)")


class SaveReportFault(RuntimeError):
    """The injected tool failure: an ordinary exception, so Restate retries the step."""
