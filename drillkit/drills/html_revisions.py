"""report.html's picture of a drill that deploys revisions (drill.upgrade): one lane per revision.

Each lane is a Restate deployment: shaded while it is registered (revision 1 from before the drill; a
later one from its registration to its removal), and in it one thin bar per invocation pinned to it, from
Restate's created to completed. An invocation moved onto another revision for a while (the incompatible
mode) is drawn there too, hatched, for that while. The drill's deployment events (registered, drained,
removed, moved, the kill) are dashed lines across every lane.

Input: `evidence["revisions"]` (label, deployment id, pids, registered_s, removed_s), `evidence["pinned"]`
(invocation id -> deployment id), `evidence["moved"]` (optional) and the population's rows
(`evidence["population"]["invocations"]`). Nothing is drawn without `revisions`.
"""

from __future__ import annotations

import html
from typing import Any

from drillkit.drills.html_population import place_labels
from drillkit.evidence import restate_time

WIDTH, LABEL_W, RIGHT_PAD, BAR_H, GAP = 980, 190, 12, 5, 2
LANE_COLOURS = ("#1565c0", "#2e7d32", "#c62828", "#6a1b9a")
MARKED = (
    "registered",
    "draining",
    "drained",
    "removed",
    "killed",
    "restarted",
    "moved",
    "journal mismatch",
    "moved back",
)


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def render(data: dict[str, Any]) -> list[str]:
    evidence = data.get("evidence") or {}
    revisions = evidence.get("revisions") or []
    if not revisions:
        return []
    started = float(data.get("started_at") or 0)
    span = max(float(data.get("duration_s") or 0), 1.0)
    pinned = evidence.get("pinned") or {}
    rows = {r.get("id"): r for r in (evidence.get("population") or {}).get("invocations") or []}
    sent = list((evidence.get("population") or {}).get("sent") or rows)
    moved = evidence.get("moved") or {}

    def life(invocation_id: str) -> tuple[float, float]:
        row = rows.get(invocation_id) or {}
        begun = restate_time(row.get("created_at"))
        ended = restate_time(row.get("completed_at"))
        return (
            (begun - started) if begun else 0.0,
            (ended - started) if ended else span,
        )

    lanes = []
    for revision in revisions:
        own = [i for i in sent if pinned.get(i) == revision.get("deployment_id")]
        visits = [moved["id"]] if moved and moved.get("onto") == revision.get("deployment_id") else []
        lanes.append((revision, own, visits))
    markers = [e for e in data.get("timeline") or [] if e.get("event") in MARKED]
    plot_w = WIDTH - LABEL_W - RIGHT_PAD

    def x(t: float) -> float:
        return round(LABEL_W + max(0.0, min(t, span)) / span * plot_w, 2)

    texts = [f"{e.get('event')} {float(e.get('offset_s', 0)):.2f}s" for e in markers]
    placed = place_labels(
        [(x(float(e.get("offset_s", 0))), t) for e, t in zip(markers, texts, strict=True)], 4, WIDTH - 4
    )
    top = 16 + (max((row for _, row, _ in placed), default=-1) + 1) * 14
    heights = [max(28, 10 + (len(own) + len(visits)) * (BAR_H + GAP)) for _, own, visits in lanes]
    height = top + sum(heights) + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        'role="img" aria-label="revisions over time" font-family="sans-serif" font-size="11">',
        "<title>revisions over time</title>",
        '<defs><pattern id="hatch" width="4" height="4" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<rect width="2" height="4" fill="#c62828"/></pattern></defs>',
    ]
    y = top
    for number, ((revision, own, visits), lane_h) in enumerate(zip(lanes, heights, strict=True)):
        colour = LANE_COLOURS[number % len(LANE_COLOURS)]
        out.append(
            f'<rect x="0" y="{y}" width="{WIDTH}" height="{lane_h}" fill="{"#fafafa" if number % 2 else "#f0f0f0"}"/>'
        )
        registered = revision.get("registered_s")
        removed = revision.get("removed_s")
        begin, end = x(float(registered or 0.0)), x(float(span if removed is None else removed))
        out.append(
            f'<rect x="{begin}" y="{y + 1}" width="{max(end - begin, 1.0)}" height="{lane_h - 2}" fill="{colour}" '
            f'fill-opacity="0.10"><title>{esc(revision.get("label"))}: deployment {esc(revision.get("deployment_id"))} '
            f"registered{'' if registered is None else f' at {float(registered):.2f} s'}"
            f"{'' if removed is None else f', removed at {float(removed):.2f} s'}</title></rect>"
        )
        name = f"{revision.get('label')}"
        out.append(f'<text x="6" y="{y + 13}" font-weight="600" fill="{colour}">{esc(name)}</text>')
        pids = ", ".join(str(p) for p in revision.get("pids") or [])
        out.append(
            f'<text x="6" y="{y + 25}" fill="#555">{esc(revision.get("deployment_id"))[:22]} pid {esc(pids)}</text>'
        )
        bar_y = y + 6
        for invocation_id in own:
            begun, ended = life(invocation_id)
            out.append(
                f'<rect x="{x(begun)}" y="{bar_y}" width="{max(x(ended) - x(begun), 2.0)}" height="{BAR_H}" '
                f'fill="{colour}"><title>{esc(invocation_id)}: pinned to {esc(revision.get("label"))}, '
                f"{begun:.2f}-{ended:.2f} s</title></rect>"
            )
            bar_y += BAR_H + GAP
        for invocation_id in visits:
            begun, ended = float(moved.get("from_s") or 0), float(moved.get("back_s") or span)
            out.append(
                f'<rect x="{x(begun)}" y="{bar_y}" width="{max(x(ended) - x(begun), 3.0)}" height="{BAR_H}" '
                f'fill="url(#hatch)"><title>{esc(invocation_id)}: moved onto {esc(revision.get("label"))} '
                f"{begun:.2f}-{ended:.2f} s (journal mismatch), then moved back</title></rect>"
            )
            bar_y += BAR_H + GAP
        y += lane_h
    for event, text, (text_x, row, anchor) in zip(markers, texts, placed, strict=True):
        at = x(float(event.get("offset_s", 0)))
        label_y = 12 + row * 14
        out.append(
            f'<line x1="{at}" x2="{at}" y1="{label_y + 3}" y2="{y}" stroke="#37474f" stroke-width="1" '
            f'stroke-dasharray="4,3"><title>{esc(event.get("event"))}: {esc(event.get("detail", ""))}</title></line>'
        )
        out.append(f'<text x="{text_x}" y="{label_y}" text-anchor="{anchor}" fill="#37474f">{esc(text)}</text>')
    step = next((s for s in (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300) if span / s <= 12), 600)
    for i in range(int(span / step) + 1):
        tick = i * step
        out.append(f'<text x="{x(tick)}" y="{y + 16}" text-anchor="middle">{tick:g} s</text>')
    out.append("</svg>")
    table = [
        "<table><tr><th>revision</th><th>deployment</th><th>Restate revision</th><th>URI</th><th>writer pid(s)</th>"
        "<th>invocations pinned</th></tr>"
    ]
    for revision, own, _ in lanes:
        table.append(
            f"<tr><td>{esc(revision.get('label'))}</td><td><code>{esc(revision.get('deployment_id'))}</code></td>"
            f"<td class='num'>{esc(revision.get('restate_revision'))}</td><td>{esc(revision.get('uri'))}</td>"
            f"<td>{esc(', '.join(str(p) for p in revision.get('pids') or []))}</td><td class='num'>{len(own)}</td></tr>"
        )
    table.append("</table>")
    return [
        "<h2>Revisions over time</h2>",
        "<p>One lane per revision (a Restate deployment, shaded while registered); in it, each invocation pinned "
        "to it (<code>sys_invocation.pinned_deployment_id</code>) from created to completed; hatched: an invocation "
        "moved onto it for a while. Dashed: the drill's deployment events.</p>",
        "\n".join(out),
        *table,
    ]
