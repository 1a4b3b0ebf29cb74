"""report.html from synthetic journal records: the SVG is well-formed, nothing loads from the network,
every step has its lane, each ledger shape (one line, two lines, paired) draws its bars."""

import json
import re
from xml.etree import ElementTree as ET

import pytest

from drillkit import traces
from drillkit.reports import html_report

T0 = 1_800_000_000.0
STEPS = ["outline", "section:1", "section:2", "section:3", "summary", "save_report"]


def one_line(step, start, end, outcome="ok", attempt=1, pid=100, error=None):
    return {
        "time": T0 + end,
        "invocation_id": "inv_1",
        "step": step,
        "attempt": attempt,
        "pid": pid,
        "outcome": outcome,
        "duration_ms": (end - start) * 1000,
        "error": error,
    }


def two_lines(step, start, end=None, outcome="ok", attempt=1, pid=100):
    first = {**one_line(step, start, start, "started", attempt, pid), "time": T0 + start, "duration_ms": 0.0}
    return [first] if end is None else [first, one_line(step, start, end, outcome, attempt, pid)]


def record(verdict="PASS", ledger=None, timeline=None, expectations=None, **extra):
    return {
        "drill": "crash",
        "parameters": {"signal": "KILL", "at": "section:2"},
        "verdict": verdict,
        "reasons": ["met: completed with success: status=completed"],
        "started_at": T0,
        "duration_s": 7.0,
        "invocation_id": "inv_1",
        "timeline": timeline
        or [
            {"offset_s": 0.01, "event": "sent", "detail": "POST /WriterAgentRestate/run/send -> inv_1"},
            {"offset_s": 2.25, "event": "signalled", "detail": "SIGKILL to the writer's recorded pid 100"},
            {"offset_s": 2.26, "event": "killed", "detail": "pid 100 gone"},
            {"offset_s": 2.27, "event": "retrying seen", "detail": "status=backing-off retry_count=1"},
            {"offset_s": 3.1, "event": "restarted", "detail": "writer pid 101 healthy"},
            {"offset_s": 3.11, "event": "resumed", "detail": "PATCH /invocations/<id>/resume"},
            {"offset_s": 3.12, "event": "running again", "detail": "status=running"},
            {"offset_s": 6.4, "event": "completed", "detail": "completion_result=success"},
        ],
        "expectations": expectations
        or [{"name": "completed with success (sys_invocation)", "passed": verdict == "PASS", "detail": "status=x"}],
        "evidence": {
            "ledger": ledger if ledger is not None else [],
            "journal_steps": [
                {"index": i, "name": s, "completed": True, "result": "success"} for i, s in enumerate(STEPS)
            ],
            "invocation": {"status": "completed", "completion_result": "success"},
        },
        "notes": [],
        "error": None,
        "inconclusive": None,
        **extra,
    }


def crash_ledger():
    return [
        one_line("outline", 0.1, 1.2),
        one_line("section:1", 1.3, 2.2),
        one_line("section:2", 3.2, 4.0, pid=101),
        one_line("section:3", 4.1, 5.0, pid=101),
        one_line("summary", 5.1, 5.9, pid=101),
        one_line("save_report", 6.0, 6.1, pid=101),
    ]


def svg_of(page: str) -> ET.Element:
    match = re.search(r"<svg .*?</svg>", page, re.S)
    assert match, "no svg"
    return ET.fromstring(match.group(0))


def assert_offline(page: str) -> None:
    for attr in re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", page, re.I):
        assert not re.match(r"(https?:)?//", attr), attr
    assert "<script" not in page.lower()
    assert "@import" not in page and "url(" not in page


def titles(svg: ET.Element) -> str:
    return " ".join(t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}title"))


def lane_names(svg: ET.Element) -> list[str]:
    return [t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "lane"]


@pytest.mark.parametrize("verdict", ["PASS", "FAIL", "INCONCLUSIVE", "ERROR"])
def test_every_verdict_renders_a_well_formed_offline_page(verdict):
    extra = {"inconclusive": "the environment failed"} if verdict == "INCONCLUSIVE" else {}
    if verdict == "ERROR":
        extra["error"] = "boom"
    page = html_report.render_html(record(verdict, crash_ledger(), **extra))
    svg = svg_of(page)
    assert_offline(page)
    assert f">{verdict}</span>" in page
    assert set(STEPS) <= set(lane_names(svg))
    assert "Restate status" in lane_names(svg)
    assert "completed with success (sys_invocation)" in page  # the expectations table


def test_markers_status_band_and_replayed_steps():
    svg = svg_of(html_report.render_html(record("PASS", crash_ledger())))
    text = titles(svg)
    for marker in ("fault: signalled", "fault: killed", "restart: restarted", "resume: resumed", "completion"):
        assert marker in text
    assert "backing-off from 2.27 s" in text and "completed from 6.40 s" in text
    replayed = [r for r in svg.iter("{http://www.w3.org/2000/svg}rect") if r.get("class") == "replayed"]
    assert {r.findtext("{http://www.w3.org/2000/svg}title").split(": replayed")[0] for r in replayed} == {
        "outline",
        "section:1",
    }


def test_two_line_ledger_killed_attempt_is_drawn_to_the_kill():
    ledger = [
        *two_lines("outline", 0.1, 1.2),
        *two_lines("section:1", 1.3, 2.2),
        *two_lines("section:2", 2.21),  # started, never ended: killed
        *two_lines("section:2", 3.2, 4.0, attempt=2, pid=101),
    ]
    bars = html_report.lay_out(record("FAIL", ledger))[1]
    killed = [b for b in bars if b.outcome == "killed"]
    assert len(killed) == 1 and killed[0].step == "section:2"
    assert killed[0].start == pytest.approx(2.21) and killed[0].end == pytest.approx(2.25)  # the signal
    done = [b for b in bars if b.step == "section:2" and b.outcome == "done"]
    assert done and done[0].start == pytest.approx(3.2) and done[0].end == pytest.approx(4.0)
    svg = svg_of(html_report.render_html(record("FAIL", ledger)))
    assert any(r.get("class") == "killed" for r in svg.iter("{http://www.w3.org/2000/svg}rect"))


def test_one_line_ledger_error_attempts_and_paired_executions():
    ledger = [
        one_line("save_report", 1.0, 1.1, "error", error="injected"),
        one_line("save_report", 1.5, 1.6, attempt=2),
    ]
    bars = html_report.lay_out(record(ledger=ledger))[1]
    assert [(b.outcome, round(b.start, 2)) for b in bars if b.step == "save_report" and b.outcome != "replayed"] == [
        ("error", 1.0),
        ("done", 1.5),
    ]
    paired = [
        {
            "invocation_id": "inv_1",
            "step": "outline",
            "attempt": 1,
            "pid": 1,
            "started": T0 + 0.5,
            "ended": None,
            "outcome": None,
            "duration_ms": None,
            "error": None,
        },
    ]
    assert [b.outcome for b in html_report.executions(paired, T0)] == ["killed"]


def test_every_string_is_escaped():
    nasty = '<script>alert("x")</script>&'
    data = record("FAIL", [one_line("outline", 0.1, 0.2, "error", error=nasty)])
    data["expectations"] = [{"name": nasty, "passed": False, "detail": nasty}]
    data["timeline"].append({"offset_s": 1.0, "event": "killed", "detail": nasty})
    page = html_report.render_html(data)
    assert "<script" not in page
    svg_of(page)  # still well-formed


def test_trace_lane_and_jaeger_help():
    data = record("PASS", crash_ledger())
    data["evidence"]["trace_file"] = "trace.json"
    data["evidence"]["trace_spans"] = [
        {"name": "invocation-attempt", "offset_s": 0.05, "duration_s": 2.2, "failed": True, "events": []},
        {
            "name": "invocation-attempt",
            "offset_s": 3.1,
            "duration_s": 3.3,
            "failed": False,
            "events": [{"offset_s": 4.0, "name": "run_ended"}],
        },
    ]
    page = html_report.render_html(data)
    svg = svg_of(page)
    assert "Restate attempts" in lane_names(svg)
    assert "invocation-attempt failed" in titles(svg)
    assert 'href="trace.json"' in page and "JSON File" in page


def test_index_links_each_report_with_its_verdict(tmp_path):
    dirs = []
    for n, verdict in enumerate(["PASS", "FAIL"]):
        d = tmp_path / f"0{n}-crash"
        d.mkdir()
        (d / "journal.json").write_text(json.dumps(record(verdict)))
        dirs.append(d)
    page = html_report.write_index(tmp_path, dirs).read_text()
    assert 'href="00-crash/report.html"' in page and 'href="01-crash/report.html"' in page
    assert ">PASS<" in page and ">FAIL<" in page
    assert_offline(page)


def test_rerender_from_dir_or_file(tmp_path):
    (tmp_path / "journal.json").write_text(json.dumps(record("PASS", crash_ledger())))
    assert html_report.rerender(tmp_path) == tmp_path / "report.html"
    assert html_report.rerender(tmp_path / "journal.json").read_text().startswith("<!DOCTYPE html>")


OTLP = {
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "Restate"}}]},
            "scopeSpans": [
                {
                    "spans": [
                        {
                            "traceId": "ab" * 16,
                            "spanId": "01" * 8,
                            "parentSpanId": "02" * 8,
                            "name": "invocation-attempt WriterAgentRestate/run",
                            "startTimeUnixNano": str(int((T0 + 1) * 1e9)),
                            "endTimeUnixNano": str(int((T0 + 2) * 1e9)),
                            "status": {"code": 2, "message": "killed"},
                            "attributes": [{"key": "restate.invocation.id", "value": {"stringValue": "inv_1"}}],
                            "events": [{"name": "restate.invocation.lifecycle.run_ended", "timeUnixNano": "0"}],
                        },
                        {"traceId": "cd" * 16, "spanId": "03" * 8, "name": "ingress", "attributes": []},
                    ]
                }
            ],
        }
    ]
}


def test_otlp_spans_become_jaeger_json_and_timeline_spans():
    collector = traces.TraceCollector()
    collector.add(traces.spans_of(OTLP))
    spans = collector.spans("inv_1")
    assert [s.name for s in spans] == ["invocation-attempt WriterAgentRestate/run"]
    doc = traces.jaeger_document(spans)
    span = doc["data"][0]["spans"][0]
    assert span["startTime"] == int((T0 + 1) * 1e6) and span["duration"] == 1_000_000
    assert {"key": "error", "type": "bool", "value": True} in span["tags"]
    assert span["references"][0]["spanID"] == "02" * 8 and span["processID"] in doc["data"][0]["processes"]
    compact = traces.timeline_spans(spans, T0)
    assert compact[0]["name"] == "invocation-attempt" and compact[0]["failed"] and compact[0]["offset_s"] == 1.0


def test_collector_receives_otlp_json_over_http():
    import httpx

    with traces.collecting(port=0) as collector:
        assert isinstance(collector, traces.TraceCollector)
        port = collector._server.server_address[1]
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/traces", json=OTLP, timeout=5)
        assert answer.status_code == 200
        assert len(collector.spans("inv_1")) == 1
        assert httpx.post(f"http://127.0.0.1:{port}/v1/traces", content=b"\x00proto", timeout=5).status_code == 415


def test_one_line_ledger_killed_step_comes_from_restates_journal():
    data = record("PASS", crash_ledger())
    data["evidence"]["in_flight_at_kill"] = "section:2"
    bars = html_report.lay_out(data)[1]
    killed = [b for b in bars if b.outcome == "killed"]
    assert [(b.step, round(b.start, 2), round(b.end or 0, 2)) for b in killed] == [("section:2", 2.2, 2.25)]
    # With the two-line format the ledger itself shows it: nothing added.
    two = [*two_lines("outline", 0.1, 1.2), *two_lines("section:1", 1.3, 2.2), *two_lines("section:2", 2.21)]
    data = record("PASS", two)
    data["evidence"]["in_flight_at_kill"] = "section:2"
    assert len([b for b in html_report.lay_out(data)[1] if b.outcome == "killed"]) == 1


def test_rerender_a_drill_all_dir_renders_every_drill_and_the_index(tmp_path):
    for n, verdict in enumerate(["PASS", "FAIL"]):
        d = tmp_path / f"0{n}-crash"
        d.mkdir()
        (d / "journal.json").write_text(json.dumps(record(verdict, crash_ledger())))
    assert html_report.rerender(tmp_path) == tmp_path / "index.html"
    assert (tmp_path / "00-crash" / "report.html").is_file() and (tmp_path / "01-crash" / "report.html").is_file()
    assert 'href="01-crash/report.html"' in (tmp_path / "index.html").read_text()


def test_rerender_an_empty_dir_says_exactly_what_to_pass(tmp_path):
    from drillkit.errors import DrillError

    with pytest.raises(DrillError, match=r"no journal\.json here nor in any folder inside; pass a drill's report dir"):
        html_report.rerender(tmp_path)
