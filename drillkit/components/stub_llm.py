"""A zero-latency OpenAI-compatible chat endpoint, so the model does not hide Restate's own costs.

    python -m drillkit.components.stub_llm --port 8092 [--delay-ms 0]

It answers `POST /v1/chat/completions` at once (or after `--delay-ms`, to keep invocations in flight
for crash storms): the outline and summary schemas get valid JSON, everything else a short text.
`POST /stub/hold[?after=N]` makes every completion but the next N wait (the ones already waiting
too) until `POST /stub/release`: a drill that must land a fault while invocations are between steps
holds the model instead of betting on a delay that a busy machine can outrun.
Plain asyncio and HTTP/1.1 keep-alive: a few hundred microseconds per request, not a web framework's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from drillkit.components.process import ManagedProcess
from drillkit.config import PROJECT_ROOT
from drillkit.procs import ProcessRecord, ProcessTable

DEFAULT_PORT = 8092

TEXT = "A short stub section: the stub endpoint answers instantly so that only Restate's costs remain."


def completion(request: dict[str, Any]) -> dict[str, Any]:
    fmt = request.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") or {}
    props = schema.get("properties") or {}
    if "sections" in props:
        n = props["sections"].get("minItems", 3)
        content = json.dumps({"research_topic": "Stub report", "sections": [f"Part {i}" for i in range(1, n + 1)]})
    elif "short_summary" in props:
        content = json.dumps({"short_summary": "Stub summary.", "follow_up_questions": ["What next?"]})
    else:
        content = TEXT
    return {
        "id": "stub",
        "object": "chat.completion",
        "created": 0,
        "model": request.get("model", "stub"),
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


class Gate:
    """Open unless held; completions wait at it (a drill's hold, never longer than the drill's cleanup).
    A hold can let `after` more completions through first (one event loop: no lock needed)."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.waiting = 0
        self.allowed = 0

    def hold(self, after: int = 0) -> None:
        self.allowed = after
        self.open.clear()

    def release(self) -> None:
        self.allowed = 0
        self.open.set()

    async def pass_through(self) -> None:
        if self.open.is_set():
            return
        if self.allowed > 0:
            self.allowed -= 1
            return
        self.waiting += 1
        try:
            await self.open.wait()
        finally:
            self.waiting -= 1


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float, gate: Gate) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            if method == "POST" and path.endswith("/chat/completions"):
                if delay_s:
                    await asyncio.sleep(delay_s)
                await gate.pass_through()
                status, payload = "200 OK", completion(json.loads(body or b"{}"))
            elif method == "POST" and urlsplit(path).path in ("/stub/hold", "/stub/release"):
                if urlsplit(path).path == "/stub/hold":
                    gate.hold(int(parse_qs(urlsplit(path).query).get("after", ["0"])[0]))
                else:
                    gate.release()
                status, payload = "200 OK", {"held": not gate.open.is_set(), "waiting": gate.waiting}
            elif path == "/stub/status":
                status, payload = "200 OK", {"held": not gate.open.is_set(), "waiting": gate.waiting}
            elif path.endswith("/health") or path.endswith("/models"):
                status, payload = "200 OK", {"status": "ok", "data": [{"id": "stub"}]}
            else:
                status, payload = "404 Not Found", {"error": {"message": f"no route {path}"}}
            data = json.dumps(payload).encode()
            writer.write(
                f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n".encode()
                + data
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(host: str, port: int, delay_s: float) -> None:
    gate = Gate()
    server = await asyncio.start_server(lambda r, w: handle(r, w, delay_s, gate), host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"stub_llm: serving on http://{host}:{port}/v1 (delay {delay_s * 1000:.0f} ms)", flush=True)
    async with server:
        await stop.wait()


class StubLlm(ManagedProcess):
    """The stub as a component: drills that are about Restate (not the model) run on it."""

    def __init__(self, procs: ProcessTable, log_file: Path, port: int = DEFAULT_PORT) -> None:
        super().__init__(procs, "stub-llm", "stub LLM", log_file)
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health_url(self) -> str:
        return f"{self.url}/health"

    def start(self, delay_ms: float = 0.0) -> ProcessRecord:
        """Serve with `delay_ms` per completion (a running stub is stopped first: the delay is as asked)."""
        self.stop()
        argv = [
            sys.executable,
            "-m",
            "drillkit.components.stub_llm",
            "--port",
            str(self.port),
            "--delay-ms",
            str(delay_ms),
        ]
        return self.spawn_or_reuse(argv, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}, cwd=PROJECT_ROOT)

    def hold(self, after: int = 0) -> int:
        """Every completion but the next `after` waits from now on until `release`; returns how many
        were already waiting."""
        return self._gate(f"hold?after={after}")

    def release(self) -> int:
        """Answer the held completions and every later one; returns how many were waiting."""
        return self._gate("release")

    def waiting(self) -> int:
        """Completions parked at the hold right now (the stub's own count)."""
        response = httpx.get(f"{self.url}/stub/status", timeout=10.0)
        response.raise_for_status()
        return int(response.json()["waiting"])

    def _gate(self, what: str) -> int:
        response = httpx.post(f"{self.url}/stub/{what}", timeout=10.0)
        response.raise_for_status()
        return int(response.json()["waiting"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8092, help="port to listen on")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="wait this long before each completion")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
