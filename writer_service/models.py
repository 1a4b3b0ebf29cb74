"""Request and result shapes of `WriterAgentRestate.run`, exactly as the HOW-TO sends and expects them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from writer_service.config import Faults


class ResearchInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temp_dir: str
    output_dir: str
    max_search_plan: int = Field(ge=0)
    vector_store_name: str | None = None
    vector_store_id: str | None = None
    search_results: list[str] = []

    @field_validator("max_search_plan", mode="before")
    @classmethod
    def _numeric_string(cls, value: Any) -> Any:
        # The HOW-TO sends "1": accept an int or a string of digits, nothing looser.
        if isinstance(value, bool):
            raise ValueError("must be an integer or a numeric string")
        if isinstance(value, str):
            if not value.strip().isdigit():
                raise ValueError("must be an integer or a numeric string")
            return int(value)
        return value


class WriterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1)
    research_info: ResearchInfo
    faults: Faults | None = None
    """Per-request fault injection; refused unless the config sets `faults.allow_request_faults`."""


class Outline(BaseModel):
    research_topic: str
    sections: list[str]


class Summary(BaseModel):
    short_summary: str
    follow_up_questions: list[str]


class ReportData(BaseModel):
    """The writer's result: the HOW-TO's ReportData plus where the file was written."""

    file_name: str
    research_topic: str
    short_summary: str
    markdown_report: str
    follow_up_questions: list[str]
    output_path: str


class InvalidRequest(ValueError):
    """The body cannot be a WriterRequest; the message lists every problem by field."""


def parse_request(body: Any) -> WriterRequest:
    try:
        return WriterRequest.model_validate(body)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "body"
            problems.append(f"{field}: {err['msg']}")
        raise InvalidRequest("invalid request: " + "; ".join(problems)) from None
