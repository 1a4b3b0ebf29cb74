"""The model gate under Restate's own timeouts, counted by a proxy that is not ours.

Restate's invoker takes a step's silence for a hang: restate-sdk 1.3.0 sends nothing between a step's
start and its result, so after `inactivity_timeout` Restate closes its side of the stream and
`abort_timeout` later it aborts the attempt, throwing away a model answer that was about to arrive. The
writer bounds a step's wait for a model slot (`writer_model.max_slot_wait_s`, derived from the two
timeouts and the model's own) and gives the attempt up, with nothing sent, when no slot comes in time.

The check scales everything down: Restate's timeouts (server-wide and the writer's per-service ones) to
2 s and 4 s, a gate of 1 slot, short answers, N invocations at once. nginx from Debian stands between
the writer and the model with an access log: it counts what the model was really asked, per invocation,
step and attempt, independently of the writer's ledger and of Restate.

    python -m drillkit.bench.gate --config configs/local.yaml --invocations 8

(inside `scripts/loopback-only --contained`); `inv bench --only gate` runs the same.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from drillkit import config as drill_config
from drillkit.bench.harness import Figure
from drillkit.bench.load import run_load
from drillkit.components.writer import executions, read_ledger
from drillkit.errors import DrillError
from drillkit.ports import listening
from drillkit.stack import Stack
from drillkit.waits import poll

PROXY_PORT = 8097
INACTIVITY_S = 2
ABORT_S = 4
# Short answers: a call must end well inside inactivity + abort even on a busy 2-core machine.
MAX_TOKENS = 16
MODEL_TIMEOUT_S = 4.0
COMPLETIONS = "/v1/chat/completions"


class ProxyError(DrillError):
    """nginx is missing or would not start; the message says which and shows its error output."""


@dataclass
class NginxProxy:
    """nginx as a plain reverse proxy with an access log: one process (no daemon, no master), started and
    stopped by its own Popen handle, its files in a temporary directory."""

    upstream: str
    """host:port of the model."""
    port: int = PROXY_PORT
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gate-nginx-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def access_log(self) -> Path:
        return self.directory / "access.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def conf(self) -> str:
        d = self.directory
        return f"""
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  log_format gate escape=json '{{"method":"$request_method","uri":"$uri","status":$status,'
    '"invocation":"$http_x_restate_invocation_id","step":"$http_x_writer_step",'
    '"attempt":"$http_x_writer_attempt","request_time":$request_time,"time":$msec}}';
  access_log {d}/access.log gate;
  server {{
    listen 127.0.0.1:{self.port};
    client_max_body_size 2m;
    location = /gate-status {{
      stub_status;
      access_log off;
    }}
    location / {{
      proxy_pass http://{self.upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_read_timeout 600s;
    }}
  }}
}}
"""

    def start(self) -> None:
        binary = shutil.which("nginx") or next(
            (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
        )
        if binary is None:
            raise ProxyError("nginx is not installed (Debian: apt-get install -y nginx); it is the independent witness")
        if listening("127.0.0.1", self.port):
            raise ProxyError(f"127.0.0.1:{self.port} is already taken; the proxy needs it")
        conf = self.directory / "nginx.conf"
        conf.write_text(self.conf())
        self.process = subprocess.Popen(
            [binary, "-p", str(self.directory), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=(self.directory / "stderr.log").open("wb"),
        )
        try:
            poll(
                lambda: listening("127.0.0.1", self.port) or self.process is None or self.process.poll() is not None,
                bool,
                f"nginx on 127.0.0.1:{self.port}",
                10,
                interval_s=0.05,
            )
        finally:
            if self.process.poll() is not None:
                err = (self.directory / "stderr.log").read_text(errors="replace")
                err += (
                    (self.directory / "error.log").read_text(errors="replace")
                    if (self.directory / "error.log").exists()
                    else ""
                )
                raise ProxyError(f"nginx exited with {self.process.returncode}: {err.strip()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # our own child, by its handle: QUIT/TERM makes nginx exit
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def requests(self) -> list[dict[str, Any]]:
        """The access log's model requests, one dict each (a request is logged when it ends)."""
        if not self.access_log.exists():
            return []
        rows = [json.loads(line) for line in self.access_log.read_text().splitlines() if line.strip()]
        return [r for r in rows if r["method"] == "POST" and r["uri"] == COMPLETIONS]

    def requests_in_flight(self) -> int:
        """Requests nginx is still handling, from its own `stub_status` (less the one asking)."""
        with httpx.Client(timeout=5.0) as client:
            text = client.get(f"http://127.0.0.1:{self.port}/gate-status").text
        match = re.search(r"Reading: (\d+) Writing: (\d+)", text)
        if match is None:
            raise ProxyError(f"nginx stub_status answered something unexpected: {text[:200]!r}")
        return int(match.group(1)) + int(match.group(2)) - 1

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass(frozen=True)
class GateResult:
    invocations: int
    sections: int
    completed: int
    succeeded: int
    wall_s: float
    latency_p50_s: float | None
    latency_max_s: float | None
    proxy_requests: int
    """Model requests nginx saw for these invocations."""
    requests_per_invocation: dict[str, int]
    proxy_statuses: dict[str, int]
    executions_open: int
    """Ledger executions with a start and no end (none may stay open: no process was killed)."""
    gave_up_waiting: int
    """Step attempts that got no slot in time and ended with nothing sent."""
    cancelled: int
    """Step attempts the SDK cancelled (Restate ended the attempt): a model answer may have been lost."""
    restate_retries: int
    """Invocation attempts Restate retried (TransientError events), summed."""
    max_request_s: float

    @property
    def llm_steps(self) -> int:
        return self.sections + 2

    @property
    def exact(self) -> bool:
        """Every invocation asked the model exactly once per LLM step, and every request was answered."""
        counts = self.requests_per_invocation
        return (
            len(counts) == self.invocations
            and all(n == self.llm_steps for n in counts.values())
            and set(self.proxy_statuses) == {"200"}
        )


def gate_overrides(proxy: NginxProxy) -> dict[str, Any]:
    """The scaled-down world: Restate's timeouts both server-wide and per service, a gate of 1."""
    return {
        "writer_model.base_url": proxy.base_url,
        "writer_model.max_concurrency": 1,
        "writer_model.max_tokens": MAX_TOKENS,
        "writer_model.timeout_s": MODEL_TIMEOUT_S,
        "writer_model.max_slot_wait_s": None,  # derived: 2 + 4 - 4 (model) - 1 (slack) = 1 s
        "service.inactivity_timeout_s": INACTIVITY_S,
        "service.abort_timeout_s": ABORT_S,
        "runtime.server_env.RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT": f"{INACTIVITY_S}s",
        "runtime.server_env.RESTATE_WORKER__INVOKER__ABORT_TIMEOUT": f"{ABORT_S}s",
    }


def model_upstream(stack: Stack) -> str:
    parts = urlsplit(stack.config.writer_model.base_url)
    return f"{parts.hostname}:{parts.port or 80}"


@contextmanager
def gate_stack(base: Stack, proxy_port: int = PROXY_PORT, scaled: bool = True) -> Iterator[tuple[Stack, NginxProxy]]:
    """The base stack's config pointed at nginx in front of its model, scaled down unless `scaled` is
    False (then as configured: Restate's own timeouts, the configured gate); all stopped after."""
    proxy = NginxProxy(model_upstream(base), proxy_port)
    try:
        proxy.start()
        overrides = gate_overrides(proxy) if scaled else {"writer_model.base_url": proxy.base_url}
        stack = Stack(drill_config.load(base.writer.derived_config("gate-timeouts", overrides)))
        try:
            stack.up()
            yield stack, proxy
        finally:
            stack.down()
            stack.close()
    finally:
        proxy.cleanup()


def run_gate_check(stack: Stack, proxy: NginxProxy, invocations: int, timeout_s: float = 600.0) -> GateResult:
    """Send `invocations` at once, wait for them all, and count what the proxy, the ledger and Restate saw."""
    load = run_load(
        stack.ingress, stack.admin, invocations, stack.config.ledger_file(), timeout_s=timeout_s, poll_s=0.5
    )
    ids = _latest_ids(stack, invocations)
    mine = set(ids)
    # nginx logs a request when it ends: wait until it is handling none (an aborted attempt's request
    # may still be generating after its invocation completed), then read its log.
    poll(proxy.requests_in_flight, lambda n: n == 0, "nginx to finish every model request", 60, interval_s=0.1)
    requests = [r for r in proxy.requests() if r["invocation"] in mine]
    sent = [e for e in executions(read_ledger(stack.config.ledger_file())) if e.invocation_id in mine]
    per_invocation = Counter(r["invocation"] for r in requests)
    events = stack.admin.query(
        "SELECT id, event_type FROM sys_journal_events WHERE id IN ("
        + ", ".join(f"'{i}'" for i in ids)
        + ") AND event_type = 'TransientError'"
    )
    return GateResult(
        invocations=invocations,
        sections=stack.config.pipeline.sections,
        completed=load.completed,
        succeeded=load.succeeded,
        wall_s=load.wall_s,
        latency_p50_s=load.latency_p50_s,
        latency_max_s=load.latency_max_s,
        proxy_requests=len(requests),
        requests_per_invocation={i: per_invocation.get(i, 0) for i in ids},
        proxy_statuses=dict(Counter(str(r["status"]) for r in requests)),
        executions_open=sum(1 for e in sent if e.outcome is None),
        gave_up_waiting=sum(1 for e in sent if (e.error or "").startswith("LLM not asked")),
        cancelled=sum(1 for e in sent if (e.error or "").startswith("cancelled")),
        restate_retries=len(events),
        max_request_s=max((float(r["request_time"]) for r in requests), default=0.0),
    )


def _latest_ids(stack: Stack, count: int) -> list[str]:
    rows = stack.admin.query(
        f"SELECT id FROM sys_invocation WHERE target_service_name = 'WriterAgentRestate' "
        f"ORDER BY created_at DESC LIMIT {int(count)}"
    )
    return [r["id"] for r in rows]


def figures(result: GateResult) -> list[Figure]:
    n = result.invocations
    group = "gate"
    where = f"{n} invocations, gate of 1, Restate inactivity {INACTIVITY_S} s / abort {ABORT_S} s"
    return [
        Figure(
            group, f"{where}: completed with success", "count", [result.succeeded], f"{n} of {n}", result.succeeded == n
        ),
        Figure(
            group,
            "model requests per invocation at nginx (min / max)",
            "count",
            [
                min(result.requests_per_invocation.values(), default=0),
                max(result.requests_per_invocation.values(), default=0),
            ],
            f"exactly {result.llm_steps}",
            result.exact,
        ),
        Figure(
            group,
            "model requests at nginx, all",
            "count",
            [result.proxy_requests],
            f"{n * result.llm_steps}",
            result.proxy_requests == n * result.llm_steps,
        ),
        Figure(
            group, "ledger executions left open", "count", [result.executions_open], "0", result.executions_open == 0
        ),
        Figure(group, "step attempts cancelled by an abort", "count", [result.cancelled], "0", result.cancelled == 0),
        Figure(group, "step attempts that gave up waiting (nothing sent)", "count", [result.gave_up_waiting]),
        Figure(group, "Restate retries (TransientError events)", "count", [result.restate_retries]),
        Figure(group, "longest model request at nginx", "s", [result.max_request_s]),
        Figure(group, "wall time", "s", [result.wall_s]),
    ]


def gate_group(base: Stack, invocations: int) -> list[Figure]:
    with gate_stack(base) as (stack, proxy):
        return figures(run_gate_check(stack, proxy, invocations))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/local.yaml", help="base config (its model is proxied)")
    parser.add_argument("--invocations", type=int, default=8, help="invocations sent at once")
    parser.add_argument(
        "--as-configured",
        action="store_true",
        help="keep the config's gate, model and Restate's timeouts (only the proxy is added): 100 invocations on "
        "the real model take about 12 minutes of both cores",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the invocations")
    args = parser.parse_args(argv)
    base = Stack(drill_config.load(args.config))
    started = time.monotonic()
    try:
        with gate_stack(base, scaled=not args.as_configured) as (stack, proxy):
            result = run_gate_check(stack, proxy, args.invocations, timeout_s=args.timeout)
    finally:
        base.close()
    summary = {
        "exact": result.exact,
        "seconds": round(time.monotonic() - started, 1),
        # How many invocations asked the model how many times: {5: N} when nothing was wasted.
        "invocations_by_request_count": dict(Counter(result.requests_per_invocation.values())),
        "load_average_after": os.getloadavg(),
    }
    print(json.dumps({**asdict(result), **summary}, indent=2))
    return 0 if result.exact and result.succeeded == args.invocations and result.executions_open == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
