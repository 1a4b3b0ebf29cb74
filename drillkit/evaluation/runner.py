"""Each fault, N times, on the writer with Restate and without it: what completed, what it cost.

A run sends one request (the HOW-TO's body), injects its fault at the same point in both modes (read
from the shared ledger: once `section:1` has finished), recovers the way each mode recovers (the
process restarted as a supervisor would; the durable invocation resumed), and waits for the answer
within the same deadline. Evidence per run comes from outside the writer's answer: the LLM tap (model
requests carrying the request's key), the ledger (save_report executions) and the report file.
"""

from __future__ import annotations

import random
import signal
import statistics
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from drillkit import progress
from drillkit.components.llm_tap import LlmTap, TapRequest
from drillkit.components.tap_faults import ALONE_FAULTS, FaultPlan
from drillkit.errors import ConfigError, DrillError
from drillkit.evaluation.modes import Baseline, Durable, Mode, Outcome, Pending
from drillkit.evaluation.subjects import BASELINE_PARTS, DURABLE_PARTS, CodeParts, subject_of
from drillkit.stack import Stack

FAULTS = (
    "nominal",
    "kill",
    "term",
    "llm-down",
    "llm-hang",
    "llm-5xx",
    "llm-429",
    "llm-truncated",
    "tool-error",
    "server-crash",
)
DURABLE_ONLY = frozenset({"server-crash"})
LLM_DOWN_S = 5.0
TOOL_FAILURES = 2
DEADLINE_S = 300.0
# The model's errors, answered by the LLM tap for this run's requests (its plan, `tap_faults`): the first
# model request passes (finished work to lose), then the burst. The truncated answer is the first one,
# a structured answer (the outline, or a target's first answer) cut off by the token limit.
HANG_TIMEOUT_S = 10.0
"""The shipped writer's model timeout during `llm-hang`, in both modes (its config's 60 s would make
each run a minute longer): the hung request is given up after this long."""
MODEL_FAULTS: dict[str, dict[str, Any]] = {
    "llm-hang": {"fault": "hang", "skip": 1, "burst": 1},
    "llm-5xx": {"fault": "500", "skip": 1, "burst": 3},
    "llm-429": {"fault": "429", "skip": 1, "burst": 2, "retry_after_s": 2},
    "llm-truncated": {"fault": "truncated", "skip": 0, "burst": 1},
}


@dataclass
class Run:
    fault: str
    mode: str
    outcome: Outcome
    model_requests: int
    min_requests: int
    duplicated_effects: int
    lost_effects: int
    key: str = ""
    """What named the request to Restate or the baseline (an invocation id, or the x-request-id)."""

    def summary(self) -> dict[str, Any]:
        """One run as evaluation.json's `runs` lists it: a witness outside the tool can check each."""
        return {
            "fault": self.fault,
            "mode": self.mode,
            "key": self.key,
            "completed": self.outcome.completed,
            "seconds": round(self.outcome.seconds, 3),
            "model_requests": self.model_requests,
            "min_requests": self.min_requests,
            "duplicated_effects": self.duplicated_effects,
            "lost_effects": self.lost_effects,
            "error": self.outcome.error,
        }


@dataclass
class Row:
    fault: str
    mode: str
    runs: int
    completed: int
    model_requests: int
    min_requests: int
    duplicated_effects: int
    lost_effects: int
    p50_s: float | None
    p95_s: float | None

    @property
    def completed_share(self) -> float:
        return self.completed / self.runs if self.runs else 0.0


@dataclass
class Evaluation:
    runs: list[Run] = field(default_factory=list)
    nominal_concurrency: int = 4
    throughput: dict[str, float] = field(default_factory=dict)
    """mode -> completed requests per second at `nominal_concurrency`"""
    inconclusive: list[str] = field(default_factory=list)
    """Runs whose fault could not be injected as planned (say why), not counted."""
    code_parts: tuple[CodeParts, CodeParts] = (DURABLE_PARTS, BASELINE_PARTS)
    """(durable, baseline) code the code criterion counts (the subject's rule)."""


def check_faults(faults: list[str]) -> None:
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        raise ConfigError(f"--faults: unknown {', '.join(unknown)} (known: {', '.join(FAULTS)})")


class Evaluator:
    def __init__(self, stack: Stack, runs: int, faults: list[str], seed: int, concurrency: int) -> None:
        check_faults(faults)
        self.stack = stack
        self.runs = runs
        # Nominal first: on a target it measures the fewest model requests a request needs.
        self.faults = sorted(set(faults) | ({"nominal"} if stack.target is not None else set()), key=FAULTS.index)
        self.rng = random.Random(seed)
        self.concurrency = concurrency
        self.tap = LlmTap(
            stack.procs,
            stack.state.log_file("llm-tap"),
            stack.state.root / "llm-tap" / f"eval-{uuid.uuid4().hex}.jsonl",
        )
        self.subject = subject_of(stack, self.tap)  # ConfigError before anything starts
        self.result = Evaluation(nominal_concurrency=concurrency, code_parts=self.subject.code_parts)

    # -- the whole evaluation -------------------------------------------------------------------------

    def run(self) -> Evaluation:
        stack = self.stack
        if not stack.is_up():
            with progress.activity("bringing the stack up (Restate, the model, the writer)"):
                stack.up()
        self.tap_plan(None)
        baseline, durable = Baseline(stack, self.subject), Durable(stack, self.subject)
        try:
            for mode in (baseline, durable):
                mode.start()
            for fault in self.faults:
                for mode in (baseline, durable):
                    if fault in DURABLE_ONLY and mode is baseline:
                        continue
                    for number in range(1, self.runs + 1):
                        progress.step(f"evaluate: {fault} on {mode.name} ({number}/{self.runs})")
                        try:
                            run = self.one(fault, mode)
                        except DrillError as exc:  # the fault could not be injected: not judged
                            self.result.inconclusive.append(f"{fault} on {mode.name}, run {number}: {exc}")
                            mode.start()
                            continue
                        self.result.runs.append(run)
                        progress.info(
                            f"  {'completed' if run.outcome.completed else 'NOT completed'} in "
                            f"{run.outcome.seconds:.1f} s, {run.model_requests} model requests (minimum "
                            f"{run.min_requests}), reports twice {run.duplicated_effects}, lost {run.lost_effects}"
                        )
            for mode in (baseline, durable):
                self.result.throughput[mode.name] = self.nominal_throughput(mode)
        finally:
            baseline.stop()
            self.subject.restore()  # back on its own settings, no tap
            self.tap.stop()
        return self.result

    # -- one run ----------------------------------------------------------------------------------------

    def one(self, fault: str, mode: Mode) -> Run:
        setup, inject = FAULT_ACTIONS[fault]
        setup(self, mode)
        pending = mode.begin(self.subject.new_request(mode.name))
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(mode.finish, pending, DEADLINE_S)
            try:
                inject(self, mode, pending)
            finally:
                outcome = answer.result()
        self.restore(fault, mode)
        return self.measure(fault, mode, pending, outcome)

    def measure(self, fault: str, mode: Mode, pending: Pending, outcome: Outcome) -> Run:
        requests = [r for r in self.subject.model_requests(pending.request, pending.key) if reached_the_model(r)]
        effects = self.subject.effects(pending.request, pending.key, outcome.output, outcome.completed)
        fewest = self.subject.min_requests()
        if fewest is None:  # a target: the fewest any completed nominal run spent (nominal runs first)
            nominal = [r.model_requests for r in self.result.runs if r.fault == "nominal" and r.outcome.completed]
            fewest = min(nominal, default=len(requests) if fault == "nominal" and outcome.completed else 0)
        return Run(fault, mode.name, outcome, len(requests), fewest, effects.duplicated, effects.lost, pending.key)

    def restore(self, fault: str, mode: Mode) -> None:
        if fault in ("tool-error", "llm-hang"):
            mode.start()
        if fault in MODEL_FAULTS:
            self.tap_plan(None)

    def tap_plan(self, plan: FaultPlan | None) -> None:
        """The tap (re)started in front of the model, answering `plan`'s faults (None: forwarding all).
        Same port and record: the services keep their base URL, the evidence stays in one file."""
        upstream = urlsplit(self.stack.config.writer_model.base_url)
        self.tap.start(f"{upstream.scheme}://{upstream.netloc}", plan)

    # -- fault points -----------------------------------------------------------------------------------

    def wait_fault_point(self, mode: Mode, pending: Pending) -> None:
        self.subject.wait_fault_point(pending.request, pending.key, mode.name == "durable", DEADLINE_S)

    def crash(self, mode: Mode, pending: Pending, sig: signal.Signals) -> None:
        self.wait_fault_point(mode, pending)
        if mode.kill(sig) is None:
            raise DrillError(f"the {mode.name} service was not running at the fault point")
        mode.start()
        mode.recover(pending)

    def nominal_throughput(self, mode: Mode) -> float:
        """Completed requests per second with `concurrency` sent at once, no fault."""
        started = time.monotonic()
        pendings = [mode.begin(self.subject.new_request(f"{mode.name}_load")) for _ in range(self.concurrency)]
        with ThreadPoolExecutor(self.concurrency) as pool:
            outcomes = list(pool.map(lambda p: mode.finish(p, DEADLINE_S), pendings))
        done = sum(o.completed for o in outcomes)
        return round(done / (time.monotonic() - started), 4)


def _nothing(evaluator: Evaluator, mode: Mode, *_: Any) -> None:
    """No fault."""


def _kill(evaluator: Evaluator, mode: Mode, pending: Pending) -> None:
    evaluator.crash(mode, pending, signal.SIGKILL)


def _term(evaluator: Evaluator, mode: Mode, pending: Pending) -> None:
    evaluator.crash(mode, pending, signal.SIGTERM)


def _model_down(evaluator: Evaluator, mode: Mode) -> None:
    if not evaluator.stack.model.enabled:
        raise ConfigError("--faults llm-down stops the local model: this config's model is remote")
    evaluator.stack.model.stop()


def _model_back(evaluator: Evaluator, mode: Mode, pending: Pending) -> None:
    # Down for a while after the request was sent, then back: both modes must ride it out.
    time.sleep(LLM_DOWN_S)  # the fault's length, not a wait for a condition
    evaluator.stack.model.start()
    mode.recover(pending)


def _failing_tool(evaluator: Evaluator, mode: Mode) -> None:
    mode.start(TOOL_FAILURES)


def _model_fault(evaluator: Evaluator, mode: Mode, fault: str) -> None:
    if fault == "llm-hang":
        mode.start(model_timeout_s=HANG_TIMEOUT_S)
    evaluator.tap_plan(FaultPlan(**MODEL_FAULTS[fault]))


def _server_crash(evaluator: Evaluator, mode: Mode, pending: Pending) -> None:
    evaluator.wait_fault_point(mode, pending)
    evaluator.stack.server.kill(signal.SIGKILL)
    evaluator.stack.server.start()
    mode.recover(pending)


FAULT_ACTIONS: dict[str, tuple[Callable[[Evaluator, Mode], None], Callable[[Evaluator, Mode, Pending], None]]] = {
    "nominal": (_nothing, _nothing),
    "kill": (_nothing, _kill),
    "term": (_nothing, _term),
    "llm-down": (_model_down, _model_back),
    **{name: (partial(_model_fault, fault=name), _nothing) for name in MODEL_FAULTS},
    "tool-error": (_failing_tool, _nothing),
    "server-crash": (_nothing, _server_crash),
}


def reached_the_model(request: TapRequest) -> bool:
    """What the model was asked: a 5xx, 429 or hang the tap answered alone never reached it, nor a request
    the tap could not deliver (the model down: connection refused, the tap's 502)."""
    if request.fault in ALONE_FAULTS:
        return False
    return not (request.outcome == "upstream_error" and request.status == 502)


def rows(evaluation: Evaluation) -> list[Row]:
    """One row per (fault, mode): the runs summed, latencies of the completed ones."""
    grouped: dict[tuple[str, str], list[Run]] = {}
    for run in evaluation.runs:
        grouped.setdefault((run.fault, run.mode), []).append(run)
    table = []
    for (fault, mode), runs in grouped.items():
        seconds = sorted(r.outcome.seconds for r in runs if r.outcome.completed)
        table.append(
            Row(
                fault,
                mode,
                len(runs),
                sum(r.outcome.completed for r in runs),
                sum(r.model_requests for r in runs),
                sum(r.min_requests for r in runs),
                sum(r.duplicated_effects for r in runs),
                sum(r.lost_effects for r in runs),
                round(statistics.median(seconds), 3) if seconds else None,
                round(percentile(seconds, 0.95), 3) if seconds else None,
            )
        )
    return table


def percentile(sorted_values: list[float], share: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(share * (len(sorted_values) - 1))))
    return sorted_values[index]
