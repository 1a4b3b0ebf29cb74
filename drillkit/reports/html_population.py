"""report.html's view of a drill of many invocations (storm, node-loss, partition): the whole population.

- throughput (step executions finished per second) and latency (each invocation's, at its completion)
  over time, every fault window shaded;
- an invocation-by-time strip: one row per invocation, each real execution a segment coloured by outcome
  (a killed one at least KILLED_MIN_W px wide, so a kill at the very start of a step still shows);
- an invocation-by-step matrix: how many times each step of each invocation really ran;
- counts per state (Restate's final status, executions by outcome).

Its input is `evidence["population"]` (`drillkit.reports.population.gather`) and the timeline; labels are
placed so that they never overlap or leave the picture (`place_labels`).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from drillkit.evidence import restate_time

CHAR_W = 6.6  # px per character of an 11 px sans-serif label: estimated, so generous
LABEL_ROW_H = 14
FAULT_START = ("signalled", "killed", "frozen", "cut off", "endpoint down", "endpoint hangs")
FAULT_END = ("restarted", "server restarted", "thawed", "healed", "rejoined", "endpoint back")
FAULT_FILL = "#c62828"
KILLED_MIN_W = 4.0
OUTCOMES = {"ok": ("done", "#43a047"), "error": ("error", "#ef6c00"), None: ("killed (never ended)", "#c62828")}
CELLS = {
    "once": ("ran once", "#43a047"),
    "again": ("done, after running more than once", "#fb8c00"),
    "never ok": ("ran, never done", "#c62828"),
    "not run": ("no execution in the ledger", "#e0e0e0"),
}
WIDTH, LEFT, RIGHT = 980, 120, 920


def esc(value: object) -> str:
    import html

    return html.escape(str(value), quote=True)


# -- labels ---------------------------------------------------------------------------------------------


def place_labels(
    items: list[tuple[float, str]], left: float, right: float, gap: float = 6.0
) -> list[tuple[float, int, str]]:
    """For each (x, text): (x of the text, row, text-anchor). A label sits right of its x, or left of it when
    it would cross `right` (and inside [left, right] whatever x is); it goes to the first row where it
    touches no other label (rows are added as needed), so labels never overlap and never leave the picture."""
    rows: list[list[tuple[float, float]]] = []
    placed: list[tuple[float, int, str]] = [(0.0, 0, "start")] * len(items)
    for index in sorted(range(len(items)), key=lambda i: items[i][0]):
        x, text = items[index]
        width = len(text) * CHAR_W
        begin = x + 3 if x + 3 + width <= right else x - 3 - width
        begin = max(left, min(begin, right - width))  # kept inside, whatever x is
        anchor_x, anchor = begin, "start"
        end = begin + width
        for row, taken in enumerate(rows):
            if all(end + gap <= a or begin >= b + gap for a, b in taken):
                taken.append((begin, end))
                placed[index] = (round(anchor_x, 2), row, anchor)
                break
        else:
            rows.append([(begin, end)])
            placed[index] = (round(anchor_x, 2), len(rows) - 1, anchor)
    return placed


# -- the data ---------------------------------------------------------------------------------------------


@dataclass
class Invocation:
    number: int  # in the order sent, from 1
    id: str
    created: float | None
    completed: float | None
    status: str

    @property
    def latency(self) -> float | None:
        if self.created is None or self.completed is None:
            return None
        return self.completed - self.created


def invocations(data: dict[str, Any]) -> list[Invocation]:
    population = (data.get("evidence") or {}).get("population") or {}
    t0 = float(data.get("started_at") or 0)
    rows = {str(r.get("id")): r for r in population.get("invocations") or []}
    sent = [str(i) for i in population.get("sent") or rows]
    found = []
    for number, invocation_id in enumerate(sent, start=1):
        row = rows.get(invocation_id, {})
        created, completed = restate_time(row.get("created_at")), restate_time(row.get("completed_at"))
        status = str(row.get("status") or "not in Restate")
        if status == "completed":
            status += " with " + str(row.get("completion_result") or "?")
        found.append(
            Invocation(
                number,
                invocation_id,
                None if created is None else created - t0,
                None if completed is None else completed - t0,
                status,
            )
        )
    return found


def executions(data: dict[str, Any]) -> list[dict[str, Any]]:
    t0 = float(data.get("started_at") or 0)
    runs = []
    for e in (data.get("evidence") or {}).get("population", {}).get("executions") or []:
        ended = e.get("ended")
        runs.append(
            {
                **e,
                "start": float(e["started"]) - t0,
                "end": None if ended is None else float(ended) - t0,
            }
        )
    return runs


def fault_windows(timeline: list[dict[str, Any]], span: float) -> list[tuple[float, float, str]]:
    """(start, end, what) for each fault: from a fault event to the first recovery event after it (or the
    end of the picture); fault events inside an open window belong to it (signalled, then killed)."""
    windows: list[tuple[float, float, str]] = []
    open_at: tuple[float, str] | None = None
    for event in sorted(timeline, key=lambda e: float(e.get("offset_s", 0))):
        name, at = str(event.get("event")), float(event.get("offset_s", 0))
        if name in FAULT_START and open_at is None:
            open_at = (at, name)
        elif name in FAULT_END and open_at is not None:
            windows.append((open_at[0], at, open_at[1]))
            open_at = None
    if open_at is not None:
        windows.append((open_at[0], span, open_at[1]))
    return windows


def fault_times(timeline: list[dict[str, Any]]) -> list[float]:
    return sorted(float(e.get("offset_s", 0)) for e in timeline if e.get("event") in FAULT_START)


def nice_step(span: float, count: int) -> float:
    raw = span / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return next((m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw), 10 * magnitude)


# -- the picture --------------------------------------------------------------------------------------------


def render(data: dict[str, Any], step_key: Any) -> str | None:
    """The population section (HTML with inline SVG), or None when the record has no population."""
    if not (data.get("evidence") or {}).get("population"):
        return None
    people = invocations(data)
    runs = executions(data)
    timeline = data.get("timeline") or []
    ends = [r["end"] or r["start"] for r in runs] + [p.completed or 0 for p in people]
    span = max([float(data.get("duration_s") or 0), *ends, 0.1]) * 1.02
    windows = fault_windows(timeline, span)
    steps = sorted({str(r.get("step")) for r in runs}, key=step_key)
    parts = [
        f"<h2>All {len(people)} invocations</h2>",
        counts_table(people, runs),
        soak_table((data.get("evidence") or {}).get("soak") or {}),
        "<h3>Throughput and latency over time</h3>",
        rates_svg(people, runs, windows, span),
        "<h3>Every invocation over time (one row each, in the order sent)</h3>",
        strip_svg(people, runs, windows, span, fault_times(timeline)),
        "<h3>Every invocation by step: how many times each step really ran</h3>",
        matrix_svg(people, runs, steps),
        f"<p>{legend(runs, people, steps, bool(windows))}</p>",
    ]
    return "\n".join(parts)


def x_of(span: float) -> Any:
    width = RIGHT - LEFT

    def x(t: float) -> float:
        return round(LEFT + max(0.0, min(t, span)) / span * width, 2)

    return x


def shade(windows: list[tuple[float, float, str]], span: float, top: float, bottom: float) -> list[str]:
    x = x_of(span)
    return [
        f'<rect x="{x(a)}" y="{top}" width="{max(3.0, round(x(b) - x(a), 2))}" height="{round(bottom - top, 2)}" '
        f'fill="{FAULT_FILL}" fill-opacity="0.13"><title>fault {n}: {esc(what)} from {a:.2f} s to {b:.2f} s'
        "</title></rect>"
        for n, (a, b, what) in enumerate(windows, start=1)
    ]


def fault_labels(windows: list[tuple[float, float, str]], span: float) -> tuple[list[str], int]:
    """Labels above the plot, one per fault window, placed so that none overlaps; returns the SVG and
    the height they take."""
    x = x_of(span)
    texts = [f"{n}: {what} {a:.1f}–{b:.1f} s" for n, (a, b, what) in enumerate(windows, start=1)]
    placed = place_labels([(x(a), t) for (a, _, _), t in zip(windows, texts, strict=True)], 4, WIDTH - 4)
    rows = max((row for _, row, _ in placed), default=-1) + 1
    out = [
        f'<text x="{tx}" y="{12 + row * LABEL_ROW_H}" text-anchor="{anchor}" fill="{FAULT_FILL}">{esc(text)}</text>'
        for (tx, row, anchor), text in zip(placed, texts, strict=True)
    ]
    return out, rows * LABEL_ROW_H + 4


def axis(span: float, y: float) -> list[str]:
    x = x_of(span)
    step = nice_step(span, 10)
    out = [f'<line x1="{LEFT}" x2="{RIGHT}" y1="{y}" y2="{y}" stroke="#999"/>']
    tick = 0.0
    while tick <= span + 1e-9:
        out.append(f'<line x1="{x(tick)}" x2="{x(tick)}" y1="{y}" y2="{y + 4}" stroke="#555"/>')
        out.append(f'<text x="{x(tick)}" y="{y + 15}" text-anchor="middle">{tick:g} s</text>')
        tick = round(tick + step, 6)
    return out


def svg(height: float, body: list[str], label: str) -> str:
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{round(height)}" '
            f'viewBox="0 0 {WIDTH} {round(height)}" role="img" aria-label="{esc(label)}" font-family="sans-serif" '
            'font-size="11">',
            f"<title>{esc(label)}</title>",
            *body,
            "</svg>",
        ]
    )


def rates_svg(people: list[Invocation], runs: list[dict[str, Any]], windows: list[Any], span: float) -> str:
    x = x_of(span)
    labels, top = fault_labels(windows, span)
    plot_h = 130
    bottom = top + plot_h
    bucket = nice_step(span, 40)
    done = Counter(int(r["end"] // bucket) for r in runs if r.get("outcome") == "ok" and r["end"] is not None)
    peak = max(done.values(), default=1) / bucket
    latencies = [(p.completed, p.latency) for p in people if p.latency is not None and p.completed is not None]
    slowest = max((lat for _, lat in latencies), default=1.0) or 1.0
    body = [*labels, *shade(windows, span, top, bottom)]
    for index, count in sorted(done.items()):
        rate = count / bucket
        h = round(rate / peak * (plot_h - 10), 2)
        body.append(
            f'<rect x="{x(index * bucket)}" y="{round(bottom - h, 2)}" '
            f'width="{max(1.0, round(x((index + 1) * bucket) - x(index * bucket) - 1, 2))}" height="{h}" '
            f'fill="#1e88e5" fill-opacity="0.75"><title>{count} step executions done from {index * bucket:g} s '
            f"to {(index + 1) * bucket:g} s ({rate:.1f}/s)</title></rect>"
        )
    for completed, latency in latencies:
        cy = round(bottom - latency / slowest * (plot_h - 10), 2)
        body.append(
            f'<circle cx="{x(completed)}" cy="{cy}" r="3" fill="#212121"><title>completed at {completed:.2f} s '
            f"after {latency:.2f} s</title></circle>"
        )
    body += [
        f'<text x="{LEFT - 6}" y="{top + 10}" text-anchor="end" fill="#1e88e5">{peak:.1f}/s</text>',
        f'<text x="{LEFT - 6}" y="{top + 24}" text-anchor="end" fill="#1e88e5">steps done</text>',
        f'<text x="{LEFT - 6}" y="{bottom}" text-anchor="end" fill="#1e88e5">0</text>',
        f'<text x="{RIGHT + 6}" y="{top + 10}" fill="#212121">{slowest:.1f} s</text>',
        f'<text x="{RIGHT + 6}" y="{top + 24}" fill="#212121">latency</text>',
        f'<text x="{RIGHT + 6}" y="{bottom}" fill="#212121">0 s</text>',
        *axis(span, bottom),
    ]
    return svg(bottom + 22, body, "throughput and latency over time")


def row_height(count: int) -> float:
    return max(3.0, min(12.0, 360.0 / max(count, 1)))


def row_labels(people: list[Invocation], top: float, row_h: float) -> list[str]:
    every = max(1, math.ceil(LABEL_ROW_H / row_h))  # one label per row when rows are tall enough
    return [
        f'<text x="{LEFT - 6}" y="{round(top + i * row_h + row_h / 2 + 4, 2)}" text-anchor="end">#{p.number}</text>'
        for i, p in enumerate(people)
        if i % every == 0
    ]


def strip_svg(
    people: list[Invocation], runs: list[dict[str, Any]], windows: list[Any], span: float, cuts: list[float]
) -> str:
    x = x_of(span)
    row_h = row_height(len(people))
    labels, top = fault_labels(windows, span)
    bottom = top + row_h * len(people)
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_id[str(run.get("invocation_id"))].append(run)
    body = [*labels, *shade(windows, span, top, bottom), *row_labels(people, top, row_h)]
    bar_h = max(2.0, row_h - 2)
    for i, person in enumerate(people):
        y = round(top + i * row_h + (row_h - bar_h) / 2, 2)
        if person.created is not None:
            until = person.completed if person.completed is not None else span
            body.append(
                f'<rect x="{x(person.created)}" y="{y}" width="{max(1.0, round(x(until) - x(person.created), 2))}" '
                f'height="{bar_h}" fill="#eceff1"><title>#{person.number} {esc(person.id)}: {esc(person.status)}'
                "</title></rect>"
            )
        for run in sorted(by_id.get(person.id, []), key=lambda r: r["start"]):
            label, colour = OUTCOMES.get(run.get("outcome"), OUTCOMES[None])
            end = run["end"] if run["end"] is not None else cut_at(run["start"], person, cuts, span)
            width = round(x(end) - x(run["start"]), 2)
            minimum = KILLED_MIN_W if run.get("outcome") is None else 1.0
            body.append(
                f'<rect x="{x(run["start"])}" y="{y}" width="{max(minimum, width)}" height="{bar_h}" '
                f'fill="{colour}"><title>#{person.number} {esc(run.get("step"))} attempt {esc(run.get("attempt"))} '
                f"(pid {esc(run.get('pid'))}): {esc(label)}, {run['start']:.2f}–{end:.2f} s</title></rect>"
            )
    body += axis(span, bottom)
    return svg(bottom + 22, body, "every invocation over time")


def cut_at(start: float, person: Invocation, cuts: list[float], span: float) -> float:
    """Where an execution that never ended is drawn to: the first fault event after it began (`cuts`: a kill,
    a freeze, a cut) or its invocation's completion (a request dropped when Restate moved on), whichever
    comes first; never past the picture."""
    candidates = [at for at in cuts if at >= start]
    if person.completed is not None and person.completed >= start:
        candidates.append(person.completed)
    return min(candidates, default=span)


def cell_kind(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "not run"
    if not any(r.get("outcome") == "ok" for r in runs):
        return "never ok"
    return "once" if len(runs) == 1 else "again"


def matrix_svg(people: list[Invocation], runs: list[dict[str, Any]], steps: list[str]) -> str:
    row_h = row_height(len(people))
    col_w = min(90.0, (RIGHT - LEFT) / max(len(steps), 1))
    top = 20.0
    cells: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        cells[(str(run.get("invocation_id")), str(run.get("step")))].append(run)
    body = [
        f'<text x="{round(LEFT + j * col_w + col_w / 2, 2)}" y="14" text-anchor="middle">{esc(step)}</text>'
        for j, step in enumerate(steps)
    ]
    body += row_labels(people, top, row_h)
    for i, person in enumerate(people):
        for j, step in enumerate(steps):
            found = cells.get((person.id, step), [])
            kind = cell_kind(found)
            outcomes = ", ".join(OUTCOMES.get(r.get("outcome"), OUTCOMES[None])[0] for r in found) or "none"
            x, y = round(LEFT + j * col_w + 1, 2), round(top + i * row_h, 2)
            body.append(
                f'<rect x="{x}" y="{y}" width="{round(col_w - 2, 2)}" height="{max(1.0, row_h - 1)}" '
                f'fill="{CELLS[kind][1]}"><title>#{person.number} {esc(step)}: {len(found)} execution(s): '
                f"{esc(outcomes)}</title></rect>"
            )
            if len(found) > 1 and row_h >= 10:
                body.append(
                    f'<text x="{round(x + col_w / 2 - 1, 2)}" y="{round(y + row_h - 2, 2)}" text-anchor="middle" '
                    f'font-size="9">{len(found)}×</text>'
                )
    return svg(top + row_h * len(people) + 6, body, "every invocation by step")


def counts_table(people: list[Invocation], runs: list[dict[str, Any]]) -> str:
    states = Counter(p.status for p in people)
    outcomes = Counter(OUTCOMES.get(r.get("outcome"), OUTCOMES[None])[0] for r in runs)
    again = Counter((str(r.get("invocation_id")), str(r.get("step"))) for r in runs)
    repeated = sum(1 for n in again.values() if n > 1)
    latencies = sorted(p.latency for p in people if p.latency is not None)
    rows = [f"<tr><td>Restate: {esc(state)}</td><td class='num'>{n}</td></tr>" for state, n in sorted(states.items())]
    rows += [
        f"<tr><td>executions: {esc(kind)}</td><td class='num'>{n}</td></tr>" for kind, n in sorted(outcomes.items())
    ]
    rows.append(f"<tr><td>steps that ran more than once</td><td class='num'>{repeated}</td></tr>")
    if latencies:
        p50 = latencies[len(latencies) // 2]
        rows.append(
            f"<tr><td>latency (created to completed): median, slowest</td><td class='num'>{p50:.2f} s, "
            f"{latencies[-1]:.2f} s</td></tr>"
        )
    return "<table><tr><th>state</th><th>count</th></tr>" + "".join(rows) + "</table>"


def soak_table(soak: dict[str, Any]) -> str:
    """drill.soak: the faults per kind and their recovery (heal to recovered), as in report.md."""
    rows = soak.get("recovery") or []
    if not rows:
        return ""

    def num(value: object) -> str:
        return "-" if value is None else f"{float(value):.2f} s"  # type: ignore[arg-type]

    body = "".join(
        f"<tr><td>{esc(r['kind'])}</td><td class='num'>{r['count']}</td><td class='num'>{num(r.get('recovery_p50_s'))}"
        f"</td><td class='num'>{num(r.get('recovery_max_s'))}</td></tr>"
        for r in rows
    )
    return (
        f"<h3>Faults (recovery bound {esc(soak.get('recovery_bound_s'))} s)</h3><table><tr><th>fault kind</th>"
        f"<th>count</th><th>recovery p50</th><th>recovery max</th></tr>{body}</table>"
    )


def legend(runs: list[dict[str, Any]], people: list[Invocation], steps: list[str], faults: bool) -> str:
    """Only what the pictures show."""
    items = []
    present = {r.get("outcome") if r.get("outcome") in OUTCOMES else None for r in runs}
    items += [(f"execution: {OUTCOMES[k][0]}", OUTCOMES[k][1]) for k in OUTCOMES if k in present]
    cells: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        cells[(str(run.get("invocation_id")), str(run.get("step")))].append(run)
    kinds = {cell_kind(cells.get((p.id, s), [])) for p in people for s in steps}
    items += [(f"matrix: {CELLS[k][0]}", CELLS[k][1]) for k in CELLS if k in kinds]
    items.append(("invocation in Restate (created to completed)", "#eceff1"))
    items.append(("steps done per second", "#1e88e5"))
    items.append(("an invocation's latency, at its completion", "#212121"))
    if faults:
        items.append(("fault window (fault to recovery)", "#f2c9c9"))
    return " ".join(
        f'<span class="key"><span class="swatch" style="background:{colour}"></span>{esc(name)}</span>'
        for name, colour in items
    )
