"""evaluation.json (for scripts), evaluation.md (the shape of a POC results document) and evaluation.html
(a chart per metric, inline SVG: nothing is loaded from anywhere)."""

from __future__ import annotations

import html
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from drillkit.state import write_text_atomically

METRICS = (
    ("completed", "completed runs (of runs)", "runs"),
    ("model_requests", "model requests (against the minimum)", "min_requests"),
    ("p50_s", "time to completion, median (s)", None),
    ("duplicated_effects", "reports written more than once", None),
)


def context(config_source: str, versions: dict[str, str]) -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "config": config_source,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "python": platform.python_version(),
        **versions,
    }


def write(directory: Path, result: dict[str, Any]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    files = [directory / "evaluation.json", directory / "evaluation.md", directory / "evaluation.html"]
    write_text_atomically(files[0], json.dumps(result, indent=2, default=str))
    write_text_atomically(files[1], markdown(result))
    write_text_atomically(files[2], page(result))
    return files


def markdown(result: dict[str, Any]) -> str:
    about = result.get("context", {})
    lines = [
        f"# Evaluation: the writer with Restate against without it: **{result['decision']}**",
        "",
        "## Context",
        "",
        "The POC's open question: does the writer with Restate do better than without it on faults, and at",
        "what cost? Each fault ran the same number of times on both: the durable writer (a Restate service)",
        "and the baseline (the same pipeline in a plain ASGI app, its caller retrying with tenacity).",
        "",
        *(f"- {k}: {v}" for k, v in about.items()),
        "",
        "## Decision",
        "",
        "| | criterion | target | value |",
        "|---|---|---|---|",
        *(f"| {'✅' if c['met'] else '❌'} | {c['name']} | {c['target']} | {c['value']} |" for c in result["criteria"]),
        "",
        "## Scenarios",
        "",
        "| fault | mode | completed | model requests / minimum | reports twice | reports lost | p50 s | p95 s |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {r['fault']} | {r['mode']} | {r['completed']}/{r['runs']} | {r['model_requests']} / "
            f"{r['min_requests']} | {r['duplicated_effects']} | {r['lost_effects']} | {r['p50_s']} | {r['p95_s']} |"
            for r in result["rows"]
        ),
        "",
        f"Throughput at {result.get('nominal_concurrency')} concurrent, no fault (completed/s): "
        + ", ".join(f"{mode} {value}" for mode, value in (result.get("throughput_per_s") or {}).items()),
        "",
        "Model requests are counted at the LLM tap in front of the model (an independent proxy), attributed by",
        "the headers both modes send; a report written twice is a second successful `save_report` in the",
        "ledger; a lost one is a completed request whose report file is missing.",
    ]
    if result.get("inconclusive"):
        lines += ["", "## Runs that could not be judged", "", *(f"- {r}" for r in result["inconclusive"])]
    return "\n".join(lines) + "\n"


def page(result: dict[str, Any]) -> str:
    charts = "".join(chart(result["rows"], key, title, against) for key, title, against in METRICS)
    criteria = "".join(
        f"<tr><td>{'✅' if c['met'] else '❌'}</td><td>{esc(c['name'])}</td><td>{esc(c['target'])}</td>"
        f"<td>{esc(c['value'])}</td></tr>"
        for c in result["criteria"]
    )
    about = "".join(f"<li>{esc(k)}: {esc(v)}</li>" for k, v in result.get("context", {}).items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Evaluation: {esc(result["decision"])}</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em}}svg text{{font:12px sans-serif}}</style></head><body>
<h1>The writer with Restate against without it: {esc(result["decision"])}</h1><ul>{about}</ul>
<table><tr><th></th><th>criterion</th><th>target</th><th>value</th></tr>{criteria}</table>{charts}</body></html>
"""


def chart(rows: list[dict[str, Any]], key: str, title: str, against: str | None) -> str:
    """Horizontal bars, one per (fault, mode): baseline grey, durable blue; `against` as a tick."""
    bar_h, label_w, width = 18, 190, 420
    values = [float(r.get(key) or 0) for r in rows]
    ceiling = max([*values, *(float(r.get(against) or 0) for r in rows if against)], default=1.0) or 1.0
    parts = []
    for i, (row, value) in enumerate(zip(rows, values, strict=True)):
        y = 10 + i * (bar_h + 6)
        length = width * value / ceiling
        colour = "#3b7dd8" if row["mode"] == "durable" else "#9a9a9a"
        parts.append(
            f'<text x="0" y="{y + 13}">{esc(row["fault"])} · {esc(row["mode"])}</text>'
            f'<rect x="{label_w}" y="{y}" width="{length:.1f}" height="{bar_h}" fill="{colour}">'
            f"<title>{esc(row['fault'])} {esc(row['mode'])}: {value:g}</title></rect>"
            f'<text x="{label_w + length + 4:.1f}" y="{y + 13}">{value:g}</text>'
        )
        if against and row.get(against) is not None:
            x = label_w + width * float(row[against]) / ceiling
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 2}" y2="{y + bar_h + 2}" stroke="#000"/>')
    height = 20 + len(rows) * (bar_h + 6)
    return (
        f"<h2>{esc(title)}</h2><svg width='{label_w + width + 80}' height='{height}' role='img'>"
        + "".join(parts)
        + "</svg>"
    )


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)
