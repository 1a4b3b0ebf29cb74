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

from drillkit.evidence import restate_time
from drillkit.reports.html_population import place_labels

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
    picture = Picture(data)
    return [
        "<h2>Revisions over time</h2>",
        "<p>One lane per revision (a Restate deployment, shaded while registered); in it, each invocation pinned "
        "to it (<code>sys_invocation.pinned_deployment_id</code>) from created to completed; hatched: an invocation "
        "moved onto it for a while. Dashed: the drill's deployment events.</p>",
        picture.svg(),
        *table(picture.lanes),
    ]


Lane = tuple[dict[str, Any], list[str], list[str]]
"""A revision, the invocations pinned to it, and the one moved onto it for a while (if any)."""


class Picture:
    """The lanes' geometry: time to x, a lane per revision, the event markers above them."""

    def __init__(self, data: dict[str, Any]) -> None:
        evidence = data.get("evidence") or {}
        self.started = float(data.get("started_at") or 0)
        self.span = max(float(data.get("duration_s") or 0), 1.0)
        self.rows = {r.get("id"): r for r in (evidence.get("population") or {}).get("invocations") or []}
        self.moved = evidence.get("moved") or {}
        pinned = evidence.get("pinned") or {}
        sent = list((evidence.get("population") or {}).get("sent") or self.rows)
        self.lanes: list[Lane] = []
        for revision in evidence.get("revisions") or []:
            own = [i for i in sent if pinned.get(i) == revision.get("deployment_id")]
            onto = self.moved.get("onto") == revision.get("deployment_id")
            self.lanes.append((revision, own, [self.moved["id"]] if self.moved and onto else []))
        self.markers = [e for e in data.get("timeline") or [] if e.get("event") in MARKED]

    def x(self, t: float) -> float:
        return round(LABEL_W + max(0.0, min(t, self.span)) / self.span * (WIDTH - LABEL_W - RIGHT_PAD), 2)

    def life(self, invocation_id: str) -> tuple[float, float]:
        """Created to completed, in seconds from the drill's start (Restate's row)."""
        row = self.rows.get(invocation_id) or {}
        begun, ended = restate_time(row.get("created_at")), restate_time(row.get("completed_at"))
        return ((begun - self.started) if begun else 0.0, (ended - self.started) if ended else self.span)

    def svg(self) -> str:
        texts = [f"{e.get('event')} {float(e.get('offset_s', 0)):.2f}s" for e in self.markers]
        placed = place_labels(
            [(self.x(float(e.get("offset_s", 0))), t) for e, t in zip(self.markers, texts, strict=True)], 4, WIDTH - 4
        )
        top = 16 + (max((row for _, row, _ in placed), default=-1) + 1) * 14
        heights = [max(28, 10 + (len(own) + len(visits)) * (BAR_H + GAP)) for _, own, visits in self.lanes]
        height = top + sum(heights) + 30
        out = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="revisions over time" font-family="sans-serif" '
            'font-size="11">',
            "<title>revisions over time</title>",
            '<defs><pattern id="hatch" width="4" height="4" patternUnits="userSpaceOnUse" '
            'patternTransform="rotate(45)"><rect width="2" height="4" fill="#c62828"/></pattern></defs>',
        ]
        y = top
        for number, (lane, lane_h) in enumerate(zip(self.lanes, heights, strict=True)):
            out += self.lane(number, lane, y, lane_h)
            y += lane_h
        for event, text, (text_x, row, anchor) in zip(self.markers, texts, placed, strict=True):
            at, label_y = self.x(float(event.get("offset_s", 0))), 12 + row * 14
            out.append(
                f'<line x1="{at}" x2="{at}" y1="{label_y + 3}" y2="{y}" stroke="#37474f" stroke-width="1" '
                f'stroke-dasharray="4,3"><title>{esc(event.get("event"))}: '
                f"{esc(event.get('detail', ''))}</title></line>"
            )
            out.append(f'<text x="{text_x}" y="{label_y}" text-anchor="{anchor}" fill="#37474f">{esc(text)}</text>')
        step = next((s for s in (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300) if self.span / s <= 12), 600)
        for i in range(int(self.span / step) + 1):
            out.append(f'<text x="{self.x(i * step)}" y="{y + 16}" text-anchor="middle">{i * step:g} s</text>')
        out.append("</svg>")
        return "\n".join(out)

    def lane(self, number: int, lane: Lane, y: int, lane_h: int) -> list[str]:
        """One revision: shaded while registered, its label, a bar per invocation pinned to it, a hatched
        one for an invocation moved onto it."""
        revision, own, visits = lane
        colour = LANE_COLOURS[number % len(LANE_COLOURS)]
        registered, removed = revision.get("registered_s"), revision.get("removed_s")
        begin, end = self.x(float(registered or 0.0)), self.x(float(self.span if removed is None else removed))
        pids = ", ".join(str(p) for p in revision.get("pids") or [])
        out = [
            f'<rect x="0" y="{y}" width="{WIDTH}" height="{lane_h}" fill="{"#fafafa" if number % 2 else "#f0f0f0"}"/>',
            f'<rect x="{begin}" y="{y + 1}" width="{max(end - begin, 1.0)}" height="{lane_h - 2}" fill="{colour}" '
            f'fill-opacity="0.10"><title>{esc(revision.get("label"))}: deployment {esc(revision.get("deployment_id"))} '
            f"registered{'' if registered is None else f' at {float(registered):.2f} s'}"
            f"{'' if removed is None else f', removed at {float(removed):.2f} s'}</title></rect>",
            f'<text x="6" y="{y + 13}" font-weight="600" fill="{colour}">{esc(revision.get("label"))}</text>',
            f'<text x="6" y="{y + 25}" fill="#555">{esc(revision.get("deployment_id"))[:22]} pid {esc(pids)}</text>',
        ]
        bar_y = y + 6
        for invocation_id in own:
            begun, ended = self.life(invocation_id)
            out.append(
                f'<rect x="{self.x(begun)}" y="{bar_y}" width="{max(self.x(ended) - self.x(begun), 2.0)}" '
                f'height="{BAR_H}" fill="{colour}"><title>{esc(invocation_id)}: '
                f"pinned to {esc(revision.get('label'))}, "
                f"{begun:.2f}-{ended:.2f} s</title></rect>"
            )
            bar_y += BAR_H + GAP
        for invocation_id in visits:
            begun, ended = float(self.moved.get("from_s") or 0), float(self.moved.get("back_s") or self.span)
            out.append(
                f'<rect x="{self.x(begun)}" y="{bar_y}" width="{max(self.x(ended) - self.x(begun), 3.0)}" '
                f'height="{BAR_H}" fill="url(#hatch)"><title>{esc(invocation_id)}: moved onto '
                f"{esc(revision.get('label'))} {begun:.2f}-{ended:.2f} s (journal mismatch), then moved back"
                "</title></rect>"
            )
            bar_y += BAR_H + GAP
        return out


def table(lanes: list[Lane]) -> list[str]:
    rows = [
        "<table><tr><th>revision</th><th>deployment</th><th>Restate revision</th><th>URI</th><th>writer pid(s)</th>"
        "<th>invocations pinned</th></tr>"
    ]
    for revision, own, _ in lanes:
        rows.append(
            f"<tr><td>{esc(revision.get('label'))}</td><td><code>{esc(revision.get('deployment_id'))}</code></td>"
            f"<td class='num'>{esc(revision.get('restate_revision'))}</td><td>{esc(revision.get('uri'))}</td>"
            f"<td>{esc(', '.join(str(p) for p in revision.get('pids') or []))}</td><td class='num'>{len(own)}</td></tr>"
        )
    rows.append("</table>")
    return rows
