"""`WriterAgentRestate.run`: the report pipeline, each LLM call and the tool a named durable step.

Steps, in order (names are stable; drills and tests rely on them):
  outline        LLM: research topic and section titles (JSON)
  section:1..n   LLM: one section each, from the prompt and the search results
  summary        LLM: short summary and follow-up questions (JSON)
  save_report    tool: writes the Markdown report under output_dir

`revision` in the config (drill.upgrade deploys a second revision beside the first) changes this only
when set: revision 2 or later asks the summary differently and says its number in the output (the same
steps, so a journal from revision 1 replays on it); its `incompatible` variant journals the outline step
as `plan`, so a journal from another revision does not (Restate's journal mismatch, 570).

A step body runs for real at most until it succeeds; after a crash Restate replays finished steps from
its journal and runs only the one that was in flight. The ledger records every real execution (its start
and its end).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import restate
from restate import TerminalError
from restate.exceptions import RetryableError
from restate.serde import BytesSerde

from writer_service import faults as fault_injection
from writer_service.config import Faults, StepRetry, WriterConfig
from writer_service.ledger import ExecutionLedger
from writer_service.llm import (
    LlmClient,
    StepAttempt,
    describe_error,
    is_retryable,
    parse_json_object,
    retry_after_s,
    string_list,
)
from writer_service.models import (
    ReportData,
    WriterRequest,
    check_fits_context,
    parse_body,
    parse_request,
    shown,
)
from writer_service.report_files import (
    CannotWrite,
    PathNotAllowed,
    check_writable_dir,
    contained_dir,
    containing_root,
    protected_overlap,
    report_file_name,
    write_contained,
)
from writer_service.structured import AnswerCheck, ask_structured, looks_like_json

SERVICE_NAME = "WriterAgentRestate"
log = logging.getLogger("writer_service.agent")
T = TypeVar("T")

SYSTEM_PROMPT = "You are a careful technical writer. You write concise, factual reports."
PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class WriterRuntime:
    """What the handler needs, built once per process by the server."""

    config: WriterConfig
    llm: LlmClient
    ledger: ExecutionLedger


def run_options(retry: StepRetry) -> restate.RunOptions[Any]:
    def ms(value: int | None) -> timedelta | None:
        return None if value is None else timedelta(milliseconds=value)

    return restate.RunOptions(
        max_attempts=retry.max_attempts,
        initial_retry_interval=ms(retry.initial_interval_ms),
        max_retry_interval=ms(retry.max_interval_ms),
        retry_interval_factor=retry.factor,
    )


def validate(rt: WriterRuntime, body: Any) -> tuple[WriterRequest, Path, Faults]:
    """Everything that makes a request unacceptable, checked before any step, and never retried: a bad
    body or path is a 400 (a body carrying `faults` too: faults come only from the config). `body` is the raw bytes the
    handler received (or, from the benchmarks and tests, an already decoded object). Whatever goes wrong
    in here, even an exception nobody foresaw, ends as a terminal error: an exception escaping the
    handler would make Restate retry the invocation forever."""
    field = "body"
    try:
        request = parse_body(bytes(body)) if isinstance(body, bytes | bytearray) else parse_request(body)
        roots = rt.config.paths.allowed_roots
        field = "research_info.temp_dir"
        contained_dir("temp_dir", request.research_info.temp_dir, roots)
        field = "research_info.output_dir"
        output_dir = contained_dir("output_dir", request.research_info.output_dir, roots)
        clash = protected_overlap(output_dir, protected_dirs(rt.config))
        if clash is not None:
            raise PathNotAllowed(
                f"research_info.output_dir: {shown(request.research_info.output_dir)} resolves to "
                f"{shown(str(output_dir))}, which is, is inside or contains {clash} (the writer's project or "
                "state); reports never go there"
            )
        check_writable_dir("output_dir", output_dir)
        field = "prompt"
        check_fits_context(
            request, SYSTEM_PROMPT, rt.config.writer_model.context_tokens, rt.config.writer_model.max_tokens
        )
    except TerminalError:
        raise
    except (PathNotAllowed, CannotWrite) as exc:
        raise TerminalError(str(exc), status_code=400) from None
    except Exception as exc:
        log.warning("invalid request (%s): unexpected %s", field, type(exc).__name__)
        raise TerminalError(
            f"invalid request: {field}: {type(exc).__name__}: {shown(str(exc))}", status_code=400
        ) from None
    return request, output_dir, rt.config.faults


def protected_dirs(config: WriterConfig) -> list[Path]:
    """Where a report may never go: this project, the working directory (the drill runtime starts the
    writer in the project), the ledger's directory (the state dir) and whatever the config adds."""
    return [PROJECT_ROOT, Path.cwd(), config.ledger.path.absolute().parent, *config.paths.protected]


class StepFailed(RuntimeError):
    """A step attempt failed in a way worth retrying; the message names the step, so Restate's
    `last_failure` (and `restate invocations describe`) say which step and why."""


class StepRunner:
    """Runs named durable steps for one invocation and keeps the ledger and the logs honest."""

    def __init__(self, ctx: restate.Context, rt: WriterRuntime, faults: Faults) -> None:
        self.ctx = ctx
        self.rt = rt
        self.faults = faults
        self.invocation_id = ctx.request().id

    async def step(self, name: str, action: Callable[[StepAttempt], Awaitable[T]], retry: StepRetry) -> T:
        """Run `action` as the durable step `name`; it gets the attempt (number, step, invocation) it is."""
        executed = False

        async def body() -> T:
            nonlocal executed
            executed = True
            ledger = self.rt.ledger
            attempt = ledger.attempts_so_far(self.invocation_id, name) + 1
            started = time.monotonic()
            ledger.start(self.invocation_id, name, attempt)
            log.info("executing step=%s invocation=%s attempt=%d", name, self.invocation_id, attempt)
            if fault_injection.crash_due(self.faults, name, attempt):
                ledger.record(self.invocation_id, name, attempt, "crash", started, "injected crash")
                fault_injection.crash_now(name)
            try:
                fault_injection.maybe_fail_tool(self.faults, name, attempt)
                result = await action(StepAttempt(self.invocation_id, name, attempt))
            except asyncio.CancelledError:
                # The SDK cancels a step when Restate ends the attempt (abort timeout, lost stream) or the
                # process drains: the execution ended here, and the ledger says so rather than leave it open.
                ledger.record(self.invocation_id, name, attempt, "error", started, "cancelled: the attempt ended")
                log.warning("step=%s invocation=%s attempt=%d cancelled", name, self.invocation_id, attempt)
                raise
            except TerminalError as exc:
                ledger.record(self.invocation_id, name, attempt, "error", started, exc.message)
                raise
            except Exception as exc:
                reason = describe_error(exc)
                ledger.record(self.invocation_id, name, attempt, "error", started, reason)
                if not is_retryable(exc):
                    log.error("step=%s invocation=%s terminal: %s", name, self.invocation_id, reason)
                    raise TerminalError(f"{name}: {reason}", status_code=502) from exc
                wait = retry_after_s(exc, self.rt.config.writer_model.timeout_s)
                if wait is not None:
                    # The endpoint said when to ask again: Restate schedules the retry then (its delay
                    # override), bounded by the step's model timeout, not by its own fast backoff.
                    log.warning(
                        "step=%s invocation=%s attempt=%d failed, Restate retries in %.1f s (Retry-After): %s",
                        name,
                        self.invocation_id,
                        attempt,
                        wait,
                        reason,
                    )
                    raise RetryableError(
                        f"{name} attempt {attempt}: {reason}; retry after {wait:g} s (Retry-After)",
                        status_code=503,
                        retry_after=timedelta(seconds=wait),
                    ) from exc
                log.warning(
                    "step=%s invocation=%s attempt=%d failed, Restate will retry: %s",
                    name,
                    self.invocation_id,
                    attempt,
                    reason,
                )
                raise StepFailed(f"{name} attempt {attempt}: {reason}") from exc
            entry = ledger.record(self.invocation_id, name, attempt, "ok", started)
            log.info(
                "executed step=%s invocation=%s attempt=%d in %.0f ms",
                name,
                self.invocation_id,
                attempt,
                entry.duration_ms,
            )
            return result

        result: T = await self.ctx.run_typed(name, body, run_options(retry))
        if not executed:
            log.info("replayed step=%s invocation=%s (from Restate's journal)", name, self.invocation_id)
        return result


def _outline_schema(n: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "research_topic": {"type": "string"},
            "sections": {"type": "array", "items": {"type": "string"}, "minItems": n, "maxItems": n},
        },
        "required": ["research_topic", "sections"],
        "additionalProperties": False,
    }


SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "short_summary": {"type": "string"},
        "follow_up_questions": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 5},
    },
    "required": ["short_summary", "follow_up_questions"],
    "additionalProperties": False,
}


# The summary step's request per revision: revision 2's change is compatible (a prompt is not journaled
# structure; the step keeps its name and place).
SUMMARY_ASK = {
    1: "\nWrite a short summary and up to three follow-up questions.",
    2: "\nWrite a one-sentence summary and up to three follow-up questions a reader would ask next.",
}


def _context(request: WriterRequest) -> str:
    results = request.research_info.search_results
    if not results:
        return "No search results were provided."
    return "Search results:\n" + "\n".join(f"- {r}" for r in results)


def outline_from_answer(answer: str, prompt: str, n: int) -> dict[str, Any]:
    """A usable outline whatever the model said: malformed answers fall back to numbered sections."""
    return outline_from_data(parse_json_object(answer), prompt, n)


def outline_from_data(data: dict[str, Any] | None, prompt: str, n: int) -> dict[str, Any]:
    data = data or {}
    topic = data.get("research_topic")
    topic = topic.strip() if isinstance(topic, str) and topic.strip() else prompt.strip()[:80]
    sections = string_list(data.get("sections"), n)
    if len(sections) < n:
        log.warning("outline answer had %d usable section titles of %d; numbering the rest", len(sections), n)
        sections += [f"Part {i}" for i in range(len(sections) + 1, n + 1)]
    return {"research_topic": topic, "sections": sections}


def summary_from_answer(answer: str) -> dict[str, Any]:
    data = parse_json_object(answer)
    if data is None:
        if looks_like_json(answer):  # a cut-off or malformed object: never pasted into the report
            log.warning("summary answer was broken JSON; the report goes without a summary")
            return {"short_summary": "", "follow_up_questions": []}
        log.warning("summary answer was not JSON; using its text as the summary")
        return {"short_summary": answer.strip()[:500], "follow_up_questions": []}
    return summary_from_data(data)


def summary_from_data(data: dict[str, Any]) -> dict[str, Any]:
    summary = data.get("short_summary")
    return {
        "short_summary": summary.strip() if isinstance(summary, str) else "",
        "follow_up_questions": string_list(data.get("follow_up_questions"), 5),
    }


def _usable_outline(data: dict[str, Any]) -> bool:
    return isinstance(data.get("research_topic"), str) or isinstance(data.get("sections"), list)


def _usable_summary(data: dict[str, Any]) -> bool:
    summary = data.get("short_summary")
    return isinstance(summary, str) and bool(summary.strip()) and not looks_like_json(summary)


def _log_check(step: str, call: StepAttempt, checked: AnswerCheck) -> None:
    if checked.outcome != "ok":
        log.warning(
            "step=%s invocation=%s structured answer %s after %d request(s): %s",
            step,
            call.invocation_id,
            checked.outcome,
            checked.requests,
            "; ".join(checked.problems),
        )


def render_markdown(topic: str, sections: list[str], bodies: list[str], summary: dict[str, Any]) -> str:
    parts = [f"# {topic}", "", "## Summary", "", summary["short_summary"] or "(no summary)", ""]
    for title, text in zip(sections, bodies, strict=True):
        parts += [f"## {title}", "", text.strip(), ""]
    if summary["follow_up_questions"]:
        parts += ["## Follow-up questions", ""] + [f"- {q}" for q in summary["follow_up_questions"]] + [""]
    return "\n".join(parts)


async def write_report(ctx: restate.Context, rt: WriterRuntime, body: Any) -> dict[str, Any]:
    """The pipeline. `ctx` is Restate's context in the service; the benchmarks pass a direct one to
    measure the same code without Restate."""
    request, output_dir, faults = validate(rt, body)
    steps = StepRunner(ctx, rt, faults)
    llm, pipeline = rt.llm, rt.config.pipeline
    n = pipeline.sections
    context = _context(request)

    async def outline(call: StepAttempt) -> dict[str, Any]:
        checked = await ask_structured(
            lambda: llm.json_answer(
                SYSTEM_PROMPT,
                f"Plan a report for this request: {request.prompt}\n{context}\n"
                f"Give a research topic and exactly {n} section titles.",
                "outline",
                _outline_schema(n),
                call,
            ),
            _usable_outline,
            pipeline.json_retries,
        )
        _log_check("outline", call, checked)
        return {**outline_from_data(checked.data, request.prompt, n), "answer": checked.journal()}

    revision = rt.config.revision
    plan = await steps.step(revision.first_step, outline, pipeline.llm_retry)

    bodies: list[str] = []
    for index, title in enumerate(plan["sections"], start=1):

        async def section(call: StepAttempt, title: str = title) -> str:
            return await llm.text(
                SYSTEM_PROMPT,
                f"Report topic: {plan['research_topic']}\nRequest: {request.prompt}\n{context}\n"
                f'Write the section titled "{title}" in one or two short paragraphs.',
                call,
            )

        bodies.append(await steps.step(f"section:{index}", section, pipeline.llm_retry))

    async def summary(call: StepAttempt) -> dict[str, Any]:
        checked = await ask_structured(
            lambda: llm.json_answer(
                SYSTEM_PROMPT,
                f"Report topic: {plan['research_topic']}\nSections:\n"
                + "\n".join(f"- {t}: {b[:160]}" for t, b in zip(plan["sections"], bodies, strict=True))
                + SUMMARY_ASK[min(revision.number, 2)],
                "summary",
                SUMMARY_SCHEMA,
                call,
            ),
            _usable_summary,
            pipeline.json_retries,
        )
        _log_check("summary", call, checked)
        digest = summary_from_data(checked.data) if checked.data is not None else {"short_summary": ""}
        return {"follow_up_questions": [], **digest, "answer": checked.journal()}

    digest = await steps.step("summary", summary, pipeline.llm_retry)
    markdown = render_markdown(plan["research_topic"], plan["sections"], bodies, digest)
    file_name = report_file_name(plan["research_topic"], markdown)

    async def save_report(_call: StepAttempt) -> str:
        # Checked again as it is written: output_dir may have been swapped for a symlink since validate.
        try:
            root = containing_root(output_dir, rt.config.paths.allowed_roots)
            return str(write_contained(root, output_dir, file_name, markdown))
        except PathNotAllowed as exc:
            raise TerminalError(f"save_report: research_info.output_dir: {exc}", status_code=400) from None
        except CannotWrite as exc:
            # No retry makes room or grants permission; 507 when the disk (or quota) is full.
            status = 507 if exc.errno in (errno.ENOSPC, errno.EDQUOT) else 400
            raise TerminalError(f"save_report: {exc.strerror}", status_code=status) from None

    output_path = await steps.step("save_report", save_report, pipeline.tool_retry)
    report = ReportData(
        file_name=file_name,
        research_topic=plan["research_topic"],
        short_summary=digest["short_summary"],
        markdown_report=markdown,
        follow_up_questions=digest["follow_up_questions"],
        output_path=output_path,
    ).model_dump()
    if revision.number > 1:  # Restate's stored output then says which revision finished the invocation
        report["revision"] = revision.number
    return report


def build_service(rt: WriterRuntime) -> restate.Service:
    # Declared per service so the server's defaults cannot undercut what the slot gate was sized for
    # (config: a step's slot wait + model timeout + slack stays within inactivity + abort).
    service = restate.Service(
        SERVICE_NAME,
        inactivity_timeout=timedelta(seconds=rt.config.service.inactivity_timeout_s),
        abort_timeout=timedelta(seconds=rt.config.service.abort_timeout_s),
    )

    # The raw bytes, not the SDK's JSON decoding: a body that is not UTF-8 or not JSON is then our own
    # terminal 400 naming the problem, instead of the SDK's generic terminal 500.
    @service.handler("run", input_serde=BytesSerde())
    async def run(ctx: restate.Context, body: bytes) -> dict[str, Any]:
        return await write_report(ctx, rt, body)

    return service
