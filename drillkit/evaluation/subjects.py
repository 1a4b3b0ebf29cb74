"""What `inv evaluate` runs in both modes: the shipped writer, or the configured target (`target:` with a
`baseline` and an `effects_dir`). A subject knows how to start its durable service and its baseline in
front of the LLM tap, what a request looks like, when its fault point has come, which model requests are
its own, and which side effects it left. Everything it reports comes from outside the service: the tap's
record, Restate's journal, the files on disk (and, for the shipped writer, its ledger as well).
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from drillkit.components.llm_tap import LlmTap, TapRequest
from drillkit.components.process import ConfigStamp, Listen, ManagedProcess
from drillkit.components.target import TargetService, new_nonce
from drillkit.components.writer import step_order
from drillkit.config import PROJECT_ROOT, TargetBaseline, from_project_root
from drillkit.errors import ConfigError
from drillkit.evidence import journal_steps
from drillkit.howto import RESTART_PROMPT, howto_body
from drillkit.procs import ProcessRecord, Stopped
from drillkit.stack import Stack
from drillkit.waits import WaitTimeout, poll

FAULT_POINT = "section:1"
"""The shipped writer's fault point: once this step has finished there is finished work to lose."""
BASELINE_PORT = 9090
SAVE_STEP = "save_report"


@dataclass(frozen=True)
class Request:
    """One request of the evaluation: its body, and `key`, what names it to Restate (idempotency key)
    and to the baseline (`x-request-id`); `marker` finds its model requests at the tap."""

    key: str
    body: dict[str, Any]
    marker: str


@dataclass(frozen=True)
class Effects:
    duplicated: int
    """Side effects done more than once (report files written twice, two reports for one request)."""
    lost: int
    """1 when the request completed and its report is not there."""


CodeParts = tuple[tuple[str, str | None], ...]

# What durability adds to the shipped writer, counted as code lines (not blank, not a comment, not a
# docstring): the durable service's entry (the Restate app, its server and shutdown hook), the Restate
# service definition and the retry options its steps carry, against the plain service's entry. The
# pipeline and its step runner serve both modes (the baseline runs them on a direct context), so they
# count for neither.
DURABLE_PARTS: CodeParts = (
    ("writer_service/server.py", None),
    ("writer_service/agent.py", "build_service"),
    ("writer_service/agent.py", "run_options"),
)
BASELINE_PARTS: CodeParts = (
    ("writer_service/baseline.py", "PlainApp"),
    ("writer_service/baseline.py", "BaselineApp"),
    ("writer_service/baseline.py", "serve_baseline"),
    ("writer_service/baseline.py", "main"),
    ("writer_service/baseline.py", "respond"),
)


class BaselineProcess(ManagedProcess):
    """The subject's plain service (no Restate) as a recorded process of ours."""

    def __init__(self, stack: Stack, port: int, path: str, health_path: str = "/health") -> None:
        super().__init__(stack.procs, "baseline", "baseline service (no Restate)", stack.state.log_file("baseline"))
        self.port = port
        self.path = path
        self.health_path = health_path
        self.stop_timeout_s = stack.config.service.grace_period_s + 5.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return self.url + self.path

    def health_url(self) -> str:
        return self.url + self.health_path

    def listens(self) -> list[Listen]:
        return [Listen("127.0.0.1", self.port, "the evaluation's baseline port")]


class Subject(Protocol):
    what: str
    baseline: BaselineProcess
    code_parts: tuple[CodeParts, CodeParts]
    """(durable, baseline) code the decision's code criterion counts."""

    def start_durable(self, tool_failures: int = 0, model_timeout_s: float | None = None) -> ProcessRecord: ...

    def kill_durable(self, sig: signal.Signals) -> Stopped | None: ...

    def send_durable(self, request: Request) -> str: ...

    def start_baseline(self, tool_failures: int = 0, model_timeout_s: float | None = None) -> ProcessRecord: ...

    def restore(self) -> None:
        """The durable service back on its own settings (no tap) when the evaluation ends."""

    def new_request(self, label: str) -> Request: ...

    def model_requests(self, request: Request, key: str) -> list[TapRequest]: ...

    def wait_fault_point(self, request: Request, key: str, durable: bool, timeout_s: float) -> None: ...

    def effects(self, request: Request, key: str, output: dict[str, Any] | None, completed: bool) -> Effects: ...

    def min_requests(self) -> int | None:
        """Model requests a request needs at least; None: measured from the nominal runs."""


def subject_of(stack: Stack, tap: LlmTap) -> Subject:
    if stack.target is None:
        return ShippedWriter(stack, tap)
    return ConfiguredTarget(stack, tap, stack.target)


def _tap_base(stack: Stack, tap: LlmTap) -> str:
    """The tap's address with the model's path (`/v1`): where the services send their model requests."""
    return f"{tap.url}{urlsplit(stack.config.writer_model.base_url).path}"


class ShippedWriter:
    """`writer_service`: durable with Restate, `writer_service.baseline` without; its ledger adds evidence."""

    what = "the shipped writer"

    def __init__(self, stack: Stack, tap: LlmTap) -> None:
        self.stack = stack
        self.tap = tap
        self.tapped = {"writer_model.base_url": _tap_base(stack, tap)}
        self.baseline = BaselineProcess(stack, BASELINE_PORT, "/run")
        self.code_parts = (DURABLE_PARTS, BASELINE_PARTS)
        self.llm_steps = len(step_order(stack.config.pipeline.sections)) - 1  # save_report calls no model

    def config_file(self, tool_failures: int, model_timeout_s: float | None = None) -> str:
        overrides: dict[str, Any] = dict(self.tapped)
        name = "evaluate"
        if tool_failures:
            overrides["faults.tool_error.fail_first"] = tool_failures
            name += "-tool-error"
        if model_timeout_s is not None:
            overrides["writer_model.timeout_s"] = model_timeout_s
            name += "-model-timeout"
        return self.stack.writer.derived_config(name, overrides)

    def start_durable(self, tool_failures: int = 0, model_timeout_s: float | None = None) -> ProcessRecord:
        return self.stack.writer.start(self.config_file(tool_failures, model_timeout_s))

    def kill_durable(self, sig: signal.Signals) -> Stopped | None:
        return self.stack.writer.kill(sig, 5.0)

    def send_durable(self, request: Request) -> str:
        return self.stack.ingress.send(request.body, idempotency_key=request.key)

    def start_baseline(self, tool_failures: int = 0, model_timeout_s: float | None = None) -> ProcessRecord:
        source = self.config_file(tool_failures, model_timeout_s)
        env = {**os.environ, "RESTATE_WRITER_CONFIG": source, "PYTHONPATH": str(PROJECT_ROOT)}
        argv = [sys.executable, "-m", "writer_service.baseline", "--port", str(self.baseline.port)]
        return self.baseline.spawn_or_reuse(argv, env=env, cwd=PROJECT_ROOT, stamp=ConfigStamp(source, source))

    def restore(self) -> None:
        self.stack.writer.start()

    def new_request(self, label: str) -> Request:
        key = f"eval_{label}_{uuid.uuid4().hex[:12]}"
        return Request(key, howto_body(f"{RESTART_PROMPT} ({uuid.uuid4().hex[:6]})"), key)

    def model_requests(self, request: Request, key: str) -> list[TapRequest]:
        return self.tap.settled_requests([key])  # the writer names its requests in the model's headers

    def wait_fault_point(self, request: Request, key: str, durable: bool, timeout_s: float) -> None:
        follower = self.stack.writer.executions_follower(key)
        poll(
            follower.update,
            lambda runs: any(e.step == FAULT_POINT and e.outcome == "ok" for e in runs),
            f"{FAULT_POINT} of {key} to finish",
            timeout_s,
            0.05,
        )

    def effects(self, request: Request, key: str, output: dict[str, Any] | None, completed: bool) -> Effects:
        saves = [e for e in self.stack.writer.executions(key) if e.step == SAVE_STEP and e.outcome == "ok"]
        path = Path(str((output or {}).get("output_path", "")))
        return Effects(max(0, len(saves) - 1), int(completed and not path.is_file()))

    def min_requests(self) -> int | None:
        return self.llm_steps


class ConfiguredTarget:
    """A target from the config: its `command` durable with Restate, its `baseline.command` without.
    Model requests are its own by the nonce in their bodies; side effects are the files in `effects_dir`
    holding that nonce; the fault point is its first model answer (journaled, on the durable side)."""

    def __init__(self, stack: Stack, tap: LlmTap, service: TargetService) -> None:
        spec = service.spec
        self.stack = stack
        self.tap = tap
        self.service = service
        self.baseline_spec = require_evaluable(service, stack.config.source)
        self.effects_dir = from_project_root(spec.effects_dir or Path("."))
        self.what = f"target {spec.service}"
        self.llm_url = _tap_base(stack, tap)
        self.baseline = BaselineProcess(stack, self.baseline_spec.port, self.baseline_spec.path)
        self.baseline.health_path = self.baseline_spec.health_path
        self.code_parts = (parts(self.baseline_spec.durable_code), parts(self.baseline_spec.baseline_code))

    def start_durable(self, tool_failures: int = 0, model_timeout_s: float | None = None) -> ProcessRecord:
        # A target's model timeout is its own setting (no key of ours names it): a hang lasts that long.
        return self.service.start(llm_base_url=self.llm_url, tool_failures=tool_failures)

    def kill_durable(self, sig: signal.Signals) -> Stopped | None:
        return self.service.kill(sig, 5.0)

    def send_durable(self, request: Request) -> str:
        return self.stack.ingress.send(
            request.body, idempotency_key=request.key, service=self.service.service, handler=self.service.handler
        )

    def start_baseline(self, tool_failures: int = 0, model_timeout_s: float | None = None) -> ProcessRecord:
        extra = {**self.service.environment(self.llm_url, tool_failures), **self.baseline_spec.env}
        argv = list(self.baseline_spec.command)
        if argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        source = self.stack.config.source
        stamp = ConfigStamp(f"{source}:{sorted(extra.items())}", f"{source} (baseline, {len(extra)} variables)")
        return self.baseline.spawn_or_reuse(
            argv, env={**os.environ, **extra}, cwd=from_project_root(self.service.spec.cwd), stamp=stamp
        )

    def restore(self) -> None:
        self.service.start()

    def new_request(self, label: str) -> Request:
        nonce = new_nonce()
        return Request(f"eval_{label}_{uuid.uuid4().hex[:12]}", self.service.body(nonce), nonce)

    def model_requests(self, request: Request, key: str) -> list[TapRequest]:
        def mine() -> list[TapRequest]:
            return [r for r in self.tap.requests() if request.marker in r.nonces]

        try:  # a caller can hold its answer a moment before the tap writes the end line
            return poll(mine, lambda rs: all(r.outcome is not None for r in rs), "the tap's end lines", 10.0)
        except WaitTimeout:
            return mine()

    def wait_fault_point(self, request: Request, key: str, durable: bool, timeout_s: float) -> None:
        """Once the first model answer is done: journaled (durable), or answered at the tap (baseline)."""
        deadline = time.monotonic() + timeout_s

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        if not durable:
            poll(
                lambda: [r for r in self.tap.requests() if request.marker in r.nonces and r.status == 200],
                bool,
                f"the first model answer to {key}",
                left(),
                0.05,
            )
            return

        def completed() -> int:
            return sum(s.completed for s in journal_steps(self.stack.admin.journal(key)))

        # Runs done before the first model request (a timestamp, say) are not the model's work.
        poll(
            lambda: [r for r in self.tap.requests() if request.marker in r.nonces],
            bool,
            f"the first model request of {key}",
            left(),
            0.05,
        )
        before = completed()
        poll(completed, lambda n: n > before, f"the first model answer of {key} journaled", left(), 0.05)

    def effects(self, request: Request, key: str, output: dict[str, Any] | None, completed: bool) -> Effects:
        files = [p for p in sorted(self.effects_dir.rglob("*")) if p.is_file() and holds(p, request.marker)]
        return Effects(max(0, len(files) - 1), int(completed and not files))

    def min_requests(self) -> int | None:
        return None


def holds(path: Path, marker: str) -> bool:
    try:
        return marker in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def parts(specs: list[str]) -> CodeParts:
    """`file` or `file:function` -> (file, function or None)."""
    found = []
    for spec in specs:
        path, _, name = spec.partition(":")
        found.append((path, name or None))
    return tuple(found)


def require_evaluable(service: TargetService, source: str) -> TargetBaseline:
    spec = service.spec
    if spec.baseline is None:
        raise ConfigError(
            f"{source}: field target.baseline is not set: `inv evaluate` compares the target with the same "
            "service run without Restate, and needs its command and port (docs/evaluation.md)"
        )
    if spec.effects_dir is None:
        raise ConfigError(
            f"{source}: field target.effects_dir is not set: `inv evaluate` counts the report files each "
            "request left there (written twice, or missing)"
        )
    if not spec.startable:
        raise ConfigError(f"{source}: target.uri: `inv evaluate` kills and restarts the service; give target.command")
    if not service.tells_invocations_apart():
        raise ConfigError(
            f"{source}: field target.body: no {{{{nonce}}}} in the body: the evaluation tells requests apart by it"
        )
    return spec.baseline
