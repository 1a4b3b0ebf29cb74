"""The storm's verdict from three sources that do not share a failure: Restate's journal, the writer's
ledger and the LLM tap (which sees every request that reaches the model, whoever sent it).

- all N completed with success, and each idempotency key sent again returns the same output;
- each report file holds exactly Restate's output;
- no step Restate had journaled as done was executed again (ledger) or requested again (tap);
- the sources agree: every request the tap saw was an execution the ledger knows (same invocation, step,
  attempt), and every LLM execution the ledger calls ok reached the model and was answered;
- LLM requests stay within N·L + 2·K·C (N invocations, L LLM steps, K kills, C the writer's concurrency
  limit, or N if smaller): a kill cuts at most C requests in flight, and the few answered whose result
  had not reached Restate's journal yet (measured: 0-3 per kill; bounded here by another C); each is
  asked once more. Without kills the bound is exactly one request per LLM step.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from drillkit.components.llm_tap import LlmTap, TapRequest
from drillkit.components.writer import Execution
from drillkit.evidence import TOLERANCE_S, journaled_completions, restate_time
from drillkit.kit import actions, checks, probes
from drillkit.kit.checks import SHOWN
from drillkit.kit.frame import Drill

Target = Literal["writer", "server"]


@dataclass
class Storm(actions.Batch):
    """What the storm sent and saw: its invocations and keys (a Batch), the writer's config, the kills."""

    n: int
    kills: int
    target: Target
    seed: int
    writer_config: str = ""
    concurrency: int = 1
    """LLM calls the writer has in flight at most, under the config it runs with during the storm."""
    recoveries: list[float] = field(default_factory=list)
    started: float = 0.0
    wall_s: float = 0.0


def judge(drill: Drill, storm: Storm, tap: LlmTap) -> None:
    handles, record = drill.handles, drill.record
    ids = list(storm.keys)
    rows = probes.invocations(drill, ids)
    checks.all_completed_with_success(drill, ids, rows)
    outputs = checks.same_output_again(drill, storm)
    checks.files_hold_outputs(drill, outputs)
    journaled = {i: journaled_completions(entries) for i, entries in probes.journals(drill, ids).items()}
    runs = [e for e in handles.writer.executions() if e.invocation_id in storm.keys]
    requests = tap.settled_requests(ids, timeout_s=drill.pace.budget_s)  # as long as a step may take here
    nothing_done_twice(drill, journaled, runs, requests)
    sources_agree(drill, runs, requests)
    requests_within_bound(drill, storm, requests)
    record.evidence["storm"] = figures(storm, rows)
    record.note("storm figures: " + ", ".join(f"{k}={v}" for k, v in record.evidence["storm"].items()))


def nothing_done_twice(
    drill: Drill, journaled: dict[str, dict[str, float]], runs: list[Execution], requests: list[TapRequest]
) -> None:
    def late(invocation_id: str, step: str | None, at: float) -> bool:
        done = journaled.get(invocation_id, {}).get(step or "")
        return done is not None and at > done + TOLERANCE_S

    executed = sorted({f"{e.invocation_id}/{e.step}" for e in runs if late(e.invocation_id, e.step, e.started)})
    requested = sorted(
        {f"{r.invocation_id}/{r.step}" for r in requests if r.invocation_id and late(r.invocation_id, r.step, r.time)}
    )
    steps = sum(len(done) for done in journaled.values())
    drill.record.expect(
        "no step Restate had journaled as done was executed again (ledger)",
        not executed,
        f"{steps} journaled steps; executed again: {executed[:SHOWN] or 'none'}",
    )
    drill.record.expect(
        "no step Restate had journaled as done was requested again from the model (tap)",
        not requested,
        f"{len(requests)} requests seen by the tap; requested again: {requested[:SHOWN] or 'none'}",
    )


def sources_agree(drill: Drill, runs: list[Execution], requests: list[TapRequest]) -> None:
    """Every request the tap saw is an execution the ledger started; every ok LLM execution was answered."""
    started = {(e.invocation_id, e.step, e.attempt) for e in runs}
    unknown = [r for r in requests if (r.invocation_id, r.step, r.attempt) not in started]
    answered = {(r.invocation_id, r.step, r.attempt) for r in requests if r.status == 200}
    llm_ok = [e for e in runs if e.outcome == "ok" and e.step != "save_report"]
    unseen = [e for e in llm_ok if (e.invocation_id, e.step, e.attempt) not in answered]
    drill.record.expect(
        "the tap and the ledger agree (each request an execution the ledger started; each ok LLM step answered)",
        not unknown and not unseen,
        f"{len(requests)} tap requests, {len(llm_ok)} ok LLM executions"
        + (f"; tap saw requests the ledger never started: {[_key(r) for r in unknown[:SHOWN]]}" if unknown else "")
        + (f"; ledger ok but the model never answered: {[_key(e) for e in unseen[:SHOWN]]}" if unseen else ""),
    )


def requests_within_bound(drill: Drill, storm: Storm, requests: list[TapRequest]) -> None:
    llm_steps = [s for s in drill.writer.steps() if s != "save_report"]
    concurrency = min(storm.concurrency, storm.n)  # in flight at a kill: at most C, and at most one per invocation
    bound = storm.n * len(llm_steps) + 2 * storm.kills * concurrency
    per_step = Counter((r.invocation_id, r.step) for r in requests)
    ratio = len(requests) / (storm.n * len(llm_steps))
    drill.record.evidence["llm_requests"] = {
        "total": len(requests),
        "per_llm_step": round(ratio, 3),
        "bound": bound,
        "most_for_one_step": max(per_step.values(), default=0),
    }
    drill.record.expect(
        f"LLM requests within N·L + 2·K·C = {storm.n}·{len(llm_steps)} + 2·{storm.kills}·{concurrency} = {bound}",
        len(requests) <= bound,
        f"{len(requests)} requests, {ratio:.3f} per LLM step (bound {bound / (storm.n * len(llm_steps)):.3f})",
    )


def _key(item: TapRequest | Execution) -> str:
    return f"{item.invocation_id}/{item.step}#{item.attempt}"


def latencies(rows: list[dict[str, Any]]) -> list[float]:
    found = []
    for row in rows:
        began, ended = restate_time(row.get("created_at")), restate_time(row.get("completed_at"))
        if began is not None and ended is not None:
            found.append(ended - began)
    return sorted(found)


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(share * (len(values) - 1)))]


def figures(storm: Storm, rows: list[dict[str, Any]]) -> dict[str, Any]:
    lat = latencies(rows)
    return {
        "invocations": storm.n,
        "kills": storm.kills,
        "target": storm.target,
        "seed": storm.seed,
        "wall_s": round(storm.wall_s, 2),
        "throughput_inv_per_s": round(storm.n / storm.wall_s, 3) if storm.wall_s else None,
        "latency_p50_s": round(percentile(lat, 0.5), 3),
        "latency_p99_s": round(percentile(lat, 0.99), 3),
        "latency_mean_s": round(statistics.fmean(lat), 3) if lat else None,
        "recovery_s": storm.recoveries,
    }
