"""The two ways a service is run in the evaluation, behind one interface (the service itself is the
subject, `subjects.py`: the shipped writer or the configured target).

- durable: the service under Restate (`inv up`'s stack); a run is `POST .../run/send`, then Restate's
  row until it completes; after a crash the service is restarted and the invocation resumed.
- baseline: the same pipeline in a plain ASGI app (`writer_service.baseline`, or the target's
  `baseline.command`), no Restate; a run is `POST /run` by a caller that retries the whole request on
  connection errors, 5xx and timeouts (tenacity, exponential backoff), with the same deadline; after a
  crash the process is restarted, as a supervisor would.

Both are counted the same way: the LLM tap's record (by the writer's attribution headers, or a
target's nonce), the side effects on disk, Restate's journal where there is one.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from drillkit.errors import DrillError, HttpError
from drillkit.evaluation.subjects import Request, Subject
from drillkit.procs import ProcessRecord, Stopped
from drillkit.stack import Stack
from drillkit.waits import WaitTimeout, poll


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
    request: Request


class Mode(Protocol):
    name: str

    def start(self, tool_failures: int = 0, model_timeout_s: float | None = None) -> ProcessRecord: ...

    def kill(self, sig: signal.Signals) -> Stopped | None: ...

    def begin(self, request: Request) -> Pending: ...

    def finish(self, pending: Pending, deadline_s: float) -> Outcome: ...

    def recover(self, pending: Pending) -> None: ...


class Baseline:
    """The caller of the plain service: retries the whole request (tenacity) until the deadline."""

    name = "baseline"

    def __init__(self, stack: Stack, subject: Subject) -> None:
        self.subject = subject
        self.client = httpx.Client(timeout=httpx.Timeout(stack.config.writer_model.timeout_s * 10, connect=2.0))

    def start(self, tool_failures: int = 0, model_timeout_s: float | None = None) -> ProcessRecord:
        return self.subject.start_baseline(tool_failures, model_timeout_s)

    def stop(self) -> None:
        self.subject.baseline.stop()
        self.client.close()

    def kill(self, sig: signal.Signals) -> Stopped | None:
        return self.subject.baseline.kill(sig, 5.0)

    def begin(self, request: Request) -> Pending:
        # Sent by `finish`, which blocks: run it in a thread.
        return Pending(request.key, request.body, time.monotonic(), request)

    def recover(self, pending: Pending) -> None:
        """Nothing: the caller's retries are the baseline's whole recovery."""

    def finish(self, pending: Pending, deadline_s: float) -> Outcome:
        body, request_id, started = pending.body, pending.key, pending.started
        endpoint = self.subject.baseline.endpoint
        attempts = 0

        def send() -> dict[str, Any]:
            nonlocal attempts
            attempts += 1
            answer = self.client.post(endpoint, json=body, headers={"x-request-id": request_id})
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
    """The service under Restate: send, then Restate's row until completed (the stack must be up)."""

    name = "durable"

    def __init__(self, stack: Stack, subject: Subject) -> None:
        self.stack = stack
        self.subject = subject

    def start(self, tool_failures: int = 0, model_timeout_s: float | None = None) -> ProcessRecord:
        return self.subject.start_durable(tool_failures, model_timeout_s)

    def kill(self, sig: signal.Signals) -> Stopped | None:
        return self.subject.kill_durable(sig)

    def begin(self, request: Request) -> Pending:
        return Pending(self.subject.send_durable(request), request.body, time.monotonic(), request)

    def finish(self, pending: Pending, deadline_s: float) -> Outcome:
        invocation_id, started = pending.key, pending.started
        admin = self.stack.admin
        left = max(1.0, deadline_s - (time.monotonic() - started))

        def current() -> dict[str, Any]:
            try:
                return admin.invocation(invocation_id) or {}
            except HttpError:  # the server restarting (the server-crash fault): its row comes back with it
                return {}

        try:
            row = poll(
                current,
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
