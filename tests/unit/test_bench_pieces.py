"""Benchmark building blocks without servers: figures, the stub's answers, the in-process context."""

import asyncio
import json

from drillkit.bench.harness import Figure
from drillkit.bench.scenarios import _percentile
from drillkit.components.stub_llm import completion
from writer_service.agent import SUMMARY_SCHEMA, _outline_schema
from writer_service.baseline import DirectContext


def test_figure_stats():
    figure = Figure("g", "n", "s", [3.0, 1.0, 2.0], "< 5 s", True)
    assert figure.stats == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert figure.to_dict()["stats"]["median"] == 2.0


def test_percentiles():
    values = [float(i) for i in range(1, 101)]
    assert _percentile(values, 0.5) in (50.0, 51.0)
    assert _percentile(values, 0.99) == 99.0
    assert _percentile([4.2], 0.99) == 4.2


def content(request):
    return completion(request)["choices"][0]["message"]["content"]


def test_stub_answers_the_writers_schemas():
    outline = json.loads(content({"response_format": {"json_schema": {"schema": _outline_schema(4)}}}))
    assert outline["research_topic"] and len(outline["sections"]) == 4
    summary = json.loads(content({"response_format": {"json_schema": {"schema": SUMMARY_SCHEMA}}}))
    assert summary["short_summary"] and summary["follow_up_questions"]
    assert "stub" in content({"messages": []})


def test_direct_context_runs_steps_at_once():
    ctx = DirectContext("direct_1")
    assert ctx.request().id == "direct_1"

    async def action():
        return 42

    assert asyncio.run(ctx.run_typed("x", action, None)) == 42
