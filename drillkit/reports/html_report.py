"""report.html: one self-contained page per drill (and index.html for a run of several) from journal.json.

The page loads nothing (no script, font, stylesheet or image from anywhere): inline CSS and an inline SVG
timeline with a lane per step, each real execution from the writer's ledger a bar coloured by its outcome
(done, error, killed = started and never ended, replayed from the journal), Restate's own attempts from
its trace as a second source, the fault, restart, resume and completion as markers, and Restate's status
over time as a band. Every string from the record goes through `html.escape`.

Input is the journal.json dict (`DrillRecord.to_dict()`), so `inv report PATH` renders old runs again.
The ledger evidence may be one line per execution (outcome at the end, with its duration) or two
(`started` when the body starts, then ok/error/crash), or already paired executions (`started`/`ended`).
"""

from __future__ import annotations

import html
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drillkit.errors import DrillError
from drillkit.evidence import restate_time
from drillkit.reports import html_population, html_revisions
from drillkit.reports.html_population import place_labels
from drillkit.state import write_text_atomically

VERDICT_COLOURS = {"PASS": "#2e7d32", "FAIL": "#c62828", "INCONCLUSIVE": "#b26a00", "ERROR": "#6a1b9a"}
OUTCOME_COLOURS = {"done": "#43a047", "error": "#ef6c00", "killed": "#c62828", "replayed": "#9e9e9e"}
STATUS_COLOURS = {
    "pending": "#90caf9",
    "running": "#1e88e5",
    "backing-off": "#fbc02d",
    "paused": "#8e24aa",
    "suspended": "#80cbc4",
    "completed": "#2e7d32",
    "server down": "#424242",
    "unknown": "#e0e0e0",
}
FAULTS = ("signalled", "killed", "endpoint down", "endpoint hangs")
RESTARTS = ("restarted", "server restarted")
MARKERS = {
    **{name: ("fault", "#c62828") for name in FAULTS},
    **{name: ("restart", "#1565c0") for name in RESTARTS},
    # the cluster drills' faults and recoveries (a node cut off or frozen, then healed, thawed, rejoined)
    **{name: ("fault", "#c62828") for name in ("cut off", "frozen")},
    **{name: ("recovery", "#1565c0") for name in ("healed", "thawed", "rejoined")},
    "resumed": ("resume", "#6a1b9a"),
    "completed": ("completion", "#2e7d32"),
}
STEP_ORDER = re.compile(r"^(outline|section:(\d+)|summary|save_report)$")

WIDTH, LABEL_W, LANE_H, BAR_H, TOP = 980, 130, 26, 16, 58
JAEGER_HELP = (
    "Open it in Jaeger: run the Jaeger UI (e.g. the all-in-one image), choose <em>Search</em> &rarr; "
    "<em>JSON File</em> and drop <code>trace.json</code> there."
)


@dataclass
class Bar:
    step: str
    start: float
    end: float | None
    outcome: str  # done | error | killed | replayed
    label: str


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def step_key(step: str) -> tuple[int, int, str]:
    match = STEP_ORDER.match(step)
    if not match:
        return (3, 0, step)
    if match.group(1) == "outline":
        return (0, 0, step)
    if match.group(2):
        return (1, int(match.group(2)), step)
    return (2, 0 if step == "summary" else 1, step)


def executions(ledger: list[dict[str, Any]], started_at: float) -> list[Bar]:
    """Bars (offsets from the drill's start) from any of the ledger's shapes; an execution that started
    and never ended has `end` None (killed)."""
    bars: list[Bar] = []
    opened: dict[tuple[Any, ...], dict[str, Any]] = {}
    for entry in sorted(ledger, key=lambda e: float(e.get("time") or e.get("started") or 0)):
        key = (entry.get("invocation_id"), entry.get("step"), entry.get("attempt"), entry.get("pid"))
        label = f"{entry.get('step')} attempt {entry.get('attempt')} (pid {entry.get('pid')})"
        if "started" in entry and "time" not in entry:  # already paired (writer_service.ledger.Execution)
            ended = entry.get("ended")
            outcome = entry.get("outcome")
            bars.append(
                Bar(
                    str(entry.get("step")),
                    float(entry["started"]) - started_at,
                    None if ended is None else float(ended) - started_at,
                    "killed" if ended is None else ("done" if outcome == "ok" else "error"),
                    _label(label, outcome, entry),
                )
            )
            continue
        if entry.get("outcome") == "started":
            opened[key] = entry
            continue
        at = float(entry.get("time") or 0)
        begun = opened.pop(key, None)
        start = float(begun["time"]) if begun else at - float(entry.get("duration_ms") or 0) / 1000
        outcome = entry.get("outcome")
        bars.append(
            Bar(
                str(entry.get("step")),
                start - started_at,
                at - started_at,
                "done" if outcome == "ok" else "error",
                _label(label, outcome, entry),
            )
        )
    for begun in opened.values():
        bars.append(
            Bar(
                str(begun.get("step")),
                float(begun["time"]) - started_at,
                None,
                "killed",
                f"{begun.get('step')} attempt {begun.get('attempt')} (pid {begun.get('pid')}): started, never ended",
            )
        )
    return sorted(bars, key=lambda b: b.start)


def _label(prefix: str, outcome: Any, entry: dict[str, Any]) -> str:
    error = entry.get("error")
    duration = entry.get("duration_ms")
    text = f"{prefix}: {outcome}"
    if duration is not None:
        text += f", {float(duration):.0f} ms"
    return text + (f": {error}" if error else "")


def _first(timeline: list[dict[str, Any]], names: tuple[str, ...], after: float = -1.0) -> float | None:
    for event in timeline:
        if event.get("event") in names and float(event.get("offset_s", 0)) > after:
            return float(event["offset_s"])
    return None


def lay_out(data: dict[str, Any], own_only: bool = False) -> tuple[list[str], list[Bar], float]:
    """Steps (lanes), bars (killed ones closed at the fault or the end) and the time span shown. With
    `own_only` (one invocation of many), only its own ledger's executions: nothing inferred from the
    drill's timeline, whose faults and restarts are the population's."""
    evidence = data.get("evidence") or {}
    timeline = data.get("timeline") or []
    started_at = float(data.get("started_at") or 0)
    journal = [s for s in evidence.get("journal_steps") or [] if s.get("name")]
    if "ledger" not in evidence:  # a configured target keeps no ledger: its lanes are its journal's Runs
        return journal_lanes(journal, timeline, started_at, data)
    bars = executions(list(evidence.get("ledger") or []), started_at)
    last_event = max((float(e.get("offset_s", 0)) for e in timeline), default=0.0)
    span = max(float(data.get("duration_s") or 0), last_event, *(b.end or b.start for b in bars), 0.1)
    for bar in bars:
        if bar.end is None:
            bar.end = _first(timeline, ("killed", "signalled"), bar.start) or span
    if own_only:
        names = {b.step for b in bars} | {str(s["name"]) for s in journal}
        return sorted(names, key=step_key), bars, span * 1.03
    fault = _first(timeline, FAULTS)
    flight = evidence.get("in_flight_at_kill")
    if flight and fault is not None and not any(b.step == flight and b.start <= fault <= (b.end or span) for b in bars):
        # The one-line ledger writes a line when a body ends, so a body killed mid-run left none: Restate's
        # journal still saw it in flight at the kill. It started when the step before it ended (the
        # pipeline is sequential), else when the drill saw it running.
        ends = [b.end for b in bars if b.end is not None and b.end <= fault]
        began = max(ends) if ends else (_first(timeline, ("target running",)) or fault)
        bars.append(Bar(str(flight), began, fault, "killed", f"{flight}: in flight at the kill (Restate's journal)"))
    back = _first(timeline, ("running again", "resumed", *RESTARTS), fault) if fault is not None else None
    if fault is not None and back is not None:
        for step in journal:
            name = str(step["name"])
            if not step.get("completed"):
                continue
            runs = [b for b in bars if b.step == name]
            if runs and all((b.end or 0) <= fault for b in runs):
                bars.append(
                    Bar(name, back, back + span * 0.012, "replayed", f"{name}: replayed from Restate's journal")
                )
    names = {b.step for b in bars} | {str(s["name"]) for s in journal}
    return sorted(names, key=step_key), bars, span * 1.03


def journal_lanes(
    journal: list[dict[str, Any]], timeline: list[dict[str, Any]], started_at: float, data: dict[str, Any]
) -> tuple[list[str], list[Bar], float]:
    """One lane per Run of Restate's journal (`run:N name`: names may repeat, as the Agents SDK's
    `call LLM` does), each bar from its command to its result; a Run with no result is drawn up to the
    fault (cut) or to the end."""
    last_event = max((float(e.get("offset_s", 0)) for e in timeline), default=0.0)
    span = max(float(data.get("duration_s") or 0), last_event, 0.1)
    fault = _first(timeline, FAULTS)
    lanes, bars = [], []
    for number, step in enumerate(journal, start=1):
        lane = f"run:{number} {step['name']}"
        lanes.append(lane)
        began, ended = restate_time(step.get("started_at")), restate_time(step.get("completed_at"))
        if began is None:
            continue
        start = began - started_at
        if ended is not None:
            bars.append(Bar(lane, start, ended - started_at, "done", f"{lane}: {step.get('result')} (journaled)"))
        else:
            end = fault if fault is not None and fault >= start else span
            bars.append(Bar(lane, start, end, "killed", f"{lane}: no result in the journal"))
    return lanes, bars, span * 1.03


def own_status_band(data: dict[str, Any], span: float) -> list[tuple[float, float, str]]:
    """One invocation of many: its own row only (created, completed), nothing from the drill's timeline."""
    row = (data.get("evidence") or {}).get("invocation") or {}
    t0 = float(data.get("started_at") or 0)
    created, completed = restate_time(row.get("created_at")), restate_time(row.get("completed_at"))
    if created is None:
        return []
    if completed is None:
        return [(created - t0, span, str(row.get("status") or "unknown"))]
    return [(created - t0, completed - t0, "running"), (completed - t0, span, "completed")]


def status_band(data: dict[str, Any], span: float) -> list[tuple[float, float, str]]:
    """Restate's status over time: from the timeline (explicit `status=` details, sends, kills of the
    server, completion) and the final sys_invocation row."""
    changes: list[tuple[float, str]] = []
    for event in data.get("timeline") or []:
        name, detail, at = event.get("event"), str(event.get("detail") or ""), float(event.get("offset_s", 0))
        found = re.search(r"status=([a-z-]+)", detail)
        if name == "sent":
            changes.append((at, "running"))
        elif name == "killed" and "restate-server" in detail:
            changes.append((at, "server down"))
        elif name == "server restarted":
            changes.append((at, "unknown"))
        elif name == "paused":
            changes.append((at, "paused"))
        elif name == "completed":
            changes.append((at, "completed"))
        elif found:
            changes.append((at, found.group(1)))
    row = (data.get("evidence") or {}).get("invocation") or {}
    completed_at = restate_time(row.get("completed_at")) if row.get("completed_at") else None
    if row.get("status") == "completed" and completed_at and not any(s == "completed" for _, s in changes):
        changes.append((completed_at - float(data.get("started_at") or 0), "completed"))
    changes.sort()
    segments = []
    for index, (at, status) in enumerate(changes):
        end = changes[index + 1][0] if index + 1 < len(changes) else span
        if end > at or index + 1 == len(changes):
            segments.append((at, max(end, at), status))
    return segments


KILLED_MIN_W = 6.0  # px: a kill at the very start of a step is still a visible bar, not a sliver


def timeline_svg(data: dict[str, Any], own_only: bool = False) -> tuple[str, set[str], set[str]]:
    """The lane view; returns the SVG and the outcomes and statuses it draws (the legend shows only those)."""
    steps, bars, span = lay_out(data, own_only)
    trace = [s for s in (data.get("evidence") or {}).get("trace_spans") or [] if s.get("name") == "invocation-attempt"]
    lanes = ["Restate status", *steps] + (["Restate attempts"] if trace else [])
    plot_w = WIDTH - LABEL_W - 12
    markers = [e for e in data.get("timeline") or [] if e.get("event") in MARKERS]

    def x(t: float) -> float:
        return round(LABEL_W + max(0.0, min(t, span)) / span * plot_w, 2)

    texts = [f"{e.get('event')} {float(e.get('offset_s', 0)):.2f}s" for e in markers]
    placed = place_labels(
        [(x(float(e.get("offset_s", 0))), t) for e, t in zip(markers, texts, strict=True)], 4, WIDTH - 4
    )
    label_rows = max((row for _, row, _ in placed), default=-1) + 1
    top = max(TOP, 16 + label_rows * 14)
    height = top + LANE_H * len(lanes) + 34

    def y(lane: int) -> int:
        return top + lane * LANE_H

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="drill timeline" font-family="sans-serif" '
        'font-size="11">',
        "<title>drill timeline</title>",
    ]
    for lane, name in enumerate(lanes):
        fill = "#fafafa" if lane % 2 else "#f0f0f0"
        out.append(f'<rect x="0" y="{y(lane)}" width="{WIDTH}" height="{LANE_H}" fill="{fill}"/>')
        out.append(f'<text x="6" y="{y(lane) + 17}" class="lane">{esc(name)}</text>')
    band = own_status_band(data, span) if own_only else status_band(data, span)
    for start, end, status in band:
        colour = STATUS_COLOURS.get(status, STATUS_COLOURS["unknown"])
        out.append(
            f'<rect x="{x(start)}" y="{y(0) + 5}" width="{max(1.0, round(x(end) - x(start), 2))}" height="{BAR_H}" '
            f'fill="{colour}"><title>{esc(status)} from {start:.2f} s to {end:.2f} s</title></rect>'
        )
    for bar in bars:
        lane = lanes.index(bar.step)
        end = bar.end if bar.end is not None else span
        stroke = ' stroke="#000" stroke-dasharray="3,2"' if bar.outcome == "killed" else ""
        minimum = KILLED_MIN_W if bar.outcome == "killed" else 2.0
        out.append(
            f'<rect x="{x(bar.start)}" y="{y(lane) + 5}" width="{max(minimum, round(x(end) - x(bar.start), 2))}" '
            f'height="{BAR_H}" '
            f'fill="{OUTCOME_COLOURS[bar.outcome]}" rx="2" class="{bar.outcome}"{stroke}>'
            f"<title>{esc(bar.label)} ({bar.start:.2f}-{end:.2f} s)</title></rect>"
        )
    if trace:
        lane = len(lanes) - 1
        for attempt in trace:
            start, duration = float(attempt.get("offset_s", 0)), float(attempt.get("duration_s", 0))
            colour = OUTCOME_COLOURS["error" if attempt.get("failed") else "done"]
            out.append(
                f'<rect x="{x(start)}" y="{y(lane) + 5}" width="{max(2.0, round(x(start + duration) - x(start), 2))}" '
                f'height="{BAR_H}" fill="{colour}" fill-opacity="0.55" stroke="{colour}" rx="2">'
                f"<title>invocation-attempt {'failed' if attempt.get('failed') else 'ok'} "
                f"({start:.2f} s, {duration:.2f} s)</title></rect>"
            )
            for event in attempt.get("events") or []:
                if event.get("name") != "run_ended":
                    continue
                at = x(float(event.get("offset_s", 0)))
                out.append(
                    f'<line x1="{at}" x2="{at}" y1="{y(lane) + 4}" y2="{y(lane) + 22}" stroke="#263238">'
                    f"<title>{esc(event.get('name'))}</title></line>"
                )
    for event, text, (text_x, row, anchor) in zip(markers, texts, placed, strict=True):
        kind, colour = MARKERS[str(event["event"])]
        at = x(float(event.get("offset_s", 0)))
        label_y = 12 + row * 14
        out.append(
            f'<line x1="{at}" x2="{at}" y1="{label_y + 3}" y2="{y(len(lanes))}" stroke="{colour}" '
            f'stroke-width="1.5" stroke-dasharray="4,3"><title>{esc(kind)}: {esc(event.get("event"))} '
            f"{esc(event.get('detail', ''))}</title></line>"
        )
        out.append(f'<text x="{text_x}" y="{label_y}" text-anchor="{anchor}" fill="{colour}">{esc(text)}</text>')
    axis_y = y(len(lanes)) + 14
    ticks = _ticks(span)
    for tick in ticks:
        out.append(f'<line x1="{x(tick)}" x2="{x(tick)}" y1="{axis_y - 12}" y2="{axis_y - 8}" stroke="#555"/>')
        out.append(f'<text x="{x(tick)}" y="{axis_y + 2}" text-anchor="middle">{tick:g} s</text>')
    out.append("</svg>")
    outcomes = {b.outcome for b in bars} | ({"done", "error"} & {"error" if a.get("failed") else "done" for a in trace})
    return "\n".join(out), outcomes, {status for _, _, status in band}


def _ticks(span: float) -> list[float]:
    step = next((s for s in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600) if span / s <= 12), 1200.0)
    count = int(span / step) + 1
    return [round(i * step, 3) for i in range(count)]


def legend(outcomes: set[str], statuses: set[str]) -> str:
    """Only the outcomes and statuses the picture draws."""
    items = [(f"attempt: {k}", v) for k, v in OUTCOME_COLOURS.items() if k in outcomes]
    items += [(f"Restate: {k}", STATUS_COLOURS.get(k, STATUS_COLOURS["unknown"])) for k in sorted(statuses)]
    return " ".join(
        f'<span class="key"><span class="swatch" style="background:{colour}"></span>{esc(name)}</span>'
        for name, colour in items
    )


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#212121;max-width:1100px}
h1{font-size:22px} h2{font-size:17px;margin-top:28px}
.verdict{color:#fff;padding:2px 10px;border-radius:4px}
table{border-collapse:collapse;margin:8px 0;font-size:13px} td,th{border:1px solid #ddd;padding:4px 8px;
vertical-align:top;text-align:left} th{background:#f5f5f5}
td.num{text-align:right;font-variant-numeric:tabular-nums} .ok{color:#2e7d32} .no{color:#c62828}
.key{margin-right:12px;font-size:12px;white-space:nowrap} .swatch{display:inline-block;width:12px;height:12px;
margin-right:4px;vertical-align:-2px;border-radius:2px} pre{background:#f5f5f5;padding:8px;overflow:auto;font-size:12px}
svg .lane{font-weight:600}
"""


def lane_view(data: dict[str, Any]) -> list[str]:
    """One invocation's lanes; for a drill of many, the population first, then one chosen invocation drawn
    from its own executions only, and said so."""
    population = html_population.render(data, step_key)
    if population is None:
        picture, outcomes, statuses = timeline_svg(data)
        return ["<h2>Timeline</h2>", picture, f"<p>{legend(outcomes, statuses)}</p>"]
    picture, outcomes, statuses = timeline_svg(data, own_only=True)
    chosen = data.get("invocation_id") or "?"
    return [
        population,
        f"<h2>One chosen invocation: <code>{esc(chosen)}</code> (#1, the first sent)</h2>",
        "<p>Its own executions from the writer's ledger and its own status in Restate; the dashed lines are the "
        "drill's events (faults, restarts, resumes, completion), which concern the whole population.</p>",
        picture,
        f"<p>{legend(outcomes, statuses)}</p>",
    ]


def render_html(data: dict[str, Any]) -> str:
    drill, verdict = str(data.get("drill", "?")), str(data.get("verdict", "?"))
    evidence = data.get("evidence") or {}
    started = data.get("started_at")
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(float(started))) if started else "?"
    duration = data.get("duration_s")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>drill {esc(drill)}: {esc(verdict)}</title>",
        f"<style>{CSS}</style></head><body>",
        f'<h1>Drill <code>{esc(drill)}</code>: <span class="verdict" '
        f'style="background:{VERDICT_COLOURS.get(verdict, "#555")}">{esc(verdict)}</span></h1>',
        "<ul>",
        f"<li>started {esc(when)}; duration {esc(f'{float(duration):.2f} s' if duration is not None else '?')}</li>",
        f"<li>invocation <code>{esc(data.get('invocation_id') or '(none sent)')}</code></li>",
        f"<li>config <code>{esc(evidence.get('config') or 'not recorded')}</code></li>",
        "<li>parameters: "
        + ", ".join(f"<code>{esc(k)}={esc(v)}</code>" for k, v in (data.get("parameters") or {}).items())
        + "</li></ul>",
        *lane_view(data),
        *html_revisions.render(data),  # drill.upgrade's revisions, when it has them
        "<h2>Expectations</h2>",
        "<table><tr><th></th><th>expectation</th><th>evidence</th></tr>",
    ]
    for item in data.get("expectations") or []:
        mark = '<span class="ok">&#10004;</span>' if item.get("passed") else '<span class="no">&#10008;</span>'
        parts.append(f"<tr><td>{mark}</td><td>{esc(item.get('name'))}</td><td>{esc(item.get('detail'))}</td></tr>")
    parts.append("</table>")
    if data.get("error"):
        parts.append(f"<p><strong>Error:</strong> {esc(data['error'])}</p>")
    if verdict == "INCONCLUSIVE":
        why = data.get("inconclusive") or "the drill checked no expectation"
        parts.append(f"<p><strong>Inconclusive:</strong> {esc(why)}</p>")
    parts.append("<h2>Restate's trace</h2>")
    if evidence.get("trace_file"):
        count = len(evidence.get("trace_spans") or [])
        parts.append(
            f'<p>{count} span(s) of this invocation in <a href="trace.json">trace.json</a> (Jaeger JSON). '
            f"{JAEGER_HELP}</p>"
        )
    parts.append(f"<p>{esc(evidence.get('trace_note') or '')}</p>" if evidence.get("trace_note") else "")
    parts += ["<h2>Events</h2>", "<table><tr><th>t (s)</th><th>event</th><th>detail</th></tr>"]
    for event in data.get("timeline") or []:
        parts.append(
            f'<tr><td class="num">{float(event.get("offset_s", 0)):.2f}</td><td>{esc(event.get("event"))}</td>'
            f"<td>{esc(event.get('detail', ''))}</td></tr>"
        )
    parts.append("</table>")
    ledger = evidence.get("ledger") or []
    if ledger:
        parts += [
            "<h2>Writer ledger (real executions)</h2>",
            "<table><tr><th>step</th><th>attempt</th><th>pid</th><th>outcome</th><th>ms</th><th>error</th></tr>",
        ]
        for e in ledger:
            ms = e.get("duration_ms")
            parts.append(
                f"<tr><td>{esc(e.get('step'))}</td><td class='num'>{esc(e.get('attempt'))}</td>"
                f"<td class='num'>{esc(e.get('pid'))}</td><td>{esc(e.get('outcome'))}</td>"
                f"<td class='num'>{esc(f'{float(ms):.0f}' if ms is not None else '')}</td>"
                f"<td>{esc(e.get('error') or '')}</td></tr>"
            )
        parts.append("</table>")
    if data.get("notes"):
        parts += ["<h2>Notes</h2><ul>", *(f"<li>{esc(n)}</li>" for n in data["notes"]), "</ul>"]
    row = evidence.get("invocation")
    if row:
        parts += ["<h2>Restate's <code>sys_invocation</code> row</h2>", f"<pre>{esc(json.dumps(row, indent=2))}</pre>"]
    parts.append(
        '<p>Files: <a href="journal.json">journal.json</a>, <a href="report.md">report.md</a>, '
        '<a href="junit.xml">junit.xml</a></p>'
    )
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p) + "\n"


def render_index(runs: list[tuple[str, dict[str, Any]]]) -> str:
    """index.html for a run of several drills: (report link relative to the index, journal dict)."""
    rows = []
    for link, data in runs:
        verdict = str(data.get("verdict", "?"))
        duration = data.get("duration_s")
        parameters = " ".join(f"{k}={v}" for k, v in (data.get("parameters") or {}).items() if k != "deadline_s")
        rows.append(
            f'<tr><td><a href="{esc(link)}">{esc(data.get("drill"))}</a></td><td>{esc(parameters)}</td>'
            f'<td><span class="verdict" '
            f'style="background:{VERDICT_COLOURS.get(verdict, "#555")}">{esc(verdict)}</span></td>'
            f"<td class='num'>{esc(f'{float(duration):.1f} s' if duration is not None else '?')}</td>"
            f"<td>{esc('; '.join(str(r) for r in data.get('reasons') or [] if not str(r).startswith('met')))}</td></tr>"
        )
    starts = [float(d["started_at"]) for _, d in runs if d.get("started_at")]
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(min(starts))) if starts else "?"
    configs = sorted(
        {str((d.get("evidence") or {}).get("config")) for _, d in runs if (d.get("evidence") or {}).get("config")}
    )
    return (
        "\n".join(
            [
                "<!DOCTYPE html>",
                f'<html lang="en"><head><meta charset="utf-8"><title>drills {esc(when)}</title>',
                f"<style>{CSS}</style></head><body><h1>Drills</h1>",
                f"<ul><li>started {esc(when)}</li><li>config: "
                + (
                    ", ".join(f"<code>{esc(c)}</code>" for c in configs)
                    or "not recorded (a run before configs were kept)"
                )
                + "</li></ul>",
                "<table><tr><th>drill</th><th>parameters</th><th>verdict</th><th>duration</th>"
                "<th>what was not met</th></tr>",
                *rows,
                "</table></body></html>",
            ]
        )
        + "\n"
    )


def write_html(directory: Path, data: dict[str, Any]) -> Path:
    path = directory / "report.html"
    write_text_atomically(path, render_html(data))
    return path


def write_index(directory: Path, reports: list[Path]) -> Path:
    """index.html in `directory` linking each report dir's report.html with its verdict."""
    runs = []
    for report_dir in reports:
        data = json.loads((report_dir / "journal.json").read_text())
        link = (report_dir / "report.html").resolve()
        try:
            relative = link.relative_to(directory.resolve()).as_posix()
        except ValueError:
            relative = link.as_uri()
        runs.append((relative, data))
    path = directory / "index.html"
    directory.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, render_index(runs))
    return path


def rerender(path: Path) -> Path:
    """`inv report PATH`: report.html again from a journal.json or the report dir holding one; for a
    `drill.all` dir (one report dir per drill inside), every drill's report.html and the index again."""
    if path.is_dir() and not (path / "journal.json").exists():
        reports = sorted(d for d in path.iterdir() if (d / "journal.json").is_file())
        if not reports:
            raise DrillError(
                f"{path}: no journal.json here nor in any folder inside; pass a drill's report dir (the folder "
                "holding journal.json, e.g. .drill/reports/crash-<time>) or a `drill.all` dir (all-<time>)"
            )
        for report_dir in reports:
            rerender(report_dir)
        return write_index(path, reports)
    journal = path / "journal.json" if path.is_dir() else path
    try:
        data = json.loads(journal.read_text())
    except (OSError, ValueError) as exc:
        raise DrillError(f"{journal}: not a drill journal ({exc})") from None
    if not isinstance(data, dict) or "drill" not in data:
        raise DrillError(f"{journal}: not a drill journal (no 'drill' field)")
    return write_html(journal.parent, data)
