"""The LLM tap: a recording OpenAI-compatible reverse proxy between the writer and its model.

It is the drills' third source of evidence, independent of Restate's journal and of the writer's
ledger: it sees every request that reaches the model's door, whoever sent it and whatever became of
the sender. The writer never imports this module; a drill or a benchmark points the writer's
`writer_model.base_url` at the tap instead of the model.

    python -m drillkit.components.llm_tap --host 127.0.0.1 --port 8093 --upstream http://127.0.0.1:8091 \\
        --record .drill/llm-tap.jsonl

Every path except `GET /tap/health` is forwarded to the upstream (method, path, query, body, end-to-end
headers; hop-by-hop headers dropped) and the upstream's status, headers and body come back. Bodies are
streamed through as they arrive, so `stream: true` (server-sent events) works. The tap never retries.

The record is one JSON line per event, each appended with a single `os.write` on an `O_APPEND`
descriptor (one tap process writes a file; the event loop serialises the writes, so lines never
interleave):

    {"event": "request", "id", "time", "method", "path", "invocation_id", "step", "attempt", "model",
     "fingerprint", "nonces"}
    {"event": "end", "id", "time", "status", "duration_ms", "error", "outcome"}

The request line is written when the request has arrived, before it is forwarded, so a request whose
caller is killed mid-way still counts. `invocation_id`, `step` and `attempt` come from the headers
`X-Restate-Invocation-Id`, `X-Writer-Step`, `X-Writer-Attempt`; `model` from the JSON body; `fingerprint`
(sha256 of the body's JSON, keys sorted: the same question asked twice) and `nonces` (the drill nonces,
`drill-` and 12 hex digits, found in the body) attribute requests of a service that sends no headers. Outcomes:

- `ok`: the upstream's answer, whatever its status (a 500 from the model is `ok` with status 500),
  was passed on in full;
- `upstream_error`: the upstream could not be reached or broke off (status 502, or 504 on a timeout,
  when the tap could still answer; the status already sent when the body broke off mid-way);
- `client_gone`: the caller disconnected before the answer was passed on; the upstream request is
  abandoned (its connection closed), status null unless the response had started;
- `tap_stopped`: the tap was shut down with the request still in flight;
- `fault`: the drill's fault plan (`--faults FILE`, `drillkit.components.tap_faults`) answered instead
  of the model, or changed its answer; the end line then names the fault (`"fault": "429"`) and, for a
  429, the Retry-After it sent (`retry_after_s`). The request line names the fault too.

A request line without an end line means the request is still in flight, or the tap itself was killed
meanwhile. The end line is written after the answer has been handed to the server, so a caller may hold
its whole answer a moment before that line exists: a reader that needs end lines waits for them.

Cost (`python -m drillkit.bench.tap_overhead`): about 1 ms added per request on an idle 2-core machine,
but a ceiling of a few hundred requests/s, most of it in httpcore's connection pool, whose bookkeeping
grows with the connections in use (encode/httpx#3215). Enough in front of a real model; in front of the
zero-latency stub under the load benchmark it would be the bottleneck.

Starting it as a recorded process (what a stack component does):

    from drillkit.components import llm_tap
    from drillkit.procs import ProcessTable

    procs = ProcessTable(state / "procs")
    argv = llm_tap.tap_argv(sys.executable, "127.0.0.1", 8093, "http://127.0.0.1:8091", state / "llm-tap.jsonl")
    record = procs.spawn("llm-tap", argv, state / "logs" / "llm-tap.log")
    llm_tap.wait_healthy("http://127.0.0.1:8093", timeout_s=30)
    ...
    procs.kill("llm-tap")  # SIGTERM: in-flight requests get the grace period, then `tap_stopped`
    counts = llm_tap.requests_per_step(llm_tap.read_tap(state / "llm-tap.jsonl"), invocation_id)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import re
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import httpx

from drillkit.components import tap_faults
from drillkit.components.process import ManagedProcess
from drillkit.components.tap_faults import FaultPlan, FaultSchedule
from drillkit.config import PROJECT_ROOT
from drillkit.procs import ProcessRecord, ProcessTable
from drillkit.waits import WaitTimeout, poll
from writer_service.jsonl import AppendedLines

log = logging.getLogger("drillkit.components.llm_tap")

HEALTH_PATH = "/tap/health"
DEFAULT_PORT = 8093
INVOCATION_HEADER = "x-restate-invocation-id"
STEP_HEADER = "x-writer-step"
ATTEMPT_HEADER = "x-writer-attempt"

# RFC 9110 section 7.6.1, plus what the tap's own client sets from the URL and the body it sends.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
REQUEST_ONLY_DROPPED = frozenset({"host", "content-length"})

Outcome = Literal["ok", "upstream_error", "client_gone", "tap_stopped", "fault"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# -- the record ---------------------------------------------------------------------------------------


class TapRecorder:
    """Appends event lines to the record file; one descriptor for the tap's life."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, event: dict[str, Any]) -> None:
        line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
        # One write on O_APPEND: the line lands whole at the end. No fsync: a killed tap loses nothing
        # already written; only a host crash would.
        written = os.write(self._fd, line)
        if written != len(line):  # only on a full disk; the reader skips the torn line
            log.error("record %s: short write (%d of %d bytes)", self.path, written, len(line))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@dataclass(frozen=True)
class TapRequest:
    """One request as the tap saw it; the end fields are None while (or if forever) no end line exists."""

    id: str
    time: float
    method: str
    path: str
    invocation_id: str | None
    step: str | None
    attempt: int | str | None
    model: str | None
    end_time: float | None = None
    status: int | None = None
    duration_ms: float | None = None
    outcome: str | None = None
    error: str | None = None
    fingerprint: str | None = None
    """sha256 of the request body as JSON with sorted keys: the same question asked again has the same one."""
    nonces: tuple[str, ...] = ()
    """The drill nonces (`drill-` and 12 hex digits) the body holds: which invocation asked, with no header."""
    fault: str | None = None
    """The fault the drill's plan gave this request (None: forwarded as it was)."""
    retry_after_s: int | None = None
    """The Retry-After a 429 fault sent, in seconds."""


class TapFollower:
    """Reads a record incrementally: each `update` parses only the lines appended since the last one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines = AppendedLines(path)
        self._requests: dict[str, TapRequest] = {}  # insertion order is arrival order

    def update(self) -> list[TapRequest]:
        """The requests that arrived or ended since the last call, in their current state."""
        changed: dict[str, TapRequest] = {}
        for event in _events(self._lines.read()):
            request = _apply(self._requests, event)
            if request is not None:
                changed[request.id] = request
        return list(changed.values())

    def requests(self) -> list[TapRequest]:
        """Every request read so far, in arrival order."""
        return list(self._requests.values())


def read_tap(path: Path | str) -> list[TapRequest]:
    """Every request in the record, in arrival order, paired with its end line when there is one.

    A torn last line (the tap killed mid-write) or any line that is not an event is skipped."""
    requests: dict[str, TapRequest] = {}
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    for event in _events(raw):
        _apply(requests, event)
    return list(requests.values())


def requests_per_step(
    records: Iterable[TapRequest], invocation_id: str | None = None
) -> Counter[tuple[str | None, str | None]]:
    """How many requests reached the tap per (invocation, step), whatever their outcome."""
    return Counter(
        (r.invocation_id, r.step) for r in records if invocation_id is None or r.invocation_id == invocation_id
    )


def _events(raw: bytes) -> Iterable[dict[str, Any]]:
    for line in raw.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and isinstance(event.get("id"), str):
            yield event


def _apply(requests: dict[str, TapRequest], event: dict[str, Any]) -> TapRequest | None:
    try:
        if event.get("event") == "request":
            request = TapRequest(
                id=event["id"],
                time=float(event["time"]),
                method=str(event["method"]),
                path=str(event["path"]),
                invocation_id=event.get("invocation_id"),
                step=event.get("step"),
                attempt=event.get("attempt"),
                model=event.get("model"),
                fingerprint=event.get("fingerprint"),
                nonces=tuple(event.get("nonces") or ()),
                fault=event.get("fault"),
            )
        elif event.get("event") == "end" and event["id"] in requests:
            request = replace(
                requests[event["id"]],
                end_time=float(event["time"]),
                status=event.get("status"),
                duration_ms=event.get("duration_ms"),
                outcome=event.get("outcome"),
                error=event.get("error"),
                fault=event.get("fault") or requests[event["id"]].fault,
                retry_after_s=event.get("retry_after_s"),
            )
        else:
            return None
    except (KeyError, TypeError, ValueError):
        return None
    requests[request.id] = request
    return request


# -- the proxy ----------------------------------------------------------------------------------------


def default_timeout(timeout_s: float = 600.0) -> httpx.Timeout:
    """Generous reads: the caller's own timeout decides when to give up (and then shows as client_gone)."""
    return httpx.Timeout(timeout_s, connect=5.0)


def upstream_client(timeout_s: float = 600.0, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The tap's one client: no retries, no redirects, enough connections for hundreds in flight."""
    client = httpx.AsyncClient(
        timeout=default_timeout(timeout_s),
        limits=httpx.Limits(max_connections=2048, max_keepalive_connections=512, keepalive_expiry=30.0),
        follow_redirects=False,
        transport=transport,
    )
    # httpx adds its own Accept, Accept-Encoding and User-Agent to every request: the upstream must see
    # the caller's, not the tap's (an Accept-Encoding the caller never sent could get it gzip).
    for name in ("accept", "accept-encoding", "user-agent"):
        del client.headers[name]
    return client


class TapApp:
    """The ASGI application. `close` releases the upstream client and the record file."""

    def __init__(
        self, upstream: str, recorder: TapRecorder, client: httpx.AsyncClient, faults: FaultPlan | None = None
    ) -> None:
        self.upstream = httpx.URL(upstream)
        self._prefix = self.upstream.raw_path.split(b"?")[0].rstrip(b"/")
        self.recorder = recorder
        self.client = client
        self.faults = FaultSchedule(faults) if faults is not None else None

    async def close(self) -> None:
        await self.client.aclose()
        self.recorder.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        # websockets are not the model's business: returning without accepting refuses them

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == HEALTH_PATH and scope["method"] in ("GET", "HEAD"):
            await _respond_json(send, 200, {"status": "ok", "upstream": str(self.upstream), "pid": os.getpid()})
            return
        body = await _read_body(receive)
        if body is None:
            return  # the caller left before its request was complete: nothing reached the model
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        rid = uuid.uuid4().hex
        started = time.monotonic()
        step = _header(headers, STEP_HEADER)
        fault = self.faults.take(scope["method"], scope["path"], step) if self.faults else None
        self.recorder.write(
            {
                "event": "request",
                "id": rid,
                "time": time.time(),
                "method": scope["method"],
                "path": scope["path"],
                "invocation_id": _header(headers, INVOCATION_HEADER),
                "step": step,
                "attempt": _attempt(_header(headers, ATTEMPT_HEADER)),
                "model": _model(body),
                "fingerprint": fingerprint(body),
                "nonces": sorted(set(NONCE_PATTERN.findall(body.decode("utf-8", "replace")))),
                **({"fault": fault} if fault else {}),
            }
        )
        progress = _Progress()
        answer = (
            self._fault(fault, self.faults.plan, scope, headers, body, send, progress)
            if fault is not None and self.faults is not None
            else self._forward(scope, headers, body, send, progress)
        )
        forward = asyncio.ensure_future(answer)
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({forward, gone}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await _cancel(forward, gone)
            self._end(rid, started, progress.status, "tap_stopped", "the tap shut down with the request in flight")
            raise
        if forward.done():  # the answer won, even if the disconnect that follows it arrived as well
            gone.cancel()
            try:
                outcome, error = forward.result()
            except _UpstreamBroke as exc:
                # Headers are gone already: the caller must see a broken response, not a short one that
                # looks whole, so the exception propagates and the server drops the connection.
                self._end(rid, started, progress.status, "upstream_error", str(exc))
                raise
            except _InjectedReset as exc:  # the same, on purpose: the drill's connection reset
                self._end(rid, started, progress.status, "fault", str(exc), fault)
                raise
            self._end(rid, started, progress.status, outcome, error, fault if outcome == "fault" else None)
            return
        await _cancel(forward)
        self._end(rid, started, progress.status, "client_gone", "the caller disconnected before the answer", fault)

    async def _forward(
        self, scope: Scope, headers: list[tuple[str, str]], body: bytes, send: Send, progress: _Progress
    ) -> tuple[Outcome, str | None]:
        url = self.upstream.copy_with(raw_path=self._target(scope))
        request = self.client.build_request(scope["method"], url, headers=_end_to_end(headers), content=body)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.RequestError as exc:
            status = 504 if isinstance(exc, httpx.TimeoutException) else 502
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            progress.status = status
            await _respond_json(send, status, _openai_error(f"LLM tap: upstream {self.upstream} failed: {error}"))
            return "upstream_error", error
        try:
            progress.status = response.status_code
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (k, v) for k, v in response.headers.raw if k.decode("latin-1").lower() not in HOP_BY_HOP
                    ],
                }
            )
            try:
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.RequestError as exc:
                raise _UpstreamBroke(f"{type(exc).__name__} mid-body: {exc}") from exc
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()
        return "ok", None

    async def _fault(
        self,
        fault: str,
        plan: FaultPlan,
        scope: Scope,
        headers: list[tuple[str, str]],
        body: bytes,
        send: Send,
        progress: _Progress,
    ) -> tuple[Outcome, str | None]:
        """Answer as the plan says: alone for a status fault, else from the model's real answer, changed."""
        if fault == "hang":
            # The fault itself: no answer at all. The caller's timeout normally ends it first (recorded
            # as client_gone); if not, the connection is dropped, never answered.
            await asyncio.sleep(plan.hang_s)
            raise _InjectedReset(f"no answer in {plan.hang_s:g} s: connection dropped")
        status = tap_faults.STATUS_FAULTS.get(fault)
        if status is not None:
            progress.status = status
            await _respond_json(send, status, tap_faults.error_body(status), tap_faults.status_headers(plan, status))
            return "fault", f"answered {status} instead of the model"
        url = self.upstream.copy_with(raw_path=self._target(scope))
        request = self.client.build_request(scope["method"], url, headers=_end_to_end(headers), content=body)
        try:
            response = await self.client.send(request)  # read whole: the fault changes or paces all of it
        except httpx.RequestError as exc:
            progress.status = 502
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            await _respond_json(send, 502, _openai_error(f"LLM tap: upstream {self.upstream} failed: {error}"))
            return "upstream_error", f"{error} (the {fault} fault could not be applied)"
        answer = response.content
        kept = [
            (k, v)
            for k, v in response.headers.raw
            if k.decode("latin-1").lower() not in HOP_BY_HOP | {"content-length", "content-encoding"}
        ]
        if fault == "truncated":
            answer = tap_faults.truncate_answer(answer)
        elif fault == "malformed":
            answer = tap_faults.malform_answer(answer)
        progress.status = response.status_code
        length = [(b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": response.status_code, "headers": kept + length})
        if fault == "reset":
            half = answer[: len(answer) // 2]
            await send({"type": "http.response.body", "body": half, "more_body": True})
            raise _InjectedReset(f"connection dropped after {len(half)} of {len(answer)} bytes of the model's answer")
        if fault == "slow":
            parts, pause = tap_faults.trickle(answer, plan.slow_s)
            for part in parts:
                await asyncio.sleep(pause)  # the fault itself: the answer's pace, not a wait for anything
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return "fault", f"the model's answer trickled out over {plan.slow_s:g} s"
        await send({"type": "http.response.body", "body": answer, "more_body": False})
        return "fault", f"the model's answer {fault}: {len(response.content)} bytes became {len(answer)}"

    def _target(self, scope: Scope) -> bytes:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        target = self._prefix + raw_path.split(b"?")[0]
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        return target

    def _end(
        self,
        rid: str,
        started: float,
        status: int | None,
        outcome: Outcome,
        error: str | None,
        fault: str | None = None,
    ) -> None:
        extra: dict[str, Any] = {}
        if fault is not None:
            extra["fault"] = fault
            if status == 429 and self.faults is not None:
                extra["retry_after_s"] = self.faults.plan.retry_after_s
        self.recorder.write(
            {
                "event": "end",
                "id": rid,
                "time": time.time(),
                "status": status,
                "duration_ms": round((time.monotonic() - started) * 1000, 3),
                "error": error,
                "outcome": outcome,
                **extra,
            }
        )


class _UpstreamBroke(Exception):
    pass


class _InjectedReset(Exception):
    """The drill's `reset` fault: raised after part of the body, so the server drops the connection."""


@dataclass
class _Progress:
    status: int | None = None


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in headers if k == name), None)


def _attempt(value: str | None) -> int | str | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return value


NONCE_PATTERN = re.compile(r"drill-[0-9a-f]{12}")
"""`drillkit.components.target.new_nonce`'s shape."""


def fingerprint(body: bytes) -> str:
    """The request's identity: sha256 of its JSON with sorted keys (of the raw bytes if not JSON)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


def _model(body: bytes) -> str | None:
    if not body.lstrip().startswith(b"{"):
        return None
    try:
        model = json.loads(body).get("model")
    except (ValueError, AttributeError):
        return None
    return model if isinstance(model, str) else None


def _end_to_end(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    listed = {token.strip().lower() for k, v in headers if k == "connection" for token in v.split(",") if token.strip()}
    dropped = HOP_BY_HOP | REQUEST_ONLY_DROPPED | listed
    return [(k, v) for k, v in headers if k not in dropped]


def _openai_error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "upstream_error", "param": None, "code": "llm_tap_upstream"}}


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _cancel(*tasks: asyncio.Future[Any]) -> None:
    """Cancel and wait, so the upstream response is closed before the end line is written."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass  # whatever a forward that nobody waits for anymore ran into


async def _respond_json(
    send: Send, status: int, payload: dict[str, Any], extra_headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    headers += extra_headers or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def build_app(
    upstream: str,
    record: Path,
    timeout_s: float = 600.0,
    transport: httpx.AsyncBaseTransport | None = None,
    faults: FaultPlan | None = None,
) -> TapApp:
    return TapApp(upstream, TapRecorder(record), upstream_client(timeout_s, transport), faults)


# -- the process --------------------------------------------------------------------------------------


async def serve(
    host: str, port: int, upstream: str, record: Path, timeout_s: float, grace_s: float, faults: FaultPlan | None = None
) -> None:
    """Serve until SIGTERM or SIGINT, then drain in-flight requests for up to `grace_s`."""
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.backlog = 4096  # hundreds of callers connecting at once must not overflow the accept queue
    config.graceful_timeout = grace_s
    config.keep_alive_timeout = 75
    config.include_server_header = False  # the upstream's own headers pass through
    config.include_date_header = False
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")  # through the root handler only, not twice
    app = build_app(upstream, record, timeout_s, faults=faults)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("llm tap serving on http://%s:%d -> %s, pid %d, record %s", host, port, upstream, os.getpid(), record)
    if faults is not None:
        log.info("fault plan: %s", faults.to_json())
    try:
        await hypercorn_serve(app, config, mode="asgi", shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    finally:
        await app.close()
    log.info("stopped")


def tap_argv(
    python: str, host: str, port: int, upstream: str, record: Path | str, faults: Path | None = None
) -> list[str]:
    """The command line that serves a tap from one process (its PID is the one serving)."""
    return [
        python,
        "-m",
        "drillkit.components.llm_tap",
        "--host",
        host,
        "--port",
        str(port),
        "--upstream",
        upstream,
        "--record",
        str(record),
        *(["--faults", str(faults)] if faults is not None else []),
    ]


def wait_healthy(url: str, timeout_s: float) -> None:
    """Wait until the tap at `url` (its base URL) answers its own health check; WaitTimeout otherwise."""
    health = f"{url.rstrip('/')}{HEALTH_PATH}"

    def probe() -> bool:
        try:
            return httpx.get(health, timeout=1.0, trust_env=False).status_code == 200
        except httpx.RequestError:
            return False

    poll(probe, bool, f"LLM tap health at {health}", timeout_s, interval_s=0.02)


class LlmTap(ManagedProcess):
    """The tap as a component of the stack: started in front of `upstream`, recording into `record`."""

    def __init__(self, procs: ProcessTable, log_file: Path, record: Path, port: int = DEFAULT_PORT) -> None:
        super().__init__(procs, "llm-tap", "LLM tap", log_file)
        self.record = record
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health_url(self) -> str:
        return f"{self.url}{HEALTH_PATH}"

    def start(self, upstream: str, faults: FaultPlan | None = None) -> ProcessRecord:
        """Serve in front of `upstream` (its base URL, without /v1); a running tap is stopped first, so
        it always forwards where it is told. `faults`: the drill's plan, written beside the record."""
        self.stop()
        self.record.parent.mkdir(parents=True, exist_ok=True)
        plan = faults.write(self.record.with_suffix(".faults.json")) if faults is not None else None
        argv = tap_argv(sys.executable, "127.0.0.1", self.port, upstream.rstrip("/"), self.record, plan)
        return self.spawn_or_reuse(argv, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}, cwd=PROJECT_ROOT)

    def requests(self, invocation_ids: Iterable[str] | None = None) -> list[TapRequest]:
        records = read_tap(self.record)
        if invocation_ids is None:
            return records
        wanted = set(invocation_ids)
        return [r for r in records if r.invocation_id in wanted]

    def settled_requests(self, invocation_ids: Iterable[str], timeout_s: float = 10.0) -> list[TapRequest]:
        """The requests of these invocations once each has its end line (or after `timeout_s`, as they are).

        A caller can hold its answer a moment before the tap writes the end line; evidence read right
        after the last invocation completed would otherwise show an answered request as unanswered."""
        wanted = list(invocation_ids)
        try:
            return poll(
                lambda: self.requests(wanted),
                lambda rs: all(r.outcome is not None for r in rs),
                "the tap's end lines",
                timeout_s,
            )
        except WaitTimeout:
            return self.requests(wanted)  # a request still open is evidence too: the checks name it


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m drillkit.components.llm_tap",
        description="A recording OpenAI-compatible reverse proxy: forwards everything, records every request.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, required=True, help="port to listen on")
    parser.add_argument("--upstream", required=True, help="base URL to forward to, e.g. http://127.0.0.1:8091")
    parser.add_argument("--record", type=Path, required=True, help="JSON-lines file the events are appended to")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="read timeout towards the upstream")
    parser.add_argument("--grace-s", type=float, default=5.0, help="drain time for in-flight requests on SIGTERM")
    parser.add_argument(
        "--faults",
        type=Path,
        default=None,
        help="JSON fault plan (drillkit.components.tap_faults.FaultPlan): model errors answered for chosen requests",
    )
    args = parser.parse_args(argv)
    plan = FaultPlan.read(args.faults) if args.faults is not None else None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per forwarded request is the record's job
    asyncio.run(serve(args.host, args.port, args.upstream, args.record, args.timeout_s, args.grace_s, plan))


if __name__ == "__main__":
    main()
