"""drill.model: the model answers with an error, breaks off, dawdles or sends broken JSON; the writer copes.

The LLM tap sits between the writer and the model with the drill's fault plan (`--fault`, `--burst`;
`drillkit.components.tap_faults`): the writer is restarted on a derived config that names the tap, the
HOW-TO's body is sent, and the tap answers the chosen requests itself (or changes the model's answer).
The fault travels in no request. Evidence comes from the tap's record (every request, fault or not,
with its time), Restate's row and journal (the steps' journaled results), and the writer's ledger.

Expectations, by fault:

- `400`: the invocation ends as a terminal failure within `TERMINAL_WITHIN_S` of being sent, after one
  model request and one execution of the step (no retry storm), the failure naming the 400;
- `429`: completed with success; every retry arrived no earlier than the Retry-After the tap sent;
- `500`, `503`, `reset`: completed with success; the step that met the fault was retried (the tap shows
  the faulted requests, then an answered one for the same step);
- `hang`: completed with success; the hung request got no answer and was given up by the writer's own
  timeout (`HANG_TIMEOUT_S` for the drill, the tap saw the caller leave), never reached the model, and
  the step was asked again and answered;
- `slow`: completed with success; each slowed answer passed on whole (status 200, lasting the pace the
  tap set) and nothing was asked twice;
- `truncated`, `malformed` (on the JSON summary step): completed with success; the step's journaled
  result says what the writer did (asked again, repaired, or went without) and counts the requests the
  tap saw; a cut-off answer is not asked again (the same token limit would cut it again), a malformed
  one is, up to `pipeline.json_retries` more times;
- every fault that completes: the report (Restate's output and the file) holds no raw JSON fragment of a
  model answer.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from drillkit.components.llm_tap import LlmTap, TapRequest
from drillkit.components.tap_faults import FAULTS, FaultPlan
from drillkit.errors import DrillError, Inconclusive
from drillkit.evidence import first_line
from drillkit.handles import Handles
from drillkit.howto import howto_body
from drillkit.kit import actions, checks, probes
from drillkit.kit.frame import Drill, Scenario
from drillkit.restate_api import sql_list

TERMINAL_WITHIN_S = 10.0
RETRY_AFTER_S = 2
SLOW_S = 3.0
HANG_TIMEOUT_S = 5.0
"""The writer's model timeout during `--fault hang` (its config's own, 60 s, would make the drill slow):
the hung request is given up after this long."""
CLOCK_SLACK_S = 0.05
"""The tap writes a 429's end line just after the answer left, so a retry is measured from a moment a
few milliseconds late: this much is forgiven, and said so."""
JSON_FAULTS = ("truncated", "malformed")
JSON_STEP = "summary"  # the JSON step whose cut-off answer was once pasted into a report
FIRST_STEP = "outline"
RAW_JSON = re.compile(r"""\{\s*["']|["'](?:short_summary|follow_up_questions|research_topic|sections)["']\s*:""")
"""What a reader would see as a piece of a model's JSON answer: an object opened on a quoted key, or one
of the writer's schema keys quoted and followed by a colon."""


def fault_steps(fault: str) -> tuple[str, ...]:
    """Where the fault lands: the JSON faults on the summary; `slow` on every request (a burst slows the
    first N whatever their step); the rest on the first model request, so a burst hits it again and again."""
    if fault in JSON_FAULTS:
        return (JSON_STEP,)
    return () if fault == "slow" else (FIRST_STEP,)


def check_model(handles: Handles, fault: str, burst: int) -> None:
    if fault not in FAULTS:
        raise DrillError(f"--fault {fault!r}: use one of {', '.join(FAULTS)}")
    if burst < 1:
        raise DrillError(f"--burst {burst}: must be at least 1 (the number of requests in a row that get the fault)")
    timeout_s = handles.config.writer_model.timeout_s
    if fault == "slow" and timeout_s <= SLOW_S:
        raise DrillError(
            f"--fault slow trickles an answer over {SLOW_S:g} s, not less than writer_model.timeout_s "
            f"({timeout_s:g} s) in {handles.config.source}: that is the timeout drill's business"
        )


def model_scenario(fault: str, burst: int) -> Scenario:
    def scenario(drill: Drill) -> None:
        plan = FaultPlan(fault, burst=burst, steps=fault_steps(fault), retry_after_s=RETRY_AFTER_S, slow_s=SLOW_S)
        tap = tap_with_faults(drill, plan)
        sent = time.time()
        actions.send(drill, howto_body())
        final = probes.wait_completed(drill)
        took = time.time() - sent
        requests = tap.settled_requests([drill.invocation_id])
        drill.record.evidence["tap_requests"] = [asdict(r) for r in requests]
        faulted = [r for r in requests if r.fault]
        drill.record.event(
            "fault answered", f"{len(faulted)} of {len(requests)} model request(s) got the {fault} fault"
        )
        if not faulted:
            raise Inconclusive(
                f"the {fault} fault never landed: no request matched the plan ({plan.to_json()}); "
                f"the tap saw {len(requests)} request(s)"
            )
        if fault == "400":
            _ended_terminally(drill, final, requests, took)
            return
        checks.completed_with_success(drill, final)
        _no_raw_json(drill)
        if fault == "429":
            _retry_after_honoured(drill, requests)
        elif fault in ("500", "503", "reset"):
            _step_retried(drill, requests, fault)
        elif fault == "hang":
            _hang_given_up(drill, requests)
        elif fault == "slow":
            _slow_answers_whole(drill, requests, plan)
        else:
            _json_answer_handled(drill, requests, burst, fault)

    return scenario


def tap_with_faults(drill: Drill, plan: FaultPlan) -> LlmTap:
    """Model <- tap (with the plan) <- writer: the writer restarted on a derived config naming the tap."""
    handles = drill.handles
    upstream = urlsplit(handles.config.writer_model.base_url)
    tap = handles.model.tap()
    drill.on_cleanup("LLM tap stopped", tap.stop)
    tap.start(f"{upstream.scheme}://{upstream.netloc}", plan)
    drill.tap = tap
    overrides: dict[str, Any] = {"writer_model.base_url": f"{tap.url}{upstream.path}"}
    if plan.fault == "hang":
        overrides["writer_model.timeout_s"] = HANG_TIMEOUT_S
    config = handles.writer.derived_config("model-fault", overrides)
    drill.on_cleanup("writer on its own config", handles.writer.restart)
    actions.restart_writer(drill, config)
    # Armed: the first matching request gets it. A wait that runs out from here is the system's failure.
    drill.fault_injected = True
    drill.record.event("fault armed", f"tap {tap.url} -> {handles.config.writer_model.base_url}; plan {plan.to_json()}")
    drill.record.evidence["tap_record"] = str(tap.record)
    drill.record.evidence["fault_plan"] = json.loads(plan.to_json())
    return tap


# -- expectations -------------------------------------------------------------------------------------


def _ended_terminally(drill: Drill, final: probes.Row, requests: list[TapRequest], took: float) -> None:
    record = drill.record
    failure = str(final.get("completion_failure") or "")
    record.expect(
        "the invocation ended as a terminal failure naming the model's 400",
        final.get("completion_result") == "failure" and "400" in failure,
        f"completion_result={final.get('completion_result')}, failure={first_line(failure, 200)!r}",
    )
    record.expect(
        f"ended within {TERMINAL_WITHIN_S:g} s of being sent",
        took < TERMINAL_WITHIN_S,
        f"{took:.2f} s from send to Restate's completed row (polled every {0.05:g} s)",
    )
    record.expect(
        "one model request in all (the tap's record): no retry storm",
        len(requests) == 1 and requests[0].status == 400,
        ", ".join(f"{r.step} #{r.attempt} -> {r.status} ({r.fault or 'model'})" for r in requests) or "none",
    )
    runs = [e for e in probes.executions(drill) if e.step == FIRST_STEP]
    record.expect(
        f"{FIRST_STEP} executed once, ended in error, and no later step ran",
        len(runs) == 1 and runs[0].outcome == "error" and all(e.step == FIRST_STEP for e in probes.executions(drill)),
        "; ".join(f"#{e.attempt} {e.outcome}: {first_line(e.error, 120)}" for e in runs) or "no execution",
    )


def _retry_after_honoured(drill: Drill, requests: list[TapRequest]) -> None:
    gaps = []
    early = []
    for faulted, following in _each_followed(requests):
        if faulted.status != 429 or faulted.end_time is None:
            continue
        wait = faulted.retry_after_s if faulted.retry_after_s is not None else RETRY_AFTER_S
        gap = following.time - faulted.end_time
        gaps.append(f"{faulted.step}: 429 said {wait} s, asked again after {gap:.2f} s")
        if gap < wait - CLOCK_SLACK_S:
            early.append(f"{following.step} #{following.attempt} after {gap:.2f} s < {wait} s")
    drill.record.expect(
        "every retry after a 429 came no earlier than its Retry-After (the tap's clock)",
        bool(gaps) and not early,
        ("; ".join(early or gaps) or "no 429 followed by a retry") + f" (slack {CLOCK_SLACK_S:g} s)",
    )


def _step_retried(drill: Drill, requests: list[TapRequest], fault: str) -> None:
    pairs = list(_each_followed(requests))
    answered = [following for _, following in pairs if following.fault is None and following.status == 200]
    drill.record.expect(
        f"the step that met the {fault} was retried and answered",
        len(pairs) == sum(1 for r in requests if r.fault) and bool(answered),
        "; ".join(
            f"{f.step} #{f.attempt} {fault} ({f.status}) -> #{n.attempt} {n.status} ({n.fault or 'model'})"
            for f, n in pairs
        )
        or "no request after the fault",
    )
    errors = [e for e in probes.executions(drill) if e.outcome == "error"]
    drill.record.expect(
        "the writer's ledger shows the failed attempts",
        len(errors) >= 1,
        "; ".join(f"{e.step} #{e.attempt}: {first_line(e.error, 100)}" for e in errors) or "no failed execution",
    )


def _hang_given_up(drill: Drill, requests: list[TapRequest]) -> None:
    hung = [r for r in requests if r.fault == "hang"]
    drill.record.expect(
        f"every hung request was given up by the writer's own timeout ({HANG_TIMEOUT_S:g} s), unanswered",
        bool(hung)
        and all(
            r.outcome == "client_gone" and r.status is None and (r.duration_ms or 0) >= HANG_TIMEOUT_S * 900
            for r in hung
        ),
        "; ".join(f"{r.step}: {r.outcome} after {(r.duration_ms or 0) / 1000:.2f} s" for r in hung) or "none hung",
    )
    _step_retried(drill, requests, "hang")


def _slow_answers_whole(drill: Drill, requests: list[TapRequest], plan: FaultPlan) -> None:
    slowed = [r for r in requests if r.fault == "slow"]
    drill.record.expect(
        f"every slowed answer passed on whole (200, over about {plan.slow_s:g} s)",
        all(r.status == 200 and r.outcome == "fault" and (r.duration_ms or 0) >= plan.slow_s * 900 for r in slowed),
        "; ".join(f"{r.step}: {r.status} {r.outcome} in {(r.duration_ms or 0) / 1000:.2f} s" for r in slowed),
    )
    steps = [r.step for r in requests]
    twice = sorted({s for s in steps if s is not None and steps.count(s) > 1})
    drill.record.expect(
        "nothing was asked twice: a slow answer is not a failure", not twice, ", ".join(twice) or "one request a step"
    )


def _json_answer_handled(drill: Drill, requests: list[TapRequest], burst: int, fault: str) -> None:
    retries = drill.config.pipeline.json_retries
    result = journaled_result(drill, JSON_STEP)
    answer = result.get("answer") if isinstance(result, dict) else None
    answer = answer if isinstance(answer, dict) else {}
    asked = sum(1 for r in requests if r.step == JSON_STEP)
    drill.record.evidence["journaled_answer"] = answer
    drill.record.expect(
        f"the {JSON_STEP} step's journaled result says what was done with the broken answer, and counts the "
        "requests the tap saw",
        answer.get("outcome") in ("retried", "repaired", "fallback")
        and bool(answer.get("problems"))
        and answer.get("requests") == asked,
        f"journaled answer={answer or None!r}; the tap saw {asked} request(s) for {JSON_STEP}",
    )
    # A cut-off answer is repaired at once. Each malformed one is asked for again while the budget lasts;
    # after the burst the model's own answer ends the asking, unless it is malformed too (then the budget).
    least = 1 if fault == "truncated" else min(burst + 1, retries + 1)
    most = 1 if fault == "truncated" else retries + 1
    drill.record.expect(
        f"the model was asked for the {JSON_STEP} within the budget (pipeline.json_retries {retries})",
        least <= asked <= most,
        f"{asked} request(s) for {JSON_STEP}; expected {least}..{most} for {fault} x{burst}",
    )


def _no_raw_json(drill: Drill) -> None:
    output = drill.record.evidence.get("output")
    texts: dict[str, str] = {}
    if isinstance(output, dict):
        texts = {key: str(output.get(key, "")) for key in ("research_topic", "short_summary", "markdown_report")}
        texts["follow_up_questions"] = "\n".join(str(q) for q in output.get("follow_up_questions") or [])
        path = Path(str(output.get("output_path")))
        if path.is_file():
            texts["report file"] = path.read_text(encoding="utf-8", errors="replace")
    found = {where: raw_json_fragments(text) for where, text in texts.items()}
    found = {where: fragments for where, fragments in found.items() if fragments}
    drill.record.expect(
        "the report holds no raw JSON fragment of a model answer",
        bool(texts) and not found,
        "; ".join(f"{where}: {fragments[:3]}" for where, fragments in found.items())
        or (f"checked {', '.join(texts)}" if texts else "no output to check"),
    )


def raw_json_fragments(text: str) -> list[str]:
    """Pieces of `text` that look like a model's JSON answer (with a little context each)."""
    return [text[max(m.start() - 10, 0) : m.end() + 20] for m in RAW_JSON.finditer(text)]


# -- evidence -----------------------------------------------------------------------------------------


def _each_followed(requests: list[TapRequest]) -> list[tuple[TapRequest, TapRequest]]:
    """Each faulted request with the next request of the same step (its retry), when there is one."""
    pairs = []
    for index, request in enumerate(requests):
        if not request.fault:
            continue
        following = next((r for r in requests[index + 1 :] if r.step == request.step), None)
        if following is not None:
            pairs.append((request, following))
    return pairs


def journaled_result(drill: Drill, step: str) -> Any:
    """The value Restate journaled for the step's Run (its `entry_json` holds the bytes), decoded."""
    rows = drill.restate.admin.query(
        "SELECT index, entry_type, name, entry_json FROM sys_journal "
        f"WHERE id IN ({sql_list([drill.invocation_id])}) ORDER BY index"
    )
    return step_result(rows, step)


def step_result(rows: list[dict[str, Any]], step: str) -> Any:
    """From sys_journal rows: the decoded success value of the Run named `step`, else None."""
    completion = None
    for row in rows:
        entry = _entry(row)
        run = entry.get("Command", {}).get("Run") if isinstance(entry.get("Command"), dict) else None
        if isinstance(run, dict) and run.get("name") == step:
            completion = run.get("completion_id")
    for row in rows:
        done = ((_entry(row).get("Notification") or {}).get("Completion") or {}).get("Run") or {}
        if completion is not None and done.get("completion_id") == completion:
            value = (done.get("result") or {}).get("Success")
            if isinstance(value, list):
                try:
                    return json.loads(bytes(value))
                except ValueError:
                    return None
    return None


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    raw = row.get("entry_json")
    try:
        entry = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {}
    return entry if isinstance(entry, dict) else {}
