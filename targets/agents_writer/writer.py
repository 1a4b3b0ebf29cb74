"""`WriterAgentRestate.run`: the research-bot writer as an Agents SDK agent, made durable by Restate.

Journal of one invocation (names repeat, the drills count Runs):

    timestamp    ctx.time(): when the report was written, the same on every replay
    call LLM     DurableRunner: the model writes the report and calls save_report
    save_report  the tool's durable step: the report file, written once
    call LLM     DurableRunner: the model answers the ReportData
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import restate
from agents import (
    Agent,
    MaxTurnsExceeded,
    ModelBehaviorError,
    ModelSettings,
    RunContextWrapper,
    RunResult,
    Tool,
)
from pydantic import StringConstraints
from restate.ext.openai import DurableRunner, durable_function_tool, restate_context

from targets.agents_writer.models import REPORT_MAX, BadRequest, ReportData, ToolFault, parse_request
from targets.agents_writer.settings import Settings
from writer_service.report_files import (
    PathNotAllowed,
    contained_dir,
    containing_root,
    report_file_name,
    write_contained,
)

SERVICE = "WriterAgentRestate"
MAX_TURNS = 4  # write and save, answer; one more for a model that calls the tool twice
SAVE_STEP = "save_report"

INSTRUCTIONS = (
    "You are a senior researcher who writes a short, cohesive report for a research query. "
    "First write the report in markdown and save it with the save_report tool. "
    "Then answer with a short summary, the markdown report and two follow-up questions."
)


@dataclass
class ReportJob:
    """What the tool needs from the request (the agent's run context; never sent to the model)."""

    topic: str
    directory: Path
    root: Path
    written_at: float
    fault: ToolFault
    saved: list[str] = field(default_factory=list)


def report_content(job: ReportJob, markdown_report: str) -> str:
    stamp = datetime.fromtimestamp(job.written_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<!-- {job.topic} | written {stamp} -->\n\n{markdown_report.rstrip()}\n"


@durable_function_tool
async def save_report(
    wrapper: RunContextWrapper[ReportJob],
    markdown_report: Annotated[str, StringConstraints(max_length=REPORT_MAX)],
) -> str:
    """Save the markdown report to a file in the output directory and return the file's path.

    Args:
        markdown_report: The full report, in markdown.
    """
    job = wrapper.context
    # A durable step: once journaled, a retry or a restart gets the path back without writing again.
    path = await restate_context().run_typed(SAVE_STEP, lambda: write_report_file(job, markdown_report))
    job.saved.append(path)
    return path


def write_report_file(job: ReportJob, markdown_report: str) -> str:
    """The tool's side effect, the same with Restate and without it (`baseline.py`)."""
    job.fault.check()
    content = report_content(job, markdown_report)
    return str(write_contained(job.root, job.directory, report_file_name(job.topic, content), content))


def build_agent(settings: Settings, tool: Tool = save_report) -> Agent[ReportJob]:
    return Agent[ReportJob](
        name="WriterAgent",
        instructions=INSTRUCTIONS,
        model=settings.model,
        output_type=ReportData,
        tools=[tool],
        model_settings=ModelSettings(
            tool_choice="required",  # the report is saved before it is returned; reset after the tool ran
            parallel_tool_calls=False,
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
        ),
    )


def build_service(settings: Settings) -> restate.Service:
    inactivity = settings.inactivity_timeout_s
    writer = restate.Service(SERVICE, inactivity_timeout=None if inactivity is None else timedelta(seconds=inactivity))
    agent = build_agent(settings)
    fault = ToolFault(settings.tool_fail_first)

    @writer.handler()
    async def run(ctx: restate.Context, request: dict[str, Any]) -> dict[str, Any]:
        try:
            prompt, directory, root = accepted(request, settings)
        except (BadRequest, PathNotAllowed) as exc:
            raise restate.TerminalError(str(exc), status_code=400) from None
        written_at = await ctx.time()
        job = ReportJob(prompt, directory, root, written_at, fault)
        try:
            result = await DurableRunner.run(agent, prompt, context=job, max_turns=MAX_TURNS)
        except (ModelBehaviorError, MaxTurnsExceeded) as exc:
            # Raised from answers already journaled: a retry replays the same answers into the same error.
            raise restate.TerminalError(f"the agent could not finish: {type(exc).__name__}: {exc}") from None
        if not job.saved:
            raise restate.TerminalError("the agent answered without calling save_report: no report file written")
        return answer(job, result)

    return writer


def accepted(request: object, settings: Settings) -> tuple[str, Path, Path]:
    """The prompt, the report directory and its allowed root; BadRequest or PathNotAllowed otherwise."""
    parsed = parse_request(request)
    directory = contained_dir("output_dir", parsed.research_info.output_dir, settings.allowed_roots)
    return parsed.prompt, directory, containing_root(directory, settings.allowed_roots)


def answer(job: ReportJob, result: RunResult) -> dict[str, Any]:
    report = result.final_output_as(ReportData, raise_if_incorrect_type=True)
    return {"report": report.model_dump(), "path": job.saved[-1], "written_at": job.written_at}
