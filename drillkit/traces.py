"""Restate's own traces of an invocation, kept beside a drill's report as Jaeger JSON (`trace.json`).

restate-server 1.7.12 documents `tracing-json-path` (env `RESTATE_TRACING_JSON_PATH`) as writing Jaeger
JSON files, and loads the option (`--dump-config` shows it), but writes nothing: in 1.7 the JSON file
exporter only hangs off the runtime tracing layer, which the server has disabled ("temporarily disabled
due to significant lock contention" in restate's `tracing_instrumentation`); the invocation spans go only
to `tracing-endpoint`. So the server is pointed (`server_env`) at an OTLP/HTTP JSON endpoint on loopback
(`otlp+json+http://127.0.0.1:4318/v1/traces`, measured here) and the drill runs that endpoint itself,
in-process, for as long as it runs: `TraceCollector` keeps what arrives and `jaeger_document` turns an
invocation's spans into the Jaeger JSON that the Jaeger UI's "JSON File" upload opens.

Spans (1.7.12): `ingress`, `invocation-start`, one `invocation-attempt` per attempt (status code 2 when
it failed, `ctx.run` completions as its events), `invocation-end` (`restate.invocation.result`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TRACE_HOST = "127.0.0.1"
TRACE_PORT = 4318  # OTLP/HTTP's usual port: a user's own collector there receives the same spans
ENDPOINT_ENV = "RESTATE_TRACING_ENDPOINT"
INVOCATION_ID = "restate.invocation.id"
OTLP_ERROR = 2  # OTLP StatusCode: 0 unset, 1 ok, 2 error
MAX_BODY = 16 * 1024 * 1024


def server_env(host: str = TRACE_HOST, port: int = TRACE_PORT) -> dict[str, str]:
    """What restate-server needs to send its invocation spans to the drill's collector."""
    return {
        ENDPOINT_ENV: f"otlp+json+http://{host}:{port}/v1/traces",
        # The batch exporter's default is 5 s; a drill gathers its evidence a moment after completion.
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }


@dataclass(frozen=True)
class Span:
    """One OTLP span with its resource attributes, as received."""

    span: dict[str, Any]
    resource: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.span.get("name", ""))

    @property
    def attributes(self) -> dict[str, Any]:
        return attributes(self.span.get("attributes"))

    @property
    def start_s(self) -> float:
        return int(self.span.get("startTimeUnixNano", 0)) / 1e9

    @property
    def end_s(self) -> float:
        return int(self.span.get("endTimeUnixNano", 0)) / 1e9

    @property
    def failed(self) -> bool:
        return int((self.span.get("status") or {}).get("code", 0) or 0) == OTLP_ERROR


def attributes(items: Any) -> dict[str, Any]:
    """OTLP JSON key/value lists (`[{"key", "value": {"stringValue": ...}}]`) as a plain dict."""
    out: dict[str, Any] = {}
    for item in items or []:
        value = item.get("value") or {}
        out[str(item.get("key"))] = next(iter(value.values()), None) if value else None
    return out


def spans_of(payload: dict[str, Any]) -> list[Span]:
    """The spans of one OTLP `ExportTraceServiceRequest` (JSON)."""
    found: list[Span] = []
    for resource_spans in payload.get("resourceSpans") or []:
        resource = attributes((resource_spans.get("resource") or {}).get("attributes"))
        for scope in resource_spans.get("scopeSpans") or []:
            found.extend(Span(span, resource) for span in scope.get("spans") or [])
    return found


class TraceCollector:
    """An OTLP/HTTP JSON receiver on loopback, in a thread of the drill's own process."""

    def __init__(self, host: str = TRACE_HOST, port: int = TRACE_PORT) -> None:
        self.host, self.port = host, port
        self._spans: list[Span] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        """Listen; OSError when the port is taken (the drill then goes on without traces)."""
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if self.path.rstrip("/") != "/v1/traces" or length > MAX_BODY:
                    self.send_error(404 if length <= MAX_BODY else 413)
                    return
                try:
                    payload = json.loads(self.rfile.read(length))
                except ValueError:
                    self.send_error(415, "OTLP JSON only (use an otlp+json+http:// endpoint)")
                    return
                collector.add(spans_of(payload) if isinstance(payload, dict) else [])
                body = b"{}"
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # the library never prints
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="trace-collector", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def add(self, spans: list[Span]) -> None:
        with self._lock:
            self._spans.extend(spans)

    def spans(self, invocation_id: str) -> list[Span]:
        """The spans whose attributes name the invocation, in start order."""
        with self._lock:
            chosen = [s for s in self._spans if s.attributes.get(INVOCATION_ID) == invocation_id]
        return sorted(chosen, key=lambda s: s.start_s)

    def wait_for_end(self, invocation_id: str, timeout_s: float) -> list[Span]:
        """The invocation's spans once its `invocation-end` arrived, or what there is after `timeout_s`
        (the exporter flushes every 200 ms; a server killed mid-attempt never sends that attempt)."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.spans(invocation_id)
            if any(s.name.startswith("invocation-end") for s in spans) or time.monotonic() >= deadline:
                return spans
            time.sleep(0.05)


@contextmanager
def collecting(host: str = TRACE_HOST, port: int = TRACE_PORT) -> Iterator[TraceCollector | str]:
    """A running collector, or why there is none (the port taken)."""
    collector = TraceCollector(host, port)
    try:
        collector.start()
    except OSError as exc:
        yield f"no trace collector: {host}:{port} is taken ({exc.strerror})"
        return
    try:
        yield collector
    finally:
        collector.stop()


# -- Jaeger JSON ------------------------------------------------------------------------------------


def _tag(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    return {"key": key, "type": "string", "value": str(value)}


def _micros(nanos: Any) -> int:
    return int(nanos or 0) // 1000


def jaeger_document(spans: list[Span]) -> dict[str, Any]:
    """Jaeger's JSON (what its UI's "JSON File" upload reads): one trace per trace id."""
    processes: dict[str, dict[str, Any]] = {}
    process_of: dict[str, str] = {}
    traces: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        raw = span.span
        resource_key = json.dumps(span.resource, sort_keys=True)
        if resource_key not in process_of:
            process_of[resource_key] = f"p{len(process_of) + 1}"
            processes[process_of[resource_key]] = {
                "serviceName": str(span.resource.get("service.name", "Restate")),
                "tags": [_tag(k, v) for k, v in span.resource.items()],
            }
        trace_id = str(raw.get("traceId", ""))
        status = raw.get("status") or {}
        tags = [_tag(k, v) for k, v in span.attributes.items()]
        tags.append(_tag("otel.status_code", {0: "UNSET", 1: "OK", 2: "ERROR"}.get(int(status.get("code") or 0))))
        if span.failed:
            tags.append(_tag("error", True))
        if status.get("message"):
            tags.append(_tag("otel.status_description", status["message"]))
        references = (
            [{"refType": "CHILD_OF", "traceID": trace_id, "spanID": raw["parentSpanId"]}]
            if raw.get("parentSpanId")
            else []
        )
        logs = [
            {
                "timestamp": _micros(event.get("timeUnixNano")),
                "fields": [
                    _tag("event", event.get("name", "")),
                    *(_tag(k, v) for k, v in attributes(event.get("attributes")).items()),
                ],
            }
            for event in raw.get("events") or []
        ]
        start = _micros(raw.get("startTimeUnixNano"))
        traces.setdefault(trace_id, []).append(
            {
                "traceID": trace_id,
                "spanID": str(raw.get("spanId", "")),
                "operationName": span.name,
                "references": references,
                "startTime": start,
                "duration": max(0, _micros(raw.get("endTimeUnixNano")) - start),
                "tags": tags,
                "logs": logs,
                "processID": process_of[resource_key],
                "warnings": None,
            }
        )
    return {
        "data": [
            {"traceID": trace_id, "spans": members, "processes": processes, "warnings": None}
            for trace_id, members in traces.items()
        ]
    }


def timeline_spans(spans: list[Span], started_at: float) -> list[dict[str, Any]]:
    """The compact form kept in journal.json and drawn on report.html: offsets from the drill's start."""
    out = []
    for span in spans:
        out.append(
            {
                "name": span.name.split(" ")[0],
                "offset_s": round(span.start_s - started_at, 3),
                "duration_s": round(max(0.0, span.end_s - span.start_s), 3),
                "failed": span.failed,
                "result": span.attributes.get("restate.invocation.result"),
                "events": [
                    {
                        "offset_s": round(int(e.get("timeUnixNano") or 0) / 1e9 - started_at, 3),
                        "name": str(e.get("name", "")).rsplit(".", 1)[-1],
                    }
                    for e in span.span.get("events") or []
                ],
            }
        )
    return out


def keep_invocation_trace(
    collector: TraceCollector | str, invocation_id: str | None, started_at: float, directory: Path, finished: bool
) -> dict[str, Any]:
    """Evidence for the record, and `trace.json` in the report dir when the invocation left spans."""
    if isinstance(collector, str):
        return {"trace_note": collector}
    if not invocation_id:
        return {"trace_note": "no invocation was sent: no trace"}
    spans = collector.wait_for_end(invocation_id, 3.0 if finished else 0.5)
    if not spans:
        return {
            "trace_note": "Restate sent no span for the invocation (a server started before tracing was configured, "
            "or killed before its exporter flushed)"
        }
    path = directory / "trace.json"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(jaeger_document(spans), indent=1))
    except OSError as exc:  # the drill's own outcome and cleanups come first
        return {"trace_note": f"could not write {path}: {exc}"}
    evidence: dict[str, Any] = {"trace_file": path.name, "trace_spans": timeline_spans(spans, started_at)}
    if not any(s.name.startswith("invocation-end") for s in spans):
        evidence["trace_note"] = (
            "no invocation-end span: the trace is partial (the invocation had not ended when the drill gathered "
            "its evidence, or a server killed mid-attempt lost the spans it had not exported yet)"
        )
    return evidence
