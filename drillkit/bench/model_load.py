"""Load on the real model: what the model can serve, and how much of it the writer gets through Restate.

1. raw capacity: the pipeline's own LLM requests sent straight to the model, no Restate, at its slot
   count (`write_report` in-process on a direct context, `local_model.parallel` invocations at a time),
   in requests/s; and plain completions for tokens/s.
2. through Restate: N concurrent invocations (`/send`), measured from Restate's rows and the writer's
   ledger: completed, goodput (LLM requests that became journaled steps, per second) against the raw
   capacity, LLM requests per LLM step, latency p50/p99.
3. the real-model storm: `drill.storm` with the writer SIGKILLed, its verdict and figures.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path

import httpx

from drillkit import catalog, progress
from drillkit.bench.harness import Figure
from drillkit.bench.load import run_load
from drillkit.bench.scenarios import storm_figures
from drillkit.howto import howto_body
from drillkit.stack import Stack
from writer_service.agent import WriterRuntime, write_report
from writer_service.baseline import DirectContext
from writer_service.ledger import ExecutionLedger
from writer_service.llm import LlmClient

LLM_STEPS_PER_INVOCATION = 5  # outline, 3 sections, summary (configs/local.yaml: pipeline.sections 3)


def raw_pipeline_capacity(stack: Stack, invocations: int, ledger: Path) -> float:
    """LLM requests/s when the pipeline's requests go straight to the model, as many at once as it has slots."""

    # The pipeline runs in this process: its per-step warnings (a weak model's non-JSON answer) are the
    # writer's log lines, not the benchmark's output.
    logging.getLogger("writer_service").setLevel(logging.ERROR)

    async def run() -> float:
        config = stack.config
        runtime = WriterRuntime(config, LlmClient(config.writer_model), ExecutionLedger(ledger))
        started = time.monotonic()
        try:
            await asyncio.gather(
                *(
                    write_report(DirectContext(f"raw_{uuid.uuid4().hex}"), runtime, howto_body())  # type: ignore[arg-type]
                    for _ in range(invocations)
                )
            )
        finally:
            await runtime.llm.close()
        return invocations * llm_steps(stack) / (time.monotonic() - started)

    return asyncio.run(run())


def raw_tokens_per_second(stack: Stack, requests: int) -> float:
    """Completion tokens/s of plain chat completions at the model's slot count (its own usage counts)."""
    slots = stack.config.local_model.parallel
    url = f"{stack.model.url}/v1/chat/completions"

    async def run() -> float:
        gate = asyncio.Semaphore(slots)
        tokens = 0

        async def one(client: httpx.AsyncClient, i: int) -> None:
            nonlocal tokens
            async with gate:
                body = {
                    "model": stack.config.writer_model.model,
                    "messages": [
                        {"role": "user", "content": f"Write a short paragraph about durable workflows ({i})."}
                    ],
                    "max_tokens": stack.config.writer_model.max_tokens,
                }
                response = await client.post(url, json=body)
                response.raise_for_status()
                tokens += int(response.json().get("usage", {}).get("completion_tokens", 0))

        async with httpx.AsyncClient(timeout=httpx.Timeout(300.0)) as client:
            started = time.monotonic()
            await asyncio.gather(*(one(client, i) for i in range(requests)))
            return tokens / (time.monotonic() - started)

    return asyncio.run(run())


def llm_steps(stack: Stack) -> int:
    return len([s for s in stack.writer.steps() if s != "save_report"])


def model_load(base: Stack, sizes: list[int], storm_size: int, storm_kills: int) -> list[Figure]:
    figures: list[Figure] = []
    base.up()
    slots = base.config.local_model.parallel
    scratch = base.state.root / "bench-raw-ledger.jsonl"
    raw_pipeline_capacity(base, slots, scratch)  # warm the model and the connections
    raw = raw_pipeline_capacity(base, slots * 3, scratch)
    scratch.unlink(missing_ok=True)
    tokens = raw_tokens_per_second(base, slots * 4)
    progress.info(f"  raw capacity at {slots} slots: {raw:.2f} LLM requests/s, {tokens:.1f} completion tokens/s")
    figures.append(Figure("load", f"model raw: pipeline requests/s at {slots} slots (no Restate)", "req/s", [raw]))
    figures.append(Figure("load", f"model raw: completion tokens/s at {slots} slots", "tok/s", [tokens]))
    for n in sizes:
        result = run_load(base.ingress, base.admin, n, base.config.ledger_file(), timeout_s=3600)
        goodput = result.succeeded * llm_steps(base) / result.wall_s
        per_step = result.requests_per_llm_step or float("nan")
        progress.info(
            f"  {n} concurrent: {result.succeeded}/{n} success in {result.wall_s:.0f} s, goodput {goodput:.2f} req/s "
            f"({goodput / raw:.2f} of raw), {per_step:.3f} requests per LLM step"
        )
        label = f"{n} concurrent through Restate"
        figures += [
            Figure(
                "load",
                f"{label}: completed with success",
                "count",
                [result.succeeded],
                f"{n} of {n}",
                result.succeeded == n,
            ),
            Figure("load", f"{label}: goodput", "req/s", [goodput]),
            Figure("load", f"{label}: goodput / raw capacity", "x", [goodput / raw], ">= 0.9", goodput / raw >= 0.9),
            Figure("load", f"{label}: LLM requests per LLM step", "x", [per_step], "<= 1.05", per_step <= 1.05),
            Figure("load", f"{label}: latency p50", "s", [result.latency_p50_s or float("nan")]),
            Figure("load", f"{label}: latency p99", "s", [result.latency_p99_s or float("nan")]),
        ]
    if storm_size:
        figures += real_model_storm(base, storm_size, storm_kills)
    return figures


def real_model_storm(base: Stack, n: int, kills: int) -> list[Figure]:
    spec = catalog.storm(invocations=n, kills=kills, llm="local")
    return storm_figures("load", f"real-model storm, {n} invocations, {kills} SIGKILLs", base, spec)
