"""Serve the writer from one process: hypercorn's asyncio `serve`, h2c and HTTP/1.1 on one port.

One process, because a drill kills the PID it recorded: the `hypercorn` command runs a supervisor and
a worker, and SIGKILL of the supervisor leaves the worker serving.

SIGTERM: restate-sdk takes over the loop's SIGTERM handler on the first request, so a handler set with
`loop.add_signal_handler` would be silently replaced. The SDK's `install_shutdown_hook` keeps a list of
hooks per signal; ours sets the event that hypercorn's `shutdown_trigger` awaits, and hypercorn then
drains in-flight requests for up to `graceful_timeout`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import restate
from hypercorn.asyncio import serve
from hypercorn.config import Config
from restate.server import install_shutdown_hook

from writer_service.agent import WriterRuntime, build_service
from writer_service.config import CONFIG_ENV, HOST_OVERRIDE_ENV, ConfigError, WriterConfig
from writer_service.identity import load_identity_keys
from writer_service.ledger import ExecutionLedger
from writer_service.llm import LlmClient

log = logging.getLogger("writer_service.server")


def bind_host(config: WriterConfig) -> str:
    return os.environ.get(HOST_OVERRIDE_ENV) or config.service.host


def hypercorn_config(config: WriterConfig) -> Config:
    hc = Config()
    hc.bind = [f"{bind_host(config)}:{config.service.port}"]
    hc.graceful_timeout = config.service.grace_period_s
    hc.h2_max_concurrent_streams = 2**31 - 1  # Restate multiplexes every invocation on one h2 connection
    hc.keep_alive_timeout = 75
    hc.accesslog = None
    return hc


async def serve_writer(config: WriterConfig, identity_keys: list[str] | None = None) -> None:
    runtime = WriterRuntime(
        config=config,
        llm=LlmClient(config.writer_model),
        ledger=ExecutionLedger(config.ledger.path),
    )
    # With keys, the SDK answers 401 to any request not signed by that Restate server (all but /health).
    app = restate.app(services=[build_service(runtime)], identity_keys=identity_keys or None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop(signame: str) -> None:
        if not stop.is_set():
            log.info("%s received: draining for up to %.0f s, then exiting", signame, config.service.grace_period_s)
        stop.set()

    install_shutdown_hook(loop, lambda: request_stop("SIGTERM"), signal.SIGTERM)
    install_shutdown_hook(loop, lambda: request_stop("SIGINT"), signal.SIGINT)
    log.info(
        "WriterAgentRestate serving on http://%s:%d (h2c and HTTP/1.1), pid %d, model %s at %s, ledger %s",
        bind_host(config),
        config.service.port,
        os.getpid(),
        config.writer_model.model,
        config.writer_model.base_url,
        config.ledger.path,
    )
    if config.revision.number > 1:
        log.info("revision %d of the writer (journal %s)", config.revision.number, config.revision.journal)
    if identity_keys:
        log.info("only requests signed by Restate's key %s are accepted", ", ".join(identity_keys))
    try:
        await serve(app, hypercorn_config(config), mode="asgi", shutdown_trigger=stop.wait)
    finally:
        await runtime.llm.close()
    log.info("stopped")


def main() -> int:
    try:
        config = WriterConfig.load()
    except ConfigError as exc:
        print(f"writer: config error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.service.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    for noisy in ("httpx", "httpx2", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    log.info("config: %s", os.environ.get(CONFIG_ENV) or "configs/local.yaml")
    try:
        identity_keys = load_identity_keys()
    except ConfigError as exc:
        print(f"writer: config error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve_writer(config, identity_keys))
    except OSError as exc:
        log.error("cannot serve on %s:%d: %s", bind_host(config), config.service.port, exc)
        return 1
    return 0
