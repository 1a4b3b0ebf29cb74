"""The Agents SDK writer without Restate, for `inv evaluate --config configs/agents-writer.yaml`: the
same agent, model client, prompts and report file, run by the SDK's plain `Runner` in a plain ASGI app.

    PORT=9091 python targets/agents_writer/baseline.py     (same environment as service.py)

`POST /run` with the seed's body answers 200 and the same JSON the durable handler returns, 400 for a
request that can never succeed, 500 when the run failed (the caller retries the whole request, see
`drillkit.evaluation.modes.Baseline`); `GET /health` answers 200. Nothing is journaled: a crash, a
model error or a failing tool means the whole request again, model calls and file included.

Nothing here is made worse on purpose. One choice is stated: a failing save_report fails the request
(`failure_error_function=None`) instead of the SDK's default of handing the error text to the model as
the tool's answer, because a small model handed an error writes prose instead of calling the tool
again; failing the request lets the caller's retry do what Restate's retry of the step does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agents import (
    MaxTurnsExceeded,
    ModelBehaviorError,
    RunContextWrapper,
    Runner,
    function_tool,
)
from hypercorn.asyncio import serve
from hypercorn.config import Config
from pydantic import StringConstraints

from targets.agents_writer import settings as env_settings
from targets.agents_writer.models import REPORT_MAX, BadRequest, ToolFault
from targets.agents_writer.service import run_main, use_openai_client
from targets.agents_writer.writer import MAX_TURNS, ReportJob, accepted, answer, build_agent, write_report_file
from writer_service.baseline import PlainApp
from writer_service.report_files import PathNotAllowed

log = logging.getLogger("agents_writer.baseline")


@function_tool(name_override="save_report", failure_error_function=None)
async def save_report(
    wrapper: RunContextWrapper[ReportJob],
    markdown_report: Annotated[str, StringConstraints(max_length=REPORT_MAX)],
) -> str:
    """Save the markdown report to a file in the output directory and return the file's path.

    Args:
        markdown_report: The full report, in markdown.
    """
    job = wrapper.context
    path = write_report_file(job, markdown_report)  # no journal: every attempt writes again
    job.saved.append(path)
    return path


class BaselineApp(PlainApp):
    def __init__(self, settings: env_settings.Settings) -> None:
        super().__init__(self.run)
        self.settings = settings
        self.agent = build_agent(settings, save_report)
        self.fault = ToolFault(settings.tool_fail_first)

    async def run(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        try:
            prompt, directory, root = accepted(json.loads(body or b"null"), self.settings)
        except (ValueError, BadRequest, PathNotAllowed) as exc:  # never succeeds: the caller must not retry
            return 400, {"error": str(exc)}
        job = ReportJob(prompt, directory, root, time.time(), self.fault)
        try:
            result = await Runner.run(self.agent, prompt, context=job, max_turns=MAX_TURNS)
            if not job.saved:
                raise ModelBehaviorError("the agent answered without calling save_report")
            return 200, answer(job, result)
        except (ModelBehaviorError, MaxTurnsExceeded) as exc:
            # With Restate these end the invocation (replayed answers give the same error); here a new
            # attempt asks the model again and may succeed, so the caller may retry: 500, not 400.
            log.warning("run failed: %s: %s", type(exc).__name__, exc)
            return 500, {"error": f"{type(exc).__name__}: {exc}"}
        except Exception as exc:  # the model, the network, the tool: the whole request failed
            log.warning("run failed: %s: %s", type(exc).__name__, exc)
            return 500, {"error": f"{type(exc).__name__}: {exc}"}


async def serve_baseline(settings: env_settings.Settings) -> None:
    client = use_openai_client(settings)
    config = Config()
    config.bind = [f"{settings.host}:{settings.port}"]
    config.graceful_timeout = settings.grace_period_s
    config.accesslog = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    log.info("agents writer baseline (no Restate) on http://%s:%d, pid %d", settings.host, settings.port, os.getpid())
    try:
        await serve(BaselineApp(settings), config, mode="asgi", shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    finally:
        await client.close()


def main() -> int:
    return run_main("agents_writer baseline", serve_baseline)


if __name__ == "__main__":
    sys.exit(main())
