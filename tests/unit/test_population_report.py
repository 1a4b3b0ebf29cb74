"""report.html for many invocations (issue 21), from the journals of real storm, node-loss and partition runs
(tests/data/journals: recorded on 2026-12-03 in a loopback namespace): the whole population is drawn,
the lane view is one chosen invocation said to be one, labels never overlap or leave the picture, a killed
execution is never a sliver, the legend shows only what is drawn, nothing repeats the expectations."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from drillkit.reports import html_population, html_report

JOURNALS = Path(__file__).resolve().parents[1] / "data" / "journals"
DRILLS = ["storm", "node-loss", "partition"]
SVG = "{http://www.w3.org/2000/svg}"


def journal(name: str) -> dict:
    return json.loads((JOURNALS / f"{name}.json").read_text())


def svgs(page: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", page, re.DOTALL)]


@pytest.mark.parametrize("name", DRILLS)
def test_a_drill_of_many_invocations_draws_them_all_then_one_chosen_said_to_be_one(name):
    data = journal(name)
    page = html_report.render_html(data)
    n = len(data["evidence"]["population"]["sent"])
    assert f"<h2>All {n} invocations</h2>" in page
    assert "Throughput and latency over time" in page and "Every invocation by step" in page
    assert f"One chosen invocation: <code>{data['invocation_id']}</code>" in page
    strip = next(s for s in svgs(page) if s.get("aria-label") == "every invocation over time")
    rows = {t.text for t in strip.iter(SVG + "text") if (t.text or "").startswith("#")}
    assert "#1" in rows
    matrix = next(s for s in svgs(page) if s.get("aria-label") == "every invocation by step")
    cells = [r for r in matrix.iter(SVG + "rect")]
    steps = {str(e["step"]) for e in data["evidence"]["population"]["executions"]}
    assert len(cells) == n * len(steps)
    assert "<h2>Reasons</h2>" not in page  # the expectations table says it already


def test_the_lane_view_of_one_of_many_draws_only_its_own_executions():
    data = journal("storm")
    own = html_report.executions(data["evidence"]["ledger"], float(data["started_at"]))
    assert {e["invocation_id"] for e in data["evidence"]["ledger"]} == {data["invocation_id"]}
    _, bars, _ = html_report.lay_out(data, own_only=True)
    assert len(bars) == len(own) and all(b.outcome != "replayed" for b in bars)
    _, inferred, _ = html_report.lay_out(data)  # the single-invocation drills' view adds inferred bars
    assert len(inferred) > len(own)


def test_every_fault_window_is_shaded_in_each_time_picture():
    data = journal("storm")
    windows = html_population.fault_windows(data["timeline"], 60)
    assert [w[2] for w in windows] == ["signalled", "signalled"] and all(a < b for a, b, _ in windows)
    page = html_report.render_html(data)
    for label in ("throughput and latency over time", "every invocation over time"):
        picture = next(s for s in svgs(page) if s.get("aria-label") == label)
        titles = [t.text for t in picture.iter(SVG + "title") if (t.text or "").startswith("fault")]
        assert len(titles) == len(windows), label


def test_partition_and_freeze_faults_are_windows_and_markers():
    data = journal("partition")
    assert [w[2] for w in html_population.fault_windows(data["timeline"], 60)] == ["cut off"]
    page = html_report.render_html(data)
    assert ">cut off 21.59s<" in page and ">healed " in page


def test_labels_never_overlap_nor_leave_the_picture():
    rng = random.Random(7)
    for _ in range(200):
        items = [(rng.uniform(0, 980), "x" * rng.randint(3, 30)) for _ in range(rng.randint(1, 12))]
        placed = html_population.place_labels(items, 4, 976)
        boxes = []
        for (_, text), (tx, row, anchor) in zip(items, placed, strict=True):
            assert anchor == "start"
            begin, end = tx, tx + len(text) * html_population.CHAR_W
            assert begin >= 4 and end <= 976
            boxes.append((row, begin, end))
        for i, (row, a, b) in enumerate(boxes):
            for other_row, c, d in boxes[i + 1 :]:
                assert row != other_row or b <= c or d <= a


def test_close_marker_labels_go_to_separate_rows():
    page = html_report.render_html(journal("storm"))
    lane = svgs(page)[-1]
    labels = [t for t in lane.iter(SVG + "text") if re.search(r"\d+\.\d\ds$", t.text or "")]
    spots = [(float(t.get("x")), float(t.get("y")), len(t.text) * html_population.CHAR_W) for t in labels]
    for i, (x, y, w) in enumerate(spots):
        for x2, y2, w2 in spots[i + 1 :]:
            assert y != y2 or x + w <= x2 or x2 + w2 <= x, (x, y, x2, y2)


def test_a_kill_at_the_start_of_a_step_is_a_visible_bar():
    data = {
        "drill": "crash",
        "started_at": 1000.0,
        "duration_s": 400.0,
        "timeline": [{"offset_s": 100.001, "event": "killed", "detail": "SIGKILL"}],
        "evidence": {
            "ledger": [
                {"time": 1100.0, "invocation_id": "i", "step": "outline", "attempt": 1, "pid": 1, "outcome": "started"}
            ]
        },
    }
    picture, outcomes, _ = html_report.timeline_svg(data)
    (killed,) = [r for r in ET.fromstring(picture).iter(SVG + "rect") if r.get("class") == "killed"]
    assert float(killed.get("width")) >= html_report.KILLED_MIN_W and outcomes == {"killed"}


def test_the_legend_shows_only_what_is_drawn():
    data = journal("partition")
    page = html_report.render_html(data)
    legends = re.findall(r'<span class="key">.*?</span>(.*?)</span>', page)
    assert "execution: killed (never ended)" not in legends  # the partition killed nothing
    assert "Restate: paused" not in legends and "Restate: backing-off" not in legends
    assert "attempt: done" in legends


def test_index_says_when_and_with_which_config(tmp_path):
    dirs = []
    for name in DRILLS:
        d = tmp_path / name
        d.mkdir()
        (d / "journal.json").write_text((JOURNALS / f"{name}.json").read_text())
        dirs.append(d)
    page = html_report.write_index(tmp_path, dirs).read_text()
    assert "started 2026-12-03" in page and "configs/cluster.yaml" in page and "configs/local.yaml" in page


def test_an_execution_that_never_ended_is_drawn_to_the_kill_that_cut_it_not_beyond():
    person = html_population.Invocation(1, "i", 10.0, 30.0, "completed with success")
    cuts = [12.84, 12.89]  # signalled, then killed
    assert html_population.cut_at(12.86, person, cuts, 40.0) == 12.89  # began between the signal and the kill
    assert html_population.cut_at(20.0, person, cuts, 40.0) == 30.0  # dropped when its invocation completed
    assert html_population.cut_at(35.0, person, cuts, 40.0) == 40.0
