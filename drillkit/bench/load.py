"""N concurrent invocations against a running stack, measured from Restate's records and the writer's ledger.

    python -m drillkit.bench.load --config X.yaml --count 100 --count 20

brings the stack of X.yaml up, runs each count in turn and takes everything down (purging Restate's
data and the ledger, so point X.yaml's state_dir and ledger somewhere disposable). `run_load` is the
reusable part: it needs only the ingress and admin clients (and the ledger for request counts).

Latencies are Restate's (`completed_at - created_at` of `sys_invocation`), not the client's: an
invocation sent with `/send` is measured from when Restate accepted it until it completed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from drillkit.components.writer import executions, read_ledger
from drillkit.evidence import restate_time
from drillkit.howto import howto_body
from drillkit.restate_api import AdminApi, IngressApi
from drillkit.waits import WaitTimeout, poll

TOOL_STEPS = frozenset({"save_report"})


@dataclass(frozen=True)
class LoadResult:
    sent: int
    completed: int
    succeeded: int
    wall_s: float
    """From the first send until the last invocation completed (or the deadline)."""
    finished_in_time: bool
    latency_p50_s: float | None
    latency_p99_s: float | None
    latency_max_s: float | None
    llm_requests: int
    """Executions of LLM steps started for these invocations (ledger start lines): requests sent."""
    llm_steps: int
    """Distinct (invocation, LLM step) pairs that started: requests needed without retries."""
    unfinished_executions: int
    """Executions with a start and no end (in flight at the deadline, or killed)."""
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def requests_per_llm_step(self) -> float | None:
        return self.llm_requests / self.llm_steps if self.llm_steps else None


def run_load(
    ingress: IngressApi,
    admin: AdminApi,
    count: int,
    ledger_path: Path | None = None,
    body: dict[str, Any] | None = None,
    timeout_s: float = 900.0,
    poll_s: float = 1.0,
) -> LoadResult:
    """Send `count` invocations at once (`/send`), wait until all complete (at most `timeout_s`), measure."""
    started = time.monotonic()
    ids = [ingress.send(body or howto_body()) for _ in range(count)]
    id_list = ", ".join(f"'{i}'" for i in ids if i.replace("_", "").isalnum())
    sql = f"SELECT id, status, completion_result, created_at, completed_at FROM sys_invocation WHERE id IN ({id_list})"

    def rows() -> list[dict[str, Any]]:
        return admin.query(sql)

    def all_done(found: list[dict[str, Any]]) -> bool:
        return len(found) == count and all(r.get("status") == "completed" for r in found)

    try:
        final = poll(rows, all_done, f"{count} invocations to complete", timeout_s, interval_s=poll_s)
        in_time = True
    except WaitTimeout:
        final, in_time = rows(), False
    wall = time.monotonic() - started

    latencies = []
    for r in final:
        begin, end = restate_time(r.get("created_at")), restate_time(r.get("completed_at"))
        if r.get("status") == "completed" and begin is not None and end is not None:
            latencies.append(end - begin)
    ours = set(ids)
    runs = [e for e in executions(read_ledger(ledger_path)) if e.invocation_id in ours] if ledger_path else []
    llm_runs = [e for e in runs if e.step not in TOOL_STEPS]
    return LoadResult(
        sent=count,
        completed=sum(1 for r in final if r.get("status") == "completed"),
        succeeded=sum(1 for r in final if r.get("completion_result") == "success"),
        wall_s=round(wall, 2),
        finished_in_time=in_time,
        latency_p50_s=_round(statistics.median(latencies)) if latencies else None,
        latency_p99_s=_round(_percentile(latencies, 0.99)) if latencies else None,
        latency_max_s=_round(max(latencies)) if latencies else None,
        llm_requests=len(llm_runs),
        llm_steps=len({(e.invocation_id, e.step) for e in llm_runs}),
        unfinished_executions=sum(1 for e in runs if e.outcome is None),
        statuses=dict(Counter(str(r.get("status")) for r in final)),
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _round(value: float) -> float:
    return round(value, 2)


def main(argv: list[str]) -> int:
    from drillkit import config as drill_config
    from drillkit.stack import Stack

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="config file (its state_dir and ledger get purged)")
    parser.add_argument("--count", type=int, action="append", required=True, help="concurrent invocations")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for each run")
    args = parser.parse_args(argv)
    stack = Stack(drill_config.load(args.config))
    try:
        stack.up()
        for n in args.count:
            result = run_load(stack.ingress, stack.admin, n, stack.config.ledger.path, timeout_s=args.timeout)
            print(json.dumps({**asdict(result), "requests_per_llm_step": result.requests_per_llm_step}), flush=True)
    finally:
        stack.down(purge=True)
        stack.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
