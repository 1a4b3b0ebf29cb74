"""The writer without Restate: the same pipeline (`agent.write_report`: model, prompts, file writing) in a
plain ASGI app, as the team would run it if they did not adopt Restate. The evaluation (`inv evaluate`)
compares it with the durable writer, fault by fault.

`POST /run` with the seed's body answers 200 and the report, or 500 with the error; the caller retries
(see `drillkit.evaluation.modes.Baseline`). Steps run at once (`DirectContext`), nothing is journaled, so a crash
or an error means the whole request again. The request's `x-request-id` header names it in the ledger
and in the model requests' headers, so the evaluation counts the same things in both modes; a careful
client sends the same id on every retry. Nothing here is made worse on purpose: same model client,
same timeouts, same concurrency limit.

    RESTATE_WRITER_CONFIG=configs/local.yaml python -m writer_service.baseline --port 9090
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from types import SimpleNamespace
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config
from restate.exceptions import TerminalError

from writer_service.agent import WriterRuntime, write_report
from writer_service.config import CONFIG_ENV, ConfigError, WriterConfig
from writer_service.ledger import ExecutionLedger
from writer_service.llm import LlmClient

log = logging.getLogger("writer_service.baseline")
REQUEST_ID_HEADER = b"x-request-id"
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class DirectContext:
    """Runs each step at once, without Restate: the same pipeline code, minus durability."""

    def __init__(self, invocation_id: str) -> None:
        self._request = SimpleNamespace(id=invocation_id)

    def request(self) -> SimpleNamespace:
        return self._request

    def run_typed(self, name: str, action: Any, options: Any = None, /) -> Any:
        return action()


Handler = Callable[[bytes, dict[str, str]], Awaitable[tuple[int, dict[str, Any]]]]


class PlainApp:
    """A plain ASGI service: `POST /run` answered by `handle(body, headers) -> (status, payload)`,
    `GET /health`, the lifespan protocol. The baselines of both reference writers serve through it."""

    def __init__(self, handle: Handler) -> None:
        self.handle = handle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        if scope["method"] == "GET" and scope["path"] == "/health":
            await respond(send, 200, {"status": "ok", "pid": os.getpid()})
            return
        if scope["method"] != "POST" or scope["path"] != "/run":
            await respond(send, 404, {"error": "POST /run"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        status, payload = await self.handle(body, headers)
        await respond(send, status, payload)


class BaselineApp(PlainApp):
    """The shipped writer's pipeline on a direct context, one request at a time as it comes."""

    def __init__(self, runtime: WriterRuntime) -> None:
        super().__init__(self.run)
        self.runtime = runtime

    async def run(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        request_id = headers.get(REQUEST_ID_HEADER.decode()) or f"base_{uuid.uuid4().hex}"
        try:
            result = await write_report(DirectContext(request_id), self.runtime, body)  # type: ignore[arg-type]
        except TerminalError as exc:  # what can never succeed: the caller must not retry it
            return (400 if exc.status_code < 500 else exc.status_code), {"error": exc.message}
        except Exception as exc:  # a step failed: the whole request failed, as in any plain service
            log.warning("request %s failed: %s: %s", request_id, type(exc).__name__, exc)
            return 500, {"error": f"{type(exc).__name__}: {exc}"}
        return 200, result


async def respond(send: Send, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": data})


async def serve_baseline(config: WriterConfig, host: str, port: int) -> None:
    runtime = WriterRuntime(
        config=config, llm=LlmClient(config.writer_model), ledger=ExecutionLedger(config.ledger.path)
    )
    hc = Config()
    hc.bind = [f"{host}:{port}"]
    hc.graceful_timeout = config.service.grace_period_s
    hc.accesslog = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    log.info("baseline writer (no Restate) on http://%s:%d, pid %d", host, port, os.getpid())
    try:
        await serve(BaselineApp(runtime), hc, mode="asgi", shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    finally:
        await runtime.llm.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m writer_service.baseline", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9090, help="port to listen on (default 9090)")
    args = parser.parse_args(argv)
    try:
        config = WriterConfig.load()
    except ConfigError as exc:
        print(f"baseline writer: config error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.service.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("config: %s", os.environ.get(CONFIG_ENV) or "configs/local.yaml")
    asyncio.run(serve_baseline(config, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
