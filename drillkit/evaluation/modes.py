"""The two ways the writer is run in the evaluation, behind one interface.

- durable: the writer as a Restate service (`inv up`'s stack); a run is `POST .../run/send`, then
  Restate's row until it completes; after a crash the writer is restarted and the invocation resumed.
- baseline: the same pipeline in a plain ASGI app (`writer_service.baseline`), no Restate; a run is
  `POST /run` by a caller that retries the whole request on connection errors, 5xx and timeouts
  (tenacity, exponential backoff), with the same deadline; after a crash the process is restarted, as a
  supervisor would.

Both write the same ledger (each step execution) and send the same attribution headers to the model,
so the LLM tap counts the same things in both modes.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from drillkit.components.process import ConfigStamp, Listen, ManagedProcess
from drillkit.config import PROJECT_ROOT
from drillkit.errors import DrillError
from drillkit.procs import ProcessRecord, Stopped
from drillkit.stack import Stack
from drillkit.waits import WaitTimeout, poll

BASELINE_PORT = 9090


@dataclass
class Outcome:
    """One request's end, as its caller saw it."""

    completed: bool
    seconds: float
    output: dict[str, Any] | None
    error: str | None = None
    attempts: int = 1
    """Requests the caller sent (baseline) or Restate attempts (durable, from its row when known)."""


@dataclass(frozen=True)
class Pending:
    """A request on its way: `key` is what the ledger and the model's headers call it (Restate's
    invocation id, or the baseline's x-request-id)."""

    key: str
    body: dict[str, Any]
    started: float


class Mode(Protocol):
    name: str

    def start(self, config_file: str | None = None) -> ProcessRecord: ...

    def kill(self, sig: signal.Signals) -> Stopped | None: ...

    def begin(self, body: dict[str, Any], request_id: str) -> Pending: ...

    def finish(self, pending: Pending, deadline_s: float) -> Outcome: ...

    def recover(self, pending: Pending) -> None: ...


class BaselineWriter(ManagedProcess):
    """`python -m writer_service.baseline` as a recorded process of ours."""

    def __init__(self, stack: Stack, port: int = BASELINE_PORT) -> None:
        super().__init__(
            stack.procs, "baseline-writer", "baseline writer (no Restate)", stack.state.log_file("baseline")
        )
        self.stack = stack
        self.port = port
        self.stop_timeout_s = stack.config.service.grace_period_s + 5.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health_url(self) -> str:
        return f"{self.url}/health"

    def listens(self) -> list[Listen]:
        return [Listen("127.0.0.1", self.port, "the evaluation's baseline port")]

    def start(self, config_file: str | None = None) -> ProcessRecord:
        source = config_file or self.stack.config.source
        env = {**os.environ, "RESTATE_WRITER_CONFIG": source, "PYTHONPATH": str(PROJECT_ROOT)}
        argv = [sys.executable, "-m", "writer_service.baseline", "--port", str(self.port)]
        return self.spawn_or_reuse(argv, env=env, cwd=PROJECT_ROOT, stamp=ConfigStamp(source, source))


class Baseline:
    """The caller of the plain service: retries the whole request (tenacity) until the deadline."""

    name = "baseline"

    def __init__(self, stack: Stack) -> None:
        self.writer = BaselineWriter(stack)
        self.client = httpx.Client(timeout=httpx.Timeout(stack.config.writer_model.timeout_s * 10, connect=2.0))

    def start(self, config_file: str | None = None) -> ProcessRecord:
        return self.writer.start(config_file)

    def stop(self) -> None:
        self.writer.stop()
        self.client.close()

    def kill(self, sig: signal.Signals) -> Stopped | None:
        return self.writer.kill(sig, 5.0)

    def begin(self, body: dict[str, Any], request_id: str) -> Pending:
        return Pending(request_id, body, time.monotonic())  # sent by `finish`, which blocks: run it in a thread

    def recover(self, pending: Pending) -> None:
        """Nothing: the caller's retries are the baseline's whole recovery."""

    def finish(self, pending: Pending, deadline_s: float) -> Outcome:
        body, request_id, started = pending.body, pending.key, pending.started
        attempts = 0

        def send() -> dict[str, Any]:
            nonlocal attempts
            attempts += 1
            answer = self.client.post(f"{self.writer.url}/run", json=body, headers={"x-request-id": request_id})
            if answer.status_code >= 500:
                raise RetryableAnswer(f"HTTP {answer.status_code}: {answer.text[:200]}")
            answer.raise_for_status()
            result: dict[str, Any] = answer.json()
            return result

        retrying = Retrying(
            stop=stop_after_delay(deadline_s),
            wait=wait_exponential(multiplier=0.2, max=5.0),
            retry=retry_if_exception(lambda e: isinstance(e, RetryableAnswer | httpx.TransportError)),
            reraise=True,
        )
        try:
            output = retrying(send)
        except (RetryableAnswer, httpx.HTTPError) as exc:
            return Outcome(False, time.monotonic() - started, None, str(exc), attempts)
        return Outcome(True, time.monotonic() - started, output, None, attempts)


class RetryableAnswer(Exception):
    """A 5xx from the plain service: the request failed as a whole and may succeed if sent again."""


class Durable:
    """The writer under Restate: send, then Restate's row until completed (the stack must be up)."""

    name = "durable"

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def start(self, config_file: str | None = None) -> ProcessRecord:
        return self.stack.writer.start(config_file) if config_file else self.stack.writer.start()

    def kill(self, sig: signal.Signals) -> Stopped | None:
        return self.stack.writer.kill(sig, 5.0)

    def begin(self, body: dict[str, Any], request_id: str) -> Pending:
        return Pending(self.stack.ingress.send(body, idempotency_key=request_id), body, time.monotonic())

    def finish(self, pending: Pending, deadline_s: float) -> Outcome:
        invocation_id, started = pending.key, pending.started
        admin = self.stack.admin
        left = max(1.0, deadline_s - (time.monotonic() - started))
        try:
            row = poll(
                lambda: admin.invocation(invocation_id) or {},
                lambda r: r.get("status") == "completed",
                f"{invocation_id} to complete",
                left,
                0.1,
            )
        except WaitTimeout:
            admin.kill_invocation(invocation_id)  # nothing runs on after its deadline
            return Outcome(False, time.monotonic() - started, None, "deadline passed", 0)
        seconds = time.monotonic() - started
        if row.get("completion_result") != "success":
            return Outcome(False, seconds, None, str(row.get("completion_failure"))[:300])
        output = self.stack.ingress.output(invocation_id)
        return Outcome(True, seconds, output if isinstance(output, dict) else None)

    def recover(self, pending: Pending) -> None:
        """Retry now rather than at the next backoff (what `inv resume` does)."""
        try:
            self.stack.admin.resume(pending.key)
        except DrillError:
            pass  # Restate had already retried it


def request_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"
