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
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from drillkit import progress
from drillkit.components.llm_tap import LlmTap
from drillkit.components.writer import step_order
from drillkit.errors import ConfigError, DrillError
from drillkit.evaluation.modes import Baseline, Durable, Mode, Outcome, Pending
from drillkit.howto import RESTART_PROMPT, howto_body
from drillkit.stack import Stack
from drillkit.waits import poll

FAULTS = ("nominal", "kill", "term", "llm-down", "tool-error", "server-crash")
DURABLE_ONLY = frozenset({"server-crash"})
FAULT_POINT = "section:1"  # the fault lands once this step has finished: finished work to lose
LLM_DOWN_S = 5.0
TOOL_FAILURES = 2
DEADLINE_S = 300.0


@dataclass
class Run:
    fault: str
    mode: str
    outcome: Outcome
    model_requests: int
    min_requests: int
    duplicated_effects: int
    lost_effects: int


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


def check_faults(faults: list[str]) -> None:
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        raise ConfigError(f"--faults: unknown {', '.join(unknown)} (known: {', '.join(FAULTS)})")


class Evaluator:
    def __init__(self, stack: Stack, runs: int, faults: list[str], seed: int, concurrency: int) -> None:
        check_faults(faults)
        self.stack = stack
        self.runs = runs
        self.faults = faults
        self.rng = random.Random(seed)
        self.concurrency = concurrency
        self.steps = step_order(stack.config.pipeline.sections)
        self.llm_steps = len(self.steps) - 1  # save_report calls no model
        self.result = Evaluation(nominal_concurrency=concurrency)
        self.tap: LlmTap | None = None
        self.tapped: dict[str, Any] = {}
        self.config_file = ""

    # -- the whole evaluation -------------------------------------------------------------------------

    def run(self) -> Evaluation:
        stack = self.stack
        if not stack.is_up():
            with progress.activity("bringing the stack up (Restate, the model, the writer)"):
                stack.up()
        self.tap = LlmTap(
            stack.procs,
            stack.state.log_file("llm-tap"),
            stack.state.root / "llm-tap" / f"eval-{uuid.uuid4().hex}.jsonl",
        )
        upstream = urlsplit(stack.config.writer_model.base_url)
        self.tap.start(f"{upstream.scheme}://{upstream.netloc}")
        self.tapped = {"writer_model.base_url": f"{self.tap.url}{upstream.path}"}
        self.config_file = stack.writer.derived_config("evaluate", self.tapped)
        baseline, durable = Baseline(stack), Durable(stack)
        try:
            for mode in (baseline, durable):
                mode.start(self.config_file)
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
                            mode.start(self.config_file)
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
            stack.writer.start()  # back on its own config
            self.tap.stop()
        return self.result

    # -- one run ----------------------------------------------------------------------------------------

    def one(self, fault: str, mode: Mode) -> Run:
        body = howto_body(f"{RESTART_PROMPT} ({uuid.uuid4().hex[:6]})")
        setup, inject = FAULT_ACTIONS[fault]
        setup(self, mode)
        pending = mode.begin(body, f"eval_{mode.name}_{uuid.uuid4().hex[:12]}")
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(mode.finish, pending, DEADLINE_S)
            try:
                inject(self, mode, pending)
            finally:
                outcome = answer.result()
        self.restore(fault, mode)
        return self.measure(fault, mode, pending, outcome)

    def measure(self, fault: str, mode: Mode, pending: Pending, outcome: Outcome) -> Run:
        assert self.tap is not None
        requests = self.tap.settled_requests([pending.key])
        saves = [e for e in self.stack.writer.executions(pending.key) if e.step == "save_report" and e.outcome == "ok"]
        path = Path(str((outcome.output or {}).get("output_path", "")))
        lost = int(outcome.completed and not path.is_file())
        return Run(fault, mode.name, outcome, len(requests), self.llm_steps, max(0, len(saves) - 1), lost)

    def restore(self, fault: str, mode: Mode) -> None:
        if fault == "tool-error":
            mode.start(self.config_file)

    # -- fault points -----------------------------------------------------------------------------------

    def wait_fault_point(self, pending: Pending) -> None:
        follower = self.stack.writer.executions_follower(pending.key)
        poll(
            follower.update,
            lambda runs: any(e.step == FAULT_POINT and e.outcome == "ok" for e in runs),
            f"{FAULT_POINT} of {pending.key} to finish",
            DEADLINE_S,
            0.05,
        )

    def crash_writer(self, mode: Mode, pending: Pending, sig: signal.Signals) -> None:
        self.wait_fault_point(pending)
        if mode.kill(sig) is None:
            raise DrillError(f"the {mode.name} writer was not running at the fault point")
        mode.start(self.config_file)
        mode.recover(pending)

    def nominal_throughput(self, mode: Mode) -> float:
        """Completed requests per second with `concurrency` sent at once, no fault."""
        started = time.monotonic()
        pendings = [
            mode.begin(howto_body(f"{RESTART_PROMPT} (load {i})"), f"eval_{mode.name}_load_{uuid.uuid4().hex[:10]}")
            for i in range(self.concurrency)
        ]
        with ThreadPoolExecutor(self.concurrency) as pool:
            outcomes = list(pool.map(lambda p: mode.finish(p, DEADLINE_S), pendings))
        done = sum(o.completed for o in outcomes)
        return round(done / (time.monotonic() - started), 4)


def _nothing(evaluator: Evaluator, mode: Mode, *_: Any) -> None:
    """No fault."""


def _kill(evaluator: Evaluator, mode: Mode, pending: Pending) -> None:
    evaluator.crash_writer(mode, pending, signal.SIGKILL)


def _term(evaluator: Evaluator, mode: Mode, pending: Pending) -> None:
    evaluator.crash_writer(mode, pending, signal.SIGTERM)


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
    overrides = {**evaluator.tapped, "faults.tool_error.fail_first": TOOL_FAILURES}
    mode.start(evaluator.stack.writer.derived_config("evaluate-tool-error", overrides))


def _server_crash(evaluator: Evaluator, mode: Mode, pending: Pending) -> None:
    evaluator.wait_fault_point(pending)
    evaluator.stack.server.kill(signal.SIGKILL)
    evaluator.stack.server.start()
    mode.recover(pending)


FAULT_ACTIONS: dict[str, tuple[Callable[[Evaluator, Mode], None], Callable[[Evaluator, Mode, Pending], None]]] = {
    "nominal": (_nothing, _nothing),
    "kill": (_nothing, _kill),
    "term": (_nothing, _term),
    "llm-down": (_model_down, _model_back),
    "tool-error": (_failing_tool, _nothing),
    "server-crash": (_nothing, _server_crash),
}


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
